"""Sorted rows streamed into an Iceberg table's Parquet data files, at its target file size.

pyiceberg 0.12 cannot do this for us: its ``overwrite``/``append`` take a
``pa.RecordBatchReader`` only for unpartitioned tables (a partitioned one raises
``NotImplementedError``), bin-pack by uncompressed Arrow bytes, and make two snapshots.
`DataFileWriter` writes the files itself, as pyiceberg's ``write_file`` does (the table's
location provider and field ids, statistics from the written footer), with the dataset's
codecs and encodings and row groups sized by bytes like bronze. The files it returns become
visible only when a commit adds them (`PartitionReplace.add`); files of a write that is never
committed are orphans for the table's orphan cleanup.

Encoding is the busiest part of a silver commit, and pyarrow encodes a row group on one
core. With ``encoders`` > 1 a partition's row groups go in turn to that many files encoded at
once, one thread each: every file is still in sort order (each row group is a run of the
sorted rows, so the statistics of a row group stay as narrow as with one file), but the files
of a partition span overlapping ranges. The assignment depends only on the rows, so a re-run
writes the same files.

Memory: about two row groups being filled, plus one being encoded per encoder. A file is open
per partition and encoder the rows reach (one or ``encoders`` for the default ``day``
partitioning of a day); when rows of many partitions are buffered at once (``hour``,
``identity``), the fullest buffer is written out early as a smaller row group, so the buffers
never hold more than two row groups.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.io.pyarrow import (
    _determine_partitions,
    _get_field_from_arrow_table,
    compute_statistics_plan,
    data_file_statistics_from_parquet_metadata,
    parquet_path_to_id_mapping,
    schema_to_pyarrow,
)
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.partitioning import PartitionFieldValue, PartitionKey
from pyiceberg.table import Table, TableProperties
from pyiceberg.table.locations import load_location_provider
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.typedef import Record

from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.lake.parquet.encodings import fit_encodings
from lake_pipelines.lake.parquet.options import ROW_GROUP_BYTES, file_schema, writer_options


def target_file_bytes(metadata: TableMetadata) -> int:
    """The table's ``write.target-file-size-bytes`` (bytes on disk here, not Arrow bytes)."""
    raw = metadata.properties.get(TableProperties.WRITE_TARGET_FILE_SIZE_BYTES)
    return int(raw) if raw else TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT


@dataclass
class _File:
    """One data file being written (by one encoder); `first` is its first row group's number
    among all the writer's row groups, which orders the files as the rows."""

    first: int
    path: str
    sink: Any
    writer: pq.ParquetWriter


@dataclass
class _Open:
    """One partition's rows not yet in a row group, and its file per encoder."""

    key: PartitionKey | None
    buffer: list[pa.Table] = field(default_factory=list)
    buffered: int = 0
    groups: int = 0  # the partition's row groups handed to encoders so far
    files: dict[int, _File] = field(default_factory=dict)  # encoder -> its open file


