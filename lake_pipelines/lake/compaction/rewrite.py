"""Rewriting a bin: rows streamed through the bounded-memory sort into the Parquet writer.

`rewrite` checksums the rows read (`RowChecksum`: an order-independent checksum of a multiset
of rows, the count and sum of 64-bit row hashes computed from the Arrow buffers) and checks
that each of them reaches the writer exactly once; `verify.verify_written` then checks the
written files against them. The rows are sorted by `external_sort.sorted_stream`.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lake_pipelines.lake.arrow import fit_to_schema
from lake_pipelines.lake.compaction.external_sort import sorted_stream
from lake_pipelines.lake.compaction.options import CompactionOptions
from lake_pipelines.lake.compaction.plan import CompactionError, FileStat, UnreadableFile
from lake_pipelines.lake.hashing import READ_BATCH_ROWS, RowChecksum
from lake_pipelines.lake.parquet.writer import RollingParquetWriter
from lake_pipelines.lake.progress import Progress
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.lake.threads import read_ahead

HASH_ROWS = 256 * 1024  # rows hashed together: fewer, longer numpy calls
PREFETCH = 8  # tables read ahead of the sort by the reader thread
ROW_ID = "__lake_compaction_row"  # input row number, carried through the sort, never written


def conform(data: pa.Table | pa.RecordBatch, schema: pa.Schema, partition: str) -> pa.Table:
    """Cast rows to the output schema; a column the schema lacks is refused, never dropped."""
    extra = [n for n in data.schema.names if n not in schema.names]
    if extra:
        raise CompactionError(partition, f"columns {extra} are not in the output schema")
    try:
        return fit_to_schema(data, schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
        raise CompactionError(partition, f"rows do not fit the output schema: {exc}") from exc


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
    options: CompactionOptions,
    partition: str = "",
) -> RowChecksum:
    """Stream `tables` sorted into `writer` and close it; return the checksum of the rows read.

    Items are tables, or ``(table, floor)`` as `sorted_stream` takes them, or
    ``(table, floor, checksum)`` when the reader already checksummed the table; they are read
    on a background thread while this one checksums and sorts them. Every row read must reach the
    writer exactly once (see `_Ledger`), or `CompactionError` is raised. On any exception the
    writer is aborted (its files never become visible) before the exception propagates.
    """
    try:
        return _stream(tables, writer, sort_by, options, partition)
    except BaseException:
        writer.abort()
        raise


def _stream(
    tables: Iterable[pa.Table | tuple[pa.Table, Any] | tuple[pa.Table, Any, RowChecksum]],
    writer: RollingParquetWriter,
    sort_by: Sequence[str],
    options: CompactionOptions,
    partition: str,
) -> RowChecksum:
    seen = RowChecksum(HASH_ROWS)
    ledger = _Ledger()
    meter = Progress(f"compaction {partition}", options.progress)

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
            meter.add(table.num_rows, table.nbytes)
            yield table.append_column(ROW_ID, ids), floor

    rows = numbered()
    chunks = sorted_stream(rows, sort_by, options.sort_memory_bytes, options.spill_dir)
    try:
        for chunk in chunks:
            ledger.tick(chunk.column(ROW_ID))
            writer.write(chunk.drop_columns([ROW_ID]))
    finally:  # now, not when a traceback lets go: the spill files, the reader thread
        chunks.close()
        rows.close()
    writer.close()
    ledger.check(seen.rows, partition)
    meter.finish()
    return seen


def parquet_tables(
    store: ObjectStore, path: str, schema: pa.Schema, partition: str
) -> Iterator[pa.Table]:
    """The rows of one Parquet file (a filesystem path in `store`), batch by batch, conformed.

    Raises:
        UnreadableFile: the file is gone or is not readable Parquet.
    """
    try:
        with store.arrow_fs.open_input_file(path) as f:
            batches = pq.ParquetFile(f).iter_batches(batch_size=READ_BATCH_ROWS, use_threads=False)
            for batch in batches:
                yield conform(batch, schema, partition)
    except (OSError, pa.ArrowException) as exc:
        raise UnreadableFile(partition, path, exc) from exc


def read_small_files(
    store: ObjectStore, files: Sequence[FileStat], schema: pa.Schema, partition: str
) -> tuple[pa.Table, list[int]]:
    """Small Parquet files whole, as one conformed table (rows in the order of `files`), and
    the number of rows each file gave.

    Each file is one read; a footer the planner kept (`FileStat.footer`) is used instead of
    parsing the file's own when the bytes still end the same way. The files are conformed
    together when their schemas are equal (the usual case), one by one otherwise, and their
    columns joined into one chunk each: the checksum, the sort check and the writer would
    each join them otherwise.

    Raises:
        UnreadableFile: a file is gone or is not readable Parquet.
    """
    raw = [_read_whole(store, f, partition) for f in files]
    counts = [t.num_rows for t in raw]
    if len(raw) == 1:
        return conform(raw[0], schema, partition), counts
    try:
        together = conform(pa.concat_tables(raw), schema, partition)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # schemas differ (e.g. a column added later)
        together = pa.concat_tables([conform(t, schema, partition) for t in raw])
    return together.combine_chunks(), counts


def _read_whole(store: ObjectStore, f: FileStat, partition: str) -> pa.Table:
    path = store.path(f.path)
    try:
        with store.arrow_fs.open_input_file(path) as source:
            data = source.read_buffer()
        footer = f.footer if f.footer is not None and _ends_with(data, f) else None
        reader = pq.ParquetFile(pa.BufferReader(data), metadata=footer)
        return reader.read(use_threads=False)
    except (OSError, pa.ArrowException) as exc:
        raise UnreadableFile(partition, f.path, exc) from exc


def _ends_with(data: pa.Buffer, f: FileStat) -> bool:
    """Whether `data` still has the size and footer length `f` was planned with (a file
    replaced since then is decoded with its own footer)."""
    if data.size != f.size or data.size < 12:
        return False
    tail = data.slice(data.size - 8).to_pybytes()
    return tail[4:] == b"PAR1" and int.from_bytes(tail[:4], "little") == f.footer.serialized_size
