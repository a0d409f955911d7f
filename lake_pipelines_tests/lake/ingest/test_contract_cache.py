"""Compiled contracts on disk: later processes validate without importing pandera, with the
same verdicts as the pandera-built contract, and never from a stale compilation."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

MODULE = """
from datetime import UTC, datetime

import pyarrow as pa

from lake_pipelines.datasets.spec import DatasetSpec

ALLOWED = {allowed!r}

SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("kind", pa.string()),
        pa.field("qty", pa.int64()),
    ]
)


def contract():
    import pandera.pandas as pdr

    return pdr.DataFrameSchema(
        {{
            "id": pdr.Column(str, nullable=False, unique=True),
            "kind": pdr.Column(str, pdr.Check.isin(ALLOWED), nullable=True),
            "qty": pdr.Column(int, {qty_check}, nullable=True),
        }}
    )


SPEC = DatasetSpec(
    name="cached", schema=SCHEMA, timestamp_column="ts", start_date="2026-01-01",
    contract=contract,
)
"""

PROBE = """
import json, sys
from datetime import UTC, datetime
import pyarrow as pa
sys.path.insert(0, sys.argv[1])
from contracts import SPEC
from lake_pipelines.lake.ingest.readers import Batch
from lake_pipelines.lake.ingest.validation import compile_contract, validate

day = datetime(2026, 11, 3, tzinfo=UTC)
table = pa.table(
    {
        "id": ["r0", "r1", "r2", "r3"],
        "ts": pa.array([day] * 4, pa.timestamp("us", tz="UTC")),
        "kind": ["a", "b", "c", None],
        "qty": [1, -1, 5, 2],
    },
    schema=SPEC.schema,
)
out = validate(Batch(table), SPEC, day, day.replace(day=4), "src.csv")
print(json.dumps({
    "kept": out.table.column("id").to_pylist(),
    "reasons": sorted(r.reason for r in out.rejects),
    "unique": compile_contract(SPEC).unique,
    "pandera": "pandera" in sys.modules,
}))
"""


def write_module(folder: Path, allowed: list[str], qty_check: str) -> None:
    text = MODULE.format(allowed=allowed, qty_check=qty_check)
    (folder / "contracts.py").write_text(textwrap.dedent(text))


def probe(folder: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(folder)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def cached_files(folder: Path) -> list[str]:
    return sorted(p.name for p in (folder / "__pycache__").glob("*.contract-*.json"))


def test_later_processes_validate_without_pandera_and_agree(tmp_path: Path) -> None:
    write_module(tmp_path, ["a", "b"], "pdr.Check.in_range(0, 10)")
    first = probe(tmp_path)
    assert first["pandera"]  # the first compilation builds the schema
    assert len(cached_files(tmp_path)) == 1
    second = probe(tmp_path)
    assert not second["pandera"]
    # Same verdicts, same words: "c" is not allowed, -1 is out of range.
    assert second == {**first, "pandera": False}
    assert second["kept"] == ["r0", "r3"]
    assert second["unique"] == ["id"]
    assert len(second["reasons"]) == 2


def test_editing_the_contract_module_is_never_served_stale(tmp_path: Path) -> None:
    write_module(tmp_path, ["a", "b"], "pdr.Check.in_range(0, 10)")
    before = probe(tmp_path)
    probe(tmp_path)  # from the cache
    write_module(tmp_path, ["a", "c"], "pdr.Check.in_range(-5, 10)")  # a constant and a check
    after = probe(tmp_path)
    assert after["pandera"]  # recompiled, not read from the old file
    assert before["kept"] == ["r0", "r3"]
    assert after["kept"] == ["r0", "r2", "r3"]  # now "c" is allowed and "b" is not
    assert len(cached_files(tmp_path)) == 2


def test_contracts_arrow_cannot_run_are_not_cached(tmp_path: Path) -> None:
    write_module(tmp_path, ["a", "b"], "pdr.Check(lambda s: s >= 0)")
    first, second = probe(tmp_path), probe(tmp_path)
    assert first["pandera"] and second["pandera"]  # a custom check needs pandera every time
    assert first["kept"] == second["kept"] == ["r0", "r3"]
    assert cached_files(tmp_path) == []
