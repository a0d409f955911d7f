"""Benchmark task 10 at a tiny size: the Dagster run of one day, its per-layer numbers, the
row checks of a peer, and the process-tree memory sampling it relies on."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from benchmarks import measure
from benchmarks.bigday import big_day_case, layer_of
from benchmarks.config import Paths, Scale
from benchmarks.datagen import Inputs
from benchmarks.report_bigday import big_day_table
from benchmarks.runner import run_case
from benchmarks.sampling import run_sampled

ROOT = Path(__file__).resolve().parents[1]
SCALE = Scale("test", big_day_rows=(3_000, 9_000), big_day_files=(2, 1), peer_timeout_s=600)


def test_big_day_runs_every_layer_in_one_dagster_run_and_checks_the_rows(tmp_path: Path) -> None:
    paths = Paths(ROOT, tmp_path)
    case = big_day_case(SCALE, Inputs(SCALE, paths.data(SCALE), print), paths)
    # the larger day and the peer of the lake's own environment (two processes, not six)
    case.engines = [e for e in case.engines if e.label in ("ours 9k rows", "polars, streaming")]
    record = run_case(case, print)
    slots = record["engines"]
    assert list(slots) == ["ours 9k rows", "polars, streaming"]
    slot = slots["ours 9k rows"]
    assert "failed" not in slot and not slot.get("problems"), slot
    run = slot["runs"][0]
    value = run["value"]
    assert (value["rows_bronze"], value["rows_silver"], value["rows_quarantined"]) == (
        9_000,
        9_000,
        0,
    )
    assert set(value["layers"]) == {"bronze", "silver", "gold", "compaction", "checks"}
    layers = value["layers"]
    assert all(x["seconds"] > 0 for x in layers.values()), layers
    # a layer's peak is the tree's memory while it ran (rounded): never above the run's peak
    peak = round(run["max_rss_mib"])
    assert all(0 < x["peak_rss_mib"] <= peak for x in layers.values()), (layers, peak)
    assert run["max_rss_mib"] > 100  # the Dagster process itself was sampled
    peer = slots["polars, streaming"]
    assert "failed" not in peer and not peer.get("problems"), peer
    assert peer["runs"][0]["extra"]["rows_out"] == 9_000  # counted from its Iceberg table
    table = big_day_table(record)
    assert "| ours 9k rows, bronze + silver steps |" in table and "| polars, streaming |" in table


def test_layers_are_named_by_the_steps_asset_keys() -> None:
    assert layer_of("lake__bronze__events") == "bronze"
    assert layer_of("lake__gold__events_top_domains") == "gold"
    assert layer_of("lake__maintenance__events_silver_compaction") == "compaction"
    assert layer_of("lake__silver__events_table_health") == "checks"


_GRANDCHILD = (
    "import subprocess, sys; "
    "code = 'import time; b = bytearray(300 << 20); b[::4096] = bytes(len(b[::4096])); "
    "time.sleep(1.5)'; "
    "subprocess.run([sys.executable, '-c', code], check=True)"
)


def test_sampling_sees_the_memory_of_grandchildren() -> None:
    m = run_sampled([sys.executable, "-c", _GRANDCHILD], interval=0.05)
    assert m.max_rss_mib > 300  # the 300 MiB live in a grandchild, not in the process started
    assert m.extra["rss_samples"] > 5


def test_sampling_stops_a_tree_over_its_memory_cap() -> None:
    with pytest.raises(measure.RunFailed, match="over the 200 MiB cap"):
        run_sampled([sys.executable, "-c", _GRANDCHILD], interval=0.05, rss_cap_mib=200)


def test_the_conversion_peers_write_at_the_lakes_own_zstd_level() -> None:
    """Tasks 1-3 compare like with like only while the peers' level (which their processes
    cannot import from the lake) follows the lake's default for Hive Parquet."""
    from benchmarks.schemas import ZSTD_LEVEL
    from lake_pipelines.lake.parquet.options import DEFAULT_LEVEL

    assert ZSTD_LEVEL == DEFAULT_LEVEL
