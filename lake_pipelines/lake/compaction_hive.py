"""Compaction of the bronze Hive layer: small Parquet files of a day merged, crash-safely.

For each flagged partition, each bin is rewritten (sorted, with the dataset's Parquet settings)
into hidden temporary files; the rows read back from them must match the rows read from the
inputs (count and checksum). Then a journal, ``_compaction.json``, is written next to the data,
listing inputs and outputs, and the swap runs: outputs promoted, inputs deleted, journal
deleted. A crash before the journal leaves the partition as it was (the temporary files are
cleared on the next run); a crash after it is rolled forward by the next run
(`recover_hive`). Either way a re-run converges to the same files with the same rows, since
output names derive from the input names.

Readers skip the journal (``_`` prefix) and the temporaries (``.`` prefix, ``.tmp`` suffix).
During the swap itself a reader listing the directory may see outputs next to inputs (rows
twice), never fewer rows: promotion comes first, and the swap is a few renames and deletes.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import time
from collections import defaultdict
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lake_pipelines.datasets.spec import CompactionPolicy, DatasetSpec
from lake_pipelines.lake.compaction import (
    OUTPUT_PREFIX,
    CompactionError,
    CompactionReport,
    FileStat,
    PartitionPlan,
    PartitionResult,
    plan_partition,
    planned_result,
)
from lake_pipelines.lake.compaction_rewrite import (
    SORT_MEMORY_BYTES,
    RowChecksum,
    checksum_files,
    parquet_tables,
    rewrite,
)
from lake_pipelines.lake.parquet import (
    ROW_GROUP_BYTES,
    RollingParquetWriter,
    WrittenFile,
    file_schema,
)
from lake_pipelines.lake.storage import TMP_SUFFIX, FileEntry, ObjectStore

JOURNAL_NAME = "_compaction.json"
FOOTER_READERS = 8


def _version(entry: FileEntry) -> str | None:
    return entry.etag or (str(entry.mtime) if entry.mtime is not None else None)


def _stat(store: ObjectStore, entry: FileEntry, footer: bool) -> FileStat:
    """The file's size, and with `footer` its rows and compressed data bytes."""
    if not footer:
        return FileStat(entry.key, entry.size, version=_version(entry))
    meta = pq.read_metadata(store.path(entry.key), filesystem=store.arrow_fs)
    data = sum(
        rg.column(c).total_compressed_size
        for rg in (meta.row_group(i) for i in range(meta.num_row_groups))
        for c in range(rg.num_columns)
    )
    return FileStat(entry.key, entry.size, meta.num_rows, _version(entry), data)


def plan_hive(
    store: ObjectStore,
    spec: DatasetSpec,
    policy: CompactionPolicy | None = None,
    with_rows: bool = True,
) -> list[PartitionPlan]:
    """One plan per partition directory of the dataset's bronze layer, in directory order.

    Args:
        with_rows: read the row count and data size of every small file from its Parquet
            footer (one small read per file); health checks that only need sizes turn it off.
    """
    policy = policy or spec.compaction
    prefix = spec.bronze_prefix
    store.fs.invalidate_cache(store.path(prefix))
    by_dir: dict[str, list[FileEntry]] = defaultdict(list)
    for entry in store.list_files(prefix, suffixes=(".parquet",)):
        by_dir[posixpath.dirname(entry.key)[len(prefix) + 1 :]].append(entry)
    plans = []
    # Footer reads are small and latency-bound on an object store: a few at a time.
    with ThreadPoolExecutor(FOOTER_READERS) as pool:
        for partition in sorted(by_dir):
            stats = pool.map(
                lambda e: _stat(store, e, with_rows and e.size < policy.small_file_bytes),
                by_dir[partition],
            )
            plans.append(plan_partition("bronze", partition, list(stats), policy))
    return plans


def recover_hive(store: ObjectStore, spec: DatasetSpec) -> list[str]:
    """Finish every swap a crashed run left behind, and clear its abandoned temporary files.

    Returns the partitions whose journal was rolled forward (or found stale and dropped).
    """
    base = store.path(spec.bronze_prefix)
    store.fs.invalidate_cache(base)
    try:
        found = store.fs.find(base, withdirs=False)
    except FileNotFoundError:
        return []
    recovered = []
    for path in sorted(p for p in found if posixpath.basename(p) == JOURNAL_NAME):
        key = store.key_of(path)
        _roll_forward(store, key)
        recovered.append(posixpath.dirname(key)[len(spec.bronze_prefix) + 1 :])
    leftovers = [
        store.key_of(p)
        for p in found
        if (name := posixpath.basename(p)).startswith(("." + OUTPUT_PREFIX, "." + JOURNAL_NAME))
        and name.endswith(TMP_SUFFIX)
    ]
    store.delete(leftovers)  # promoted ones are already gone; the rest belong to no journal
    return recovered


