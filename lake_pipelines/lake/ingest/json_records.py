"""Decoded JSON records → Arrow rows of the spec's schema, one bad record at a time.

Every record here is already a JSON object that `json_strict` accepted. pyarrow converts them
in one call; when it refuses, values the schema can still take (numbers given as strings,
epoch-millisecond timestamps, "true"/"false") are converted, unknown keys follow the contract
mode, and the records still failing are isolated by bisection and rejected with their line
(NDJSON) or record number (arrays).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.json as pj

from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.lake.ingest.batches import Batch, Reject, nullable_schema
from lake_pipelines.lake.ingest.json_strict import BadRecord, encoded
from lake_pipelines.lake.ingest.nested_keys import (
    extra_in_type,
    extra_in_value,
    nested_key_reason,
    refuses_nested_keys,
)


def unexpected_fields(spec: DatasetSpec) -> str:
    """pyarrow's `unexpected_field_behavior` for the dataset's contract mode."""
    return {"freeze": "error", "discard_value": "ignore", "evolve": "infer"}[spec.unknown_columns]


def nested_keys_widened(table: pa.Table, spec: DatasetSpec) -> bool:
    """Whether pyarrow, inferring (``evolve``), added a field inside one of the spec's nested
    columns for a key its type lacks: then the records take the careful path, which
    quarantines them (`nested_keys`). Under ``freeze`` pyarrow refuses such a key itself and
    under ``discard_value`` ignores it."""
    if spec.unknown_columns != "evolve":
        return False
    return any(
        extra_in_type(table.schema.field(f.name).type, f.type, f.name)
        for f in spec.schema
        if pa.types.is_nested(f.type) and f.name in table.column_names
    )


def read_ndjson_bytes(
    data: bytes, schema: pa.Schema, unexpected: str, pieces: bool = False
) -> pa.Table:
    """pyarrow's JSON reader over NDJSON bytes that `json_strict` vetted, on one thread (a
    block is already one of those in flight on our pool; pyarrow's own threads on top cost a
    third more CPU). With `pieces`, pyarrow parses 1 MiB at a time, which is cheaper than one
    large piece; a record longer than a piece fails there, and the caller's fallback reads
    the block as one piece."""
    block = 1 << 20 if pieces else max(len(data) + 1, 1 << 20)
    return pj.read_json(
        pa.BufferReader(data),  # zero-copy, and no GIL per read (a Python file takes it)
        read_options=pj.ReadOptions(block_size=block, use_threads=False),
        parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior=unexpected),
    )


def _read(lines: list[bytes], schema: pa.Schema, unexpected: str) -> pa.Table:
    return read_ndjson_bytes(b"\n".join(lines) + b"\n", schema, unexpected)


def parse_values(
    values: list[dict[str, Any]],
    texts: list[bytes],
    numbers: np.ndarray,
    key: str,
    spec: DatasetSpec,
    records: bool,
    rejects: list[Reject] | None = None,
) -> Batch:
    """Convert decoded records (`texts`: each as compact JSON, `numbers`: their line or record
    numbers) into a batch; `rejects` already found for the same lines come along."""
    schema = nullable_schema(spec.schema)
    unexpected = unexpected_fields(spec)
    rejects = list(rejects or [])

    def text_of(indexes: list[int] | None) -> Callable[[int], str]:
        def text(j: int) -> str:
            line = texts[j if indexes is None else indexes[j]]
            return line.decode("utf-8", errors="replace").rstrip("\r")

        return text

    if not rejects and texts:
        try:
            table = _read(texts, schema, unexpected)
            if not nested_keys_widened(table, spec):
                return Batch(table, [], lambda: numbers, records, text_of(None))
        except pa.ArrowInvalid:
            pass

    def reject(i: int, column: str | None, reason: str) -> None:
        raw = texts[i].decode("utf-8", errors="replace")[:2000]
        n = int(numbers[i])
        line, record = (None, n) if records else (n, None)
        rejects.append(Reject(key, line, column, reason, raw, record))

    repaired: list[bytes] = []
    kept: list[int] = []
    for i, value in enumerate(values):
        try:
            repaired.append(encoded(_repair(value, spec)))
        except BadRecord as bad:
            reject(i, bad.column, bad.reason)
            continue
        kept.append(i)
    tables: list[pa.Table] = []
    good: list[int] = []

    def bisect(lo: int, hi: int) -> None:
        try:
            tables.append(_read(repaired[lo:hi], schema, unexpected))
            good.extend(kept[lo:hi])
            return
        except pa.ArrowInvalid as exc:
            if hi - lo == 1:
                reject(kept[lo], *_json_parse_problem(exc))
                return
        mid = (lo + hi) // 2
        bisect(lo, mid)
        bisect(mid, hi)

    if repaired:
        bisect(0, len(repaired))
    table = (  # the records of one read block (8 MiB of text), never a whole file
        pa.concat_tables(tables, promote_options="permissive") if tables else schema.empty_table()
    )
    good_numbers = numbers[np.array(good, dtype=np.int64)] if good else np.array([], np.int64)
    rejects.sort(key=lambda r: r.line or r.record or 0)
    return Batch(table, rejects, lambda: good_numbers, records, text_of(good))


def _repair(value: dict[str, Any], spec: DatasetSpec) -> dict[str, Any]:
    """The record with what the schema can still take converted, or `BadRecord`."""
    out: dict[str, Any] = {}
    names = spec.schema.names
    unknown = [k for k in value if k not in names]
    if unknown and spec.unknown_columns == "freeze":
        raise BadRecord(f"unknown field(s) {unknown} (contract mode: freeze)", unknown[0])
    if spec.unknown_columns == "evolve":
        out.update({k: value[k] for k in unknown})
    for field in spec.schema:
        if field.name not in value:
            continue
        if refuses_nested_keys(spec):
            path = extra_in_value(value[field.name], field.type, field.name)
            if path:
                raise BadRecord(nested_key_reason(path, spec), field.name)
        try:
            out[field.name] = _coerce(value[field.name], field.type)
        except (ValueError, TypeError, InvalidOperation, OverflowError) as exc:
            shown = json.dumps(value[field.name], ensure_ascii=False)[:200]
            raise BadRecord(
                f"{field.name}={shown}: cannot convert to {field.type}: {exc}", field.name
            ) from None
    return out


def _coerce(v: Any, t: pa.DataType) -> Any:
    if v is None:
        return None
    if pa.types.is_timestamp(t):
        if isinstance(v, int | float) and not isinstance(v, bool):
            return datetime.fromtimestamp(v / 1000, tz=UTC).isoformat()
        if isinstance(v, str) and v.strip().lstrip("-").isdigit():
            return datetime.fromtimestamp(int(v) / 1000, tz=UTC).isoformat()
        return v
    if pa.types.is_boolean(t):
        if isinstance(v, str):
            low = v.strip().lower()
            if low in ("true", "t", "1", "yes", "y"):
                return True
            if low in ("false", "f", "0", "no", "n"):
                return False
            raise ValueError("not a boolean")
        return v
    if pa.types.is_integer(t):
        number: Any = v
        if isinstance(v, str):
            number = int(v.strip())
        elif isinstance(v, float) and v.is_integer():
            number = int(v)
        if isinstance(number, int) and not isinstance(number, bool):
            signed = pa.types.is_signed_integer(t)
            lowest = -(1 << (t.bit_width - 1)) if signed else 0
            highest = (1 << (t.bit_width - (1 if signed else 0))) - 1
            if not lowest <= number <= highest:
                raise OverflowError(f"{str(number)[:40]} is beyond the {t} range")
        return number
    if pa.types.is_floating(t):
        return float(v.strip()) if isinstance(v, str) else v
    if pa.types.is_decimal(t):
        return str(Decimal(str(v).strip()))
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v) if isinstance(v, int | float) else v
    if pa.types.is_struct(t) and isinstance(v, dict):
        fields = {t.field(i).name: t.field(i).type for i in range(t.num_fields)}
        return {k: _coerce(x, fields[k]) for k, x in v.items() if k in fields}
    if (pa.types.is_list(t) or pa.types.is_large_list(t)) and isinstance(v, list):
        return [_coerce(x, t.value_type) for x in v]
    return v


def _json_parse_problem(exc: pa.ArrowInvalid) -> tuple[str | None, str]:
    """(column, reason) of one record pyarrow's JSON reader refused.

    pyarrow raises a bare `ArrowInvalid` whose only context is its message (e.g. ``JSON parse
    error: Column(/price) changed from number to string in row 0``): no type or field names
    the column, so it is read from the message here, and nowhere else.
    """
    msg = str(exc)
    column = None
    if "Column(/" in msg:
        column = msg.split("Column(/", 1)[1].split(")", 1)[0].split("/")[0]
    return column, msg.replace("JSON parse error: ", "").split(" in row ")[0][:300]