class DataFileWriter:
    """Writes rows (already in the table's sort order) into data files of `table`.

    `metadata` is the table as the commit will leave it (an evolved schema included); rows
    handed to `write` must have its Arrow schema (`arrow_schema`). `close` returns the
    `DataFile`s written, in the order of their first rows.
    """

    def __init__(
        self,
        table: Table,
        metadata: TableMetadata,
        spec: DatasetSpec,
        row_group_bytes: int = ROW_GROUP_BYTES,
        target_bytes: int | None = None,
        encoders: int = 1,
    ) -> None:
        self.io, self.metadata, self.spec = table.io, metadata, spec
        self.schema = metadata.schema()
        self.arrow_schema = schema_to_pyarrow(self.schema).with_metadata(file_schema(spec).metadata)
        self.options = writer_options(spec, self.arrow_schema, metadata.properties)
        # Iceberg's Parquet mapping: decimals of up to 18 digits as INT32/INT64 (as pyiceberg)
        self.options["store_decimal_as_integer"] = True
        if spec.sort_by:
            order = [(c, "ascending") for c in spec.sort_by]
            self.options["sorting_columns"] = pq.SortingColumn.from_ordering(
                self.arrow_schema, order
            )
        self.row_group_bytes = row_group_bytes
        self.target_bytes = target_bytes or target_file_bytes(metadata)
        self._locations = load_location_provider(metadata.location, metadata.properties)
        self._uuid = uuid.uuid4()
        self._files = 0
        self._groups = 0  # row groups handed to the encoders so far
        self._open: dict[tuple[Any, ...], _Open] = {}
        self._written: list[tuple[int, DataFile]] = []
        self._paths: list[str] = []  # every file started, for `abort`
        self._lock = threading.Lock()  # the encoders start and finish files at once
        self._encoders = [
            ThreadPoolExecutor(1, thread_name_prefix=f"lake-iceberg-writer-{i}")
            for i in range(max(1, encoders))
        ]
        # at most one row group in flight per encoder; its error is raised at the next wait
        self._pending: list[Future[None] | None] = [None] * len(self._encoders)
        self.rows = 0  # rows handed to `write`

    def write(self, rows: pa.Table) -> None:
        """Add `rows` (the table's Arrow schema, in sort order after the rows before)."""
        if not rows.num_rows:
            return
        self.rows += rows.num_rows
        for key, part in self._partitions(rows):
            slot = self._open.setdefault(_key_of(key), _Open(key))
            slot.buffer.append(part)
            slot.buffered += part.nbytes
            if slot.buffered >= self.row_group_bytes:
                self._flush(slot)
        while sum(s.buffered for s in self._open.values()) > 2 * self.row_group_bytes:
            self._flush(max(self._open.values(), key=lambda s: s.buffered))

    def _partitions(self, rows: pa.Table) -> Iterator[tuple[PartitionKey | None, pa.Table]]:
        spec = self.metadata.spec()
        if spec.is_unpartitioned():
            yield None, rows
            return
        values = []
        for pf in spec.fields:  # the usual case first: all rows in one partition, no copy
            source = self.schema.find_field(pf.source_id)
            name = self.schema.find_column_name(pf.source_id)
            column = _get_field_from_arrow_table(rows, name) if name else None
            if column is None:
                break
            keys = pf.transform.pyarrow_transform(source.field_type)(column)
            low_high = pc.min_max(keys).as_py()
            if keys.null_count or low_high["min"] != low_high["max"]:
                break
            values.append(PartitionFieldValue(pf, low_high["min"]))
        else:
            yield PartitionKey(values, spec, self.schema), rows
            return
        for part in _determine_partitions(spec, self.schema, rows):
            yield part.partition_key, part.arrow_table_partition

    def _flush(self, slot: _Open) -> None:
        """Hand the slot's buffered rows to the next encoder in turn as one row group."""
        # bounded: a slot buffers one row group of one partition
        group = pa.concat_tables(slot.buffer) if len(slot.buffer) > 1 else slot.buffer[0]
        slot.buffer, slot.buffered = [], 0
        lane = slot.groups % len(self._encoders)
        slot.groups += 1
        self._groups += 1
        self._wait(lane)
        self._pending[lane] = self._encoders[lane].submit(
            self._encode, slot, lane, group, self._groups
        )

    def _wait(self, lane: int) -> None:
        pending, self._pending[lane] = self._pending[lane], None
        if pending is not None:
            pending.result()

    def _wait_all(self) -> None:
        for lane in range(len(self._encoders)):
            self._wait(lane)

    def _encode(self, slot: _Open, lane: int, group: pa.Table, number: int) -> None:
        file = slot.files.get(lane)
        if file is None:
            with self._lock:
                name = f"00000-{self._files}-{self._uuid}.parquet"
                self._files += 1
                path = self._locations.new_data_location(name, slot.key)
                self._paths.append(path)
            sink = self.io.new_output(path).create(overwrite=True)
            options = fit_encodings(self.options, self.spec, group)
            writer = pq.ParquetWriter(sink, self.arrow_schema, **options)
            file = slot.files[lane] = _File(number, path, sink, writer)
        file.writer.write_table(group, row_group_size=group.num_rows)
        if file.sink.tell() >= self.target_bytes:
            self._finish(slot, lane)

    def _finish(self, slot: _Open, lane: int) -> None:
        """Close the slot's file of encoder `lane` and record it as a data file."""
        file = slot.files.pop(lane, None)
        if file is None:
            return
        writer, sink = file.writer, file.sink
        writer.close()
        size = sink.tell()
        sink.close()
        stats = data_file_statistics_from_parquet_metadata(
            parquet_metadata=writer.writer.metadata,
            stats_columns=compute_statistics_plan(self.schema, self.metadata.properties),
            parquet_column_mapping=parquet_path_to_id_mapping(self.schema),
        )
        data_file = DataFile.from_args(
            content=DataFileContent.DATA,
            file_path=file.path,
            file_format=FileFormat.PARQUET,
            partition=slot.key.partition if slot.key is not None else Record(),
            file_size_in_bytes=size,
            sort_order_id=None,
            spec_id=self.metadata.default_spec_id,
            equality_ids=None,
            key_metadata=None,
            **stats.to_serialized_dict(),
        )
        with self._lock:
            self._written.append((file.first, data_file))

    def close(self) -> list[DataFile]:
        """Write out every buffered row and close every file; returns the data files."""
        try:
            for slot in self._open.values():
                if slot.buffer:
                    self._flush(slot)
            self._wait_all()
            for slot in self._open.values():
                for lane in sorted(slot.files):
                    self._finish(slot, lane)
        finally:
            self._shutdown()
        self._open.clear()
        return [data_file for _, data_file in sorted(self._written, key=lambda w: w[0])]

    def _shutdown(self) -> None:
        for encoder in self._encoders:
            encoder.shutdown(wait=True)

    def abort(self) -> None:
        """Stop and delete every file started (none of them was committed)."""
        for lane in range(len(self._encoders)):
            with contextlib.suppress(Exception):  # the rows are being thrown away anyway
                self._wait(lane)
        self._shutdown()
        for slot in self._open.values():
            for file in slot.files.values():
                for closable in (file.writer, file.sink):
                    with contextlib.suppress(Exception):
                        closable.close()
        self._open.clear()
        for path in self._paths:
            with contextlib.suppress(Exception):  # an orphan at worst, for orphan cleanup
                self.io.delete(path)
        self._written.clear()

    def __enter__(self) -> DataFileWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None:
            self.abort()


def _key_of(key: PartitionKey | None) -> tuple[Any, ...]:
    return () if key is None else tuple(v.value for v in key.field_values)
