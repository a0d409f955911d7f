"""The data contract: pandera checks over each batch, plus the rules pandera cannot see.

Rows failing a check are split off with a reason naming the column, the check and the value;
they are quarantined, never silently dropped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.lake import arrow
from lake_pipelines.lake.hashing import value_hashes
from lake_pipelines.lake.ingest import contract_cache
from lake_pipelines.lake.ingest.readers import Batch, add_reason, row_json

Mask = Callable[[pa.Array], pa.Array]


@dataclass(frozen=True)
class ArrowCheck:
    """A pandera built-in check, evaluated as one Arrow kernel instead of through pandas."""

    column: str
    label: str  # pandera's own text for it, e.g. ``in_range(0, 1000000)``
    passes: Mask  # True where a value passes
    ignore_na: bool


@dataclass(frozen=True)
class CompiledContract:
    """A dataset's contract split into what Arrow evaluates and what is left to pandera."""

    arrow: list[ArrowCheck]
    required: list[str]  # contract columns declared non-nullable
    pandera: Any  # a pandera DataFrameSchema for the rest, or None
    unique: list[str] = field(default_factory=list)  # unique across the whole day


def _scalar(value: Any, type_: pa.DataType) -> pa.Scalar:
    return arrow.scalar(value, type_)  # pa.scalar would import pandas


def _arrow_mask(name: str, stats: dict[str, Any], type_: pa.DataType) -> Mask | None:
    """The Arrow form of a pandera built-in check, or None when we do not have one."""
    if name == "isin":
        allowed = arrow.values(list(stats["allowed_values"]), type_)
        return lambda a: pc.is_in(a, value_set=allowed)
    if name == "notin":
        forbidden = arrow.values(list(stats["forbidden_values"]), type_)
        return lambda a: pc.invert(pc.is_in(a, value_set=forbidden))
    if name == "in_range":
        lo, hi = _scalar(stats["min_value"], type_), _scalar(stats["max_value"], type_)
        low = pc.greater_equal if stats.get("include_min", True) else pc.greater
        high = pc.less_equal if stats.get("include_max", True) else pc.less
        return lambda a: pc.and_(low(a, lo), high(a, hi))
    compare = {
        "greater_than": (pc.greater, "min_value"),
        "greater_than_or_equal_to": (pc.greater_equal, "min_value"),
        "less_than": (pc.less, "max_value"),
        "less_than_or_equal_to": (pc.less_equal, "max_value"),
        "equal_to": (pc.equal, "value"),
        "not_equal_to": (pc.not_equal, "value"),
    }
    if name in compare:
        kernel, key = compare[name]
        bound = _scalar(stats[key], type_)
        return lambda a: kernel(a, bound)
    if not (pa.types.is_string(type_) or pa.types.is_large_string(type_)):
        return None
    if name == "str_length":
        width = pa.int64() if pa.types.is_large_string(type_) else pa.int32()  # utf8_length's
        exact, lo, hi = (
            None if stats.get(k) is None else _scalar(stats[k], width)
            for k in ("exact_value", "min_value", "max_value")
        )

        def length_ok(a: pa.Array) -> pa.Array:
            n = pc.utf8_length(a)
            if exact is not None:
                return pc.equal(n, exact)
            ok = pc.greater_equal(n, lo) if lo is not None else pc.is_valid(n)
            return pc.and_(ok, pc.less_equal(n, hi)) if hi is not None else ok

        return length_ok
    if name == "str_startswith":
        return lambda a: pc.starts_with(a, stats["string"])
    if name == "str_endswith":
        return lambda a: pc.ends_with(a, stats["string"])
    return None  # regexes (RE2 is not Python's re), custom checks: pandera runs them


def compile_contract(spec: DatasetSpec) -> CompiledContract:
    """Split the contract: built-in checks of plain columns run as Arrow kernels (no pandas
    round trip), everything else (custom checks, regex columns, frame-wide checks) stays
    with pandera. A column with one check we cannot translate goes to pandera whole.

    Once per process; a contract left wholly to Arrow is also kept on disk
    (`contract_cache`), so later processes need neither pandera nor pandas."""
    cached = _COMPILED.get(id(spec))
    if cached is not None and cached[0] is spec:
        return cached[1]
    compiled = _from_record(spec, contract_cache.load(spec)) or _compile(spec)
    _COMPILED[id(spec)] = (spec, compiled)
    return compiled


