"""Compaction of Iceberg tables: a partition's small data files replaced in one commit.

The bins of a partition are read file by file through pyiceberg's reader (so row-level deletes
and schema evolution apply), sorted with bounded memory and written with the dataset's Parquet
settings and the table's field ids. When the written files hold the rows read (each row
reached the writer once; footers and manifests agree on the count; ``verify="content"`` also
reads them back and compares checksums), a single transaction deletes exactly the rewritten
files and adds the new ones; its snapshot summary carries ``lake.operation=compaction``.
Readers see the old files or the new ones, never both.

Concurrency: the commit is scoped to the partition. pyiceberg retries it on a concurrent commit
(``commit.retry.*`` table properties) and re-validates: appends to other partitions land and
the compaction commits on top of them; a write to the same partition (or the removal of one of
the rewritten files) raises a validation error, the new files are deleted and the partition is
reported as skipped. Nothing is lost either way.
"""

from __future__ import annotations

import posixpath
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.expressions import (
    AlwaysTrue,
    And,
    BooleanExpression,
    EqualTo,
    GreaterThanOrEqual,
    IsNull,
    LessThan,
)
from pyiceberg.io.pyarrow import ArrowScan, parquet_file_to_data_file, schema_to_pyarrow
from pyiceberg.table import FileScanTask, Table
from pyiceberg.transforms import (
    DayTransform,
    HourTransform,
    IdentityTransform,
    MonthTransform,
    YearTransform,
)
from pyiceberg.typedef import Record

from lake_pipelines.datasets.spec import CompactionPolicy, DatasetSpec
from lake_pipelines.errors import LakeError, TableCommitError
from lake_pipelines.lake.compaction.plan import (
    OUTPUT_PREFIX,
    CompactionError,
    CompactionReport,
    FileStat,
    PartitionPlan,
    PartitionResult,
    plan_partition,
    planned_result,
)
from lake_pipelines.lake.compaction.rewrite import (
    SORT_MEMORY_BYTES,
    Verify,
    conform,
    rewrite,
    verify_written,
)
from lake_pipelines.lake.hashing import RowChecksum
from lake_pipelines.lake.iceberg.tables import SUMMARY_PREFIX
from lake_pipelines.lake.parquet.options import ROW_GROUP_BYTES, file_schema, writer_options
from lake_pipelines.lake.parquet.writer import RollingParquetWriter, WrittenFile, commit_files
from lake_pipelines.lake.storage import ObjectStore

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _scan_tasks(table: Table) -> dict[str, list[FileScanTask]]:
    """The current snapshot's data files, grouped by partition path (``ts_day=2026-11-03``)."""
    specs, schema = table.specs(), table.schema()
    groups: dict[str, list[FileScanTask]] = defaultdict(list)
    for task in table.scan().plan_files():
        path = specs[task.file.spec_id].partition_to_path(task.file.partition, schema)
        groups[path or "unpartitioned"].append(task)
    return groups


def _stat(task: FileScanTask) -> FileStat:
    f = task.file
    data = sum(f.column_sizes.values()) if f.column_sizes else None
    return FileStat(f.file_path, f.file_size_in_bytes, f.record_count, None, data)


def plan_iceberg(
    table: Table, policy: CompactionPolicy, tasks: dict[str, list[FileScanTask]] | None = None
) -> list[PartitionPlan]:
    """One plan per partition of the table's current snapshot; sizes and rows from manifests.

    Files that carry row-level delete files, or were written under an older partition spec,
    are never rewritten (pinned).
    """
    tasks = _scan_tasks(table) if tasks is None else tasks
    current = table.spec().spec_id
    return [
        plan_partition(
            "silver",
            partition,
            [_stat(t) for t in group],
            policy,
            pinned={t.file.file_path for t in group if t.delete_files or t.file.spec_id != current},
        )
        for partition, group in sorted(tasks.items())
    ]


