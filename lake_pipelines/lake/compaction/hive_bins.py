"""Rewriting the bins of a Hive partition into hidden temporary files.

Each bin's files are read in order of their sort-key minimums when the footers give them (so
sorted output streams out early), small files in runs on a shared pool, big ones batch by
batch; the rows go through `rewrite` into a writer whose files stay temporary until the swap.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lake_pipelines.datasets.spec import CompactionPolicy, DatasetSpec
from lake_pipelines.lake.compaction.options import CompactionOptions
from lake_pipelines.lake.compaction.plan import (
    OUTPUT_PREFIX,
    CompactionError,
    FileStat,
    PartitionPlan,
)
from lake_pipelines.lake.compaction.rewrite import parquet_tables, read_small_files, rewrite
from lake_pipelines.lake.hashing import RowChecksum
from lake_pipelines.lake.parquet.writer import RollingParquetWriter, WrittenFile
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.lake.threads import ordered_map

# Files up to PARALLEL_READ_BYTES are read whole, in runs of up to GROUP_BYTES handed over as
# one table, PARALLEL_READS runs at a time on the shared pool (opening a tiny file costs
# ~1 ms of pyarrow CPU); bigger files stream batch by batch, one at a time.
PARALLEL_READ_BYTES = 4 << 20
PARALLEL_READS = 4
GROUP_BYTES = 2 << 20  # small files read as one table, up to this many bytes on disk


def rewrite_bins(
    store: ObjectStore,
    spec: DatasetSpec,
    plan: PartitionPlan,
    policy: CompactionPolicy,
    schema: pa.Schema,
    options: CompactionOptions,
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
                store, spec, dir_key, stem, options.row_group_bytes, policy.target_file_bytes
            )
            tables = _bin_tables(store, b.files, schema, plan.partition, spec.sort_by)
            seen.merge(rewrite(tables, writer, spec.sort_by, options, plan.partition))
            staged.extend(writer.files)
    except BaseException:
        store.delete([store.key_of(f.tmp_path) for f in staged])
        raise
    return staged, seen


def _bin_tables(
    store: ObjectStore,
    files: tuple[FileStat, ...],
    schema: pa.Schema,
    partition: str,
    sort_by: tuple[str, ...],
) -> Iterator[tuple[pa.Table, Any] | tuple[pa.Table, Any, RowChecksum]]:
    """A bin's rows, file by file, each with the floor of the rows still to come (and for
    runs of small files read as one, their checksum).

    When every file's `FileStat.key_min` is known, files go in that order and the floor is
    the current file's ``key_min``, so `sorted_stream` can write out what is below it
    without waiting for the whole bin. The floors are checked against the rows as they come
    (footer statistics are not taken on trust). Otherwise files go by path, without floors.
    """
    key = sort_by[0] if sort_by and sort_by[0] in schema.names else None
    lows: list[Any] | None = None
    order = list(files)
    if key is not None and all(f.key_min is not None for f in files):
        try:
            order = sorted(files, key=lambda f: (f.key_min, f.path))
            lows = [pa.scalar(f.key_min, type=schema.field(key).type) for f in order]
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            order, lows = list(files), None

    def check_floor(f: FileStat, table: pa.Table, low: Any) -> None:
        if low is None or key is None:
            return
        found = pc.min(table.column(key))
        if found.is_valid and pc.less(found, low).as_py():
            raise CompactionError(
                partition,
                f"{f.path} holds {key} {found} below its footer statistics' minimum "
                f"{low}; nothing was changed",
            )

    def read_group(group: list[int]) -> tuple[pa.Table, RowChecksum] | None:
        """Small files whole, as one table with its checksum (on the shared pool); None: one
        big file, to be streamed.

        Handing a run of tiny files over as one table, already checksummed, keeps the
        per-file cost (a few Arrow calls in Python) and the hashing off the thread that
        sorts, and puts both cores on them."""
        if len(group) == 1 and order[group[0]].size > PARALLEL_READ_BYTES:
            return None
        whole, counts = read_small_files(store, [order[i] for i in group], schema, partition)
        if lows is not None:
            start = 0
            for i, n in zip(group, counts, strict=True):
                check_floor(order[i], whole.slice(start, n), lows[i])
                start += n
        return whole, RowChecksum.of(whole)

    groups = _read_groups(order)
    read = ordered_map(read_group, groups, in_flight=PARALLEL_READS)
    for group, done in zip(groups, read, strict=True):
        low = lows[group[0]] if lows is not None and key is not None else None
        if done is not None:
            yield done[0], low, done[1]
            continue
        f = order[group[0]]
        for table in parquet_tables(store, store.path(f.path), schema, partition):
            check_floor(f, table, low)
            yield table, low


def _read_groups(files: list[FileStat]) -> list[list[int]]:
    """Positions of `files` in runs read as one: consecutive small files up to GROUP_BYTES
    together; a file above PARALLEL_READ_BYTES alone (it is streamed batch by batch)."""
    groups: list[list[int]] = []
    current: list[int] = []
    size = 0
    for i, f in enumerate(files):
        if current and (f.size > PARALLEL_READ_BYTES or size + f.size > GROUP_BYTES):
            groups.append(current)
            current, size = [], 0
        if f.size > PARALLEL_READ_BYTES:
            groups.append([i])
            continue
        current.append(i)
        size += f.size
    if current:
        groups.append(current)
    return groups
