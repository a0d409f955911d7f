"""Test helpers: independent readers (DuckDB, pyarrow) and row normalisation for comparisons."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa


def normalise(value: Any) -> Any:
    """Comparable Python values: timestamps as UTC ISO strings, nested values recursively."""
    if isinstance(value, datetime):
        assert value.tzinfo is not None, "timestamps in the lake are UTC-aware"
        return value.timestamp()
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def rows(table: pa.Table, key: str = "event_id", columns: list[str] | None = None) -> list[dict]:
    """Rows of `table` (selected columns) sorted by `key`, normalised for comparison."""
    if columns is not None:
        table = table.select(columns)
    out = [{k: normalise(v) for k, v in r.items()} for r in table.to_pylist()]
    return sorted(out, key=lambda r: str(r[key]))


def duckdb_query(sql: str, **tables: Any) -> pa.Table:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for name, obj in tables.items():
        con.register(name, obj)
    return con.sql(sql).to_arrow_table()


def duckdb_hive(path: str, columns: list[str]) -> pa.Table:
    """The Hive-partitioned Parquet under `path`, read by DuckDB (not by our code)."""
    cols = ", ".join(columns)
    return duckdb_query(
        f"SELECT {cols} FROM read_parquet('{path}/**/*.parquet', hive_partitioning = true)"
    )
