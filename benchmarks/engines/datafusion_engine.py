"""DataFusion: `read_csv` / `read_json` with a schema, `DataFrame.write_parquet`.

DataFusion has no built-in JSON functions, so the nested CSV cells are parsed by a vectorised
Arrow UDF (one `pyarrow.json` call per batch), the way a DataFusion user would do it.
"""

from __future__ import annotations

import os

import pyarrow as pa
from datafusion import DataFrame, DataFrameWriteOptions, SessionContext, col, lit, udf
from datafusion import functions as f

from benchmarks.engines.pyarrow_engine import json_cells
from benchmarks.schemas import PARTITION_COLUMNS, ZSTD_LEVEL, decode, text_schema


def _write(frame: DataFrame, out: str, partitioned: bool) -> None:
    options = DataFrameWriteOptions()
    if partitioned:
        ts = col("ts")
        frame = frame.with_columns(
            *(f.date_part(lit(p), ts).cast(pa.int64()).alias(p) for p in PARTITION_COLUMNS)
        )
        options = DataFrameWriteOptions(partition_by=list(PARTITION_COLUMNS))
    os.makedirs(out, exist_ok=True)
    frame.write_parquet(
        out, compression="zstd", compression_level=ZSTD_LEVEL, write_options=options
    )


def csv_to_parquet(
    inputs: list[str], out: str, schema: str, partitioned: bool, **_: object
) -> None:
    target = decode(schema)
    frame = SessionContext().read_csv(inputs, schema=text_schema(target))
    columns = []
    for fld in target:
        if pa.types.is_nested(fld.type):

            def parse(arr: pa.Array, t: pa.DataType = fld.type) -> pa.Array:
                return json_cells(arr, t)

            parser = udf(parse, [pa.string()], fld.type, "immutable", f"parse_{fld.name}")
            columns.append(parser(col(fld.name)).alias(fld.name))
        else:
            columns.append(col(fld.name))
    _write(frame.select(*columns), out, partitioned)


def ndjson_to_parquet(inputs: list[str], out: str, schema: str, **_: object) -> None:
    ctx = SessionContext()
    frames = [ctx.read_json(p, schema=decode(schema), file_extension=".ndjson") for p in inputs]
    frame = frames[0]
    for other in frames[1:]:
        frame = frame.union(other)
    _write(frame, out, partitioned=False)
