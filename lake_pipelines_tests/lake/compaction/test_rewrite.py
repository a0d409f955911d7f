"""The sorted stream under a memory budget."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from lake_pipelines.lake.compaction import external_sort
from lake_pipelines.lake.compaction.external_sort import sorted_stream
from lake_pipelines.lake.compaction.rewrite import conform
from lake_pipelines.lake.parquet.options import file_schema
from lake_pipelines_tests.lake.compaction.data import DAY, ORDER, SPEC, events
from lake_pipelines_tests.support import rows


def test_sorted_stream_streams_inputs_in_order_without_spilling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(6)
    whole = pa.concat_tables([events(rng, DAY, 300, 300 * i) for i in range(12)]).sort_by(ORDER)
    parts = [whole.slice(300 * i, 300) for i in range(12)]  # landed in order, none overlapping

    def no_spill(*_):
        raise AssertionError("spilled")

    monkeypatch.setattr(external_sort, "_spill", no_spill)
    floors = [(t, t["ts"][0]) for t in parts]  # each part starts where the rest starts
    chunks = list(sorted_stream(iter(floors), SPEC.sort_by, 60_000, str(tmp_path)))
    assert len(chunks) > 2  # written out as it came, not held until the end
    assert pa.concat_tables(chunks).equals(whole)


def test_the_merge_of_spilled_runs_holds_a_batch_per_run_not_the_runs(tmp_path: Path) -> None:
    """In a fresh process: 72 MB of rows spilled under a 4 MiB budget, then merged; the
    merge may add a few batches of each run to the resident memory, not the runs themselves
    (memory-mapped, every page it had read stayed resident: ~72 MB)."""
    probe = [sys.executable, "-m", "lake_pipelines_tests.sort_probe"]
    done = subprocess.run(
        [*probe, "3000000", str(4 << 20), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["rows"] == 3_000_000
    assert answer["merge_growth"] < answer["bytes"] / 4, answer
    assert not list(tmp_path.iterdir())  # spill files removed


def test_sorted_stream_spills_and_merges_into_one_sorted_sequence(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    tables = [events(rng, DAY, 300, 300 * i) for i in range(12)]
    chunks = list(sorted_stream(iter(tables), SPEC.sort_by, 20_000, str(tmp_path)))
    assert len(chunks) > 2  # merged from spilled runs, not sorted in one piece
    out = pa.concat_tables(chunks)
    assert out.select(list(SPEC.sort_by)).equals(out.sort_by(ORDER).select(list(SPEC.sort_by)))
    assert rows(out) == rows(pa.concat_tables(tables))
    assert not list(tmp_path.iterdir())  # spill files removed
    with pytest.raises(Exception, match="not in the output schema"):
        conform(tables[0].append_column("extra", pa.nulls(300)), file_schema(SPEC), "p")
