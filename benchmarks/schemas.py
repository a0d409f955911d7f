"""Table schemas as each engine spells them, passed to engine processes as text.

Engine processes other than ours never import `lake_pipelines` (pandera alone takes ~2 s to
import); the harness hands them the target schema, serialised, in their arguments. Every engine
is asked for the same output: the same column types (nested columns parsed from their JSON
text in CSV cells into struct / list), ZSTD at `ZSTD_LEVEL`.
"""

from __future__ import annotations

import base64

import pyarrow as pa
import pyarrow.compute as pc

PARTITION_COLUMNS = ("year", "month", "day")
# The level every engine of tasks 1-3 writes at: the lake's default
# (`lake_pipelines.lake.parquet.options.DEFAULT_LEVEL`; 3 until run 33).
ZSTD_LEVEL = 1

# TPC-H lineitem with money as float64 (every engine reads it the same way). l_shipdate is a
# UTC timestamp in every engine because a DatasetSpec of ours needs one timestamp column.
LINEITEM = pa.schema(
    [
        pa.field("l_orderkey", pa.int64(), nullable=False),
        pa.field("l_partkey", pa.int64(), nullable=False),
        pa.field("l_suppkey", pa.int64(), nullable=False),
        pa.field("l_linenumber", pa.int32(), nullable=False),
        pa.field("l_quantity", pa.float64(), nullable=False),
        pa.field("l_extendedprice", pa.float64(), nullable=False),
        pa.field("l_discount", pa.float64(), nullable=False),
        pa.field("l_tax", pa.float64(), nullable=False),
        pa.field("l_returnflag", pa.string(), nullable=False),
        pa.field("l_linestatus", pa.string(), nullable=False),
        pa.field("l_shipdate", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("l_commitdate", pa.date32(), nullable=False),
        pa.field("l_receiptdate", pa.date32(), nullable=False),
        pa.field("l_shipinstruct", pa.string(), nullable=False),
        pa.field("l_shipmode", pa.string(), nullable=False),
        pa.field("l_comment", pa.string(), nullable=False),
    ]
)


def encode(schema: pa.Schema) -> str:
    return base64.b64encode(schema.remove_metadata().serialize().to_pybytes()).decode()


def decode(text: str) -> pa.Schema:
    """The schema, every field nullable (as in bronze's files: the contract guards nulls)."""
    schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))
    return pa.schema([f.with_nullable(True) for f in schema])


def nested(schema: pa.Schema) -> list[str]:
    return [f.name for f in schema if pa.types.is_nested(f.type)]


def text_schema(schema: pa.Schema) -> pa.Schema:
    """The schema of the CSV cells: nested columns are JSON text."""
    return pa.schema(
        [pa.field(f.name, pa.string()) if pa.types.is_nested(f.type) else f for f in schema]
    )


_DUCKDB = {
    pa.string(): "VARCHAR",
    pa.float64(): "DOUBLE",
    pa.int64(): "BIGINT",
    pa.int32(): "INTEGER",
    pa.date32(): "DATE",
}


def duckdb_type(t: pa.DataType) -> str:
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    if pa.types.is_struct(t):
        return "STRUCT(" + ", ".join(f"{f.name} {duckdb_type(f.type)}" for f in t) + ")"
    if pa.types.is_list(t):
        return duckdb_type(t.value_type) + "[]"
    return _DUCKDB[t]


def json_shape(t: pa.DataType) -> str:
    """DuckDB `from_json` structure of a nested type."""
    if pa.types.is_struct(t):
        return "{" + ", ".join(f'"{f.name}": {json_shape(f.type)}' for f in t) + "}"
    if pa.types.is_list(t):
        return f"[{json_shape(t.value_type)}]"
    return f'"{duckdb_type(t)}"'


METRIC_TOTALS = ("events", "distinct_users", "distinct_sessions")


def metrics_digest(table: pa.Table) -> dict[str, int]:
    """What every engine's daily metrics must agree on (rows, events, distinct counts)."""
    # pyarrow.compute, not to_numpy(): ChunkedArray.to_numpy imports pandas (over a second).
    total = {c: pc.sum(table.column(c)).as_py() or 0 for c in METRIC_TOTALS}
    return {"rows": table.num_rows} | total
