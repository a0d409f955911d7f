"""Compaction of Iceberg tables: a partition's small data files replaced in one commit.

The bins of a partition are read a few files at a time through pyiceberg's reader (so
row-level deletes and schema evolution apply) and checksummed as they come, sorted with
bounded memory and written with the dataset's Parquet settings and the table's field ids.
When the written files hold the rows read (each row reached the writer once; footers and
manifests agree on the count; ``verify="content"`` also reads them back and compares
checksums), a single transaction deletes exactly the rewritten files and adds the new ones;
its snapshot summary carries ``lake.operation=compaction``.
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
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.pyarrow import ArrowScan, parquet_file_to_data_file, schema_to_pyarrow
from pyiceberg.manifest import DataFile
from pyiceberg.table import FileScanTask, Table

from lake_pipelines.datasets.spec import CompactionPolicy, DatasetSpec
from lake_pipelines.errors import LakeError, TableCommitError
from lake_pipelines.lake import metrics
from lake_pipelines.lake.compaction.driver import PlanHook, compact_layer
from lake_pipelines.lake.compaction.iceberg_filter import partition_filter
from lake_pipelines.lake.compaction.iceberg_plan import plan_iceberg, scan_tasks
from lake_pipelines.lake.compaction.options import CompactionOptions
from lake_pipelines.lake.compaction.plan import OUTPUT_PREFIX, CompactionError, Layer, PartitionPlan
from lake_pipelines.lake.compaction.report import (
    CompactionReport,
    PartitionResult,
    compacted_result,
    skipped_result,
)
from lake_pipelines.lake.compaction.rewrite import conform, rewrite
from lake_pipelines.lake.compaction.verify import verify_written
from lake_pipelines.lake.hashing import RowChecksum
from lake_pipelines.lake.iceberg.tables import SUMMARY_PREFIX
from lake_pipelines.lake.parquet.options import file_schema, writer_options
from lake_pipelines.lake.parquet.writer import RollingParquetWriter, WrittenFile, commit_files
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.lake.threads import ordered_map

# Small data files read together through pyiceberg (deletes and schema evolution apply);
# two such runs are in flight, so memory stays at a few small files.
READ_FILES = 8


def compact_iceberg(
    store: ObjectStore,
    table: Table,
    spec: DatasetSpec,
    *,
    options: CompactionOptions | None = None,
    policy: CompactionPolicy | None = None,
    run_id: str = "",
    on_plan: PlanHook | None = None,
) -> CompactionReport:
    """Plan every partition of `table` and compact the flagged ones, one commit each.

    Args:
        options: mode and tuning (`CompactionOptions`); default: compact what is flagged.
        policy: thresholds; default: the dataset's `DatasetSpec.compaction`.
        run_id: recorded in each commit's snapshot summary (``lake.run-id``).
        on_plan: called with every partition's plan, and those selected, before any rewrite.
    """
    target = IcebergCompactor(store, table, spec, policy or spec.compaction, run_id)
    return compact_layer(target, options or CompactionOptions(), on_plan)


class IcebergCompactor:
    """One Iceberg table, as the driver (`compact_layer`) drives it."""

    def __init__(
        self,
        store: ObjectStore,
        table: Table,
        spec: DatasetSpec,
        policy: CompactionPolicy,
        run_id: str = "",
    ) -> None:
        self.store, self.table, self.spec, self.policy = store, table, spec, policy
        self.run_id = run_id
        self.tasks: dict[str, list[FileScanTask]] = {}  # of the snapshot last planned

    @property
    def dataset(self) -> str:
        return self.spec.name

    @property
    def layer(self) -> Layer:
        return "silver"

    def recover(self) -> list[str]:
        return []  # a commit is atomic: an interrupted run leaves only orphan files

    def plan(self) -> list[PartitionPlan]:
        self.tasks = scan_tasks(self.table)
        return plan_iceberg(self.table, self.policy, self.tasks)

    def compact(self, plan: PartitionPlan, options: CompactionOptions) -> PartitionResult:
        return compact_iceberg_partition(
            self.store,
            self.table,
            self.spec,
            plan,
            self.tasks[plan.partition],
            options,
            self.policy,
            self.run_id,
        )


def compact_iceberg_partition(
    store: ObjectStore,
    table: Table,
    spec: DatasetSpec,
    plan: PartitionPlan,
    tasks: list[FileScanTask],
    options: CompactionOptions | None = None,
    policy: CompactionPolicy | None = None,
    run_id: str = "",
) -> PartitionResult:
    """Rewrite the plan's bins and replace their files in one commit.

    ``options.verify`` says how the written files are checked before the commit
    (`verify_written`).

    Returns a ``skipped`` result (nothing changed, new files removed) when a concurrent commit
    wrote to the same partition or removed one of the files being rewritten.

    Raises:
        CompactionError: the rows written differ from the rows read; nothing was committed.
        TableCommitError: the commit kept failing after pyiceberg's retries.
    """
    started = time.perf_counter()
    options = options or CompactionOptions()
    policy = policy or spec.compaction
    by_path = {t.file.file_path: t for t in tasks}
    rewritten = [by_path[f.path] for b in plan.bins for f in b.files]
    written, seen, data_files = _write_bins(store, table, spec, plan, rewritten, options, policy)
    summary = {
        f"{SUMMARY_PREFIX}operation": "compaction",
        f"{SUMMARY_PREFIX}compacted-partition": plan.partition,
        f"{SUMMARY_PREFIX}run-id": run_id,
        f"{SUMMARY_PREFIX}files-rewritten": str(len(rewritten)),
        f"{SUMMARY_PREFIX}files-written": str(len(written)),
        f"{SUMMARY_PREFIX}rows": str(seen.rows),
        f"{SUMMARY_PREFIX}checksum": seen.value,
    }
    try:
        _commit(table, rewritten, data_files, summary)
    except ValidationException as exc:
        metrics.inc("lake_iceberg_commits_total", outcome="conflict")
        store.delete([f.key for f in written])
        return skipped_result(plan, f"concurrent write to the partition: {exc}")
    except CommitFailedException as exc:
        metrics.inc("lake_iceberg_commits_total", outcome="failed")
        store.delete([f.key for f in written])
        name = ".".join(table.name())
        raise TableCommitError(name, f"compaction commit failed after retries: {exc}") from exc
    metrics.inc("lake_iceberg_commits_total", outcome="committed")
    result = compacted_result(plan, written, seen, started)
    snapshot = table.current_snapshot()
    result.snapshot_id = snapshot.snapshot_id if snapshot else None
    return result


def _write_bins(
    store: ObjectStore,
    table: Table,
    spec: DatasetSpec,
    plan: PartitionPlan,
    rewritten: list[FileScanTask],
    options: CompactionOptions,
    policy: CompactionPolicy,
) -> tuple[list[WrittenFile], RowChecksum, list[DataFile]]:
    """Each bin into new data files of the table, verified; nothing left on error."""
    by_path = {t.file.file_path: t for t in rewritten}
    schema = _output_schema(table, spec)
    parquet_options = writer_options(spec, table_properties=table.properties)
    if spec.sort_by:
        order = [(c, "ascending") for c in spec.sort_by]
        parquet_options["sorting_columns"] = pq.SortingColumn.from_ordering(schema, order)
    directory = _data_dir(store, table, plan.partition)
    reader = ArrowScan(table.metadata, table.io, table.schema(), AlwaysTrue())
    written: list[WrittenFile] = []
    seen = RowChecksum()
    try:
        for b in plan.bins:
            stem = f"{OUTPUT_PREFIX}{uuid.uuid4().hex[:12]}"
            writer = RollingParquetWriter(
                store, spec, directory, stem, options.row_group_bytes, policy.target_file_bytes
            )
            # field ids, table-order sorting
            writer.schema, writer.options = schema, parquet_options
            tasks = [by_path[f.path] for f in b.files]
            tables = _read_tasks(reader, tasks, schema, plan.partition)
            seen.merge(rewrite(tables, writer, spec.sort_by, options, plan.partition))
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
            options.verify,
            "nothing was committed",
        )
        data_files = [
            parquet_file_to_data_file(table.io, table.metadata, store.uri(f.key)) for f in written
        ]
    except BaseException:
        store.delete([f.key for f in written])
        raise
    return written, seen, data_files


def _read_tasks(
    reader: ArrowScan, tasks: list[FileScanTask], schema: pa.Schema, partition: str
) -> Iterator[tuple[pa.Table, None, RowChecksum]]:
    """A bin's rows, READ_FILES files at a time (pyiceberg reads those on its own pool), each
    run conformed as one chunk per column and checksummed on the shared pool, in bin order."""

    def read(run: list[FileScanTask]) -> tuple[pa.Table, None, RowChecksum] | None:
        batches = [conform(b, schema, partition) for b in reader.to_record_batches(run)]
        if not batches:
            return None
        table = pa.concat_tables(batches).combine_chunks()
        return table, None, RowChecksum.of(table)

    runs = [tasks[i : i + READ_FILES] for i in range(0, len(tasks), READ_FILES)]
    for done in ordered_map(read, runs, in_flight=2):
        if done is not None:
            yield done


def _commit(
    table: Table,
    rewritten: list[FileScanTask],
    data_files: list[DataFile],
    summary: dict[str, str],
) -> None:
    """Replace the rewritten files by the new ones in one transaction."""
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
