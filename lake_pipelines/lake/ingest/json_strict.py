"""JSON as RFC 8259 defines it, decoded record by record, with reasons a person understands.

Python's `json` module and pyarrow's reader are both lenient where the RFC is not (NaN and
Infinity, duplicate keys, several values on one line), and pyarrow's reader crashes the
process on some input (a line that is just ``null`` at the start of a block; unknown values
nested thousands deep). So:

* `safe_for_pyarrow` is a vector pre-check of an NDJSON block: only a block whose every
  record line is one ``{...}`` (with a bounded number of brackets where pyarrow infers
  types) is handed to pyarrow whole, and its result is kept only if it has one row per
  record and only finite floats (`finite_floats`). Any other block goes record by record.
* `decode_record` decodes one record strictly and returns the object, or raises `BadRecord`
  with the reason the quarantine shows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Records nested deeper than this are quarantined. RFC 8259 lets a parser limit nesting;
# pyarrow's type inference overflows its stack some thousands of levels down, and real
# records rarely go past ten.
MAX_NESTING = 100
MAX_INT_DIGITS = 400
BOM = b"\xef\xbb\xbf"
_JSON_WS = b" \t\r\n"
_OPEN_BRACE, _CLOSE_BRACE, _OPEN_BRACKET = ord("{"), ord("}"), ord("[")
_CR, _LF = ord("\r"), ord("\n")


class BadRecord(ValueError):
    """One record that is not a JSON object we can take, and why."""

    def __init__(self, reason: str, column: str | None = None) -> None:
        self.reason = reason
        self.column = column
        super().__init__(reason)


def _constant(name: str) -> Any:
    raise BadRecord(f"{name} is not JSON (RFC 8259 has no NaN or Infinity)")


def _float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise BadRecord(f"number {text[:40]} is beyond the float64 range")
    return value


def _int(text: str) -> int:
    # Python refuses to convert more than 4,300 digits (a ValueError, not a decode error);
    # no column type holds a tenth of that.
    if len(text) > MAX_INT_DIGITS:
        raise BadRecord(f"an integer of {len(text):,} digits is beyond any column's range")
    return int(text)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise BadRecord(f"duplicate key {key!r} in one object", column=key)
        out[key] = value
    return out


DECODER = json.JSONDecoder(
    parse_constant=_constant, parse_float=_float, parse_int=_int, object_pairs_hook=_object
)
# Only to find where a refused array element ends: accepts what JSON allows and Python parses.
LENIENT = json.JSONDecoder(parse_int=lambda text: 0, parse_float=lambda text: 0.0)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    return "a number"


def check_value(value: Any) -> dict[str, Any]:
    """A decoded top-level value as a record, or `BadRecord`."""
    if not isinstance(value, dict):
        raise BadRecord(f"not a JSON object (found {_kind(value)})")
    if nesting(value) > MAX_NESTING:
        raise BadRecord(f"nesting deeper than {MAX_NESTING} levels")
    return value


def nesting(value: Any) -> int:
    """Levels of objects and arrays in `value` (``{}``: 1, ``{"a": [1]}``: 2), counted
    breadth-first so that no input can exhaust the stack; stops counting past the limit."""
    level = 0
    frontier = [value]
    while level <= MAX_NESTING:
        containers = [x for x in frontier if isinstance(x, dict | list)]
        if not containers:
            return level
        level += 1
        frontier = [v for x in containers for v in (x.values() if isinstance(x, dict) else x)]
    return level


def decode_record(text: bytes) -> dict[str, Any]:
    """One NDJSON line (without its line break) as an object, strictly.

    Raises:
        BadRecord: with a reason such as "not a JSON object (found null)", "two values on
            one line", "trailing comma", "NaN is not JSON", "duplicate key 'a'", "nesting
            deeper than 100 levels", "invalid \\u escape (lone surrogate)".
    """
    if text.startswith(BOM):
        raise BadRecord("a byte order mark (U+FEFF) inside the file, at the start of a line")
    try:
        body = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRecord(f"not valid UTF-8 at byte {exc.start + 1} of the line") from exc
    body = body.strip(" \t\r\n")
    try:
        value, end = DECODER.raw_decode(body)
    except RecursionError:
        raise BadRecord(f"nesting deeper than {MAX_NESTING} levels") from None
    except json.JSONDecodeError as exc:
        raise BadRecord(_syntax_reason(exc)) from None
    except BadRecord:
        raise
    except ValueError as exc:  # anything else the decoder refuses: still one bad record
        raise BadRecord(f"invalid JSON: {exc}") from None
    if end != len(body):
        raise BadRecord("two values on one line (one JSON value per line in NDJSON)")
    record = check_value(value)
    encoded(record)
    return record


def encoded(record: dict[str, Any]) -> bytes:
    """The record as compact UTF-8 JSON, or `BadRecord` for a string holding a lone
    surrogate (``"\\ud800"`` decodes, but is no Unicode text and cannot be stored)."""
    try:
        return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        raise BadRecord("invalid \\u escape (lone surrogate)") from None


def _syntax_reason(exc: json.JSONDecodeError) -> str:
    """What a decode error means to a person. The json module has one exception type for
    every syntax error, so its message is the only thing that tells them apart."""
    before = exc.doc[: exc.pos].rstrip(" \t\r\n")
    closes = exc.doc[exc.pos : exc.pos + 1] in ("}", "]")
    if before.endswith(",") and closes:
        return "trailing comma"
    if exc.msg.startswith("Invalid control character"):
        return f"a control character inside a string, at column {exc.colno} (escape it)"
    if exc.msg.startswith("Invalid \\uXXXX escape"):
        return f"invalid \\u escape at column {exc.colno}"
    return f"invalid JSON: {exc.msg} at column {exc.colno}"


def safe_for_pyarrow(data: bytes, infers: bool) -> int | None:
    """How many records the NDJSON block has, if pyarrow may read it whole; else None.

    Every non-blank line must start with ``{`` and end with ``}`` (JSON whitespace around
    them allowed): pyarrow crashes on a block that starts with ``null``. With `infers`
    (pyarrow infers the types of unknown keys, the ``evolve`` mode, and overflows its stack
    on values nested some thousands deep), each line may also hold at most `MAX_NESTING`
    opening brackets, so nothing in it nests deeper. One vector pass over the bytes (about
    2 ms for an 8 MiB block; pyarrow's parse of it takes 20 times that). NaN and Infinity are
    caught after the parse, where they can only be non-finite floats (`finite_floats`).
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    if not len(buf):
        return 0
    breaks = np.flatnonzero(buf == _LF)
    starts = np.concatenate(([0], breaks + 1))
    stops = np.concatenate((breaks, [len(buf)]))
    filled = stops > starts
    starts, stops = starts[filled], stops[filled]
    first = buf[starts]
    last_at = stops - 1
    last = buf[last_at]
    ends_cr = (last == _CR) & (last_at > starts)
    last = np.where(ends_cr, buf[np.maximum(last_at - 1, 0)], last)
    plain = (first == _OPEN_BRACE) & (last == _CLOSE_BRACE)
    if infers and len(starts):
        opens = np.flatnonzero((buf == _OPEN_BRACE) | (buf == _OPEN_BRACKET))
        per_line = np.diff(np.searchsorted(opens, np.append(starts, len(buf))))
        if (per_line > MAX_NESTING).any():
            return None
    records = int(plain.sum())
    for a, b in zip(starts[~plain].tolist(), stops[~plain].tolist(), strict=True):
        line = data[a:b].strip(_JSON_WS)
        if not line:
            continue  # a blank line is no record
        if not (line.startswith(b"{") and line.endswith(b"}")):
            return None
        records += 1
    return records


def finite_floats(table: pa.Table) -> bool:
    """Whether every float in the table, nested ones included, is finite. JSON has no NaN or
    infinity, but pyarrow reads ``NaN`` and ``Infinity`` as floats, and an integer too long
    for a double (400 nines) as infinity, all silently."""

    def arrays(values: pa.Array) -> Iterator[pa.Array]:
        t = values.type
        if pa.types.is_floating(t):
            yield values
        elif pa.types.is_list(t) or pa.types.is_large_list(t):
            yield from arrays(pc.list_flatten(values))
        elif pa.types.is_struct(t):
            for i in range(t.num_fields):
                yield from arrays(pc.struct_field(values, [i]))

    return not any(
        pc.any(pc.invert(pc.is_finite(a))).as_py()
        for column in table.columns
        for chunk in column.chunks
        for a in arrays(chunk)
    )
