"""Sorted rows streamed into an Iceberg table's Parquet data files, at its target file size.

pyiceberg 0.12 cannot do this for us: its ``overwrite``/``append`` take a
``pa.RecordBatchReader`` only for unpartitioned tables (a partitioned one raises
``NotImplementedError``), bin-pack by uncompressed Arrow bytes, and make two snapshots.
`DataFileWriter` writes the files itself, as pyiceberg's ``write_file`` does (the table's
location provider and field ids, statistics from the written footer), with the dataset's
codecs and encodings and row groups sized by bytes like bronze. The files it returns become
visible only when a commit adds them (`PartitionReplace.add`); files of a write that is never
committed are orphans for the table's orphan cleanup.

Memory: about two row groups being filled, plus one being encoded. A file is open per
partition the rows reach (one for the default ``day`` partitioning of a day); when rows of
many partitions are buffered at once (``hour``, ``identity``), the fullest buffer is written
out early as a smaller row group, so the buffers never hold more than two row groups.
"""

from __future__ import annotations

import contextlib
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
class _Open:
    """The file being filled for one partition, and its rows not yet in a row group."""

    key: PartitionKey | None
    buffer: list[pa.Table] = field(default_factory=list)
    buffered: int = 0
    path: str = ""
    sink: Any = None
    writer: pq.ParquetWriter | None = None


class DataFileWriter:
    """Writes rows (already in the table's sort order) into data files of `table`.

    `metadata` is the table as the commit will leave it (an evolved schema included); rows
    handed to `write` must have its Arrow schema (`arrow_schema`). `close` returns the
    `DataFile`s written, in the order they were started.
    """

    def __init__(
        self,
        table: Table,
        metadata: TableMetadata,
        spec: DatasetSpec,
        row_group_bytes: int = ROW_GROUP_BYTES,
        target_bytes: int | None = None,
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
        self._open: dict[tuple[Any, ...], _Open] = {}
        self._written: list[DataFile] = []
        self._paths: list[str] = []  # every file started, for `abort`
        self._encoder = ThreadPoolExecutor(1, thread_name_prefix="lake-iceberg-writer")
        self._pending: Future[None] | None = None
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
        """Hand the slot's buffered rows to the encoder as one row group."""
        # bounded: a slot buffers one row group of one partition
        group = pa.concat_tables(slot.buffer) if len(slot.buffer) > 1 else slot.buffer[0]
        slot.buffer, slot.buffered = [], 0
        self._wait()
        self._pending = self._encoder.submit(self._encode, slot, group)

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _encode(self, slot: _Open, group: pa.Table) -> None:
        if slot.writer is None:
            name = f"00000-{self._files}-{self._uuid}.parquet"
            self._files += 1
            slot.path = self._locations.new_data_location(name, slot.key)
            self._paths.append(slot.path)
            slot.sink = self.io.new_output(slot.path).create(overwrite=True)
            options = fit_encodings(self.options, self.spec, group)
            slot.writer = pq.ParquetWriter(slot.sink, self.arrow_schema, **options)
        slot.writer.write_table(group, row_group_size=group.num_rows)
        if slot.sink.tell() >= self.target_bytes:
            self._finish(slot)

    def _finish(self, slot: _Open) -> None:
        """Close the slot's file and record it as a data file of the table."""
        writer, sink = slot.writer, slot.sink
        if writer is None:
            return
        slot.writer, slot.sink = None, None
        writer.close()
        size = sink.tell()
        sink.close()
        stats = data_file_statistics_from_parquet_metadata(
            parquet_metadata=writer.writer.metadata,
            stats_columns=compute_statistics_plan(self.schema, self.metadata.properties),
            parquet_column_mapping=parquet_path_to_id_mapping(self.schema),
        )
        self._written.append(
            DataFile.from_args(
                content=DataFileContent.DATA,
                file_path=slot.path,
                file_format=FileFormat.PARQUET,
                partition=slot.key.partition if slot.key is not None else Record(),
                file_size_in_bytes=size,
                sort_order_id=None,
                spec_id=self.metadata.default_spec_id,
                equality_ids=None,
                key_metadata=None,
                **stats.to_serialized_dict(),
            )
        )

    def close(self) -> list[DataFile]:
        """Write out every buffered row and close every file; returns the data files."""
        try:
            for slot in self._open.values():
                if slot.buffer:
                    self._flush(slot)
            self._wait()
            for slot in self._open.values():
                self._finish(slot)
        finally:
            self._encoder.shutdown(wait=True)
        self._open.clear()
        return list(self._written)

    def abort(self) -> None:
        """Stop and delete every file started (none of them was committed)."""
        with contextlib.suppress(Exception):  # the rows are being thrown away anyway
            self._wait()
        self._encoder.shutdown(wait=True)
        for slot in self._open.values():
            for closable in (slot.writer, slot.sink):
                if closable is not None:
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
