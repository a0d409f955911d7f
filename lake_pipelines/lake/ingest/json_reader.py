"""Streaming JSON: NDJSON, or one top-level array of objects, into batches of the spec's schema.

The fast path hands a whole block to pyarrow's JSON reader with the spec's schema. A block it
refuses goes through a lenient path: each record is decoded, values the schema can still take
(numbers given as strings, epoch-millisecond timestamps, "true"/"false") are converted, unknown
keys follow the contract mode, and the records still failing are isolated by bisection and
rejected with their line (NDJSON) or record number (arrays).
"""

from __future__ import annotations

import codecs
import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.json as pj

from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.errors import SourceFileError
from lake_pipelines.lake.ingest.batches import Batch, Reject, count_byte, nullable_schema, with_end
from lake_pipelines.lake.threads import ordered_map, read_ahead

BOM = b"\xef\xbb\xbf"
ARRAY_BATCH_RECORDS = 20_000
MAX_RECORD_CHARS = 64 << 20  # one element of a JSON array; bounds what a broken file costs
_WS = b" \t\r\n"
_decoder = json.JSONDecoder()


def read_json(
    blocks: Iterator[bytes], key: str, spec: DatasetSpec, parallel: bool = True
) -> Iterator[Batch]:
    """NDJSON or a top-level JSON array, told apart by the first non-blank byte.

    With `parallel`, NDJSON blocks are parsed on the shared pool (`ordered_map`), and an
    array's records are decoded one batch ahead on a background thread (`read_ahead`).
    """
    first = b""
    for block in blocks:
        first += block
        if first.lstrip(BOM + _WS):
            break
    if first.startswith(BOM):
        first = first[len(BOM) :]
    if not first.strip():
        return
    chained = _chain(first, blocks)
    if first.lstrip(_WS).startswith(b"["):
        records = _read_array(chained, key, spec)
        yield from read_ahead(records) if parallel else records
    else:
        yield from _read_ndjson(chained, key, spec, parallel)


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _read_ndjson(
    blocks: Iterator[bytes], key: str, spec: DatasetSpec, parallel: bool
) -> Iterator[Batch]:
    def pieces() -> Iterator[tuple[bytes, int]]:
        """Blocks cut after their last line break, with the line each starts on."""
        carry = b""
        line = 1
        for block in with_end(blocks):
            if block is None:
                data, carry = carry, b""
            else:
                data = carry + block
                cut = data.rfind(b"\n")
                if cut < 0:
                    carry = data
                    continue
                data, carry = data[: cut + 1], data[cut + 1 :]
            if data.strip():
                yield data, line
            line += count_byte(data, ord("\n"))

    def parse(piece: tuple[bytes, int]) -> Batch:
        return _parse_ndjson_block(piece[0], piece[1], key, spec)

    yield from ordered_map(parse, pieces()) if parallel else map(parse, pieces())