def _compile(spec: DatasetSpec) -> CompiledContract:
    contract = spec.pandera_schema
    types = {f.name: f.type for f in spec.schema}
    arrow: list[ArrowCheck] = []
    records: list[dict[str, Any]] = []
    required: list[str] = []
    translated: list[str] = []
    for name, column in contract.columns.items():
        if column.regex or name not in types:
            continue
        checks: list[ArrowCheck] = []
        described: list[dict[str, Any]] = []
        for check in column.checks:
            mask = None
            stats = dict(check.statistics or {})
            if not check.raise_warning and check.groupby is None and stats:
                try:
                    mask = _arrow_mask(check.name, stats, types[name])
                except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, KeyError):
                    mask = None
            if mask is None:
                break
            label = check.error or check.name
            checks.append(ArrowCheck(name, label, mask, check.ignore_na))
            described.append(
                {"column": name, "check": check.name, "statistics": stats, "label": label}
                | {"ignore_na": check.ignore_na}
            )
        else:
            arrow += checks
            records += described
            if not column.nullable:
                required.append(name)
            translated.append(name)
    unique = [n for n, c in contract.columns.items() if c.unique]
    rest = contract.remove_columns(translated) if translated else contract
    # Uniqueness is a property of the whole day (UniqueTracker), not of one batch: pandera is
    # not asked for it, so none of its failure cases has to be told apart by check name.
    rest = rest.update_columns({n: {"unique": False} for n in unique if n in rest.columns})
    left = rest if (rest.columns or rest.checks) else None
    if left is None:
        try:
            text = json.dumps(records, default=list)  # sets of allowed values become lists
        except (TypeError, ValueError):
            text = None  # e.g. datetime bounds: kept in memory only
        if text is not None:
            contract_cache.store(
                spec, {"checks": json.loads(text), "required": required, "unique": unique}
            )
    return CompiledContract(arrow, required, left, unique)


def _from_record(spec: DatasetSpec, record: dict[str, Any] | None) -> CompiledContract | None:
    """The contract rebuilt from its cached record, None if any check no longer compiles."""
    if record is None:
        return None
    types = {f.name: f.type for f in spec.schema}
    arrow: list[ArrowCheck] = []
    try:
        for c in record["checks"]:
            mask = _arrow_mask(c["check"], c["statistics"], types[c["column"]])
            if mask is None:
                return None
            arrow.append(ArrowCheck(c["column"], c["label"], mask, bool(c["ignore_na"])))
        return CompiledContract(arrow, list(record["required"]), None, list(record["unique"]))
    except (KeyError, TypeError, ValueError, pa.ArrowInvalid, pa.ArrowTypeError):
        return None


_COMPILED: dict[int, tuple[DatasetSpec, CompiledContract]] = {}


def _arrow_failures(table: pa.Table, compiled: CompiledContract, bad: dict) -> None:
    for name in compiled.required:
        if name in table.column_names:
            for i in _null_rows(table.column(name)):
                add_reason(bad, int(i), name, f"{name}=None fails not_nullable")
    for check in compiled.arrow:
        if check.column not in table.column_names:
            continue
        values = table.column(check.column)
        ok = check.passes(values)
        if check.ignore_na and values.null_count:
            # pandera leaves nulls out of such a check; `is_in` answers False for them
            ok = pc.or_kleene(ok, pc.is_null(values))
        if ok.null_count:
            ok = pc.fill_null(ok, _scalar(check.ignore_na, pa.bool_()))
        if pc.all(ok).as_py():
            continue
        for i in arrow.true_rows(pc.invert(ok)):
            value = values[int(i)].as_py()
            add_reason(bad, int(i), check.column, f"{check.column}={value!r} fails {check.label}")


def _null_rows(column: pa.ChunkedArray) -> np.ndarray:
    """Row indexes where `column` is null. Arrow keeps a null count with every array, so the
    usual column without nulls costs nothing (a mask converted to numpy per column and batch
    used to cost more than the contract's checks)."""
    if not column.null_count:
        return np.empty(0, dtype=np.int64)
    return arrow.true_rows(pc.is_null(column))


def _pandera_failures(table: pa.Table, schema: Any, bad: dict) -> None:
    import pandera.errors as pe

    cols = [c for c in schema.columns if c in table.column_names]
    frame = table.select(cols).to_pandas(types_mapper=None)
    try:
        schema.validate(frame, lazy=True)
    except pe.SchemaErrors as errors:
        cases = errors.failure_cases
        for _, case in cases.iterrows():
            idx = case.get("index")
            if idx is None or (isinstance(idx, float) and np.isnan(idx)):
                continue
            col = case.get("column")
            add_reason(
                bad, int(idx), col, f"{col}={case.get('failure_case')!r} fails {case.get('check')}"
            )


