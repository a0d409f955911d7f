"""Polars landing one day's CSV and NDJSON files into an Iceberg table (task 10).

Two jobs a Polars user would write: eager (`read_csv`/`read_ndjson`, then
`DataFrame.write_iceberg`, the whole day in memory) and lazy (`scan_csv`/`scan_ndjson`,
then `LazyFrame.sink_iceberg`, Polars 2's streaming sink). Nested CSV cells are parsed from
their JSON text, timestamps as UTC, so the table holds the same types as ours.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from benchmarks.engines.peer_catalog import events_table
from benchmarks.schemas import decode, nested, text_schema


def _schema(schema: pa.Schema) -> pl.Schema:
    return pl.from_arrow(schema.empty_table()).schema  # type: ignore[union-attr]


def _stamps_as_text(target: pa.Schema) -> tuple[pa.Schema, list[pa.Field]]:
    stamps = [f for f in target if pa.types.is_timestamp(f.type)]
    return pa.schema([f.with_type(pa.string()) if f in stamps else f for f in target]), stamps


def _frame(csv: list[str], ndjson: list[str], target: pa.Schema, lazy: bool) -> pl.LazyFrame:
    wanted = _schema(target)
    decoded = [pl.col(n).str.json_decode(wanted[n]) for n in nested(target)]
    text = _schema(text_schema(target))
    as_text, stamps = _stamps_as_text(target)
    # NDJSON timestamps as text, then `str.to_datetime` (see polars_engine.ndjson_to_parquet)
    parse = [
        pl.col(f.name).str.to_datetime(time_unit=f.type.unit, time_zone=f.type.tz) for f in stamps
    ]
    parts = []
    if lazy:
        if csv:
            parts.append(pl.scan_csv(csv, schema=text).with_columns(decoded))
        if ndjson:
            parts.append(pl.scan_ndjson(ndjson, schema=_schema(as_text)).with_columns(parse))
    else:
        parts += [pl.read_csv(f, schema=text).with_columns(decoded).lazy() for f in csv]
        parts += [
            pl.read_ndjson(f, schema=_schema(as_text)).with_columns(parse).lazy() for f in ndjson
        ]
    return pl.concat(parts, how="vertical")


def land_eager(csv: list[str], ndjson: list[str], out: str, schema: str, **_: object) -> int:
    target = decode(schema)
    table = events_table(out, target)
    frame = _frame(csv, ndjson, target, lazy=False).collect()
    frame.write_iceberg(table, mode="append")
    return frame.height


def land_streaming(csv: list[str], ndjson: list[str], out: str, schema: str, **_: object) -> int:
    target = decode(schema)
    table = events_table(out, target)
    _frame(csv, ndjson, target, lazy=True).sink_iceberg(table, mode="append")
    return -1  # counted from the table by the harness
