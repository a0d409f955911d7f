"""Streaming readers for landed files: bytes in, Arrow batches of the spec's schema out.

Files are read in blocks of ``block_bytes`` (bounded memory whatever the file size); each block
is cut at a record boundary and parsed by pyarrow in one call. Rows that cannot be parsed or
converted become `Reject`s carrying the file, the physical line, the column and the reason; the
rest of the block goes on. Line numbers are only worked out for blocks that have rejects, so
clean input pays nothing for them.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.json as pj

from lake_pipelines.datasets.spec import CsvDialect, DatasetSpec
from lake_pipelines.errors import SourceFileError
from lake_pipelines.lake.coerce import convert_column
from lake_pipelines.lake.storage import ObjectStore

COMPRESSION_SUFFIXES = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".bz2": "bz2"}
FORMAT_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson"}
LANDING_SUFFIXES = tuple(f + c for f in FORMAT_SUFFIXES for c in ("", *COMPRESSION_SUFFIXES))
DEFAULT_BLOCK_BYTES = 16 << 20
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Reject:
    """One row that did not make it, and why."""

    source: str
    line: int | None
    column: str | None
    reason: str
    raw: str | None


@dataclass
class Batch:
    """Converted rows of one block, plus the block's rejects.

    ``row_lines`` works out, on demand, the source line of every row of ``table`` (only
    needed when some of them are rejected later).
    """

    table: pa.Table
    rejects: list[Reject] = field(default_factory=list)
    row_lines: Callable[[], np.ndarray] | None = None

    @property
    def rows_read(self) -> int:
        return self.table.num_rows + len(self.rejects)

    def drop(
        self, bad: dict[int, tuple[str | None, str]], source: str, raw: Callable[[int], str]
    ) -> Batch:
        """A new batch without the rows in `bad` ({row: (column, reason)}), which become rejects."""
        if not bad:
            return self
        lines = self.row_lines() if self.row_lines is not None else None
        rejects = list(self.rejects)
        for i in sorted(bad):
            col, reason = bad[i]
            ln = int(lines[i]) if lines is not None and i < len(lines) else None
            rejects.append(Reject(source, ln, col, reason, raw(i)))
        keep = np.ones(self.table.num_rows, dtype=bool)
        keep[list(bad)] = False
        parent = self.row_lines
        kept_lines = (lambda: parent()[keep]) if parent is not None else None
        return Batch(self.table.filter(pa.array(keep)), rejects, kept_lines)


def row_json(table: pa.Table, i: int) -> str:
    """One row as JSON text, for the quarantine's ``raw`` column."""
    row = table.slice(i, 1).to_pylist()[0]
    return json.dumps(row, default=str, ensure_ascii=False)[:2000]


def file_format(key: str) -> tuple[str, str | None]:
    """(format, compression) of a landed file, from its name."""
    name = posixpath.basename(key).lower()
    stem, ext = posixpath.splitext(name)
    compression = COMPRESSION_SUFFIXES.get(ext)
    if compression:
        stem, ext = posixpath.splitext(stem)
    fmt = FORMAT_SUFFIXES.get(ext)
    if fmt is None:
        raise SourceFileError(
            key, f"unknown file type {name!r}; expected one of {LANDING_SUFFIXES}"
        )
    return fmt, compression


def _blocks(store: ObjectStore, key: str, block_bytes: int) -> Iterator[bytes]:
    """Decompressed bytes of a file, block by block; decode errors name the file."""
    _, compression = file_format(key)
    raw = store.open_input(key)
    stream = pa.CompressedInputStream(raw, compression) if compression else raw
    try:
        with stream:
            while True:
                try:
                    block = stream.read(block_bytes)
                except (OSError, pa.ArrowInvalid, zlib.error, EOFError) as exc:
                    raise SourceFileError(key, f"cannot decompress ({compression}): {exc}") from exc
                if not block:
                    return
                yield block
    finally:
        raw.close()


