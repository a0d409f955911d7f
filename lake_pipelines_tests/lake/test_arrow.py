"""Arrow values built without pandas: the same arrays as pyarrow's own constructors, and a
bronze day (clean rows and rejects alike) that never imports pandas."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from lake_pipelines.lake import arrow

CASES = [
    (["a", None, "ccc", ""], pa.string()),
    (["é", None], pa.large_string()),
    ([True, None, False], pa.bool_()),
    ([1, None, -3], pa.int32()),
    ([0, 255], pa.uint8()),
    ([1.5, None, 2], pa.float64()),
    ([0.25], pa.float32()),
    ([datetime(2026, 11, 1, 12, 30, 1, 5, tzinfo=UTC), None], pa.timestamp("us", tz="UTC")),
    ([datetime(2026, 11, 1, 1, 2, 3, 4567)], pa.timestamp("ns")),
    ([datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)], pa.timestamp("ms", tz="UTC")),
    ([date(2026, 11, 1), None, date(1960, 1, 1)], pa.date32()),
    ([], pa.string()),
    ([None, None], pa.int64()),
    ([[1, 2], None], pa.list_(pa.int64())),  # no buffer layout here: pyarrow builds it
]


@pytest.mark.parametrize(("items", "type_"), CASES, ids=[str(t) for _, t in CASES])
def test_values_are_the_arrays_pyarrow_builds(items: list[Any], type_: pa.DataType) -> None:
    built = arrow.values(items, type_)
    assert built.type == type_
    assert built.equals(pa.array(items, type=type_))
    if items:
        assert arrow.scalar(items[0], type_).equals(pa.scalar(items[0], type=type_))


@pytest.mark.parametrize(
    ("items", "type_"),
    [([0.5], pa.int64()), ([2**40], pa.int32()), ([1], pa.string()), (["x"], pa.float64())],
)
def test_values_that_do_not_fit_behave_as_in_pyarrow(items: list[Any], type_: pa.DataType) -> None:
    def outcome(build: Any) -> Any:
        try:
            return build(items, type_).to_pylist()
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as exc:
            return type(exc)

    assert outcome(arrow.values) == outcome(lambda v, t: pa.array(v, type=t))


def test_true_rows_reads_the_bits_of_slices_chunks_and_nulls() -> None:
    flags = pa.array([True, None, False, True, True, False, None, True, True, False, True])
    pieces = [
        flags,
        flags.slice(3),
        flags.slice(5, 4),
        pa.chunked_array([flags.slice(0, 4), flags.slice(4)]),
        pa.chunked_array([], pa.bool_()),
    ]
    for piece in pieces:
        expected = [i for i, v in enumerate(piece.to_pylist()) if v is True]
        assert arrow.true_rows(piece).tolist() == expected
    assert arrow.mask(np.array([True, False, True])).to_pylist() == [True, False, True]
    assert arrow.indices([2, 0]).to_pylist() == [2, 0]
    assert arrow.empty(pa.schema([("a", pa.int64())])).num_rows == 0


PROBE = """
import json, sys
from datetime import date
from lake_pipelines.datasets.events import SPEC
from lake_pipelines.lake.bronze import ingest_day
from lake_pipelines.lake.storage import ObjectStore

report = ingest_day(ObjectStore(sys.argv[1]), SPEC, date(2026, 11, 1))
print(json.dumps({
    "read": report.rows_read,
    "written": report.rows_written,
    "quarantined": report.rows_quarantined,
    "files_quarantined": len(report.file_rejects),
    "pandas": "pandas" in sys.modules,
}))
"""


def test_a_bronze_day_with_rejects_never_imports_pandas(tmp_path: Path) -> None:
    """pyarrow imports pandas (~1 s) the first time Python values reach it; a one-partition
    run of CSV and NDJSON files, with bad rows and an unreadable file, must not pay that."""
    from lake_pipelines.lake.storage import ObjectStore
    from lake_pipelines.sample_data import generate_events

    (day,) = generate_events(ObjectStore(str(tmp_path)), date(2026, 11, 1), 1, 300, seed=3)
    assert day.bad_rows and day.bad_files

    def probe() -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-c", PROBE, str(tmp_path)], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    probe()  # the first process may compile the contract with pandera (and so pandas)
    second = probe()
    assert not second["pandas"]
    assert second["quarantined"] == day.bad_rows and second["files_quarantined"] == day.bad_files
    assert second["read"] == second["written"] + second["quarantined"]
    assert second["written"] == day.valid.num_rows
