"""Streaming JSON: NDJSON, or one top-level array of objects, into batches of the spec's schema.

RFC 8259 decides what is JSON (`json_strict`): a record that is not one JSON object (``null``,
an array, two values on a line, ``NaN``, a trailing comma, duplicate keys, nesting deeper
than `MAX_NESTING`, a lone surrogate escape) is quarantined with its line, and the rest of the
file loads. An NDJSON block that passes the vector pre-check goes to pyarrow's reader whole;
any other block goes record by record (`json_records`). ``.ndjson`` and ``.jsonl`` files are
NDJSON; a ``.json`` file is one array when its first non-blank byte is ``[``, else NDJSON.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.errors import SourceFileError
from lake_pipelines.lake.ingest.batches import Batch, Reject, count_byte, nullable_schema, with_end
from lake_pipelines.lake.ingest.json_records import (
    nested_keys_widened,
    parse_values,
    read_ndjson_bytes,
    unexpected_fields,
)
from lake_pipelines.lake.ingest.json_strict import (
    BOM,
    DECODER,
    LENIENT,
    MAX_NESTING,
    BadRecord,
    check_value,
    decode_record,
    encoded,
    finite_floats,
    safe_for_pyarrow,
)
from lake_pipelines.lake.threads import ordered_map, read_ahead

ARRAY_BATCH_RECORDS = 20_000
MAX_RECORD_CHARS = 64 << 20  # one element of a JSON array; bounds what a broken file costs
_WS = b" \t\r\n"


def read_json(
    blocks: Iterator[bytes], key: str, spec: DatasetSpec, parallel: bool = True, arrays: bool = True
) -> Iterator[Batch]:
    """NDJSON, or with `arrays` (a ``.json`` file) one top-level array, told apart by the first
    byte; ``.ndjson``/``.jsonl`` files are read with `arrays` off: a record per line.

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
    if not first.strip(_WS):
        return
    chained = _chain(first, blocks)
    if arrays and first.lstrip(_WS).startswith(b"["):
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
                cut = block.rfind(b"\n")
                if cut < 0:
                    carry += block
                    continue
                # One copy of the block at most (none when it ends at a line break and
                # nothing is carried): a block is 8 MiB, and each copy of it costs ~1 ms.
                whole = cut == len(block) - 1
                head = block if whole else memoryview(block)[: cut + 1]
                data = b"".join((carry, head)) if carry or not whole else block
                carry = block[cut + 1 :]
            if data and not data.isspace():
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
                [bool(self.data[a:b].strip(_WS)) for a, b in zip(starts, stops, strict=True)],
                dtype=bool,
            )
            self._spans = (np.flatnonzero(keep), starts[keep], stops[keep])
        return self._spans

    def lines(self) -> np.ndarray:
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
    """The whole block in one pyarrow call when the pre-check allows it and pyarrow finds one
    row per record; otherwise record by record."""
    _check_utf8(data, first_line, key)
    unexpected = unexpected_fields(spec)
    records = safe_for_pyarrow(data, infers=unexpected == "infer")
    if records is not None:
        try:
            table = read_ndjson_bytes(data, nullable_schema(spec.schema), unexpected, pieces=True)
            if (
                table.num_rows == records
                and finite_floats(table)
                and not nested_keys_widened(table, spec)
            ):
                block = _NdjsonBlock(data, first_line)
                return Batch(table, [], block.lines, False, block.text)
        except pa.ArrowInvalid:
            pass
    return _parse_ndjson_lines(data, first_line, key, spec)


def _parse_ndjson_lines(data: bytes, first_line: int, key: str, spec: DatasetSpec) -> Batch:
    """Each non-blank line decoded strictly; lines that are no JSON object are rejected."""
    values: list[dict[str, Any]] = []
    texts: list[bytes] = []
    numbers: list[int] = []
    rejects: list[Reject] = []
    for i, raw in enumerate(data.split(b"\n")):
        if not raw.strip(_WS):
            continue
        try:
            value = decode_record(raw)
        except BadRecord as bad:
            text = raw.decode("utf-8", errors="replace").rstrip("\r")[:2000]
            rejects.append(Reject(key, first_line + i, bad.column, bad.reason, text))
            continue
        values.append(value)
        texts.append(raw.rstrip(b"\r"))
        numbers.append(first_line + i)
    return parse_values(values, texts, np.array(numbers, np.int64), key, spec, False, rejects)