def _roll_forward(store: ObjectStore, journal_key: str) -> None:
    """Promote the journal's outputs that are still temporary, delete its inputs, then it.

    If the day was re-ingested since the journal was written (an input replaced, or every
    output gone), the ingestion is authoritative: the journal's own files are removed instead.
    """
    directory = posixpath.dirname(journal_key)
    # s3fs answers `exists` from its listing cache, which writes through pyarrow never update.
    store.fs.invalidate_cache(store.path(directory))
    journal = json.loads(store.read_bytes(journal_key))
    outputs = journal["outputs"]
    state = [(o, store.exists(o["tmp"]), store.exists(o["key"])) for o in outputs]
    missing = [o["key"] for o, tmp, final in state if not tmp and not final]
    now = {e.key: e for e in store.list_files(directory, suffixes=(".parquet",))}
    replaced = [
        i["key"]
        for i in journal["inputs"]
        if i["key"] in now
        and (now[i["key"]].size != i["size"] or _version(now[i["key"]]) != i["version"])
    ]
    if replaced or len(missing) == len(outputs):
        store.delete([o["tmp"] for o, tmp, _ in state if tmp])
        store.delete([o["key"] for o, _, final in state if final])
        store.delete([journal_key])
        return
    if missing:
        raise CompactionError(
            journal["partition"],
            f"journal {journal_key} lists outputs that are gone ({', '.join(missing)}); "
            "the partition was changed by something else, inspect it before re-running",
        )
    for o, tmp, _ in state:
        if tmp:
            store.promote(store.path(o["tmp"]), store.path(o["key"]))
    produced = {o["key"] for o in outputs}
    store.delete([i["key"] for i in journal["inputs"] if i["key"] not in produced])
    store.delete([journal_key])


def _changed(store: ObjectStore, dir_key: str, inputs: list[FileStat]) -> list[str]:
    """Inputs that vanished or were replaced since they were planned."""
    store.fs.invalidate_cache(store.path(dir_key))
    now = {e.key: e for e in store.list_files(dir_key, suffixes=(".parquet",))}
    return [
        f.path
        for f in inputs
        if f.path not in now or now[f.path].size != f.size or _version(now[f.path]) != f.version
    ]


def compact_hive_partition(
    store: ObjectStore,
    spec: DatasetSpec,
    plan: PartitionPlan,
    policy: CompactionPolicy | None = None,
    sort_memory_bytes: int = SORT_MEMORY_BYTES,
    row_group_bytes: int = ROW_GROUP_BYTES,
    spill_dir: str | None = None,
) -> PartitionResult:
    """Rewrite the plan's bins, verify the rows, then swap through a journal.

    Returns a ``skipped`` result, with nothing changed, when an input was replaced or removed
    while the bins were being rewritten (e.g. the day was re-ingested meanwhile).

    Raises:
        CompactionError: the rows written differ from the rows read; nothing was changed.
    """
    started = time.perf_counter()
    policy = policy or spec.compaction
    dir_key = posixpath.join(spec.bronze_prefix, plan.partition)
    schema = file_schema(spec)
    inputs = [f for b in plan.bins for f in b.files]
    result = PartitionResult(plan.partition, "compacted", len(plan.files), bytes_before=plan.bytes)
    try:
        staged, seen = _rewrite_bins(
            store, spec, plan, policy, schema, sort_memory_bytes, row_group_bytes, spill_dir
        )
    except OSError:
        if not _changed(store, dir_key, inputs):
            raise
        staged = None  # an input vanished while being read
    try:
        if staged is not None:
            written = checksum_files(store, [f.tmp_path for f in staged], schema, plan.partition)
            footer_rows = sum(f.rows for f in inputs if f.rows is not None)
            if written != seen or (
                all(f.rows is not None for f in inputs) and footer_rows != seen.rows
            ):
                raise CompactionError(
                    plan.partition,
                    f"rows written ({written.value}) differ from rows read ({seen.value}, "
                    f"{footer_rows} in the footers); nothing was changed",
                )
        # Last look before the swap: a day re-ingested meanwhile wins over the compaction.
        changed = _changed(store, dir_key, inputs)
        if staged is None or changed:
            store.delete([store.key_of(f.tmp_path) for f in staged or []])
            result.status, result.reason = "skipped", f"inputs changed meanwhile: {changed[:5]}"
            return result
        journal = _journal(store, spec, plan, inputs, staged, seen)
        store.write_bytes(posixpath.join(dir_key, JOURNAL_NAME), json.dumps(journal).encode())
    except BaseException:
        store.delete([store.key_of(f.tmp_path) for f in staged or []])
        raise
    _roll_forward(store, posixpath.join(dir_key, JOURNAL_NAME))
    store.fs.invalidate_cache(store.path(dir_key))
    after = store.list_files(dir_key, suffixes=(".parquet",))
    result.files_after, result.bytes_after = len(after), sum(e.size for e in after)
    result.files_rewritten, result.files_written = len(inputs), len(staged)
    result.bytes_read = sum(f.size for f in inputs)
    result.bytes_written = sum(f.bytes for f in staged)
    result.rows, result.checksum = seen.rows, seen.value
    result.seconds = time.perf_counter() - started
    return result