class _NdjsonBlock:
    """Where each record (non-blank line) of a block is: its line number and its text."""

    def __init__(self, data: bytes, first_line: int) -> None:
        self.data, self.first_line = data, first_line
        self._spans: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def _records(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._spans is None:
            buf = np.frombuffer(self.data, dtype=np.uint8)
            ends = np.flatnonzero(buf == 10)
            starts = np.concatenate([[0], ends + 1])
            stops = np.concatenate([ends, [len(buf)]])
            keep = np.array(
                [bool(self.data[a:b].strip()) for a, b in zip(starts, stops, strict=True)],
                dtype=bool,
            )
            self._spans = (np.flatnonzero(keep), starts[keep], stops[keep])
        return self._spans

    def lines(self) -> np.ndarray:
        """Two objects on one line, or a lone carriage return between records, give pyarrow
        more rows than lines here; `Batch.drop` notices and trusts neither lines nor text."""
        return self.first_line + self._records()[0]

    def text(self, i: int) -> str:
        _, starts, stops = self._records()
        return self.data[starts[i] : stops[i]].decode("utf-8", errors="replace").rstrip("\r")


def _check_utf8(data: bytes, first_line: int, key: str) -> None:
    """pyarrow's JSON reader lets invalid UTF-8 through into string columns: refuse it here,
    naming the line (a file in another encoding is rejected whole, like a CSV one)."""
    if data.isascii():
        return
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = first_line + data.count(b"\n", 0, exc.start)
        raise SourceFileError(key, "not valid UTF-8 text", line=line) from exc


def _parse_ndjson_block(data: bytes, first_line: int, key: str, spec: DatasetSpec) -> Batch:
    """The whole block in one pyarrow call; only a block it refuses is split into lines."""
    _check_utf8(data, first_line, key)
    try:
        table = _read_bytes(data, nullable_schema(spec.schema), _unexpected(spec), pieces=True)
        block = _NdjsonBlock(data, first_line)
        return Batch(table, [], block.lines, False, block.text)
    except pa.ArrowInvalid:
        pass
    lines = data.split(b"\n")
    numbered = [(first_line + i, text) for i, text in enumerate(lines) if text.strip()]
    return parse_records(
        [t for _, t in numbered], np.array([n for n, _ in numbered]), key, spec, False
    )


def _unexpected(spec: DatasetSpec) -> str:
    return {"freeze": "error", "discard_value": "ignore", "evolve": "infer"}[spec.unknown_columns]


def _read_array(blocks: Iterator[bytes], key: str, spec: DatasetSpec) -> Iterator[Batch]:
    """Stream the elements of ``[ {...}, {...} ]`` without holding the whole document."""
    buf = ""
    pos = 0
    record = 0
    started = ended = False
    out: list[bytes] = []
    numbers: list[int] = []
    exhausted = False
    decoder = codecs.getincrementaldecoder("utf-8")()

    def refill() -> bool:
        """Append the next block to the unconsumed text; False at the end of the file."""
        nonlocal buf, pos, exhausted
        if exhausted:
            return False
        block = next(blocks, None)
        try:
            text = decoder.decode(block or b"", final=block is None)
        except UnicodeDecodeError as exc:
            raise SourceFileError(key, f"not valid UTF-8 (near record {record + 1})") from exc
        exhausted = block is None
        buf, pos = buf[pos:] + text, 0
        return not exhausted or bool(text)

    refill()
    while True:
        while pos < len(buf) and buf[pos] in " \t\r\n":
            pos += 1
        if pos >= len(buf):
            if exhausted or not refill():
                break
            continue
        ch = buf[pos]
        if not started:
            if ch != "[":
                raise SourceFileError(key, "a JSON array file must start with '['")
            started, pos = True, pos + 1
            continue
        if ended:
            raise SourceFileError(key, f"unexpected data after the closing ']' (record {record})")
        if ch == "]":
            ended, pos = True, pos + 1
            continue
        if ch == "," and record > 0:
            pos += 1
            continue
        try:
            value, end = _decoder.raw_decode(buf, pos)
        except json.JSONDecodeError as exc:
            # The element may go on in the next block (the error of a string cut by the block
            # end points at the string's start, not at the end of the text): read on, up to
            # MAX_RECORD_CHARS of one element; past that, or at the end of the file, it is
            # broken.
            if len(buf) - pos <= MAX_RECORD_CHARS and refill():
                continue
            too_long = len(buf) - pos > MAX_RECORD_CHARS
            hint = f" (or longer than {MAX_RECORD_CHARS:,} characters)" if too_long else ""
            raise SourceFileError(
                key, f"invalid JSON document at record {record + 1}{hint}: {exc.msg}"
            ) from exc
        if end == len(buf) and refill():
            continue  # a number at the very end may go on in the next block
        record += 1
        pos = end
        out.append(json.dumps(value, ensure_ascii=False).encode())
        numbers.append(record)
        if len(out) >= ARRAY_BATCH_RECORDS:
            yield parse_records(out, np.array(numbers), key, spec, True)
            out, numbers = [], []
    if started and not ended:
        raise SourceFileError(key, f"the JSON array is not closed (after record {record})")
    if out:
        yield parse_records(out, np.array(numbers), key, spec, True)


# -- records → Arrow ----------------------------------------------------------------------------


def _read(lines: list[bytes], schema: pa.Schema, unexpected: str) -> pa.Table:
    return _read_bytes(b"\n".join(lines) + b"\n", schema, unexpected)


def _read_bytes(data: bytes, schema: pa.Schema, unexpected: str, pieces: bool = False) -> pa.Table:
    """One thread: a block is already one of those in flight on our pool (pyarrow's own
    threads on top cost a third more CPU). With `pieces`, pyarrow parses 1 MiB at a time,
    which is cheaper than one large piece; a record longer than a piece fails there, and the
    caller's fallback reads the block as one piece."""
    block = 1 << 20 if pieces else max(len(data) + 1, 1 << 20)
    return pj.read_json(
        io.BytesIO(data),
        read_options=pj.ReadOptions(block_size=block, use_threads=False),
        parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior=unexpected),
    )


