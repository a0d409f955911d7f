"""Vectorised conversion of text columns to the spec's Arrow types, with per-row failures.

The fast path casts a whole column at once. When a cast fails, the column is bisected until
each failing value is isolated, so a batch with k bad values costs O(k log n) casts rather
than one Python call per row.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from lake_pipelines.lake import arrow
from lake_pipelines.lake.hashing import value_offsets
from lake_pipelines.lake.ingest.json_strict import MAX_NESTING, nesting
from lake_pipelines.lake.ingest.nested_keys import extra_in_type

# A zone only counts after a time of day: the "-13" of a date-only "1996-03-13" is no offset.
_ZONE = r"\d{2}:\d{2}(:\d{2}([.,]\d+)?)?\s*(Z|z|[+-]\d{2}(:?\d{2})?)$"
_EPOCH = r"^-?\d{1,16}$"

Converter = Callable[[pa.Array], pa.Array]
KeyReason = Callable[[str], str]  # the path of a key a struct type lacks -> why the row goes


def _cast_timestamp(arr: pa.Array, target: pa.TimestampType) -> pa.Array:
    """ISO-8601 with or without zone (naive means UTC), or integer epoch milliseconds."""
    # The common cases in one kernel, no regex: every value ISO-8601 with a zone, or every value
    # naive (or a bare date; Arrow's naive parse refuses zones and epochs). A failing cast
    # costs about as much as a regex pass, so the first value picks which one to try.
    valid = arr.drop_null()
    first = str(valid[0]) if len(valid) else ""
    naive_type = pa.timestamp(target.unit)
    attempts = [lambda: pc.cast(arr, target), lambda: pc.cast(pc.cast(arr, naive_type), target)]
    if not re.search(_ZONE, first.strip()):
        attempts.reverse()
    if _looks_like_iso(first):
        try:
            return attempts[0]()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    arr = pc.utf8_trim_whitespace(arr)
    epoch = pc.match_substring_regex(arr, _EPOCH)
    zoned = pc.match_substring_regex(arr, _ZONE)
    out = pa.nulls(len(arr), target)
    if pc.any(epoch).as_py():
        ms = pc.cast(pc.if_else(epoch, arr, arrow.null(arr.type)), pa.int64())
        out = pc.if_else(epoch, pc.cast(pc.cast(ms, pa.timestamp("ms")), target), out)
    yes, no = arrow.scalar(True, pa.bool_()), arrow.scalar(False, pa.bool_())
    rest = pc.and_not(pc.fill_null(pc.invert(epoch), yes), pc.is_null(arr))
    with_zone = pc.and_(rest, pc.fill_null(zoned, no))
    if pc.any(with_zone).as_py():
        zoned_only = pc.if_else(with_zone, arr, arrow.null(arr.type))
        out = pc.if_else(with_zone, pc.cast(zoned_only, target), out)
    naive = pc.and_not(rest, pc.fill_null(zoned, no))
    if pc.any(naive).as_py():
        as_naive = pc.cast(pc.if_else(naive, arr, arrow.null(arr.type)), naive_type)
        out = pc.if_else(naive, pc.cast(as_naive, target), out)
    return out


def _looks_like_iso(value: str) -> bool:
    """A date first (``YYYY-MM-DD...``), not an epoch number or free text."""
    return bool(re.match(r"\d{4}-\d{2}-\d{2}", value))


def _cast_trimmed(arr: pa.Array, target: pa.DataType) -> pa.Array:
    """Numbers and dates as text; surrounding spaces are allowed (trimmed only when a cast
    needs it)."""
    try:
        return pc.cast(arr, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pc.cast(pc.utf8_trim_whitespace(arr), target)


def _cast_bool(arr: pa.Array) -> pa.Array:
    low = pc.utf8_lower(pc.utf8_trim_whitespace(arr))
    truthy = pc.is_in(low, arrow.values(["true", "t", "1", "yes", "y"], pa.string()))
    falsy = pc.is_in(low, arrow.values(["false", "f", "0", "no", "n"], pa.string()))
    known = pc.or_(truthy, falsy)
    if not pc.all(pc.or_(known, pc.is_null(arr))).as_py():
        raise pa.ArrowInvalid("not a boolean")
    return pc.if_else(pc.is_null(arr), arrow.null(pa.bool_()), truthy)


def parse_json_cells(
    cells: dict[str, pa.Array],
    types: dict[str, pa.DataType],
    unknown_key: KeyReason | None = None,
) -> dict[str, pa.Array]:
    """Nested values arrive in CSV cells as JSON text; parse columns of them in one pyarrow call.

    The cells become one NDJSON document (``{"c0": <cell>, "c1": <cell>}`` per row) built by
    Arrow kernels, with no Python work per row, so all nested columns of a block cost one
    parse. The document is a single pyarrow block, so a raw line break inside a cell is only
    whitespace to the parser (``newlines_in_values``). Raises if any cell is not one JSON
    value of its type, or, given `unknown_key`, holds a key its struct type does not name
    (pyarrow infers a field for it; `unknown_key` makes the reason from the key's path); the
    caller then finds the bad cells column by column.
    """
    names = list(cells)
    n = len(cells[names[0]])
    if n == 0:
        return {name: pa.nulls(0, types[name]) for name in names}
    parts: list[object] = []
    for i, name in enumerate(names):
        col = cells[name]
        if _has_blank_cells(col):  # a blank cell is a missing value, as in the CSV
            blank = pc.equal(pc.utf8_trim_whitespace(col), arrow.text(""))
            col = pc.if_else(blank, arrow.null(col.type), col)
        parts += [arrow.text(f'{"," if i else "{"}"c{i}":'), col]
    # A null cell becomes JSON null within the join (`pc.fill_null` on strings costs ~1 s per
    # million values); each line ends in a newline, so the joined values buffer is the document.
    join = pc.JoinOptions(null_handling="replace", null_replacement="null")
    ends = [arrow.text("}\n"), arrow.text("")]
    lines = pc.call_function("binary_join_element_wise", [*parts, *ends], join)
    # pyarrow infers the type of an unknown key inside a cell and overflows its stack on a
    # value nested thousands deep: a row with more brackets than the nesting limit allows
    # never reaches it (the caller's bisection then rejects just that cell).
    _refuse_deep_rows(cells, lines)
    offsets = value_offsets(lines)
    body = lines.buffers()[2][int(offsets[0]) : int(offsets[-1])]
    schema = pa.schema([pa.field(f"c{i}", types[name]) for i, name in enumerate(names)])
    table = pj.read_json(
        pa.BufferReader(body),
        read_options=pj.ReadOptions(block_size=max(body.size + 1, 1 << 20), use_threads=False),
        parse_options=pj.ParseOptions(explicit_schema=schema, newlines_in_values=True),
    )
    if table.num_rows != n or table.num_columns != len(names):
        raise pa.ArrowInvalid("not a single JSON value")
    out = {name: table.column(f"c{i}").combine_chunks() for i, name in enumerate(names)}
    if unknown_key is not None:
        for name, col in out.items():
            extra = extra_in_type(col.type, types[name], name) if col.type != types[name] else []
            if extra:
                raise pa.ArrowInvalid(unknown_key(extra[0]))
    return out


def _refuse_deep_rows(cells: dict[str, pa.Array], lines: pa.Array) -> None:
    """Raise if a row's cell nests deeper than the limit. A cell nests at most as deep as it
    has opening brackets, so at most as deep as it is long: only the rows with a cell longer
    than the limit have their line's brackets counted (counting every line was ~10 % of a
    CSV day's CPU, where no cell of the events is that long)."""
    long: pa.Array | None = None
    for col in cells.values():
        length = pc.binary_length(col)  # from the offsets: no pass over the text
        over = pc.greater(length, arrow.scalar(MAX_NESTING, length.type))
        long = over if long is None else pc.or_kleene(long, over)
    rows = arrow.true_rows(long) if long is not None else np.empty(0, np.int64)
    if not len(rows):
        return
    some = lines.take(arrow.indices(rows))
    brackets = pc.add(pc.count_substring(some, "{"), pc.count_substring(some, "["))
    if pc.max(brackets).as_py() > MAX_NESTING + 1:
        limit = arrow.scalar(MAX_NESTING + 1, brackets.type)
        _refuse_deep_cells(cells, rows[arrow.true_rows(pc.greater(brackets, limit))])


def _refuse_deep_cells(cells: dict[str, pa.Array], rows: np.ndarray) -> None:
    """Raise if a cell of the rows with many brackets really nests deeper than the limit
    (many brackets alone, like an order of 150 items, is no reason to refuse a row)."""
    for col in cells.values():
        for text in col.take(arrow.indices(rows)).to_pylist():
            if text is None:
                continue
            try:
                value = json.loads(text)
            except RecursionError:
                raise pa.ArrowInvalid(f"nesting deeper than {MAX_NESTING} levels") from None
            except ValueError:
                continue  # not JSON: pyarrow says so, without crashing
            if nesting(value) > MAX_NESTING:
                raise pa.ArrowInvalid(f"nesting deeper than {MAX_NESTING} levels")


def _has_blank_cells(arr: pa.Array) -> bool:
    """Whether a non-null cell is empty or may start with whitespace (so it may be blank),
    judged from the first byte of each value: a vector read, not a pass over the text."""
    offsets = value_offsets(arr)
    data = arr.buffers()[2]
    suspect = offsets[1:] == offsets[:-1]
    if data is not None and data.size:
        values = np.frombuffer(data, np.uint8)
        first = values[np.minimum(offsets[:-1], len(values) - 1)]
        # ASCII whitespace and separators, or any non-ASCII start (e.g. a no-break space):
        # the exact test (`utf8_trim_whitespace`) then runs on the whole column.
        suspect |= np.isin(first, _WHITESPACE) | (first >= 0x80)
    if arr.null_count:
        suspect[arrow.true_rows(pc.is_null(arr))] = False
    return bool(suspect.any())


_WHITESPACE = np.frombuffer(b" \t\r\n\x0b\x0c\x1c\x1d\x1e\x1f", np.uint8)


def converter_for(
    target: pa.DataType, unknown_key: KeyReason | None = None, column: str = "value"
) -> Converter:
    """The function that turns a string column into `target`, raising on any bad value (for
    nested types, given `unknown_key`, also on a key the type does not name)."""
    if pa.types.is_string(target) or pa.types.is_large_string(target):
        return lambda a: a.cast(target)
    if pa.types.is_timestamp(target):
        return lambda a: _cast_timestamp(a, target)
    if pa.types.is_boolean(target):
        return _cast_bool
    if pa.types.is_nested(target):
        return lambda a: parse_json_cells({column: a}, {column: target}, unknown_key)[column]
    if (
        pa.types.is_integer(target)
        or pa.types.is_floating(target)
        or pa.types.is_decimal(target)
        or pa.types.is_date(target)
    ):
        return lambda a: _cast_trimmed(a, target)
    return lambda a: pc.cast(a, target)


def convert_column(
    arr: pa.Array,
    target: pa.DataType,
    unknown_key: KeyReason | None = None,
    column: str = "value",
) -> tuple[pa.Array, dict[int, str]]:
    """Convert a string array; return the result and {row index: reason} of values that fail
    (`unknown_key` and `column` as `converter_for` takes them).

    Failing rows are null in the result; the caller quarantines them.
    """
    convert = converter_for(target, unknown_key, column)
    try:
        return convert(arr), {}
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, ValueError):
        pass
    _refuse_if_mostly_invalid(arr, convert, target)
    bad: dict[int, str] = {}

    def bisect(lo: int, hi: int) -> None:
        try:
            convert(arr.slice(lo, hi - lo))
            return
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, ValueError) as e:
            if hi - lo == 1:
                bad[lo] = _short(e)
                return
        mid = (lo + hi) // 2
        bisect(lo, mid)
        bisect(mid, hi)

    bisect(0, len(arr))
    mask = np.zeros(len(arr), dtype=bool)
    mask[list(bad)] = True
    cleaned = pc.if_else(arrow.mask(mask), arrow.null(arr.type), arr)
    return convert(cleaned), bad