def _rewrite_bins(
    store: ObjectStore,
    spec: DatasetSpec,
    plan: PartitionPlan,
    policy: CompactionPolicy,
    schema: pa.Schema,
    sort_memory_bytes: int,
    row_group_bytes: int,
    spill_dir: str | None,
) -> tuple[list[WrittenFile], RowChecksum]:
    """Each bin into hidden temporary files named after its inputs; nothing left on error."""
    dir_key = posixpath.join(spec.bronze_prefix, plan.partition)
    staged: list[WrittenFile] = []
    seen = RowChecksum()
    try:
        for b in plan.bins:
            names = "\n".join(f.path for f in b.files).encode()
            stem = OUTPUT_PREFIX + hashlib.sha256(names).hexdigest()[:12]
            writer = RollingParquetWriter(
                store, spec, dir_key, stem, row_group_bytes, policy.target_file_bytes
            )
            tables = (
                t
                for f in b.files
                for t in parquet_tables(store, store.path(f.path), schema, plan.partition)
            )
            try:
                seen.merge(rewrite(tables, writer, spec.sort_by, sort_memory_bytes, spill_dir))
            except BaseException:
                writer.abort()
                raise
            staged.extend(writer.files)
    except BaseException:
        store.delete([store.key_of(f.tmp_path) for f in staged])
        raise
    return staged, seen


def _journal(
    store: ObjectStore,
    spec: DatasetSpec,
    plan: PartitionPlan,
    inputs: list[FileStat],
    staged: list[WrittenFile],
    seen: RowChecksum,
) -> dict[str, Any]:
    return {
        "version": 1,
        "dataset": spec.name,
        "partition": plan.partition,
        "created_at": datetime.now(UTC).isoformat(),
        "rows": seen.rows,
        "checksum": seen.value,
        "inputs": [{"key": f.path, "size": f.size, "version": f.version} for f in inputs],
        "outputs": [
            {"key": f.key, "tmp": store.key_of(f.tmp_path), "rows": f.rows, "bytes": f.bytes}
            for f in staged
        ],
    }


def compact_hive(
    store: ObjectStore,
    spec: DatasetSpec,
    policy: CompactionPolicy | None = None,
    *,
    partitions: Collection[str] | None = None,
    dry_run: bool = False,
    force: bool = False,
    sort_memory_bytes: int = SORT_MEMORY_BYTES,
    row_group_bytes: int = ROW_GROUP_BYTES,
    spill_dir: str | None = None,
    on_plan: Callable[[list[PartitionPlan]], None] | None = None,
) -> CompactionReport:
    """Recover interrupted swaps, plan every partition, compact the flagged ones.

    Args:
        policy: thresholds; default: the dataset's `DatasetSpec.compaction`.
        partitions: only these partition directories (``year=2026/month=11/day=3``).
        dry_run: plan and report only; nothing is recovered, written or deleted.
        force: compact every partition that has a bin, flagged or not.
        on_plan: called with every partition's plan before anything is rewritten.
    """
    started = time.perf_counter()
    policy = policy or spec.compaction
    report = CompactionReport(spec.name, "bronze", dry_run=dry_run)
    if not dry_run:
        report.recovered = recover_hive(store, spec)
    report.plans = plan_hive(store, spec, policy)
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
            compact_hive_partition(
                store, spec, plan, policy, sort_memory_bytes, row_group_bytes, spill_dir
            )
        )
    report.seconds = time.perf_counter() - started
    return report
