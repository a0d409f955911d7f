"""Rewriting a bin: rows streamed through a bounded-memory sort into the Parquet writer.

`sorted_stream` is an external merge sort: rows are buffered up to ``memory_bytes``; if the
bin fits, the buffer is sorted and written; otherwise each full buffer is sorted and spilled
to a local Arrow IPC file (a *run*) and the runs are merged chunk by chunk. Memory stays near
``memory_bytes`` plus one batch per run, never a whole partition. Inputs already in order
(the usual case: landed files each sorted, in time order) skip both the sort and the spill.

`RowChecksum` is an order-independent checksum of a multiset of rows (count and sum of 64-bit
row hashes, computed from the Arrow buffers). `rewrite` checksums the rows read and checks
that each of them reaches the writer exactly once; `verify_written` checks the written files
against them, from their footers or (``content``) by reading every row back.
"""

from __future__ import annotations

import bisect
import math
import os
import tempfile
from collections.abc import Generator, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake_pipelines.lake.compaction.plan import CompactionError
from lake_pipelines.lake.hashing import READ_BATCH_ROWS, RowChecksum
from lake_pipelines.lake.parquet.sort import sort_rows
from lake_pipelines.lake.parquet.writer import RollingParquetWriter, WrittenFile
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.lake.threads import read_ahead

SORT_MEMORY_BYTES = 64 << 20  # rows buffered (uncompressed Arrow) before a sorted run spills
HASH_ROWS = 256 * 1024  # rows hashed together: fewer, longer numpy calls
PREFETCH = 8  # tables read ahead of the sort by the reader thread
FOOTER_READERS = 8
ROW_ID = "__lake_compaction_row"  # input row number, carried through the sort, never written
Verify = Literal["footers", "content"]


# -- schema -------------------------------------------------------------------------------------


def conform(data: pa.Table | pa.RecordBatch, schema: pa.Schema, partition: str) -> pa.Table:
    """Cast rows to the output schema; a column the schema lacks is refused, never dropped."""
    table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
    extra = [n for n in table.column_names if n not in schema.names]
    if extra:
        raise CompactionError(partition, f"columns {extra} are not in the output schema")
    columns = [
        table.column(f.name) if f.name in table.column_names else pa.nulls(len(table), f.type)
        for f in schema
    ]
    if all(c.type == f.type for c, f in zip(columns, schema, strict=True)):
        return pa.Table.from_arrays(columns, schema=schema)  # nothing to cast (the usual case)
    try:
        return pa.Table.from_arrays(columns, names=schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
        raise CompactionError(partition, f"rows do not fit the output schema: {exc}") from exc


# -- bounded-memory sort ------------------------------------------------------------------------


def _sortable(value: Any) -> tuple:
    """Python order equal to Arrow's ascending sort: values, then NaN, then null."""
    if value is None:
        return (2,)
    if isinstance(value, float) and math.isnan(value):
        return (1,)
    return (0, value)


class _RowKeys(Sequence[tuple]):
    """The sort keys of a sorted table's rows, computed lazily for bisection."""

    def __init__(self, table: pa.Table, sort_by: Sequence[str]) -> None:
        self.columns = [table.column(c) for c in sort_by]
        self.n = table.num_rows

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: Any) -> tuple:
        return tuple(_sortable(c[i].as_py()) for c in self.columns)


class _Run:
    """A spilled sorted run, read back batch by batch from a memory-mapped IPC file."""

    def __init__(self, path: str) -> None:
        self.reader = pa.ipc.open_file(pa.memory_map(path))
        self.next_batch = 0
        self.chunk: pa.Table | None = None
        self.advance()

    def advance(self) -> None:
        self.chunk = None
        while self.chunk is None and self.next_batch < self.reader.num_record_batches:
            batch = self.reader.get_batch(self.next_batch)
            self.next_batch += 1
            if batch.num_rows:
                self.chunk = pa.Table.from_batches([batch])


def _last_key(table: pa.Table, sort_by: Sequence[str]) -> tuple:
    return _RowKeys(table, sort_by)[table.num_rows - 1]


def _spill(table: pa.Table, path: str, batch_bytes: int) -> None:
    rows = max(int(batch_bytes / max(table.nbytes / max(table.num_rows, 1), 1)), 1)
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        for batch in table.to_batches(max_chunksize=rows):
            writer.write_batch(batch)


def _merge(runs: list[_Run], sort_by: Sequence[str]) -> Iterator[pa.Table]:
    """K-way merge: emit every row up to the smallest 'last key' of the runs' current chunks."""
    live = [r for r in runs if r.chunk is not None]
    while live:
        bound = min(_last_key(r.chunk, sort_by) for r in live if r.chunk is not None)
        pieces = []
        for run in live:
            assert run.chunk is not None
            n = bisect.bisect_right(_RowKeys(run.chunk, sort_by), bound)
            if n:
                pieces.append(run.chunk.slice(0, n))
                rest = run.chunk.slice(n)
                run.chunk = rest if rest.num_rows else None
                if run.chunk is None:
                    run.advance()
        live = [r for r in live if r.chunk is not None]
        yield sort_rows(pa.concat_tables(pieces), sort_by)


