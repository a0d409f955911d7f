"""Arrow helpers every layer shares."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def fit_to_schema(data: pa.Table | pa.RecordBatch, schema: pa.Schema) -> pa.Table:
    """`data` as `schema`: its columns in the schema's order, each cast to its type, a column
    the data lacks as nulls, a column the schema lacks dropped (callers that must refuse
    those check first).

    Raises:
        pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, ValueError: a value
            does not fit its column's type.
    """
    table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
    columns = [
        table.column(f.name) if f.name in table.column_names else pa.nulls(len(table), f.type)
        for f in schema
    ]
    if all(c.type == f.type for c, f in zip(columns, schema, strict=True)):
        return pa.Table.from_arrays(columns, schema=schema)  # nothing to cast (the usual case)
    return pa.Table.from_arrays(columns, names=schema.names).cast(schema)


# pyarrow 26 imports pandas (~1 s) the first time it is handed Python values (`pa.array`,
# `pa.scalar`, a Python number or string given to a compute function), only to ask whether
# they are pandas objects. A run that never needs pandas builds its constants here instead,
# from raw buffers; types without a buffer layout here still go through `pa.array`.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _valid_bits(items: Sequence[Any]) -> tuple[pa.Buffer | None, int]:
    valid = np.fromiter((x is not None for x in items), dtype=bool, count=len(items))
    nulls = len(items) - int(valid.sum())
    return (pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None), nulls


def _ticks(value: Any, unit: str) -> int:
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        delta = moment - _EPOCH
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        return micros * _PER_SECOND[unit] // 1_000_000
    return int(value)


def values(items: Sequence[Any], type_: pa.DataType) -> pa.Array:
    """`items` (Python values, None for null) as an array of `type_`, as `pa.array` makes
    it, without pandas for strings, booleans, integers, floats, dates and timestamps; any
    other type or value goes to `pa.array` (which also raises on a value that does not fit)."""
    built = _from_buffers(items, type_, [x for x in items if x is not None])
    return built if built is not None else pa.array(list(items), type=type_)


def _from_buffers(items: Sequence[Any], type_: pa.DataType, given: list[Any]) -> pa.Array | None:
    if pa.types.is_string(type_) or pa.types.is_large_string(type_):
        return _strings(items, type_) if all(isinstance(x, str) for x in given) else None
    if pa.types.is_boolean(type_):
        if not all(isinstance(x, bool) for x in given):
            return None
        bits = np.fromiter((bool(x) for x in items), dtype=bool, count=len(items))
        return _fixed(items, type_, np.packbits(bits, bitorder="little"))
    raw: list[Any] | None = None
    if pa.types.is_integer(type_):
        info = np.iinfo(_dtype(type_))
        if all(type(x) is int and info.min <= x <= info.max for x in given):
            raw = [x or 0 for x in items]
    elif pa.types.is_floating(type_) and type_.bit_width > 16:
        if all(type(x) in (int, float) for x in given):
            raw = [x or 0 for x in items]
    elif pa.types.is_date32(type_):
        if all(isinstance(x, date) and not isinstance(x, datetime) for x in given):
            raw = [0 if x is None else (x - _EPOCH.date()).days for x in items]
    elif pa.types.is_timestamp(type_) and all(isinstance(x, datetime) for x in given):
        raw = [0 if x is None else _ticks(x, type_.unit) for x in items]
    return None if raw is None else _fixed(items, type_, np.array(raw, dtype=_dtype(type_)))


def _dtype(type_: pa.DataType) -> np.dtype[Any]:
    if pa.types.is_date32(type_):
        return np.dtype(np.int32)
    if pa.types.is_timestamp(type_):
        return np.dtype(np.int64)
    kind = "f" if pa.types.is_floating(type_) else "i" if pa.types.is_signed_integer(type_) else "u"
    return np.dtype(f"{kind}{type_.bit_width // 8}")


def _fixed(items: Sequence[Any], type_: pa.DataType, data: np.ndarray) -> pa.Array:
    validity, nulls = _valid_bits(items)
    return pa.Array.from_buffers(type_, len(items), [validity, pa.py_buffer(data)], nulls)


def _strings(items: Sequence[Any], type_: pa.DataType) -> pa.Array:
    validity, nulls = _valid_bits(items)
    encoded = [b"" if x is None else x.encode("utf-8") for x in items]
    offsets = np.zeros(len(items) + 1, np.int64 if pa.types.is_large_string(type_) else np.int32)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    buffers = [validity, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
    return pa.Array.from_buffers(type_, len(items), buffers, nulls)


def scalar(value: Any, type_: pa.DataType) -> pa.Scalar:
    """One value of `type_`, as `values` builds it (no pandas)."""
    return values([value], type_)[0]


def indices(rows: Sequence[int] | np.ndarray) -> pa.Array:
    """Row numbers as an int64 array for `take`."""
    raw = np.ascontiguousarray(rows, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(raw), [None, pa.py_buffer(raw)])


def mask(flags: np.ndarray) -> pa.Array:
    """A numpy boolean vector as an Arrow boolean array (for `filter`, `if_else`)."""
    bits = np.packbits(np.ascontiguousarray(flags, dtype=bool), bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(flags), [None, pa.py_buffer(bits)])


def null(type_: pa.DataType) -> pa.Scalar:
    """A null of `type_` (for `if_else`; a Python None there would import pandas)."""
    return pa.nulls(1, type_)[0]


def text(value: str) -> pa.Scalar:
    """A string scalar (for `equal`, `binary_join_element_wise` and the like)."""
    return _strings([value], pa.string())[0]


def empty(schema: pa.Schema) -> pa.Table:
    """A table of `schema` without rows (`Schema.empty_table` imports pandas)."""
    return pa.Table.from_arrays([pa.nulls(0, f.type) for f in schema], schema=schema)


def true_rows(flags: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Indexes where a boolean array is true (null counts as false), read from its bits:
    `to_numpy` and `np.asarray` of an Arrow array import pandas."""
    chunks = flags.chunks if isinstance(flags, pa.ChunkedArray) else [flags]
    found, base = [], 0
    no = scalar(False, pa.bool_())
    for chunk in chunks:
        n = len(chunk)
        if n:
            filled = pc.fill_null(chunk, no) if chunk.null_count else chunk
            data = np.frombuffer(filled.buffers()[1], np.uint8)
            bits = np.unpackbits(data, bitorder="little")[filled.offset : filled.offset + n]
            found.append(np.flatnonzero(bits) + base)
        base += n
    return np.concatenate(found) if found else np.empty(0, dtype=np.int64)
