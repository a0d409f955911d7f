"""Tags and time travel: day tags, snapshot lookup by id, tag or time, reads as of a snapshot."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime

import pyarrow as pa
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.expressions import AlwaysTrue, BooleanExpression
from pyiceberg.table import Table, Transaction
from pyiceberg.table.refs import SnapshotRef, SnapshotRefType
from pyiceberg.table.update import AssertRefSnapshotId, SetSnapshotRefUpdate
from pyiceberg.table.update.snapshot import ManageSnapshots

from lake_pipelines.errors import SnapshotNotFoundError, TableCommitError, TableReadError


def point_tag(table: Table, name: str, snapshot_id: int, max_age_ms: int | None) -> bool:
    """Make tag `name` point at `snapshot_id` (see `point_tags`)."""
    return point_tags(table, {name: snapshot_id}, max_age_ms)


def stage_tags(
    tx: Transaction,
    tags: Mapping[str, int],
    max_age_ms: int | None,
    found: Mapping[str, SnapshotRef] | None = None,
) -> None:
    """Stage tags `name` → snapshot id in `tx`, replacing tags of the same names.

    One update per tag. With `found` (the refs as the caller read them), the commit requires
    the first tag to be as found; without, the transaction must guard itself (a snapshot
    commit requires its branch unchanged). pyiceberg's ``create_tag``/``remove_tag`` instead
    re-derive the transaction's whole table metadata for every tag, a deep copy that grows
    with the snapshots kept (and a transaction keeps one ref requirement anyway).
    """
    if not tags:
        return
    manage = ManageSnapshots(tx)
    # pydantic models: pyiceberg builds them by field name too (its aliases are kebab-case)
    manage._updates = tuple(
        SetSnapshotRefUpdate(  # type: ignore[call-arg]
            snapshot_id=sid, ref_name=name, type=SnapshotRefType.TAG, max_ref_age_ms=max_age_ms
        )
        for name, sid in sorted(tags.items())
    )
    if found is not None:
        first = min(tags)
        ref = found.get(first)
        was = ref.snapshot_id if ref else None
        manage._requirements = (AssertRefSnapshotId(snapshot_id=was, ref=first),)  # type: ignore[call-arg]
    manage.commit()


def point_tags(table: Table, tags: Mapping[str, int], max_age_ms: int | None) -> bool:
    """Make each tag of `tags` point at its snapshot id, in one commit, retrying on
    concurrent updates.

    A no-op for the tags that already do. Returns whether a commit was needed.

    Raises:
        TableCommitError: the tags could not be committed after the table's retry budget.
    """
    attempts = 1 + int(table.metadata.properties.get("commit.retry.num-retries", "10"))
    for attempt in range(attempts):
        refs = table.metadata.refs
        stale = {n: sid for n, sid in tags.items() if n not in refs or refs[n].snapshot_id != sid}
        if not stale:
            return attempt > 0
        try:
            with table.transaction() as tx:
                stage_tags(tx, stale, max_age_ms, refs)
            return True
        except CommitFailedException as exc:
            if attempt == attempts - 1:
                names = ", ".join(sorted(stale))
                raise TableCommitError(
                    ".".join(table.name()), f"could not point tags {names}: {exc}"
                ) from exc
            time.sleep(min(0.1 * 2**attempt, 5.0) * (1 + random.random() / 10))
            table.refresh()
    return True


# -- tags and time travel ------------------------------------------------------------------------

DAY_TAG_MAX_AGE = 30 * 24 * 3600 * 1000  # ms; expiry removes older day tags, then their snapshots


def day_tag(day: date) -> str:
    return f"day-{day.isoformat()}"


def resolve_snapshot(
    table: Table,
    snapshot_id: int | None = None,
    tag: str | None = None,
    as_of: datetime | None = None,
) -> int | None:
    """The snapshot id for one of: an id, a tag (or branch) name, or a point in time.

    Raises:
        TableReadError: more than one of them was given.
        SnapshotNotFoundError: the id or tag does not exist, or the table had no snapshot at
            `as_of`.
    """
    name = ".".join(table.name())
    given = [x is not None for x in (snapshot_id, tag, as_of)]
    if sum(given) > 1:
        raise TableReadError(name, "give one of snapshot id, tag or timestamp")
    if snapshot_id is not None:
        if table.snapshot_by_id(snapshot_id) is None:
            raise SnapshotNotFoundError(name, snapshot_id=snapshot_id)
        return snapshot_id
    if tag is not None:
        snap = table.snapshot_by_name(tag)
        if snap is None:
            raise SnapshotNotFoundError(name, tag=tag, known=table.metadata.refs)
        return snap.snapshot_id
    if as_of is not None:
        if as_of.tzinfo is None:
            as_of = as_of.replace(tzinfo=UTC)
        snap = table.snapshot_as_of_timestamp(int(as_of.timestamp() * 1000))
        if snap is None:
            raise SnapshotNotFoundError(name, as_of=as_of)
        return snap.snapshot_id
    current = table.current_snapshot()
    return current.snapshot_id if current else None


def read_as_of(
    table: Table,
    snapshot_id: int | None = None,
    tag: str | None = None,
    as_of: datetime | None = None,
    row_filter: str | BooleanExpression | None = None,
    columns: tuple[str, ...] = ("*",),
    limit: int | None = None,
) -> pa.Table:
    """The table's rows as of a snapshot id, tag or timestamp, read with that snapshot's schema."""
    sid = resolve_snapshot(table, snapshot_id, tag, as_of)
    scan = table.scan(
        row_filter=row_filter if row_filter is not None else AlwaysTrue(),
        selected_fields=columns,
        snapshot_id=sid,
        limit=limit,
    )
    # whole into memory: for a person reading rows (the CLI's ``scan``, with ``--limit`` and
    # ``--where``); no pipeline step reads a day through it
    return scan.to_arrow()