class UniqueTracker:
    """Remembers 64-bit hashes of the values seen in the unique columns of one partition.

    pandera sees one batch at a time; uniqueness is a property of the whole day, so it is
    kept here: the first occurrence of a value is kept, later ones are rejected. Memory is
    8 bytes per distinct value and column. The hashes sit in a few sorted runs, each at least
    twice the size of the next newer one (two runs of similar size are merged), so there are
    O(log n) runs and checking a batch costs O(batch · log n) whatever the day's size. Two
    different values sharing a 64-bit hash (odds ~n²/2⁶⁵) would make the later row a reject.
    """

    def __init__(self, columns: list[str]) -> None:
        self.columns = columns
        self._runs: dict[str, list[np.ndarray]] = {c: [] for c in columns}

    def mark(self) -> dict[str, list[np.ndarray]]:
        """The state before a file (runs are never changed in place: a copy of the lists)."""
        return {c: list(runs) for c, runs in self._runs.items()}

    def rollback(self, mark: dict[str, list[np.ndarray]]) -> None:
        """Forget what was seen since `mark` (the rows of a file that was rejected whole)."""
        self._runs = {c: list(runs) for c, runs in mark.items()}

    def _seen(self, col: str, hashes: np.ndarray) -> np.ndarray:
        seen = np.zeros(len(hashes), dtype=bool)
        for run in self._runs[col]:
            at = np.minimum(np.searchsorted(run, hashes), len(run) - 1)
            seen |= run[at] == hashes
        return seen

    def _remember(self, col: str, new: np.ndarray) -> None:
        runs = self._runs[col]
        if len(new):
            runs.append(new)
        while len(runs) > 1 and len(runs[-2]) <= 2 * len(runs[-1]):
            newer = runs.pop()
            runs.append(np.union1d(runs.pop(), newer))

    def duplicates(self, table: pa.Table) -> dict[int, tuple[str, str]]:
        """Rows (by index in `table`) repeating a value seen earlier in the day or the batch."""
        out: dict[int, tuple[str, str]] = {}
        for col in self.columns:
            column = table.column(col).combine_chunks()
            with np.errstate(over="ignore"):
                hashes = value_hashes(column)
            earlier = self._seen(col, hashes)
            distinct, first = np.unique(hashes, return_index=True)
            repeated = np.ones(len(hashes), dtype=bool)
            repeated[first] = False
            rows = np.flatnonzero(earlier | repeated)
            shown = column.take(arrow.indices(rows)).to_pylist() if len(rows) else []
            for i, value in zip(rows.tolist(), shown, strict=True):
                reason = f"{col}={value!r} is a duplicate of an earlier row of the day"
                out.setdefault(i, (col, reason))
            self._remember(col, distinct[~earlier[first]])
        return out


def validate(
    batch: Batch,
    spec: DatasetSpec,
    day_start: datetime,
    day_end: datetime,
    source: str,
    unique: UniqueTracker | None = None,
) -> Batch:
    """Split the rows of `batch` that break the contract into rejects.

    Besides the pandera contract, every row's timestamp must lie inside the partition's day
    (``[day_start, day_end)``): a row elsewhere would escape the day's idempotent overwrite.
    """
    table = batch.table
    if table.num_rows == 0:
        return batch
    bad: dict[int, tuple[str | None, str]] = {}

    ts = table.column(spec.timestamp_column)
    lo, hi = _scalar(day_start, ts.type), _scalar(day_end, ts.type)
    bounds = pc.min_max(ts)
    low, high = bounds["min"], bounds["max"]
    if low.is_valid and (pc.less(low, lo).as_py() or pc.greater_equal(high, hi).as_py()):
        outside = pc.or_(pc.less(ts, lo), pc.greater_equal(ts, hi))
        for i in arrow.true_rows(outside):
            bad[int(i)] = (
                spec.timestamp_column,
                f"{spec.timestamp_column}={ts[int(i)].as_py().isoformat()} is outside "
                f"partition {day_start.date().isoformat()}",
            )
    for i in _null_rows(ts):
        bad[int(i)] = (spec.timestamp_column, f"{spec.timestamp_column} is null")
    for f in spec.schema:
        if not f.nullable and f.name != spec.timestamp_column:
            for i in _null_rows(table.column(f.name)):
                add_reason(bad, int(i), f.name, f"{f.name} is null but required")

    clashing = _hive_level_clashes(table, spec, bad)
    compiled = compile_contract(spec)
    _arrow_failures(table, compiled, bad)
    if compiled.pandera is not None:
        _pandera_failures(table, compiled.pandera, bad)

    if unique is not None:  # last: a row rejected for another reason claims no key
        rows = np.arange(table.num_rows)
        if bad:
            rows = np.setdiff1d(rows, np.fromiter(bad, dtype=np.int64, count=len(bad)))
        candidates = table if len(rows) == table.num_rows else table.take(arrow.indices(rows))
        for j, (col, reason) in unique.duplicates(candidates).items():
            add_reason(bad, int(rows[j]), col, reason)
    kept = batch.drop(bad, source, lambda i: row_json(table, i))
    if clashing:  # null in every kept row: nothing is lost by leaving the column out
        kept.table = kept.table.drop_columns(clashing)
    return kept


def _hive_level_clashes(table: pa.Table, spec: DatasetSpec, bad: dict) -> list[str]:
    """Columns the schema does not know (``evolve`` mode keeps them) named like a bronze Hive
    level: Hive readers would replace their values with the folder's. Rows holding a value
    there are quarantined with the reason; the column itself is left out of bronze."""
    levels = {name.lower() for name in spec.hive_partition_columns}
    known = set(spec.schema.names)
    clashing = [c for c in table.column_names if c not in known and c.lower() in levels]
    for col in clashing:
        for i in arrow.true_rows(pc.is_valid(table.column(col))):
            add_reason(
                bad,
                int(i),
                col,
                f"column {col!r} is not in the schema and is named like the bronze Hive level "
                f"{col.lower()}=: Hive readers would replace its values with the folder's; add "
                "it to the schema after renaming the levels (DatasetSpec.hive_partition_columns)",
            )
    return clashing
