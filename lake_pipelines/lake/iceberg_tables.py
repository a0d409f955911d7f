"""Iceberg tables from dataset specs, and the one write we allow: replace a partition.

`overwrite_partition` deletes the partition's rows and appends the new ones in one catalog
commit: readers see the old day or the new day, never a mix. pyiceberg retries the commit on
a concurrent update (``commit.retry.*`` table properties), re-validating that no one else
wrote the same day in between.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError
from pyiceberg.expressions import BooleanExpression
from pyiceberg.table import Table
from pyiceberg.transforms import (
    DayTransform,
    HourTransform,
    IdentityTransform,
    MonthTransform,
    Transform,
    YearTransform,
)

from lake_pipelines.errors import TableCommitError

TRANSFORMS: dict[str, type[Transform]] = {  # type: ignore[type-arg]
    "identity": IdentityTransform,
    "year": YearTransform,
    "month": MonthTransform,
    "day": DayTransform,
    "hour": HourTransform,
}

DEFAULT_PROPERTIES = {
    "write.parquet.compression-codec": "zstd",
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
    except Exception as exc:
        if "already exists" in str(exc).lower():
            return catalog.load_table(identifier)  # created concurrently by another run
        raise TableCommitError(identifier, f"cannot create: {exc}") from exc
    return catalog.load_table(identifier)


def conform(table: Table, data: pa.Table) -> pa.Table:
    """Cast `data` to the table's current Arrow schema (names, order, types, nullability)."""
    target = table.schema().as_arrow()
    missing = [n for n in target.names if n not in data.column_names]
    for name in missing:
        data = data.append_column(
            target.field(name), pa.nulls(data.num_rows, target.field(name).type)
        )
    try:
        return data.select(target.names).cast(target)
    except (pa.ArrowInvalid, ValueError) as exc:
        raise TableCommitError(
            str(table.name()), f"data does not fit the table schema: {exc}"
        ) from exc


def overwrite_partition(
    table: Table,
    data: pa.Table,
    row_filter: BooleanExpression,
    summary: Mapping[str, object],
) -> int:
    """Replace the rows matching `row_filter` (exactly one partition) with `data`.

    `summary` is written into the snapshot summary under ``lake.*`` keys (run id, partition,
    source files, row counts). Returns the new current snapshot id.

    Raises:
        TableCommitError: the commit failed after pyiceberg's retries; the table is unchanged.
    """
    props = {
        f"{SUMMARY_PREFIX}{k}": v if isinstance(v, str) else json.dumps(v, default=str)
        for k, v in summary.items()
    }
    name = ".".join(table.name())
    try:
        table.overwrite(
            conform(table, data), overwrite_filter=row_filter, snapshot_properties=props
        )
    except CommitFailedException as exc:
        raise TableCommitError(name, f"commit failed after retries: {exc}") from exc
    except Exception as exc:
        if type(exc).__name__ == "ValidationException":
            raise TableCommitError(
                name, f"another run wrote the same partition concurrently; nothing written ({exc})"
            ) from exc
        raise
    snapshot = table.current_snapshot()
    assert snapshot is not None
    return snapshot.snapshot_id


def partition_summary(table: Table, partition: str) -> dict[str, str] | None:
    """The ``lake.*`` summary of the latest snapshot that wrote `partition`, if any."""
    for entry in reversed(table.history()):
        snap = table.snapshot_by_id(entry.snapshot_id)
        if snap is None or snap.summary is None:
            continue
        props = snap.summary.additional_properties
        if props.get(f"{SUMMARY_PREFIX}partition") == partition:
            return {k: v for k, v in props.items() if k.startswith(SUMMARY_PREFIX)}
    return None


def day_label(day: date) -> str:
    return day.isoformat()
