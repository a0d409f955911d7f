"""Parquet written on purpose: codecs, encodings, row groups by bytes, statistics, lineage.

`RollingParquetWriter` streams Arrow batches into one or more files, buffering rows until a
row group reaches ``row_group_bytes`` (so row groups are sized by bytes, not by a row count),
and starting a new file once ``target_file_bytes`` have been written. Every file is written to
a hidden temporary name and only becomes visible when `ObjectStore.promote` moves it.
"""

from __future__ import annotations

import contextlib
import posixpath
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.lake.arrow import fit_to_schema
from lake_pipelines.lake.parquet.encodings import fit_encodings
from lake_pipelines.lake.parquet.options import (
    ROW_GROUP_BYTES,
    TARGET_FILE_BYTES,
    file_schema,
    writer_options,
)
from lake_pipelines.lake.parquet.sort import sort_rows
from lake_pipelines.lake.storage import TMP_SUFFIX, ObjectStore


@dataclass
class WrittenFile:
    key: str
    rows: int
    bytes: int
    tmp_path: str = field(repr=False, default="")


class _Lane:
    """One sequence of output files, encoded on its own thread."""

    def __init__(self, index: int, name: str) -> None:
        self.index = index
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=name)
        self.pending: Future[None] | None = None
        self.files: list[WrittenFile] = []
        self.writer: pq.ParquetWriter | None = None
        self.sink: Any = None
        self.current: WrittenFile | None = None

    def wait(self) -> None:
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()


