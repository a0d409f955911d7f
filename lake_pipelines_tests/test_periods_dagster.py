"""The Dagster side of an hourly dataset and of one on local days (`period_defs`): partitions,
jobs, schedules, the landing sensor, the backfill plan, and the layers through Dagster's CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pytest

from lake_pipelines.backfill import plan_backfill
from lake_pipelines.lake.period import Calendar, Period
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.resources import ObjectStoreResource
from lake_pipelines.sensors import RANGE_END_TAG, RANGE_START_TAG
from lake_pipelines_tests.conftest import sql_catalog
from lake_pipelines_tests.period_defs import READINGS, defs, land_readings, land_shifts
from lake_pipelines_tests.support import LAKE_VARIABLES, summary_of

ROOT = Path(__file__).resolve().parents[1]
# Resolved while collecting, before any test's Dagster instance exists: resolving it later,
# after an ephemeral instance of another test was garbage-collected, can meet Dagster's
# leftover defs-state storage of that instance ("undefined DagsterInstance weakref").
defs.get_repository_def()
MODULE = "lake_pipelines_tests.period_defs"
HOURLY = Calendar("hourly")
BERLIN = Calendar("daily", "Europe/Berlin")


def _hour(key: str) -> Period:
    hour = HOURLY.of_key(key)
    assert isinstance(hour, Period)
    return hour


def key(layer: str, name: str) -> dg.AssetKey:
    return dg.AssetKey(["lake", layer, name])


def test_hourly_and_zoned_datasets_get_their_own_partitions_and_jobs() -> None:
    dg.Definitions.validate_loadable(defs)
    readings = defs.resolve_job_def("readings_hourly").partitions_def
    assert isinstance(readings, dg.HourlyPartitionsDefinition)
    assert readings.get_first_partition_key() == "2025-03-01-00:00"
    assert readings.timezone == "UTC"
    shifts = defs.resolve_job_def("shifts_daily").partitions_def
    assert isinstance(shifts, dg.DailyPartitionsDefinition)
    assert shifts.timezone == "Europe/Berlin"
    assert shifts.get_first_partition_key() == "2025-01-01"
    graph = defs.resolve_asset_graph()
    assert graph.get(key("bronze", "readings")).partitions_def == readings
    assert graph.get(key("silver", "readings")).partitions_def == readings
    groups = {
        k.path[-1] for k in graph.get_all_asset_keys() if graph.get(k).group_name == "readings"
    }
    assert groups == {"readings"}  # bronze and silver: gold tables are daily UTC, none here
    assert defs.resolve_sensor_def("readings_landing_sensor").job_name == "readings_hourly"


def test_the_hourly_schedule_requests_the_hour_before() -> None:
    schedule = defs.resolve_schedule_def("readings_hourly_schedule")
    assert schedule.cron_schedule == "10 * * * *"
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2025, 3, 2, 5, 10, tzinfo=UTC)
        )
        data = schedule.evaluate_tick(context)
    assert [r.partition_key for r in data.run_requests or []] == ["2025-03-02-04:00"]


def test_the_zoned_schedule_runs_after_the_local_midnight() -> None:
    schedule = defs.resolve_schedule_def("shifts_daily_schedule")
    assert schedule.execution_timezone == "Europe/Berlin"
    with dg.instance_for_test() as instance:
        # 01:00 in Berlin on 06-02 is 23:00 UTC on 06-01: the local day 06-01 is over
        when = datetime(2025, 6, 1, 23, 0, tzinfo=UTC)
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=when)
        data = schedule.evaluate_tick(context)
    assert [r.partition_key for r in data.run_requests or []] == ["2025-06-01"]


def test_the_landing_sensor_maps_hour_folders_to_hour_keys(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    store = ObjectStore(f"file://{tmp_path / 'lake'}")
    for folder in ("2025-03-02T04", "2025-03-02T05", "2025-03-02T07", "2025-02-28T23"):
        land_readings(store, HOURLY.of_folder(folder), rows=2)  # type: ignore[arg-type]
    store.write_bytes("landing/readings/2025-03-02/a.csv", b"reading_id,ts\nx,2025-03-02\n")
    land_shifts(store, BERLIN.of_key("2025-06-01"), ["2025-05-31T22:30:00Z"])
    context = dg.build_sensor_context(
        definitions=defs, resources={"object_store": ObjectStoreResource(url=store.url)}
    )
    result = defs.resolve_sensor_def("readings_landing_sensor").evaluate_tick(context)
    requests = result.run_requests or []
    # consecutive hours share a run (a range of keys); the hour after the gap has its own
    assert [
        (r.partition_key, r.tags.get(RANGE_START_TAG), r.tags.get(RANGE_END_TAG)) for r in requests
    ] == [
        (None, "2025-03-02-04:00", "2025-03-02-05:00"),
        ("2025-03-02-07:00", None, None),
    ]
    log = capfd.readouterr().err
    assert "2025-02-28-23:00 is before the dataset's first day 2025-03-01-00:00" in log
    assert "not in a YYYY-MM-DDTHH folder" in log  # a daily folder of an hourly dataset
    shifts = defs.resolve_sensor_def("shifts_landing_sensor").evaluate_tick(context)
    assert [r.partition_key for r in shifts.run_requests or []] == ["2025-06-01"]


def test_the_backfill_plan_covers_every_hour_and_the_local_days() -> None:
    plan = plan_backfill(defs, date(2025, 3, 1), date(2025, 3, 7))
    commands = {s.selection: s.args("m")[6:] for s in plan.steps}
    assert commands["group:readings"] == [
        "group:readings",
        "--partition-range",
        "2025-03-01-00:00...2025-03-07-23:00",
    ]
    assert commands["group:shifts"] == [
        "group:shifts",
        "--partition-range",
        "2025-03-01...2025-03-07",
    ]
    assert sorted(r.split(":")[0] for r in plan.skipped) == ["events", "orders"]


@pytest.mark.e2e
def test_hours_and_local_days_through_every_layer_by_the_cli(tmp_path: Path) -> None:
    lake, home = tmp_path / "lake", tmp_path / "dagster"
    store = ObjectStore(str(lake))
    hours = [_hour(f"2025-03-02-{h:02d}:00") for h in range(24)]
    landed = {h: land_readings(store, h, rows=5, seed=1) for h in hours}
    land_shifts(store, BERLIN.of_key("2025-03-02"), ["2025-03-01T23:30:00Z"])
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    env = {k: v for k, v in os.environ.items() if k not in LAKE_VARIABLES}
    env.update(LAKE_HOME=str(lake), DAGSTER_HOME=str(home))
    args = ["-m", MODULE, "--start", "2025-03-02", "--end", "2025-03-02"]
    done = subprocess.run(
        [sys.executable, "-m", "lake_pipelines.backfill", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert done.stderr.count("RUN_SUCCESS") == 3  # readings, shifts, maintenance
    keys = {h.key for h in hours}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for layer in ("bronze", "silver"):
            assert instance.get_materialized_partitions(key(layer, "readings")) == keys
            assert instance.get_materialized_partitions(key(layer, "shifts")) == {"2025-03-02"}
        for asset in ("readings_bronze_compaction", "readings_iceberg_snapshots"):
            assert instance.get_latest_materialization_event(key("maintenance", asset))
    catalog = sql_catalog(store, lake / "catalog.db")
    table = catalog.load_table(READINGS.table_name)
    got = set(table.scan().to_arrow().column("reading_id").to_pylist())
    assert got == {r["reading_id"] for rows in landed.values() for r in rows}
    assert len(table.snapshots()) == 1  # the day's 24 hours in one snapshot
    shifts = catalog.load_table("lake.shifts").scan().to_arrow()
    assert shifts.column("shift_id").to_pylist() == ["s-0-2025-03-01T23:30:00Z"]


def test_the_sensor_run_of_the_hourly_job_commits_each_hour(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = tmp_path / "lake"
    for var in LAKE_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LAKE_HOME", str(lake))
    store = ObjectStore(str(lake))
    hours = [_hour(k) for k in ("2025-03-02-23:00", "2025-03-03-00:00")]
    landed = {h.key: land_readings(store, h, rows=6, seed=4) for h in hours}
    context = dg.build_sensor_context(
        definitions=defs, resources={"object_store": ObjectStoreResource()}
    )
    requests = (
        defs.resolve_sensor_def("readings_landing_sensor").evaluate_tick(context).run_requests
    )
    assert requests is not None
    (request,) = requests
    with dg.instance_for_test() as instance:
        run = defs.resolve_job_def("readings_hourly").execute_in_process(
            instance=instance, tags=request.tags
        )
        assert run.success
        for layer in ("bronze", "silver"):
            asset = key(layer, "readings")
            assert instance.get_materialized_partitions(asset) == set(landed)
            for hour_key, rows in landed.items():
                records = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=asset, asset_partitions=[hour_key]), limit=1
                ).records
                materialization = records[0].asset_materialization
                assert materialization is not None and materialization.partition == hour_key
                # each hour's own numbers on its own event (`record_days`)
                assert materialization.metadata["dagster/partition_row_count"].value == len(rows)
    catalog = sql_catalog(store, lake / "catalog.db")
    table = catalog.load_table(READINGS.table_name)
    got = set(table.scan().to_arrow().column("reading_id").to_pylist())
    assert got == {r["reading_id"] for rows in landed.values() for r in rows}
    assert summary_of(table.current_snapshot())["lake.partition"] == "2025-03-02T23..2025-03-03T00"