def read_file(
    store: ObjectStore, key: str, spec: DatasetSpec, block_bytes: int = DEFAULT_BLOCK_BYTES
) -> Iterator[Batch]:
    """Stream a landed file as batches of `spec.schema`.

    Raises:
        SourceFileError: the file as a whole cannot be read (unknown type, broken compression,
            not UTF-8, no header); rows already yielded from it must be discarded.
    """
    fmt, _ = file_format(key)
    blocks = _blocks(store, key, block_bytes)
    if fmt == "csv":
        yield from _read_csv(blocks, key, spec)
    else:
        yield from _read_ndjson(blocks, key, spec)


# -- CSV -------------------------------------------------------------------------------------


def _record_ends(chunk: bytes, dialect: CsvDialect) -> np.ndarray:
    """Byte offsets of the newlines that end records (outside quotes)."""
    buf = np.frombuffer(chunk, dtype=np.uint8)
    newlines = np.flatnonzero(buf == 10)
    if not dialect.quote_char or not dialect.newlines_in_values:
        return newlines
    quotes = np.cumsum(buf == ord(dialect.quote_char))
    return newlines[(quotes[newlines] % 2) == 0]


def _split_complete(data: bytes, dialect: CsvDialect, final: bool) -> tuple[bytes, bytes]:
    """(complete records, remainder) of a buffer."""
    if final:
        return data, b""
    ends = _record_ends(data, dialect)
    if len(ends) == 0:
        return b"", data
    cut = int(ends[-1]) + 1
    return data[:cut], data[cut:]


def _header(blocks: Iterator[bytes], key: str, dialect: CsvDialect) -> tuple[list[str], bytes]:
    buf = b""
    for block in blocks:
        buf += block
        ends = _record_ends(buf, dialect)
        if len(ends):
            break
    else:
        ends = np.array([len(buf)]) if buf.strip() else np.array([], dtype=np.int64)
    if buf.startswith(_BOM):
        buf = buf[len(_BOM) :]
        ends = ends - len(_BOM)
    if not len(ends):
        return [], b""
    line, rest = buf[: int(ends[0])], buf[int(ends[0]) + 1 :]
    try:
        text = line.decode("utf-8").rstrip("\r")
        names = next(
            csv.reader(
                [text],
                delimiter=dialect.delimiter,
                quotechar=dialect.quote_char or None,
                escapechar=dialect.escape_char,
                doublequote=dialect.double_quote,
            )
        )
    except (UnicodeDecodeError, csv.Error, StopIteration) as exc:
        raise SourceFileError(key, f"cannot read the CSV header: {exc}", line=1) from exc
    return [str(n).strip() for n in names], rest


def _parse_options(dialect: CsvDialect, handler: object) -> pcsv.ParseOptions:
    return pcsv.ParseOptions(
        delimiter=dialect.delimiter,
        quote_char=dialect.quote_char or False,
        double_quote=dialect.double_quote,
        escape_char=dialect.escape_char or False,
        newlines_in_values=dialect.newlines_in_values,
        ignore_empty_lines=True,
        invalid_row_handler=handler,
    )


class _CsvChunk:
    """Maps row positions of one parsed chunk back to physical lines, on demand."""

    def __init__(self, data: bytes, first_line: int, dialect: CsvDialect, ncols: int) -> None:
        self.data, self.first_line, self.dialect, self.ncols = data, first_line, dialect, ncols
        self._map: tuple[np.ndarray, np.ndarray] | None = None

    def _records(self) -> tuple[np.ndarray, np.ndarray]:
        """(start line of every non-empty record, whether its field count is right)."""
        if self._map is None:
            buf = np.frombuffer(self.data, dtype=np.uint8)
            ends = _record_ends(self.data, self.dialect)
            if len(buf) and buf[-1] != 10:
                ends = np.append(ends, len(buf))
            starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
            nl_before = np.concatenate([[0], np.cumsum(buf == 10)])
            lines = self.first_line + nl_before[starts]
            nonblank = np.array(
                [self.data[s:e].strip(b"\r") != b"" for s, e in zip(starts, ends, strict=True)]
            )
            delims = buf == ord(self.dialect.delimiter)
            if self.dialect.quote_char:
                delims &= (np.cumsum(buf == ord(self.dialect.quote_char)) % 2) == 0
            dcount = np.add.reduceat(delims.astype(np.int64), starts) if len(starts) else starts
            # reduceat over an empty trailing slice repeats the element; empty records are blank.
            ok = (dcount + 1) == self.ncols
            self._map = (lines[nonblank], ok[nonblank])
        return self._map

    def good_row_lines(self) -> np.ndarray:
        lines, ok = self._records()
        return lines[ok]

    def bad_row_lines(self) -> np.ndarray:
        lines, ok = self._records()
        return lines[~ok]