def _read_array(blocks: Iterator[bytes], key: str, spec: DatasetSpec) -> Iterator[Batch]:
    """Stream the elements of ``[ {...}, {...} ]`` without holding the whole document.

    An element that is valid JSON but no object we can take is rejected with its record
    number; a document that is not valid JSON (a missing or doubled comma, a trailing comma,
    text after the closing bracket, an element nested beyond the decoder's depth) rejects
    the file, naming the place.
    """
    reader = _ArrayText(blocks, key)
    record = 0
    values: list[dict[str, Any]] = []
    texts: list[bytes] = []
    numbers: list[int] = []
    rejects: list[Reject] = []
    if reader.next_char() != "[":
        raise SourceFileError(key, "a JSON array file must start with '['")
    reader.pos += 1
    expect_value, after_comma = True, False
    while True:
        ch = reader.next_char()
        if ch is None:
            raise SourceFileError(key, f"the JSON array is not closed (after record {record})")
        if ch == "]":
            if after_comma:
                raise SourceFileError(key, f"trailing comma before ']' (after record {record})")
            reader.pos += 1
            break
        if ch == ",":
            if expect_value:
                where = f"after record {record}" if record else "before the first record"
                raise SourceFileError(key, f"two commas in a row ({where})")
            reader.pos += 1
            expect_value, after_comma = True, True
            continue
        if not expect_value:
            raise SourceFileError(key, f"missing comma between records {record} and {record + 1}")
        value, raw = reader.value(record + 1)
        record += 1
        expect_value, after_comma = False, False
        try:
            if isinstance(value, BadRecord):
                raise value
            accepted = check_value(value)
            text = encoded(accepted)
        except BadRecord as bad:
            rejects.append(Reject(key, None, bad.column, bad.reason, raw[:2000], record))
        else:
            values.append(accepted)
            texts.append(text)
            numbers.append(record)
        if len(values) + len(rejects) >= ARRAY_BATCH_RECORDS:
            yield parse_values(values, texts, np.array(numbers, np.int64), key, spec, True, rejects)
            values, texts, numbers, rejects = [], [], [], []
    if reader.next_char() is not None:
        raise SourceFileError(key, f"unexpected data after the closing ']' (record {record})")
    if values or rejects:
        yield parse_values(values, texts, np.array(numbers, np.int64), key, spec, True, rejects)


class _ArrayText:
    """The decoded text of a JSON array file, refilled block by block as it is consumed."""

    def __init__(self, blocks: Iterator[bytes], key: str) -> None:
        self.blocks, self.key = blocks, key
        self.buf, self.pos, self.exhausted = "", 0, False
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.record = 0

    def refill(self) -> bool:
        """Append the next block to the unconsumed text; False at the end of the file."""
        if self.exhausted:
            return False
        block = next(self.blocks, None)
        try:
            text = self.decoder.decode(block or b"", final=block is None)
        except UnicodeDecodeError as exc:
            raise SourceFileError(
                self.key, f"not valid UTF-8 (near record {self.record + 1})"
            ) from exc
        self.exhausted = block is None
        self.buf, self.pos = self.buf[self.pos :] + text, 0
        return not self.exhausted or bool(text)

    def next_char(self) -> str | None:
        """The next character that is not JSON whitespace (not consumed); None at the end."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.refill():
                return None

    def value(self, record: int) -> tuple[Any, str]:
        """Decode the element at the current position: (value or `BadRecord`, its text)."""
        self.record = record
        while True:
            bad: BadRecord | None = None
            try:
                try:
                    value, end = DECODER.raw_decode(self.buf, self.pos)
                except BadRecord as refused:  # NaN, a number out of range, a duplicate key
                    # Valid to the lenient decoder: it finds where the element ends, and the
                    # element alone is rejected.
                    bad = refused
                    value, end = LENIENT.raw_decode(self.buf, self.pos)
            except RecursionError:
                raise SourceFileError(
                    self.key, f"record {record} is nested deeper than {MAX_NESTING} levels"
                ) from None
            except json.JSONDecodeError as exc:
                # The element may go on in the next block (the error of a string cut by the
                # block end points at the string's start, not at the end of the text): read
                # on, up to MAX_RECORD_CHARS of one element; past that, or at the end of the
                # file, it is broken.
                if len(self.buf) - self.pos <= MAX_RECORD_CHARS and self.refill():
                    continue
                too_long = len(self.buf) - self.pos > MAX_RECORD_CHARS
                hint = f" (or longer than {MAX_RECORD_CHARS:,} characters)" if too_long else ""
                raise SourceFileError(
                    self.key, f"invalid JSON document at record {record}{hint}: {exc.msg}"
                ) from exc
            if end == len(self.buf) and self.refill():
                continue  # a number at the very end may go on in the next block
            raw = self.buf[self.pos : end]
            self.pos = end
            return (bad if bad is not None else value), raw