def sorted_stream(
    tables: Iterable[pa.Table | tuple[pa.Table, Any]],
    sort_by: Sequence[str],
    memory_bytes: int = SORT_MEMORY_BYTES,
    spill_dir: str | None = None,
) -> Generator[pa.Table, None, None]:
    """The rows of `tables` in ascending `sort_by` order, holding about `memory_bytes` at once.

    An item may come as ``(table, floor)``: no later item holds a ``sort_by[0]`` value below
    ``floor`` (e.g. from Parquet footer statistics; None when unknown). Buffered rows under the
    floor are then final and stream out before the input ends, so inputs whose key ranges do
    not overlap (files landed in time order) pass through without spilling. Without `sort_by`
    the tables pass through unchanged. Spill files go to `spill_dir` (the OS temporary
    directory by default) and are removed when the stream ends or is abandoned.
    """
    if not sort_by:
        for item in tables:
            yield item[0] if isinstance(item, tuple) else item
        return
    first = sort_by[0]
    early = max(memory_bytes // 4, 1)  # buffered bytes worth a look for final rows
    buffer: list[pa.Table] = []
    buffered = 0
    lowest: pa.Scalar | None = None  # smallest sort_by[0] in the buffer
    with tempfile.TemporaryDirectory(prefix="lake-compaction-", dir=spill_dir) as tmp:
        spilled: list[str] = []
        for item in tables:
            table, floor = item if isinstance(item, tuple) else (item, None)
            if not table.num_rows:
                continue
            buffer.append(table)
            buffered += table.nbytes
            low = pc.min(table.column(first))
            if low.is_valid and (lowest is None or pc.less(low, lowest).as_py()):
                lowest = low
            if floor is not None and not spilled and buffered >= early:
                bound = pa.scalar(floor, type=table.schema.field(first).type)
                if lowest is not None and pc.less(lowest, bound).as_py():
                    rows = sort_rows(pa.concat_tables(buffer), sort_by)
                    n = pc.sum(pc.less(rows.column(first), bound)).as_py() or 0
                    yield rows.slice(0, n)
                    rest = rows.slice(n)
                    buffer, buffered = [rest], rest.nbytes
                    lowest = pc.min(rest.column(first)) if rest.num_rows else None
                    lowest = lowest if lowest is not None and lowest.is_valid else None
                    early = buffered + max(memory_bytes // 4, 1)
            if buffered >= memory_bytes:
                path = os.path.join(tmp, f"run-{len(spilled):05d}.arrow")
                _spill(
                    sort_rows(pa.concat_tables(buffer), sort_by), path, max(memory_bytes // 8, 1)
                )
                spilled.append(path)
                buffer, buffered, lowest = [], 0, None
        rest = sort_rows(pa.concat_tables(buffer), sort_by) if buffer else None
        if not spilled:
            if rest is not None and rest.num_rows:
                yield rest
            return
        if rest is not None:
            path = os.path.join(tmp, f"run-{len(spilled):05d}.arrow")
            _spill(rest, path, max(memory_bytes // 8, 1))
            spilled.append(path)
            del rest
        yield from _merge([_Run(p) for p in spilled], sort_by)


# -- the rewrite --------------------------------------------------------------------------------


class _Ledger:
    """Which input rows reached the writer; each must arrive exactly once.

    Every row read is numbered; the numbers ride along through sort, spill and merge and are
    ticked off as rows go to the writer. Exact, and far cheaper than hashing rows again.
    """

    def __init__(self) -> None:
        self.ticks = np.zeros(0, dtype=bool)
        self.handed = 0

    def tick(self, ids: pa.ChunkedArray | pa.Array) -> None:
        got = ids.to_numpy()
        if not len(got):
            return
        top = int(got.max()) + 1
        if top > len(self.ticks):
            grown = np.zeros(max(top, 2 * len(self.ticks)), dtype=bool)
            grown[: len(self.ticks)] = self.ticks
            self.ticks = grown
        self.ticks[got] = True
        self.handed += len(got)

    def check(self, rows: int, partition: str) -> None:
        distinct = int(self.ticks[:rows].sum())
        if self.handed != rows or distinct != rows:
            raise CompactionError(
                partition,
                f"rows written differ from rows read: {rows} read, {self.handed} handed to the "
                f"writer ({distinct} distinct); nothing was changed",
            )


def _unpack(item: Any) -> tuple[pa.Table, Any, RowChecksum | None]:
    if not isinstance(item, tuple):
        return item, None, None
    if len(item) == 2:
        return item[0], item[1], None
    return item


def rewrite(
    tables: Iterable[pa.Table | tuple[pa.Table, Any] | tuple[pa.Table, Any, RowChecksum]],
    writer: RollingParquetWriter,
    sort_by: Sequence[str],
    memory_bytes: int = SORT_MEMORY_BYTES,
    spill_dir: str | None = None,
    partition: str = "",
) -> RowChecksum:
    """Stream `tables` sorted into `writer` and close it; return the checksum of the rows read.

    Items are tables, or ``(table, floor)`` as `sorted_stream` takes them, or
    ``(table, floor, checksum)`` when the reader already checksummed the table; they are read
    on a background thread while this one checksums and sorts them. Every row read must reach the
    writer exactly once (see `_Ledger`), or `CompactionError` is raised. The caller owns the
    writer: on an exception it must `abort()` it.
    """
    seen = RowChecksum(HASH_ROWS)
    ledger = _Ledger()

    def numbered() -> Generator[tuple[pa.Table, Any], None, None]:
        for item in read_ahead(tables, depth=PREFETCH):
            table, floor, part = _unpack(item)
            first = seen.rows
            if part is None:
                seen.update(table)
            elif part.rows != table.num_rows:
                raise CompactionError(
                    partition, f"a checksum of {part.rows} rows came with {table.num_rows} rows"
                )
            else:
                seen.merge(part)
            ids = pa.array(np.arange(first, seen.rows, dtype=np.int64))
            yield table.append_column(ROW_ID, ids), floor

    rows = numbered()
    chunks = sorted_stream(rows, sort_by, memory_bytes, spill_dir)
    try:
        for chunk in chunks:
            ledger.tick(chunk.column(ROW_ID))
            writer.write(chunk.drop_columns([ROW_ID]))
    finally:  # now, not when a traceback lets go: the spill files, the reader thread
        chunks.close()
        rows.close()
    writer.close()
    ledger.check(seen.rows, partition)
    return seen


def parquet_tables(
    store: ObjectStore, path: str, schema: pa.Schema, partition: str
) -> Iterator[pa.Table]:
    """The rows of one Parquet file (a filesystem path in `store`), batch by batch, conformed."""
    with store.arrow_fs.open_input_file(path) as f:
        batches = pq.ParquetFile(f).iter_batches(batch_size=READ_BATCH_ROWS, use_threads=False)
        for batch in batches:
            yield conform(batch, schema, partition)


def read_parquet_file(store: ObjectStore, path: str, schema: pa.Schema, partition: str) -> pa.Table:
    """A small Parquet file whole, in one read, conformed."""
    with store.arrow_fs.open_input_file(path) as f:
        data = f.read_buffer()
    return conform(pq.ParquetFile(pa.BufferReader(data)).read(use_threads=False), schema, partition)


def checksum_files(
    store: ObjectStore, paths: Iterable[str], schema: pa.Schema, partition: str
) -> RowChecksum:
    """Read written files back (independently of the writer) and checksum their rows."""
    total = RowChecksum()
    for path in paths:
        for table in parquet_tables(store, path, schema, partition):
            total.update(table)
    return total


def footer_rows(store: ObjectStore, paths: Sequence[str]) -> list[int]:
    """The row count in each file's Parquet footer (small reads, a few at a time)."""

    def rows(path: str) -> int:
        return pq.read_metadata(path, filesystem=store.arrow_fs).num_rows

    with ThreadPoolExecutor(FOOTER_READERS) as pool:
        return list(pool.map(rows, paths))


def verify_written(
    store: ObjectStore,
    paths: Sequence[str],
    files: Sequence[WrittenFile],
    seen: RowChecksum,
    expected_rows: int | None,
    schema: pa.Schema,
    partition: str,
    verify: Verify = "footers",
    outcome: str = "nothing was changed",
) -> None:
    """Check the written files against the rows read; raise `CompactionError` if they differ.

    ``footers``: every file is complete (its footer reads) and holds the rows the writer
    counted into it, and those add up to the rows read and to `expected_rows` (the inputs'
    footers or manifests). ``content`` also reads every row back and compares checksums.

    Args:
        paths: the written files as filesystem paths in `store`, in the order of `files`.
    """
    counts = footer_rows(store, paths)
    written = f"{sum(counts)} rows in the footers"
    ok = counts == [f.rows for f in files] and sum(counts) == seen.rows
    if ok and verify == "content":
        back = checksum_files(store, paths, schema, partition)
        written, ok = back.value, back == seen
    if not ok or (expected_rows is not None and expected_rows != seen.rows):
        raise CompactionError(
            partition,
            f"rows written ({written}) differ from rows read ({seen.value}, "
            f"{expected_rows} expected); {outcome}",
        )