def _read_csv(blocks: Iterator[bytes], key: str, spec: DatasetSpec) -> Iterator[Batch]:
    dialect = spec.csv
    if dialect.header:
        names, carry = _header(blocks, key, dialect)
        line = 2
        if not names:
            return  # an empty file: nothing to read, nothing lost
    else:
        names, carry, line = list(spec.schema.names), b"", 1
    known = set(spec.schema.names)
    unknown = [n for n in names if n not in known]
    if len(set(names)) != len(names):
        raise SourceFileError(key, f"duplicate column names in header: {names}", line=1)

    pending = iter(blocks)
    done = False
    while not done:
        try:
            block = next(pending)
        except StopIteration:
            block, done = b"", True
        data, carry = _split_complete(carry + block, dialect, final=done)
        if not data.strip(b"\r\n"):
            if done:
                break
            continue
        yield _parse_csv_chunk(data, line, key, spec, names, unknown)
        line += data.count(b"\n")


def _parse_csv_chunk(
    data: bytes, line: int, key: str, spec: DatasetSpec, names: list[str], unknown: list[str]
) -> Batch:
    dialect = spec.csv
    invalid: list[str] = []

    def on_invalid(row: pcsv.InvalidRow) -> str:
        invalid.append(row.text)
        return "skip"

    chunk = _CsvChunk(data, line, dialect, len(names))
    try:
        table = pcsv.read_csv(
            io.BytesIO(data),
            read_options=pcsv.ReadOptions(
                column_names=names, block_size=max(len(data) + 1, 1 << 20)
            ),
            parse_options=_parse_options(dialect, on_invalid),
            convert_options=pcsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                null_values=list(dialect.null_values),
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        first_bad = _first_non_utf8_line(data, line)
        if first_bad is not None:
            raise SourceFileError(key, "not valid UTF-8 text", line=first_bad) from exc
        raise SourceFileError(key, f"cannot parse as CSV: {exc}", line=line) from exc

    rejects: list[Reject] = []
    if invalid:
        bad_lines = chunk.bad_row_lines()
        for i, text in enumerate(invalid):
            ln = int(bad_lines[i]) if i < len(bad_lines) else None
            got = _count_fields(text, dialect)
            rejects.append(
                Reject(key, ln, None, f"expected {len(names)} fields, found {got}", text[:2000])
            )
    batch = _to_schema(table, key, spec, unknown, chunk.good_row_lines, raw_text=True)
    return Batch(batch.table, rejects + batch.rejects, batch.row_lines)


def _count_fields(text: str, dialect: CsvDialect) -> int:
    try:
        t = pcsv.read_csv(
            io.BytesIO(text.encode()),
            read_options=pcsv.ReadOptions(autogenerate_column_names=True),
            parse_options=_parse_options(dialect, None),
        )
        return t.num_columns
    except pa.ArrowInvalid:
        return text.count(dialect.delimiter) + 1


def _first_non_utf8_line(data: bytes, first_line: int) -> int | None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return first_line + data[: exc.start].count(b"\n")
    return None


def _to_schema(
    table: pa.Table,
    key: str,
    spec: DatasetSpec,
    unknown: list[str],
    row_lines: Callable[[], np.ndarray],
    raw_text: bool,
) -> Batch:
    """Convert string columns to the spec's types; failing rows become rejects."""
    bad: dict[int, tuple[str | None, str]] = {}
    if unknown and spec.unknown_columns == "freeze":
        for col in unknown:
            present = pc.invert(pc.is_null(table.column(col)))
            for i in np.flatnonzero(present.to_numpy(zero_copy_only=False)):
                add_reason(bad, int(i), col, f"unknown column {col!r} (contract mode: freeze)")
    columns = []
    for f in spec.schema:
        if f.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, f.type))
            continue
        src = table.column(f.name).combine_chunks()
        converted, failures = convert_column(src, f.type) if raw_text else (src, {})
        for i, reason in failures.items():
            value = src[i].as_py()
            add_reason(bad, i, f.name, f"{f.name}={value!r}: cannot convert to {f.type}: {reason}")
        columns.append(converted)
    out = pa.Table.from_arrays(columns, schema=_nullable(spec.schema))
    return Batch(out, [], row_lines).drop(bad, key, lambda i: row_json(table, i))