def partition_filter(table: Table, record: Record) -> BooleanExpression:
    """A row filter selecting exactly one partition, for conflict detection.

    Identity and time transforms are translated; any other transform gives ``AlwaysTrue``,
    which makes every concurrent write a conflict (safe, only less concurrent).
    """
    schema = table.schema()
    parts: list[BooleanExpression] = []
    for i, fld in enumerate(table.spec().fields):
        column = schema.find_column_name(fld.source_id)
        value = record[i]
        transform = fld.transform
        if column is None:
            return AlwaysTrue()
        if value is None:
            parts.append(IsNull(column))  # type: ignore[call-arg,arg-type]
        elif isinstance(transform, IdentityTransform):
            parts.append(EqualTo(column, value))  # type: ignore[call-arg,arg-type]
        elif isinstance(transform, DayTransform | HourTransform | MonthTransform | YearTransform):
            start, end = _bounds(transform, value)
            as_date = str(schema.find_field(fld.source_id).field_type) == "date"
            lo, hi = (start.date(), end.date()) if as_date else (start, end)
            low = GreaterThanOrEqual(column, lo.isoformat())  # type: ignore[call-arg,arg-type]
            high = LessThan(column, hi.isoformat())  # type: ignore[call-arg,arg-type]
            parts.append(And(low, high))
        else:
            return AlwaysTrue()
    if not parts:
        return AlwaysTrue()
    return parts[0] if len(parts) == 1 else And(*parts)


