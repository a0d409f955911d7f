"""DuckDB: `read_csv` / `read_json` with explicit columns, `COPY ... TO` Parquet."""

from __future__ import annotations

import os

import duckdb
import pyarrow as pa

from benchmarks.schemas import (
    ZSTD_LEVEL,
    decode,
    duckdb_type,
    json_shape,
    metrics_digest,
    text_schema,
)

ZSTD = f"FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL {ZSTD_LEVEL}"


def _connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def _files(inputs: list[str]) -> str:
    return "[" + ", ".join(f"'{p}'" for p in inputs) + "]"


def _columns(schema: pa.Schema) -> str:
    return "{" + ", ".join(f"'{f.name}': '{duckdb_type(f.type)}'" for f in schema) + "}"


def _csv_select(inputs: list[str], target: pa.Schema) -> str:
    scan = (
        f"read_csv({_files(inputs)}, header = true, auto_detect = false, "
        f"columns = {_columns(text_schema(target))})"
    )
    cols = [
        f"from_json({f.name}, '{json_shape(f.type)}') AS {f.name}"
        if pa.types.is_nested(f.type)
        else f.name
        for f in target
    ]
    return f"SELECT {', '.join(cols)} FROM {scan}"


def _copy(select: str, out: str, partitioned: bool) -> None:
    con = _connect()
    if partitioned:
        select = f"SELECT *, year(ts) AS year, month(ts) AS month, day(ts) AS day FROM ({select})"
        con.execute(
            f"COPY ({select}) TO '{out}' "
            f"({ZSTD}, PARTITION_BY (year, month, day), OVERWRITE_OR_IGNORE)"
        )
    else:
        os.makedirs(out, exist_ok=True)
        con.execute(f"COPY ({select}) TO '{os.path.join(out, 'part-0.parquet')}' ({ZSTD})")


def csv_to_parquet(
    inputs: list[str], out: str, schema: str, partitioned: bool, **_: object
) -> None:
    _copy(_csv_select(inputs, decode(schema)), out, partitioned)


def ndjson_to_parquet(inputs: list[str], out: str, schema: str, **_: object) -> None:
    select = (
        f"SELECT * FROM read_json({_files(inputs)}, format = 'newline_delimited', "
        f"auto_detect = false, columns = {_columns(decode(schema))})"
    )
    _copy(select, out, partitioned=False)


def compact(src: str, out: str, **_: object) -> None:
    select = f"SELECT * FROM read_parquet('{src}/*.parquet', hive_partitioning = false)"
    _copy(select, out, partitioned=False)


def compact_sorted(src: str, out: str, **_: object) -> None:
    """The same copy, in the order ours writes (the dataset's sort key): context for the
    ratio, since ours sorts and the plain copies do not."""
    select = (
        f"SELECT * FROM read_parquet('{src}/*.parquet', hive_partitioning = false) "
        "ORDER BY ts, user_id"
    )
    _copy(select, out, partitioned=False)


METRICS = """
SELECT
    CAST(date_trunc('day', ts) AS DATE)      AS day,
    event_type,
    COUNT(*)                                 AS events,
    COUNT(DISTINCT user_id)                  AS distinct_users,
    COUNT(DISTINCT session_id)               AS distinct_sessions,
    SUM(price)                               AS revenue,
    quantile_cont(price, 0.5)                AS price_p50,
    quantile_cont(price, 0.95)               AS price_p95
FROM read_parquet('{bronze}/**/*.parquet', hive_partitioning = true)
WHERE ts >= TIMESTAMPTZ '{start}' AND ts < TIMESTAMPTZ '{end}'
GROUP BY 1, 2
ORDER BY 1, 2
"""


def daily_metrics(bronze: str, start: str, end: str, **_: object) -> dict[str, int]:
    sql = METRICS.format(bronze=bronze, start=start, end=end)
    return metrics_digest(_connect().sql(sql).to_arrow_table())
