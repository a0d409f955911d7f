"""Dagster's newer CLI (`dg`) against the project: `[tool.dg]` in pyproject points it at the
same definitions as `dagster -m lake_pipelines.definitions`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg

from lake_pipelines.datasets import get_dataset
from lake_pipelines.definitions import defs
from lake_pipelines.lake.bronze import stored_counts
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.sample_data import generate_events
from lake_pipelines_tests.support import LAKE_VARIABLES

ROOT = Path(__file__).resolve().parents[1]
DG = str(Path(sys.executable).with_name("dg"))
SPEC = get_dataset("events")


def _dg(*args: str, lake: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """`dg ARGS` as `uv run dg ARGS` runs it in the project folder."""
    env = {k: v for k, v in os.environ.items() if k not in LAKE_VARIABLES}
    env.update(
        LAKE_HOME=str(lake),
        DAGSTER_HOME=str(home),
        VIRTUAL_ENV=str(Path(sys.executable).parents[1]),
        NO_COLOR="1",
    )
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return subprocess.run(
        [DG, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def test_dg_lists_and_checks_the_definitions(tmp_path: Path) -> None:
    listed = _dg("list", "defs", "--json", lake=tmp_path / "lake", home=tmp_path / "home")
    assert listed.returncode == 0, listed.stderr[-3000:]
    found = json.loads(listed.stdout)
    keys = {a["asset_key"] for a in found["assets"]}
    graph = defs.resolve_asset_graph()
    assert keys == {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {j["name"] for j in found["jobs"]} >= {"events_daily", "orders_daily"}
    assert "events_landing_sensor" in {s["name"] for s in found["sensors"]}

    checked = _dg("check", "defs", lake=tmp_path / "lake", home=tmp_path / "home")
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr
    assert "Warning" not in checked.stdout + checked.stderr


def test_dg_launch_materializes_a_partition(tmp_path: Path) -> None:
    lake, home = tmp_path / "lake", tmp_path / "home"
    store = ObjectStore(str(lake))
    (landed,) = generate_events(
        store, date(2026, 11, 3), days=1, rows_per_day=120, seed=7, bad_rows=False
    )
    done = _dg(
        "launch",
        "--assets",
        "lake/bronze/events",
        "--partition",
        "2026-11-03",
        lake=lake,
        home=home,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    counts = stored_counts(store, SPEC, date(2026, 11, 3))
    assert counts.rows_in_parquet == landed.valid.num_rows
    with dg.DagsterInstance.from_config(str(home)) as instance:
        key = dg.AssetKey(["lake", "bronze", "events"])
        assert instance.get_materialized_partitions(key) == {"2026-11-03"}


def test_dg_and_dagster_name_the_same_code_location() -> None:
    import tomllib

    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]
    project = tool["dg"]["project"]
    assert tool["dg"]["directory_type"] == "project"
    assert project["code_location_target_module"] == tool["dagster"]["module_name"]
    assert project["code_location_name"] == tool["dagster"]["code_location_name"]
