"""The contract's built-in checks run as Arrow kernels; pandera itself is the oracle."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandera.errors as pe
import pandera.pandas as pdr
import pyarrow as pa
import pytest

from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.lake.ingest.batches import Batch
from lake_pipelines.lake.ingest.validation import UniqueTracker, compile_contract, validate

START = datetime(2026, 11, 1, tzinfo=UTC)
SCHEMA = pa.schema(
    [
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("code", pa.string()),
        pa.field("name", pa.string()),
        pa.field("amount", pa.float64()),
        pa.field("qty", pa.int64()),
        pa.field("note", pa.string()),
        pa.field("tag", pa.string()),
    ]
)
CONTRACT = pdr.DataFrameSchema(
    {
        "code": pdr.Column(
            str,
            [pdr.Check.isin(["a", "b", "c"]), pdr.Check.notin(["b"])],
            nullable=False,
        ),
        "name": pdr.Column(
            str,
            [
                pdr.Check.str_length(2, 4),
                pdr.Check.str_startswith("x"),
                pdr.Check.str_endswith("z"),
            ],
            nullable=True,
        ),
        "amount": pdr.Column(
            float,
            [pdr.Check.in_range(0, 10, include_min=False), pdr.Check.ne(5.0)],
            nullable=True,
        ),
        "qty": pdr.Column(
            "Int64",
            [pdr.Check.ge(1), pdr.Check.lt(9), pdr.Check.gt(0), pdr.Check.le(8)],
            nullable=True,
        ),
        # custom: left to pandera
        "note": pdr.Column(str, pdr.Check(lambda s: s.str.len() != 3), nullable=True),
        # nullable with a value set: pandera leaves nulls out of the check
        "tag": pdr.Column(str, pdr.Check.isin(["p", "q"]), nullable=True),
    },
    strict=False,
    coerce=False,
)
SPEC = DatasetSpec(
    name="contract_probe",
    description="probe",
    schema=SCHEMA,
    timestamp_column="ts",
    start_date="2026-01-01",
    contract=CONTRACT,
)


def _table(seed: int, n: int = 400) -> pa.Table:
    rnd = random.Random(seed)

    def maybe(v):
        return None if rnd.random() < 0.15 else v

    letters = "abcxyz"
    return pa.table(
        {
            "ts": [START + timedelta(seconds=i) for i in range(n)],
            "code": [maybe(rnd.choice("abcd")) for _ in range(n)],
            "name": [
                maybe("".join(rnd.choice(letters) for _ in range(rnd.randint(0, 5))))
                for _ in range(n)
            ],
            "amount": [
                maybe(rnd.choice([0.0, 0.5, 5.0, 9.99, 10.0, 10.5, -1.0])) for _ in range(n)
            ],
            "qty": [maybe(rnd.randint(-1, 10)) for _ in range(n)],
            "note": [maybe(rnd.choice(["ab", "abc", "abcd"])) for _ in range(n)],
            "tag": [maybe(rnd.choice("pqr")) for _ in range(n)],
        },
        schema=SCHEMA,
    )


def _pandera_oracle(table: pa.Table) -> set[tuple[int, str]]:
    frame = table.select(list(CONTRACT.columns)).to_pandas()
    frame["qty"] = frame["qty"].astype("Int64")
    try:
        CONTRACT.validate(frame, lazy=True)
    except pe.SchemaErrors as errors:
        cases = errors.failure_cases
        return {
            (int(c["index"]), c["column"])
            for _, c in cases.iterrows()
            if c["index"] is not None
            and not (isinstance(c["index"], float) and np.isnan(c["index"]))
        }
    return set()


@pytest.mark.parametrize("seed", range(5))
def test_arrow_checks_reject_exactly_what_pandera_rejects(seed: int) -> None:
    table = _table(seed)
    out = validate(Batch(table), SPEC, START, START + timedelta(days=1), "probe.csv")
    by_row = {}
    for r in out.rejects:
        by_row[r.line] = r
    expected = _pandera_oracle(table)
    assert expected, "the data must break the contract somewhere"
    expected_rows = {i for i, _ in expected}
    kept = set(out.table.column("ts").to_pylist())
    rejected_rows = {i for i in range(table.num_rows) if table.column("ts")[i].as_py() not in kept}
    assert rejected_rows == expected_rows
    assert out.table.num_rows + len(out.rejects) == table.num_rows
    # each rejected row names every column pandera named for it
    reasons = {
        table.column("ts").to_pylist().index(ts): r.reason
        for r, ts in zip(out.rejects, _rejected_ts(table, out), strict=True)
    }
    for i, col in expected:
        assert f"{col}=" in reasons[i]


def _rejected_ts(table: pa.Table, out: Batch) -> list:
    kept = set(out.table.column("ts").to_pylist())
    return [ts for ts in table.column("ts").to_pylist() if ts not in kept]


def test_only_untranslatable_columns_are_left_to_pandera() -> None:
    compiled = compile_contract(SPEC)
    assert sorted({c.column for c in compiled.arrow}) == ["amount", "code", "name", "qty", "tag"]
    assert compiled.required == ["code"]
    assert list(compiled.pandera.columns) == ["note"]


@pytest.mark.parametrize("leave_out", [None, 0, 5], ids=["all", "none-early", "none-late"])
def test_day_window_and_required_values_are_checked_row_by_row(leave_out: int | None) -> None:
    """Rows before the day, at its exclusive end, with no timestamp or no required value are
    rejected with their own reason, in a column made of several chunks; rows on the day stay.
    With only one end of the window broken too: checks that skip work when a batch is clean
    must not skip a batch that is not."""
    end = START + timedelta(days=1)
    kinds = [
        (START - timedelta(microseconds=1), "a", "outside partition"),
        (START, "a", None),
        (None, "a", "ts is null"),
        (end - timedelta(microseconds=1), "a", None),
        (START + timedelta(hours=1), None, "code=None fails not_nullable"),
        (end, "c", "outside partition"),
        (START + timedelta(hours=2), "c", None),
    ]
    cases = [(f"n{i}", *c) for i, c in enumerate(kinds) if i != leave_out]
    ts = pa.chunked_array(
        [[c[1] for c in cases[:3]], [c[1] for c in cases[3:]]], pa.timestamp("us", tz="UTC")
    )
    table = pa.table(
        {
            "ts": ts,
            "code": [c[2] for c in cases],
            "name": pa.array([None] * len(cases), pa.string()),
            "amount": pa.array([None] * len(cases), pa.float64()),
            "qty": pa.array([None] * len(cases), pa.int64()),
            "note": [c[0] for c in cases],  # which case a reject is
        }
    )
    out = validate(Batch(table), SPEC, START, end, "probe.csv")
    assert out.table.column("ts").to_pylist() == [c[1] for c in cases if c[3] is None]
    got = {}
    for r in out.rejects:
        assert r.raw is not None
        got[json.loads(r.raw)["note"]] = r.reason
    want = {c[0]: c[3] for c in cases if c[3] is not None}
    assert sorted(got) == sorted(want)
    for case, fragment in want.items():
        assert fragment in got[case], (case, got[case])


def test_a_clean_batch_passes_whole() -> None:
    """Every row on the day, every required value present: nothing is rejected."""
    n = 50
    table = pa.table(
        {
            "ts": pa.array(
                [START + timedelta(minutes=i) for i in range(n)], pa.timestamp("us", tz="UTC")
            ),
            "code": ["a"] * n,
            "name": pa.array([None] * n, pa.string()),
            "amount": [1.0] * n,
            "qty": pa.array([2] * n, pa.int64()),
            "note": pa.array([None] * n, pa.string()),
        }
    )
    out = validate(Batch(table), SPEC, START, START + timedelta(days=1), "probe.csv")
    assert out.rejects == [] and out.table.equals(table)


def test_pandera_is_not_asked_for_uniqueness_of_one_batch() -> None:
    """A unique column left to pandera (a custom check) keeps its other checks; duplicates
    are the day-wide tracker's to judge, so none is rejected by pandera per batch."""
    spec = replace(SPEC, contract=CONTRACT.update_columns({"note": {"unique": True}}))
    assert spec.unique_columns == ["note"]
    compiled = compile_contract(spec)
    assert list(compiled.pandera.columns) == ["note"]
    assert not compiled.pandera.columns["note"].unique
    n = 4
    table = pa.table(
        {
            "ts": pa.array([START] * n, pa.timestamp("us", tz="UTC")),
            "code": ["a"] * n,
            "name": pa.array([None] * n, pa.string()),
            "amount": [1.0] * n,
            "qty": pa.array([2] * n, pa.int64()),
            "note": ["ab", "ab", "abc", "abcd"],
        }
    )
    out = validate(Batch(table), spec, START, START + timedelta(days=1), "probe.csv")
    assert out.table.column("note").to_pylist() == ["ab", "ab", "abcd"]
    (reject,) = out.rejects
    assert reject.column == "note" and "note='abc' fails" in reject.reason
    tracked = validate(
        Batch(table), spec, START, START + timedelta(days=1), "probe.csv", UniqueTracker(["note"])
    )
    assert tracked.table.column("note").to_pylist() == ["ab", "abcd"]
    assert sorted(r.reason.split(" ")[0] for r in tracked.rejects) == ["note='ab'", "note='abc'"]
