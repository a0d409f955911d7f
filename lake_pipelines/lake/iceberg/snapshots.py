"""Tags and time travel: day tags, snapshot lookup by id, tag or time, reads as of a snapshot."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime

import pyarrow as pa
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.expressions import AlwaysTrue, BooleanExpression
from pyiceberg.expressions.parser import parse as parse_filter
from pyiceberg.expressions.visitors import bind
from pyiceberg.schema import Schema
from pyiceberg.table import Table, Transaction
from pyiceberg.table.refs import SnapshotRef, SnapshotRefType
from pyiceberg.table.update import AssertRefSnapshotId, SetSnapshotRefUpdate
from pyiceberg.table.update.snapshot import ManageSnapshots

from lake_pipelines.errors import SnapshotNotFoundError, TableCommitError, TableReadError
from lake_pipelines.lake.period import Unit, as_period


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
# An hourly table's tags: a week of hours (168 tags and the snapshots they keep, not 720).
HOUR_TAG_MAX_AGE = 7 * 24 * 3600 * 1000


def tag_max_age(granularity: str) -> int:
    """How long (ms) the tag of a replaced partition keeps its snapshot: 30 days for days,
    a week for hours."""
    return HOUR_TAG_MAX_AGE if granularity == "hourly" else DAY_TAG_MAX_AGE


def day_tag(day: Unit) -> str:
    """``day-2026-11-01`` (``hour-2026-11-01T05`` for an hour): the tag of the snapshot
    that last replaced it."""
    return as_period(day).tag


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
            raise SnapshotNotFoundError(name, snapshot_id=snapshot_id, span=snapshot_span(table))
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
            raise SnapshotNotFoundError(name, as_of=as_of, span=snapshot_span(table))
        return snap.snapshot_id
    current = table.current_snapshot()
    return current.snapshot_id if current else None


def snapshot_span(table: Table) -> tuple[datetime, datetime] | None:
    """When the table's first and last kept snapshots were committed (None: it has none)."""
    times = sorted(s.timestamp_ms for s in table.snapshots())
    if not times:
        return None
    first, last = (datetime.fromtimestamp(ms / 1000, tz=UTC) for ms in (times[0], times[-1]))
    return first, last


def _has(schema: Schema, column: str) -> bool:
    try:
        schema.find_field(column)
    except ValueError:
        return False
    return True


def _columns(schema: Schema) -> str:
    return ", ".join(f.name for f in schema.fields)


def _checked_filter(
    name: str, schema: Schema, row_filter: str | BooleanExpression | None
) -> BooleanExpression:
    """The row filter, parsed and checked against `schema`: a message naming the columns
    instead of pyparsing's or pyiceberg's deep errors."""
    if row_filter is None:
        return AlwaysTrue()
    text = row_filter if isinstance(row_filter, str) else str(row_filter)
    try:
        expr = parse_filter(row_filter) if isinstance(row_filter, str) else row_filter
    except Exception as exc:  # pyparsing's ParseException, or ValueError for a bad literal
        where = f"at character {exc.col}" if hasattr(exc, "col") else str(exc)
        raise TableReadError(
            name,
            f"row filter {text!r} does not parse ({where}); write it like "
            "\"event_type = 'click' AND price > 10\" (SQL-like: = != < <= > >= IN, IS NULL, "
            "AND, OR, NOT)",
        ) from None
    try:
        bind(schema, expr, case_sensitive=True)
    except ValueError as exc:
        missing = re.match(r"Could not find field with name (.+?), case_sensitive", str(exc))
        problem = f"no column {missing.group(1)!r}" if missing else str(exc)
        raise TableReadError(
            name, f"row filter {text!r}: {problem} (columns: {_columns(schema)})"
        ) from None
    return expr


def read_as_of(
    table: Table,
    snapshot_id: int | None = None,
    tag: str | None = None,
    as_of: datetime | None = None,
    row_filter: str | BooleanExpression | None = None,
    columns: tuple[str, ...] = ("*",),
    limit: int | None = None,
) -> pa.Table:
    """The table's rows as of a snapshot id, tag or timestamp, read with that snapshot's schema.

    Raises:
        SnapshotNotFoundError: no such snapshot, tag, or no snapshot yet at `as_of`.
        TableReadError: the row filter does not parse or names no column of the table, or
            `columns` names one it does not have (the message lists the columns).
    """
    name = ".".join(table.name())
    sid = resolve_snapshot(table, snapshot_id, tag, as_of)
    schema = table.scan(snapshot_id=sid).projection()
    unknown = [c for c in columns if c != "*" and not _has(schema, c)]
    if unknown:
        raise TableReadError(name, f"no column {', '.join(unknown)} (columns: {_columns(schema)})")
    scan = table.scan(
        row_filter=_checked_filter(name, schema, row_filter),
        selected_fields=columns,
        snapshot_id=sid,
        limit=limit,
    )
    # whole into memory: for a person reading rows (the CLI's ``scan``, with ``--limit`` and
    # ``--where``); no pipeline step reads a day through it
    return scan.to_arrow()
