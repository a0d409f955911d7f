"""An external merge sort: a bin's rows in sort order, in bounded memory.

`sorted_stream` buffers rows up to ``memory_bytes``; if the bin fits, the buffer is sorted and
written; otherwise each full buffer is sorted and spilled to a local Arrow IPC file (a *run*)
and the runs are merged chunk by chunk. Memory stays near ``memory_bytes`` plus one batch per
run, never a whole partition. Inputs already in order (the usual case: landed files each
sorted, in time order) skip both the sort and the spill.
"""

from __future__ import annotations

import bisect
import math
import os
import tempfile
from collections.abc import Generator, Iterable, Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lake_pipelines.lake.compaction.options import SORT_MEMORY_BYTES
from lake_pipelines.lake.parquet.sort import sort_rows


def _sortable(value: Any) -> tuple:
    """Python order equal to Arrow's ascending sort: values, then NaN, then null."""
    if value is None:
        return (2,)
    if isinstance(value, float) and math.isnan(value):
        return (1,)
    return (0, value)


SPILL_BATCHES = 32  # batches a spilled run is written as (see `_batch_bytes`)


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
    """A spilled sorted run, read back batch by batch from its IPC file.

    Read into memory a batch at a time, not memory-mapped: every page of a mapped run stays
    resident once touched, so the merge of a 20M-row day that spilled held all of it (silver
    2.7 GiB, bronze compaction 1.3 GiB; benchmarks/ANALYSIS.md, run 23). Read, a batch is
    freed once merged."""

    def __init__(self, path: str) -> None:
        self.reader = pa.ipc.open_file(pa.OSFile(path))
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


def _batch_bytes(memory_bytes: int) -> int:
    """Bytes of a spilled batch: the merge holds one batch of every run, and a big day makes
    dozens of runs (a 20M-row day through a 64 MiB sort: ~60), so a batch is a small part of
    the sort's budget."""
    return max(memory_bytes // SPILL_BATCHES, 1)


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
        # bounded: at most one chunk of each run (a spilled run is read back chunk by chunk)
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
            if buffered >= memory_bytes:  # the buffer never holds more than the sort's budget
                path = os.path.join(tmp, f"run-{len(spilled):05d}.arrow")
                run = sort_rows(pa.concat_tables(buffer), sort_by)
                _spill(run, path, _batch_bytes(memory_bytes))
                del run  # not held while the buffer fills again
                spilled.append(path)
                buffer, buffered, lowest = [], 0, None
        rest = sort_rows(pa.concat_tables(buffer), sort_by) if buffer else None
        if not spilled:
            if rest is not None and rest.num_rows:
                yield rest
            return
        if rest is not None:
            path = os.path.join(tmp, f"run-{len(spilled):05d}.arrow")
            _spill(rest, path, _batch_bytes(memory_bytes))
            spilled.append(path)
            del rest
        yield from _merge([_Run(p) for p in spilled], sort_by)