def _bounds(transform: Any, value: int) -> tuple[datetime, datetime]:
    if isinstance(transform, HourTransform):
        start = EPOCH + timedelta(hours=value)
        return start, start + timedelta(hours=1)
    if isinstance(transform, DayTransform):
        start = EPOCH + timedelta(days=value)
        return start, start + timedelta(days=1)
    months = value if isinstance(transform, MonthTransform) else value * 12
    step = 1 if isinstance(transform, MonthTransform) else 12

    def month(m: int) -> datetime:
        return datetime(1970 + m // 12, m % 12 + 1, 1, tzinfo=UTC)

    return month(months), month(months + step)


def _output_schema(table: Table, spec: DatasetSpec) -> pa.Schema:
    """The table's Arrow schema with field ids (pyiceberg reads by id), plus our lineage."""
    return schema_to_pyarrow(table.schema()).with_metadata(file_schema(spec).metadata)


def _data_dir(store: ObjectStore, table: Table, partition: str) -> str:
    root = table.properties.get("write.data.path", f"{table.location().rstrip('/')}/data")
    try:
        return store.key_of(posixpath.join(root, partition))
    except LakeError as exc:
        raise CompactionError(
            partition, f"the table's data path {root} is not inside the lake {store.uri()}"
        ) from exc


def compact_iceberg_partition(
    store: ObjectStore,
    table: Table,
    spec: DatasetSpec,
    plan: PartitionPlan,
    tasks: list[FileScanTask],
    policy: CompactionPolicy | None = None,
    run_id: str = "",
    sort_memory_bytes: int = SORT_MEMORY_BYTES,
    row_group_bytes: int = ROW_GROUP_BYTES,
    spill_dir: str | None = None,
    verify: Verify = "footers",
) -> PartitionResult:
    """Rewrite the plan's bins and replace their files in one commit.

    ``verify`` says how the written files are checked before the commit (`verify_written`).

    Returns a ``skipped`` result (nothing changed, new files removed) when a concurrent commit
    wrote to the same partition or removed one of the files being rewritten.

    Raises:
        CompactionError: the rows written differ from the rows read; nothing was committed.
        TableCommitError: the commit kept failing after pyiceberg's retries.
    """
    started = time.perf_counter()
    policy = policy or spec.compaction
    by_path = {t.file.file_path: t for t in tasks}
    rewritten = [by_path[f.path] for b in plan.bins for f in b.files]
    schema = _output_schema(table, spec)
    options = writer_options(spec)
    if spec.sort_by:
        order = [(c, "ascending") for c in spec.sort_by]
        options["sorting_columns"] = pq.SortingColumn.from_ordering(schema, order)
    directory = _data_dir(store, table, plan.partition)
    reader = ArrowScan(table.metadata, table.io, table.schema(), AlwaysTrue())
    written: list[WrittenFile] = []
    seen = RowChecksum()
    try:
        for b in plan.bins:
            stem = f"{OUTPUT_PREFIX}{uuid.uuid4().hex[:12]}"
            writer = RollingParquetWriter(
                store, spec, directory, stem, row_group_bytes, policy.target_file_bytes
            )
            writer.schema, writer.options = schema, options  # field ids, table-order sorting
            tables = (
                conform(batch, schema, plan.partition)
                for f in b.files
                for batch in reader.to_record_batches([by_path[f.path]])
            )
            try:
                seen.merge(
                    rewrite(
                        tables, writer, spec.sort_by, sort_memory_bytes, spill_dir, plan.partition
                    )
                )
            except BaseException:
                writer.abort()
                raise
            commit_files(store, writer.files)  # visible to no reader until the commit
            written.extend(writer.files)
        verify_written(
            store,
            [store.path(f.key) for f in written],
            written,
            seen,
            sum(t.file.record_count for t in rewritten),
            schema,
            plan.partition,
            verify,
            "nothing was committed",
        )
        data_files = [
            parquet_file_to_data_file(table.io, table.metadata, store.uri(f.key)) for f in written
        ]
    except BaseException:
        store.delete([f.key for f in written])
        raise

    summary = {
        f"{SUMMARY_PREFIX}operation": "compaction",
        f"{SUMMARY_PREFIX}compacted-partition": plan.partition,
        f"{SUMMARY_PREFIX}run-id": run_id,
        f"{SUMMARY_PREFIX}files-rewritten": str(len(rewritten)),
        f"{SUMMARY_PREFIX}files-written": str(len(written)),
        f"{SUMMARY_PREFIX}rows": str(seen.rows),
        f"{SUMMARY_PREFIX}checksum": seen.value,
    }
    result = PartitionResult(plan.partition, "compacted", len(plan.files), bytes_before=plan.bytes)
    name = ".".join(table.name())
    try:
        with (
            table.transaction() as txn,
            txn.update_snapshot(snapshot_properties=summary).overwrite() as replace,
        ):
            # Scopes conflict detection (and manifest pruning) to this partition; only the
            # files named below are removed.
            replace.delete_by_predicate(partition_filter(table, rewritten[0].file.partition))
            for task in rewritten:
                replace.delete_data_file(task.file)
            for data_file in data_files:
                replace.append_data_file(data_file)
    except ValidationException as exc:
        store.delete([f.key for f in written])
        result.status, result.reason = "skipped", f"concurrent write to the partition: {exc}"
        return result
    except CommitFailedException as exc:
        store.delete([f.key for f in written])
        raise TableCommitError(name, f"compaction commit failed after retries: {exc}") from exc

    snapshot = table.current_snapshot()
    result.snapshot_id = snapshot.snapshot_id if snapshot else None
    result.files_after = len(plan.files) - len(rewritten) + len(written)
    result.bytes_read = sum(t.file.file_size_in_bytes for t in rewritten)
    result.bytes_written = sum(f.bytes for f in written)
    result.bytes_after = plan.bytes - result.bytes_read + result.bytes_written
    result.files_rewritten, result.files_written = len(rewritten), len(written)
    result.rows, result.checksum = seen.rows, seen.value
    result.seconds = time.perf_counter() - started
    return result


def compact_iceberg(
    store: ObjectStore,
    table: Table,
    spec: DatasetSpec,
    policy: CompactionPolicy | None = None,
    *,
    partitions: Collection[str] | None = None,
    dry_run: bool = False,
    force: bool = False,
    run_id: str = "",
    sort_memory_bytes: int = SORT_MEMORY_BYTES,
    row_group_bytes: int = ROW_GROUP_BYTES,
    spill_dir: str | None = None,
    on_plan: Callable[[list[PartitionPlan]], None] | None = None,
    verify: Verify = "footers",
) -> CompactionReport:
    """Plan every partition of `table` and compact the flagged ones, one commit each.

    Args:
        policy: thresholds; default: the dataset's `DatasetSpec.compaction`.
        partitions: only these partition paths (``ts_day=2026-11-03``).
        dry_run: plan and report only.
        force: compact every partition that has a bin, flagged or not.
        on_plan: called with every partition's plan before anything is rewritten.
        verify: how written files are checked before the commit: ``footers`` (row counts) or
            ``content`` (every row read back and checksummed).
    """
    started = time.perf_counter()
    policy = policy or spec.compaction
    report = CompactionReport(spec.name, "silver", dry_run=dry_run)
    tasks = _scan_tasks(table)
    report.plans = plan_iceberg(table, policy, tasks)
    if on_plan is not None:
        on_plan(report.plans)
    for plan in report.plans:
        if not (plan.bins if force else plan.flagged):
            continue
        if partitions is not None and plan.partition not in partitions:
            continue
        if dry_run:
            report.results.append(planned_result(plan))
            continue
        report.results.append(
            compact_iceberg_partition(
                store,
                table,
                spec,
                plan,
                tasks[plan.partition],
                policy,
                run_id,
                sort_memory_bytes,
                row_group_bytes,
                spill_dir,
                verify,
            )
        )
    report.seconds = time.perf_counter() - started
    return report
