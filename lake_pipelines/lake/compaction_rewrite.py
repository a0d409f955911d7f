"""Rewriting a bin: rows streamed through a bounded-memory sort into the Parquet writer.

`sorted_stream` is an external merge sort: rows are buffered up to ``memory_bytes``; if the
bin fits, the buffer is sorted and written; otherwise each full buffer is sorted and spilled
to a local Arrow IPC file (a *run*) and the runs are merged chunk by chunk. Memory stays near
``memory_bytes`` plus one batch per run, never a whole partition. `RowChecksum` is an
order-independent checksum of a multiset of rows (count and sum of 64-bit row hashes), so the
rows going in and the rows read back from the written files can be compared exactly.
"""

from __future__ import annotations

import bisect
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake_pipelines.lake.compaction import CompactionError
from lake_pipelines.lake.parquet import RollingParquetWriter
from lake_pipelines.lake.storage import ObjectStore

SORT_MEMORY_BYTES = 64 << 20  # rows buffered (uncompressed Arrow) before a sorted run spills
READ_BATCH_ROWS = 64 * 1024
_MASK = (1 << 64) - 1
_NULL = np.uint64(0x9E3779B97F4A7C15)
_PRIME = np.uint64(0x100000001B3)


# -- checksums ----------------------------------------------------------------------------------


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads every input bit over the whole hash."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _array_hash(arr: pa.Array) -> np.ndarray:
    """A uint64 hash per value, nested types included (struct fields, list elements in order)."""
    n = len(arr)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_struct(arr.type):
        h = np.zeros(n, dtype=np.uint64)
        for child in arr.flatten():
            h = h * _PRIME + _array_hash(child)
    elif pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        values = arr.flatten()
        parents = pc.list_parent_indices(arr).to_numpy().astype(np.int64)
        offsets = arr.offsets.to_numpy().astype(np.int64)
        starts = offsets[:-1] - offsets[0]
        position = np.arange(len(values), dtype=np.int64) - starts[parents]
        element = _mix(_array_hash(values) + position.astype(np.uint64) * _PRIME)
        h = np.zeros(n, dtype=np.uint64)
        np.add.at(h, parents, element)
        lengths = pc.list_value_length(arr).fill_null(0).to_numpy().astype(np.uint64)
        h = h ^ _mix(lengths)
    else:
        values = arr.to_numpy(zero_copy_only=False)
        h = pd.util.hash_array(values, categorize=False).astype(np.uint64)
    valid = arr.is_valid().to_numpy(zero_copy_only=False)
    return _mix(np.where(valid, h, _NULL))


def row_hashes(data: pa.Table | pa.RecordBatch) -> np.ndarray:
    """One uint64 hash per row over every column, in schema order."""
    table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
    h = np.zeros(table.num_rows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for column in table.columns:
            h = h * _PRIME + _array_hash(column.combine_chunks())
        return _mix(h)


class RowChecksum:
    """Order-independent checksum of a multiset of rows: equal rows in, equal value out.

    Small tables are hashed together once enough rows are pending (hashing has a fixed cost
    per call that would dominate a bin of thousands of tiny files).
    """

    def __init__(self, rows_per_hash: int = READ_BATCH_ROWS) -> None:
        self.rows = 0
        self._sum = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._rows_per_hash = rows_per_hash

    def update(self, data: pa.Table | pa.RecordBatch) -> None:
        if not data.num_rows:
            return
        table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self.rows += table.num_rows
        if self._pending_rows >= self._rows_per_hash:
            self._hash_pending()

    def _hash_pending(self) -> None:
        if self._pending:
            with np.errstate(over="ignore"):
                hashes = row_hashes(pa.concat_tables(self._pending, promote_options="none"))
                self._sum = (self._sum + int(hashes.sum(dtype=np.uint64))) & _MASK
            self._pending, self._pending_rows = [], 0

    def merge(self, other: RowChecksum) -> None:
        other._hash_pending()
        self._sum = (self._sum + other._sum) & _MASK
        self.rows += other.rows

    @property
    def value(self) -> str:
        self._hash_pending()
        return f"{self.rows}:{self._sum:016x}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RowChecksum) and self.value == other.value

    __hash__ = None  # type: ignore[assignment]


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
    order = [(c, "ascending") for c in sort_by]
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
        yield pa.concat_tables(pieces).sort_by(order)


def sorted_stream(
    tables: Iterable[pa.Table],
    sort_by: Sequence[str],
    memory_bytes: int = SORT_MEMORY_BYTES,
    spill_dir: str | None = None,
) -> Iterator[pa.Table]:
    """The rows of `tables` in ascending `sort_by` order, holding about `memory_bytes` at once.

    Without `sort_by` the tables pass through unchanged. Spill files go to `spill_dir` (the
    OS temporary directory by default) and are removed when the stream ends or is abandoned.
    """
    if not sort_by:
        yield from tables
        return
    order = [(c, "ascending") for c in sort_by]
    buffer: list[pa.Table] = []
    buffered = 0
    with tempfile.TemporaryDirectory(prefix="lake-compaction-", dir=spill_dir) as tmp:
        spilled: list[str] = []
        for table in tables:
            if not table.num_rows:
                continue
            buffer.append(table)
            buffered += table.nbytes
            if buffered >= memory_bytes:
                path = os.path.join(tmp, f"run-{len(spilled):05d}.arrow")
                _spill(pa.concat_tables(buffer).sort_by(order), path, max(memory_bytes // 8, 1))
                spilled.append(path)
                buffer, buffered = [], 0
        rest = pa.concat_tables(buffer).sort_by(order) if buffer else None
        if not spilled:
            if rest is not None:
                yield rest
            return
        if rest is not None:
            path = os.path.join(tmp, f"run-{len(spilled):05d}.arrow")
            _spill(rest, path, max(memory_bytes // 8, 1))
            spilled.append(path)
            del rest
        yield from _merge([_Run(p) for p in spilled], sort_by)


# -- the rewrite --------------------------------------------------------------------------------


def rewrite(
    tables: Iterable[pa.Table],
    writer: RollingParquetWriter,
    sort_by: Sequence[str],
    memory_bytes: int = SORT_MEMORY_BYTES,
    spill_dir: str | None = None,
) -> RowChecksum:
    """Stream `tables` sorted into `writer` and close it; return the checksum of the rows read.

    The caller owns the writer: on an exception it must `abort()` it.
    """
    seen = RowChecksum()

    def tap() -> Iterator[pa.Table]:
        for table in tables:
            seen.update(table)
            yield table

    for chunk in sorted_stream(tap(), sort_by, memory_bytes, spill_dir):
        writer.write(chunk)
    writer.close()
    return seen


def parquet_tables(
    store: ObjectStore, path: str, schema: pa.Schema, partition: str
) -> Iterator[pa.Table]:
    """The rows of one Parquet file (a filesystem path in `store`), batch by batch, conformed."""
    with store.arrow_fs.open_input_file(path) as f:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=READ_BATCH_ROWS):
            yield conform(batch, schema, partition)


def checksum_files(
    store: ObjectStore, paths: Iterable[str], schema: pa.Schema, partition: str
) -> RowChecksum:
    """Read written files back (independently of the writer) and checksum their rows."""
    total = RowChecksum()
    for path in paths:
        for table in parquet_tables(store, path, schema, partition):
            total.update(table)
    return total
