"""Where CSV records end: newlines outside quotes, found with numpy and C-speed byte counts,
so a block can be cut at a record boundary and a quoted value may hold newlines and
delimiters."""

from __future__ import annotations

import numpy as np

from lake_pipelines.datasets.spec import CsvDialect
from lake_pipelines.lake.ingest.batches import (
    count_byte,
)

NEWLINE = ord("\n")


def record_ends(chunk: bytes, dialect: CsvDialect) -> np.ndarray:
    """Byte offsets of the newlines that end records (outside quotes)."""
    buf = np.frombuffer(chunk, dtype=np.uint8)
    newlines = np.flatnonzero(buf == 10)
    if not dialect.quote_char or not dialect.newlines_in_values:
        return newlines
    is_quote = buf == ord(dialect.quote_char)
    if dialect.escape_char:
        # a quote right after the escape character does not open or close a value
        escaped = np.zeros_like(is_quote)
        escaped[1:] = buf[:-1] == ord(dialect.escape_char)
        is_quote &= ~escaped
    quotes = np.cumsum(is_quote)
    return newlines[(quotes[newlines] % 2) == 0]


def last_record_end(data: bytes, dialect: CsvDialect) -> int:
    """Offset of the last newline that ends a record, or -1; C-speed byte counts only.

    A newline ends a record when the number of quotes before it is even. Counting the quotes
    after a candidate (a short tail, usually) and subtracting from the total avoids a pass
    over the whole block per candidate.
    """
    pos = data.rfind(b"\n")
    if not dialect.quote_char or not dialect.newlines_in_values or dialect.escape_char:
        if dialect.escape_char and pos >= 0:
            ends = record_ends(data, dialect)
            return int(ends[-1]) if len(ends) else -1
        return pos
    quote = dialect.quote_char.encode()
    if data.find(quote) < 0:
        return pos  # no quotes at all (memchr): every newline ends a record
    total = count_byte(data, quote[0])
    while pos >= 0:
        if (total - data.count(quote, pos + 1)) % 2 == 0:
            return pos
        pos = data.rfind(b"\n", 0, pos)
    return -1


def split_complete(data: bytes, dialect: CsvDialect, final: bool) -> tuple[bytes, bytes]:
    """(complete records, remainder) of a buffer."""
    if final:
        return data, b""
    end = last_record_end(data, dialect)
    if end < 0:
        return b"", data
    return data[: end + 1], data[end + 1 :]


def first_record_end(data: bytes, dialect: CsvDialect) -> int:
    """Offset of the newline ending the first record (the header), or -1."""
    quote = dialect.quote_char.encode() if dialect.quote_char else b""
    pos = data.find(b"\n")
    while pos >= 0:
        if not quote or data.count(quote, 0, pos) % 2 == 0:
            return pos
        pos = data.find(b"\n", pos + 1)
    return -1


def first_non_utf8_line(data: bytes, first_line: int) -> int | None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return first_line + data[: exc.start].count(b"\n")
    return None