def add_reason(
    bad: dict[int, tuple[str | None, str]], i: int, column: str | None, reason: str
) -> None:
    """Record a reason for row i; a row failing several ways keeps every reason."""
    if i in bad:
        col, prev = bad[i]
        bad[i] = (col, f"{prev}; {reason}")
    else:
        bad[i] = (column, reason)


def _nullable(schema: pa.Schema) -> pa.Schema:
    return pa.schema([f.with_nullable(True) for f in schema], metadata=schema.metadata)


# -- NDJSON ----------------------------------------------------------------------------------


def _read_ndjson(blocks: Iterator[bytes], key: str, spec: DatasetSpec) -> Iterator[Batch]:
    carry = b""
    line = 1
    first = True
    pending = iter(blocks)
    done = False
    while not done:
        try:
            block = next(pending)
        except StopIteration:
            block, done = b"", True
        data = carry + block
        if first and data.startswith(_BOM):
            data = data[len(_BOM) :]
        first = False
        if done:
            carry = b""
        else:
            cut = data.rfind(b"\n")
            if cut < 0:
                carry = data
                continue
            data, carry = data[: cut + 1], data[cut + 1 :]
        if data.strip():
            yield _parse_ndjson_chunk(data, line, key, spec)
        line += data.count(b"\n")


def _json_read(data: bytes, schema: pa.Schema, unexpected: str) -> pa.Table:
    return pj.read_json(
        io.BytesIO(data),
        read_options=pj.ReadOptions(block_size=max(len(data) + 1, 1 << 20)),
        parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior=unexpected),
    )


def _parse_ndjson_chunk(data: bytes, first_line: int, key: str, spec: DatasetSpec) -> Batch:
    schema = _nullable(spec.schema)
    unexpected = "error" if spec.unknown_columns == "freeze" else "ignore"
    lines = data.split(b"\n")

    def record_lines(lo: int, hi: int) -> Callable[[], np.ndarray]:
        def work() -> np.ndarray:
            idx = [i for i in range(lo, hi) if lines[i].strip()]
            return first_line + np.array(idx, dtype=np.int64)

        return work

    try:
        return Batch(_json_read(data, schema, unexpected), [], record_lines(0, len(lines)))
    except pa.ArrowInvalid:
        pass
    # Isolate the bad records by bisection over lines; the good ones are read in bulk.
    tables: list[pa.Table] = []
    good_lines: list[np.ndarray] = []
    rejects: list[Reject] = []

    def bisect(lo: int, hi: int) -> None:
        part = b"\n".join(lines[lo:hi])
        if not part.strip():
            return
        try:
            tables.append(_json_read(part + b"\n", schema, unexpected))
            good_lines.append(record_lines(lo, hi)())
            return
        except pa.ArrowInvalid as exc:
            if hi - lo == 1:
                text = lines[lo].decode("utf-8", errors="replace")
                rejects.append(
                    Reject(
                        key,
                        first_line + lo,
                        _json_column(exc),
                        _json_reason(exc, text),
                        text[:2000],
                    )
                )
                return
        mid = (lo + hi) // 2
        bisect(lo, mid)
        bisect(mid, hi)

    bisect(0, len(lines))
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    all_lines = np.concatenate(good_lines) if good_lines else np.array([], dtype=np.int64)
    return Batch(table, rejects, lambda: all_lines)


def _json_column(exc: BaseException) -> str | None:
    msg = str(exc)
    if "Column(/" in msg:
        return msg.split("Column(/", 1)[1].split(")", 1)[0].split("/")[0]
    return None


def _json_reason(exc: BaseException, text: str) -> str:
    try:
        json.loads(text)
    except ValueError as e:
        return f"invalid JSON: {e}"
    msg = str(exc).replace("JSON parse error: ", "").split(" in row ")[0]
    if "unexpected field" in msg.lower():
        return f"{msg} (contract mode: freeze)"
    return msg[:300]
