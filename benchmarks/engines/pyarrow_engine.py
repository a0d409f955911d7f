"""pyarrow, streaming: `open_csv` / `open_json` batches into a ParquetWriter or `write_dataset`."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.dataset as ds
import pyarrow.json as pj
import pyarrow.parquet as pq

from benchmarks.schemas import PARTITION_COLUMNS, ZSTD_LEVEL, decode, text_schema

BLOCK = 16 << 20
ZSTD = {"compression": "zstd", "compression_level": ZSTD_LEVEL}


def json_cells(arr: pa.Array, target: pa.DataType) -> pa.Array:
    """JSON text cells → nested values, in one `read_json` call (no per-row Python)."""
    if not len(arr):
        return pa.array([], target)
    lines = pc.binary_join_element_wise('{"v":', pc.fill_null(arr, "null"), "}\n", "")
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    # The values buffer of a string array is its strings back to back: the whole NDJSON body.
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)
    start, end = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
    table = pj.read_json(
        pa.BufferReader(lines.buffers()[2].slice(start, end - start)),
        read_options=pj.ReadOptions(block_size=max(end - start + 1, 1 << 20)),
        parse_options=pj.ParseOptions(explicit_schema=pa.schema([("v", target)])),
    )
    return table.column("v").combine_chunks()


def _csv_batches(inputs: list[str], target: pa.Schema, zoned: bool) -> Iterator[pa.RecordBatch]:
    text = text_schema(target)
    # Timestamps written without a zone are read as naive and then declared UTC.
    types = {
        f.name: pa.timestamp(f.type.unit) if pa.types.is_timestamp(f.type) and not zoned else f.type
        for f in text
    }
    for path in inputs:
        reader = pcsv.open_csv(
            path,
            read_options=pcsv.ReadOptions(block_size=BLOCK),
            parse_options=pcsv.ParseOptions(newlines_in_values=False),
            convert_options=pcsv.ConvertOptions(column_types=types, strings_can_be_null=True),
        )
        for b in reader:
            cols = [
                json_cells(b.column(f.name), f.type)
                if pa.types.is_nested(f.type)
                else b.column(f.name).cast(f.type)
                for f in target
            ]
            yield pa.RecordBatch.from_arrays(cols, schema=target)


def _write_one(out: str, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> None:
    os.makedirs(out, exist_ok=True)
    with pq.ParquetWriter(os.path.join(out, "part-0.parquet"), schema, **ZSTD) as writer:
        for b in batches:
            writer.write_batch(b)


def _write_hive(out: str, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> None:
    keys = pa.schema([(c, pa.int64()) for c in PARTITION_COLUMNS])
    full = pa.schema([*schema, *keys])

    def with_day() -> Iterator[pa.RecordBatch]:
        for b in batches:
            t = b.column("ts")
            parts = [pc.year(t), pc.month(t), pc.day(t)]
            yield pa.RecordBatch.from_arrays([*b.columns, *parts], schema=full)

    ds.write_dataset(
        with_day(),
        out,
        schema=full,
        format="parquet",
        partitioning=ds.partitioning(keys, flavor="hive"),
        file_options=ds.ParquetFileFormat().make_write_options(**ZSTD),
        existing_data_behavior="overwrite_or_ignore",
        max_rows_per_group=1 << 20,
        min_rows_per_group=1 << 17,
    )


def csv_to_parquet(
    inputs: list[str], out: str, schema: str, partitioned: bool, zoned: bool = True, **_: object
) -> None:
    target = decode(schema)
    batches = _csv_batches(inputs, target, zoned)
    (_write_hive if partitioned else _write_one)(out, target, batches)


def ndjson_to_parquet(inputs: list[str], out: str, schema: str, **_: object) -> None:
    target = decode(schema)

    def read() -> Iterator[pa.RecordBatch]:
        for path in inputs:
            yield from pj.open_json(
                path,
                read_options=pj.ReadOptions(block_size=BLOCK),
                parse_options=pj.ParseOptions(explicit_schema=target),
            )

    _write_one(out, target, read())


def compact(src: str, out: str, **_: object) -> None:
    ds.write_dataset(
        ds.dataset(src, format="parquet"),
        out,
        format="parquet",
        basename_template="part-{i}.parquet",
        file_options=ds.ParquetFileFormat().make_write_options(**ZSTD),
        existing_data_behavior="overwrite_or_ignore",
        max_rows_per_group=1 << 20,
        min_rows_per_group=1 << 17,
    )
