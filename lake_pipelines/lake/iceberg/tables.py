"""Iceberg tables from dataset specs, and the one write we allow: replace a partition.

`overwrite_partition` deletes the partition's rows and appends the new ones in one catalog
commit: readers see the old day or the new day, never a mix. pyiceberg retries the commit on
a concurrent update (``commit.retry.*`` table properties), re-validating that no one else
wrote the same day in between.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

import pyarrow as pa
from pyiceberg.exceptions import (
    CommitFailedException,
    NoSuchTableError,
    TableAlreadyExistsError,
    ValidationException,
)
from pyiceberg.expressions import BooleanExpression
from pyiceberg.table import Table
from pyiceberg.table.update.snapshot import ManageSnapshots
from pyiceberg.transforms import IdentityTransform

from lake_pipelines.errors import TableCommitError
from lake_pipelines.lake.arrow import fit_to_schema
from lake_pipelines.lake.iceberg.evolution import Evolution, apply_evolution
from lake_pipelines.lake.iceberg.snapshots import point_tag
from lake_pipelines.lake.iceberg.transforms import TRANSFORMS

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

DEFAULT_PROPERTIES = {
    "format-version": "2",
    "write.parquet.compression-codec": "zstd",
    # old metadata.json files are pruned by each commit instead of piling up
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "50",
    "write.parquet.compression-level": "3",
    "write.target-file-size-bytes": str(256 << 20),
    "commit.retry.num-retries": "10",
    "commit.retry.min-wait-ms": "100",
    "commit.retry.max-wait-ms": "10000",
}
SUMMARY_PREFIX = "lake."


def ensure_table(
    catalog: Catalog,
    identifier: str,
    schema: pa.Schema,
    partitioning: list[tuple[str, str]],
    sort_by: tuple[str, ...] = (),
    properties: Mapping[str, str] | None = None,
) -> Table:
    """Load the table, creating it (and its namespace) in one transaction if it is missing.

    Args:
        identifier: ``namespace.name``.
        schema: Arrow schema; nested struct and list types become Iceberg nested types.
        partitioning: ``(column, transform)`` pairs, e.g. ``[("ts", "day")]``.
        sort_by: columns of the table's sort order, ascending.

    Returns:
        The table; when another run creates it at the same time, the one that run created.

    Raises:
        TableCommitError: the table could not be created (and no one else created it).
    """
    try:
        return catalog.load_table(identifier)
    except NoSuchTableError:
        pass
    namespace = identifier.rsplit(".", 1)[0]
    catalog.create_namespace_if_not_exists(namespace)
    props = {**DEFAULT_PROPERTIES, **(properties or {})}
    try:
        with catalog.create_table_transaction(identifier, schema=schema, properties=props) as txn:
            if partitioning:
                with txn.update_spec() as spec:
                    for column, transform in partitioning:
                        spec.add_field(column, TRANSFORMS[transform](), f"{column}_{transform}")
            if sort_by:
                with txn.update_sort_order() as order:
                    for column in sort_by:
                        order.asc(column, IdentityTransform())
    except TableAlreadyExistsError:
        pass  # created concurrently by another run (SQL catalog, or a REST catalog's staging)
    except CommitFailedException as exc:
        # A creation race lost before the catalog's own check fails the create requirement
        # (SQL catalog: AssertCreate; REST: 409 Conflict), which pyiceberg raises as
        # CommitFailedException, like any other conflict: the table being there now tells
        # the two apart.
        if not catalog.table_exists(identifier):
            raise TableCommitError(identifier, f"cannot create: {exc}") from exc
    except Exception as exc:
        raise TableCommitError(identifier, f"cannot create: {exc}") from exc
    return catalog.load_table(identifier)


def conform(name: str, target: pa.Schema, data: pa.Table) -> pa.Table:
    """Cast `data` to the table's Arrow schema (names, order, types, nullability)."""
    try:
        return fit_to_schema(data, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, ValueError) as exc:
        raise TableCommitError(name, f"data does not fit the table schema: {exc}") from exc


def overwrite_partition(
    table: Table,
    data: pa.Table,
    row_filter: BooleanExpression,
    summary: Mapping[str, object],
    evolution: Evolution | None = None,
    tag: tuple[str, int | None] | None = None,
) -> int:
    """Replace the rows matching `row_filter` (exactly one partition) with `data`.

    `tag` = (name, max age in ms) points that tag at the new snapshot in the same commit.

    With `evolution`, the schema/partition changes are staged in the same transaction: the
    table is evolved and written in one catalog commit, or not at all. `summary` is written
    into the snapshot summary under ``lake.*`` keys. Returns the new current snapshot id.

    Raises:
        TableCommitError: the commit failed after pyiceberg's retries; the table is unchanged.
    """
    props = {
        f"{SUMMARY_PREFIX}{k}": v if isinstance(v, str) else json.dumps(v, default=str)
        for k, v in summary.items()
    }
    if evolution:
        props[f"{SUMMARY_PREFIX}evolution"] = evolution.describe()
    name = ".".join(table.name())
    staged_id: int | None = None
    try:
        with table.transaction() as tx:
            if evolution:
                apply_evolution(tx, evolution)
            target = tx.table_metadata.schema().as_arrow()
            tx.overwrite(
                conform(name, target, data), overwrite_filter=row_filter, snapshot_properties=props
            )
            staged = tx.table_metadata.current_snapshot()
            assert staged is not None
            staged_id = staged.snapshot_id
            if tag is not None:
                manage = ManageSnapshots(tx)
                if tag[0] in tx.table_metadata.refs:
                    manage = manage.remove_tag(tag[0])
                manage.create_tag(staged_id, tag[0], max_ref_age_ms=tag[1]).commit()
    except CommitFailedException as exc:
        raise TableCommitError(name, f"commit failed after retries: {exc}") from exc
    except ValidationException as exc:
        raise TableCommitError(
            name, f"another run wrote the same partition concurrently; nothing written ({exc})"
        ) from exc
    assert staged_id is not None
    if tag is not None:
        # When the commit had to be retried after a concurrent update, pyiceberg 0.12 rebuilds
        # only the snapshot updates and drops every ref update (Transaction.
        # _rebuild_snapshot_updates): the data lands, the tag does not. Re-point it here. The
        # snapshot ids are stable across pyiceberg's retries, so `staged_id` is what landed.
        point_tag(table, tag[0], staged_id, tag[1])
    return staged_id


def partition_summary(table: Table, partition: str) -> tuple[int, dict[str, str]] | None:
    """The id and ``lake.*`` summary of the latest snapshot that wrote `partition`, if any."""
    for entry in reversed(table.history()):
        snap = table.snapshot_by_id(entry.snapshot_id)
        if snap is None or snap.summary is None:
            continue
        props = snap.summary.additional_properties
        if props.get(f"{SUMMARY_PREFIX}partition") == partition:
            lake = {k: v for k, v in props.items() if k.startswith(SUMMARY_PREFIX)}
            return snap.snapshot_id, lake
    return None


def files_of(table: Table, row_filter: BooleanExpression, snapshot_id: int) -> tuple[int, int]:
    """(data files, bytes) that hold rows matching `row_filter` at `snapshot_id`."""
    tasks = list(table.scan(row_filter=row_filter, snapshot_id=snapshot_id).plan_files())
    return len(tasks), sum(t.file.file_size_in_bytes for t in tasks)