class RollingParquetWriter:
    """Writes batches into ``<prefix>/<stem>-<n>.parquet`` files, staged under hidden names.

    Call `close()` (or use as a context manager) to flush; the files stay staged until the
    caller promotes them all at once with `commit_files`, or removes them with `abort`.

    With ``encoders`` > 1, row groups go round-robin to that many files encoded at once, one
    thread each (pyarrow encodes a row group on one core): a source larger than one row
    group then lands in several files. The assignment depends only on the rows, so a re-run
    writes the same files. Compaction keeps one encoder, so that its sorted output stays in
    one run of files.
    """

    def __init__(
        self,
        store: ObjectStore,
        spec: DatasetSpec,
        prefix: str,
        stem: str,
        row_group_bytes: int = ROW_GROUP_BYTES,
        target_file_bytes: int = TARGET_FILE_BYTES,
        encoders: int = 1,
    ) -> None:
        self.store, self.spec, self.prefix, self.stem = store, spec, prefix, stem
        self.row_group_bytes, self.target_file_bytes = row_group_bytes, target_file_bytes
        self.schema = file_schema(spec)
        self.options = writer_options(spec)
        self.encoders = max(1, encoders)
        self._buffer: list[pa.Table] = []  # the caller's thread appends here
        self._buffered = 0
        self._tail: list[pa.Table] = []  # rows short of a row group: the lead thread's
        # Sorting and cutting row groups runs on a lead thread, encoding on the lanes' threads
        # (Arrow releases the GIL) while the caller prepares the next rows; at most one batch
        # of rows waits for the lead and one group per lane is being encoded.
        self._lead: ThreadPoolExecutor | None = None
        self._pending: Future[None] | None = None
        self._lanes: list[_Lane] = []
        self._groups = 0  # row groups handed to lanes so far
        self._closed = False

    @property
    def files(self) -> list[WrittenFile]:
        return sorted((f for lane in self._lanes for f in lane.files), key=lambda f: f.key)

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        table = self._fit(table)
        self._buffer.append(table)
        self._buffered += table.nbytes
        if self._buffered >= self.row_group_bytes:
            self._submit(final=False)

    def _submit(self, final: bool) -> None:
        """Hand the buffered rows to the lead thread (after the rows before them)."""
        self._wait()
        tables, self._buffer, self._buffered = self._buffer, [], 0
        if self._lead is None:
            self._lead = ThreadPoolExecutor(1, thread_name_prefix="lake-parquet")
        self._pending = self._lead.submit(self._flush, tables, final)

    def _wait(self) -> None:
        """Wait for the rows in flight on the lead thread; its error, if any, is raised here."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _drain(self) -> None:
        """Wait until every row handed over so far is encoded; errors are raised here."""
        self._wait()
        for lane in self._lanes:
            lane.wait()

    def _shutdown(self) -> None:
        if self._lead is not None:
            self._lead.shutdown(wait=True)
            self._lead = None
        for lane in self._lanes:
            lane.executor.shutdown(wait=True)

    def _fit(self, table: pa.Table) -> pa.Table:
        """Cast to the file schema; in ``evolve`` mode new columns start new files.

        A file's schema cannot change once written, so when a batch brings a column the
        current files lack (or a type they cannot take), the buffered rows are written out,
        the files are closed and the next ones are opened with the wider schema.
        """
        extra = [f for f in table.schema if f.name not in self.schema.names]
        try:
            if not extra:
                return fit_to_schema(table, self.schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            pass
        self._submit(final=True)
        self._drain()
        for lane in self._lanes:
            self._finish_file(lane)
        fields = {f.name: f for f in self.schema}
        for f in table.schema:
            if f.name in fields and f.name not in self.spec.schema.names:
                fields[f.name] = f.with_nullable(True)  # an extra column's type changed
            elif f.name not in fields:
                fields[f.name] = f.with_nullable(True)
        self.schema = pa.schema(list(fields.values()), metadata=self.schema.metadata)
        self.options = writer_options(self.spec, self.schema)
        return self._fit(table)

    def _open(self, lane: _Lane, first_group: pa.Table) -> None:
        n = lane.index + self.encoders * len(lane.files)
        key = posixpath.join(self.prefix, f"{self.stem}-{n:05d}.parquet")
        directory = posixpath.dirname(self.store.path(key))
        token = uuid.uuid4().hex[:8]  # two writers of the same name never share a temp object
        tmp = posixpath.join(directory, f".{posixpath.basename(key)}.{token}{TMP_SUFFIX}")
        if self.store.scheme == "file":
            self.store.arrow_fs.create_dir(directory, recursive=True)
        options = fit_encodings(self.options, self.spec, first_group)
        lane.sink = self.store.arrow_fs.open_output_stream(tmp, compression=None)
        # Known to `abort` from the moment it exists on the store.
        lane.current = WrittenFile(key=key, rows=0, bytes=0, tmp_path=tmp)
        lane.files.append(lane.current)
        lane.writer = pq.ParquetWriter(lane.sink, self.schema, **options)

    def _flush(self, tables: list[pa.Table], final: bool) -> None:
        """Cut the rows into row groups of about ``row_group_bytes`` each (lead thread).

        Unless ``final``, a tail smaller than a row group stays for the next call; with
        ``final``, returns once every group is encoded.
        """
        tables = self._tail + tables
        self._tail = []
        if tables:
            group = pa.concat_tables(tables)  # bounded: one flush's rows and a row group's tail
            if self.spec.sort_by:
                group = sort_rows(group, self.spec.sort_by)
            per_row = max(group.nbytes / max(group.num_rows, 1), 1)
            rows_per_group = max(int(self.row_group_bytes / per_row), 1)
            offset = 0
            while offset < group.num_rows:
                size = min(rows_per_group, group.num_rows - offset)
                if size < rows_per_group and not final:
                    break
                self._dispatch(group.slice(offset, size))
                offset += size
            rest = group.slice(offset)
            self._tail = [rest] if rest.num_rows else []
        if final:
            for lane in self._lanes:
                lane.wait()

    def _dispatch(self, group: pa.Table) -> None:
        """The next lane in turn encodes `group`, once it is done with its last one."""
        index = self._groups % self.encoders
        self._groups += 1
        if index == len(self._lanes):
            self._lanes.append(_Lane(index, f"lake-parquet-{index}"))
        lane = self._lanes[index]
        lane.wait()
        lane.pending = lane.executor.submit(self._write_group, lane, group)

    def _write_group(self, lane: _Lane, group: pa.Table) -> None:
        if lane.writer is None:
            self._open(lane, group)
        assert lane.writer is not None and lane.current is not None
        lane.writer.write_table(group, row_group_size=group.num_rows)
        lane.current.rows += group.num_rows
        if lane.sink.tell() >= self.target_file_bytes:
            self._finish_file(lane)

    def _finish_file(self, lane: _Lane) -> None:
        if lane.writer is not None:
            lane.writer.close()
            assert lane.current is not None
            lane.current.bytes = lane.sink.tell()
            lane.sink.close()
            lane.writer, lane.sink, lane.current = None, None, None

    def close(self) -> list[WrittenFile]:
        if self._closed:
            return self.files
        self._closed = True
        try:
            self._submit(final=True)
            self._drain()
        finally:
            self._shutdown()
        for lane in self._lanes:
            self._finish_file(lane)
        return self.files

    def abort(self) -> None:
        """Drop everything written so far (the staged files never become visible)."""
        with contextlib.suppress(Exception):  # the rows are being thrown away anyway
            self._wait()
        for lane in self._lanes:
            with contextlib.suppress(Exception):
                lane.wait()
        self._shutdown()
        self._buffer, self._tail = [], []
        for lane in self._lanes:
            for closable in (lane.writer, lane.sink):
                if closable is not None:
                    with contextlib.suppress(Exception):  # the file is thrown away anyway
                        closable.close()
            lane.writer, lane.sink = None, None
            for f in lane.files:
                self.store.discard(f.tmp_path)
            lane.files = []

    def __enter__(self) -> RollingParquetWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def commit_files(store: ObjectStore, files: list[WrittenFile]) -> None:
    """Promote staged files to their final names. When one cannot be promoted, the
    temporaries of it and of every file after it are removed before the error is raised
    (a failed commit leaves no hidden object behind; the files promoted before it stay)."""
    for i, f in enumerate(files):
        try:
            store.promote(f.tmp_path, store.path(f.key))
        except BaseException:
            for rest in files[i:]:
                store.discard(rest.tmp_path)
            raise
