"""Streaming CSV: blocks cut at record boundaries, parsed by pyarrow, converted per column.

Record boundaries are found with numpy (newlines outside quotes), so a quoted value may hold
newlines and delimiters. Physical line numbers are only worked out for blocks with rejects.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from lake_pipelines.datasets.spec import CsvDialect, DatasetSpec
from lake_pipelines.errors import SourceFileError
from lake_pipelines.lake import arrow
from lake_pipelines.lake.ingest.batches import (
    Batch,
    Reject,
    add_reason,
    count_byte,
    nullable_schema,
    row_json,
)
from lake_pipelines.lake.ingest.coerce import MostlyInvalidColumn, convert_column, parse_json_cells
from lake_pipelines.lake.ingest.csv_records import (
    NEWLINE,
    first_non_utf8_line,
    first_record_end,
    record_ends,
    split_complete,
)
from lake_pipelines.lake.ingest.nested_keys import (
    UNKNOWN_KEY,
    nested_key_reason,
    refuses_nested_keys,
)
from lake_pipelines.lake.threads import ordered_map

BOM = b"\xef\xbb\xbf"


def _header(blocks: Iterator[bytes], key: str, dialect: CsvDialect) -> tuple[list[str], bytes]:
    buf = b""
    end = -1
    for block in blocks:
        buf += block
        end = first_record_end(buf, dialect)
        if end >= 0:
            break
    else:
        end = len(buf) if buf.strip() else -1
    if buf.startswith(BOM):
        buf = buf[len(BOM) :]
        end -= len(BOM)
    if end < 0:
        return [], b""
    line, rest = buf[:end], buf[end + 1 :]
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
    except UnicodeDecodeError as exc:
        raise SourceFileError(key, "not valid UTF-8 text (in the header)", line=1) from exc
    except (csv.Error, StopIteration) as exc:
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
        self._spans: tuple[np.ndarray, np.ndarray] | None = None  # good records' byte ranges

    def _records(self) -> tuple[np.ndarray, np.ndarray]:
        """(start line of every non-empty record, whether its field count is right)."""
        if self._map is None:
            buf = np.frombuffer(self.data, dtype=np.uint8)
            ends = record_ends(self.data, self.dialect)
            if len(buf) and (not len(ends) or ends[-1] < len(buf) - 1):
                ends = np.append(ends, len(buf))  # a last record without its end of line
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
            good = ok & nonblank
            self._spans = (starts[good], np.asarray(ends, dtype=np.int64)[good])
        return self._map

    def good_row_text(self, i: int) -> str:
        """The landed text of the i-th well-formed record (a quoted value may span lines)."""
        self._records()
        assert self._spans is not None
        start, end = self._spans[0][i], self._spans[1][i]
        return self.data[start:end].decode("utf-8", errors="replace").rstrip("\r")

    def good_row_lines(self) -> np.ndarray:
        """Lines of the well-formed records; pyarrow may see other records than this scan
        (a stray quote inside an unquoted value, say), which `Batch.drop` notices."""
        lines, ok = self._records()
        return lines[ok]

    def bad_row_lines(self) -> np.ndarray:
        lines, ok = self._records()
        return lines[~ok]


def read_csv(
    blocks: Iterator[bytes], key: str, spec: DatasetSpec, parallel: bool = True
) -> Iterator[Batch]:
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

    def chunks(carry: bytes, line: int) -> Iterator[tuple[bytes, int]]:
        """Blocks cut at record boundaries, with the line each starts on."""
        pending = iter(blocks)
        done = False
        while not done:
            try:
                block = next(pending)
            except StopIteration:
                block, done = b"", True
            data, carry = split_complete(carry + block, dialect, final=done)
            if not data.strip(b"\r\n"):
                line += count_byte(data, NEWLINE)  # blank lines still count
                if done:
                    break
                continue
            yield data, line
            line += count_byte(data, NEWLINE)

    def parse(chunk: tuple[bytes, int]) -> Batch:
        return _parse_csv_chunk(chunk[0], chunk[1], key, spec, names, unknown)

    # blocks are parsed and converted on all cores, handed on in file order
    yield from (
        ordered_map(parse, chunks(carry, line)) if parallel else map(parse, chunks(carry, line))
    )


def _parse_csv_chunk(
    data: bytes, line: int, key: str, spec: DatasetSpec, names: list[str], unknown: list[str]
) -> Batch:
    dialect = spec.csv
    invalid: list[str] = []

    def on_invalid(row: pcsv.InvalidRow) -> str:
        invalid.append(row.text)
        return "skip"

    chunk = _CsvChunk(data, line, dialect, len(names))
    # ASCII is valid UTF-8: pyarrow need not validate every string again (~6 % of the parse;
    # `isascii` costs ~1 % of that and runs at memory speed).
    check_utf8 = not data.isascii()

    def read(typed: dict[str, pa.DataType]) -> pa.Table:
        invalid.clear()
        return pcsv.read_csv(
            io.BytesIO(data),
            # One thread: the chunk is already one of those in flight on our pool, and
            # pyarrow's own threads on top cost ~3x the CPU for the same parse.
            read_options=pcsv.ReadOptions(
                column_names=names, block_size=max(len(data) + 1, 1 << 20), use_threads=False
            ),
            parse_options=_parse_options(dialect, on_invalid),
            convert_options=pcsv.ConvertOptions(
                column_types={n: typed.get(n, pa.string()) for n in names},
                null_values=list(dialect.null_values),
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                check_utf8=check_utf8,
            ),
        )

    table = None
    typed = _typed_columns(spec, names)
    if typed:
        # Numbers and dates parsed by the CSV reader itself, not kept as text and cast
        # afterwards; a value it refuses (a typo) sends the block down the text path, which
        # isolates the row.
        with contextlib.suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError):
            table = read(typed)
    try:
        if table is None:
            table = read({})
    except pa.ArrowInvalid as exc:
        first_bad = first_non_utf8_line(data, line)
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
    batch = _to_schema(
        table, key, spec, unknown, chunk.good_row_lines, raw_text=True, row_text=chunk.good_row_text
    )
    return Batch(batch.table, rejects + batch.rejects, batch.row_lines, row_text=batch.row_text)


def _typed_columns(spec: DatasetSpec, names: list[str]) -> dict[str, pa.DataType]:
    """The spec's columns among `names` that pyarrow's CSV reader converts exactly as our
    text path would (integers, floats, dates; spaces around the value allowed by both)."""
    return {
        f.name: f.type
        for f in spec.schema
        if f.name in names
        and (
            pa.types.is_integer(f.type)
            or pa.types.is_float32(f.type)
            or pa.types.is_float64(f.type)
            or pa.types.is_date32(f.type)
            or pa.types.is_date64(f.type)
        )
    }


def _key_reason(spec: DatasetSpec) -> Callable[[str], str]:
    return lambda path: nested_key_reason(path, spec)


def _to_schema(
    table: pa.Table,
    key: str,
    spec: DatasetSpec,
    unknown: list[str],
    row_lines: Callable[[], np.ndarray],
    raw_text: bool,
    row_text: Callable[[int], str] | None = None,
) -> Batch:
    """Convert string columns to the spec's types; failing rows become rejects."""
    bad: dict[int, tuple[str | None, str]] = {}
    if unknown and spec.unknown_columns == "freeze":
        for col in unknown:
            present = pc.invert(pc.is_null(table.column(col)))
            for i in arrow.true_rows(present):
                add_reason(bad, int(i), col, f"unknown column {col!r} (contract mode: freeze)")
    # All nested columns of the block in one JSON parse; if some cell is bad, the loop below
    # parses column by column and isolates it.
    nested = [f for f in spec.schema if pa.types.is_nested(f.type) and f.name in table.column_names]
    parsed: dict[str, pa.Array] = {}
    unknown_key = _key_reason(spec) if refuses_nested_keys(spec) else None
    if raw_text and len(nested) > 1:
        try:
            parsed = parse_json_cells(
                {f.name: table.column(f.name).combine_chunks() for f in nested},
                {f.name: f.type for f in nested},
                unknown_key,
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            parsed = {}
    columns = []
    for f in spec.schema:
        if f.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, f.type))
            continue
        if f.name in parsed:
            columns.append(parsed[f.name])
            continue
        src = table.column(f.name).combine_chunks()
        if src.type == f.type:  # parsed as such by the reader
            columns.append(src)
            continue
        try:
            converted, failures = (
                convert_column(src, f.type, unknown_key, f.name) if raw_text else (src, {})
            )
        except MostlyInvalidColumn as exc:
            raise SourceFileError(key, f"column {f.name!r}: {exc}", column=f.name) from exc
        for row, reason in failures.items():
            if not reason.startswith(UNKNOWN_KEY):
                value = src[row].as_py()
                reason = f"{f.name}={value!r}: cannot convert to {f.type}: {reason}"
            add_reason(bad, row, f.name, reason)
        columns.append(converted)
    out = pa.Table.from_arrays(columns, schema=nullable_schema(spec.schema))
    if spec.unknown_columns == "evolve":
        # kept as text; silver adds them to the table (the Iceberg schema evolves)
        for col in unknown:
            out = out.append_column(pa.field(col, pa.string()), table.column(col))
    batch = Batch(out, [], row_lines, row_text=row_text)
    return batch.drop(bad, key, lambda i: row_json(table, i))


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