class MostlyInvalidColumn(ValueError):
    """Most values of a column fail: the column has the wrong type, not a few bad rows.

    A signal inside the readers, not one of our errors: the reader that knows the file and
    the column re-raises it as `SourceFileError`.
    """

    def __init__(self, target: pa.DataType, examples: list[str], why: str = "") -> None:
        self.target = target
        self.examples = examples
        why = f": {why}" if why else ""
        super().__init__(f"most values do not convert to {target} (e.g. {examples!r}){why}")


SAMPLE = 64


def _refuse_if_mostly_invalid(arr: pa.Array, convert: Converter, target: pa.DataType) -> None:
    """Bisection costs O(k log n) casts for k bad values: fine for a few, an hour for a column
    that fails everywhere. A sample of the non-null values tells the two apart first."""
    valid = arr.filter(pc.is_valid(arr))
    if len(valid) < 4 * SAMPLE:
        return
    picks = np.linspace(0, len(valid) - 1, SAMPLE).astype(np.int64)
    failed, why = [], ""
    for i in picks:
        try:
            convert(valid.slice(int(i), 1))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, ValueError) as e:
            failed.append(str(valid[int(i)].as_py())[:40])
            why = why or _short(e)
    if len(failed) > SAMPLE // 2:
        raise MostlyInvalidColumn(target, failed[:3], why)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]