def parse_records(
    lines: list[bytes], numbers: np.ndarray, key: str, spec: DatasetSpec, records: bool
) -> Batch:
    """Convert JSON records (one per item of `lines`; `numbers` their line/record numbers)."""
    schema = nullable_schema(spec.schema)
    unexpected = _unexpected(spec)

    def text_of(indexes: list[int] | None) -> Callable[[int], str]:
        def text(j: int) -> str:
            line = lines[j if indexes is None else indexes[j]]
            return line.decode("utf-8", errors="replace").rstrip("\r")

        return text

    try:
        table = _read(lines, schema, unexpected)
        return Batch(table, [], lambda: numbers, records, text_of(None))
    except pa.ArrowInvalid:
        pass
    rejects: list[Reject] = []
    repaired: list[bytes] = []
    kept: list[int] = []

    def reject(i: int, column: str | None, reason: str) -> None:
        raw = lines[i].decode("utf-8", errors="replace")[:2000]
        n = int(numbers[i])
        line, record = (None, n) if records else (n, None)
        rejects.append(Reject(key, line, column, reason, raw, record))

    for i, text in enumerate(lines):
        try:
            value = json.loads(text)
        except ValueError as exc:
            reject(i, None, f"invalid JSON: {exc}")
            continue
        if not isinstance(value, dict):
            reject(i, None, f"expected a JSON object, found {type(value).__name__}")
            continue
        fixed, problem = _repair(value, spec)
        if problem is not None:
            reject(i, *problem)
            continue
        repaired.append(json.dumps(fixed, ensure_ascii=False).encode())
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
    table = (
        pa.concat_tables(tables, promote_options="permissive") if tables else schema.empty_table()
    )
    good_numbers = numbers[np.array(good, dtype=np.int64)] if good else np.array([], np.int64)
    rejects.sort(key=lambda r: r.line or r.record or 0)
    return Batch(table, rejects, lambda: good_numbers, records, text_of(good))


def _repair(value: dict[str, Any], spec: DatasetSpec) -> tuple[dict[str, Any], tuple | None]:
    """Convert what the schema can still take; return (record, None) or (_, (column, reason))."""
    out: dict[str, Any] = {}
    names = spec.schema.names
    unknown = [k for k in value if k not in names]
    if unknown and spec.unknown_columns == "freeze":
        return value, (unknown[0], f"unknown field(s) {unknown} (contract mode: freeze)")
    if spec.unknown_columns == "evolve":
        out.update({k: value[k] for k in unknown})
    for field in spec.schema:
        if field.name not in value:
            continue
        try:
            out[field.name] = _coerce(value[field.name], field.type)
        except (ValueError, TypeError, InvalidOperation, OverflowError) as exc:
            shown = json.dumps(value[field.name], ensure_ascii=False)[:200]
            return value, (
                field.name,
                f"{field.name}={shown}: cannot convert to {field.type}: {exc}",
            )
    return out, None


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
        if isinstance(v, str):
            return int(v.strip())
        if isinstance(v, float) and v.is_integer():
            return int(v)
        return v
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
