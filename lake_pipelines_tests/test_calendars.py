"""Datasets on their own calendars side by side: a dataset from 2024 next to those of 2026.

`calendar_defs` declares `trips` (start 2024-01-01, own ``year``/``month``/``day`` columns) next
to the project's datasets, as a user adds one. Everything that used to assume one shared
calendar is run over it: the code location, jobs, schedules, the landing sensor, and every
layer through Dagster's CLI via `lake_pipelines.backfill`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pytest

from lake_pipelines.backfill import plan_backfill
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.resources import ObjectStoreResource
from lake_pipelines.sample_data import generate_events
from lake_pipelines_tests.calendar_defs import TRIPS, defs, land_trips
from lake_pipelines_tests.conftest import sql_catalog
from lake_pipelines_tests.support import LAKE_VARIABLES, duckdb_hive, normalise

ROOT = Path(__file__).resolve().parents[1]
TRIP_COLUMNS = list(TRIPS.schema.names)
MODULE = "lake_pipelines_tests.calendar_defs"


def key(layer: str, name: str) -> dg.AssetKey:
    return dg.AssetKey(["lake", layer, name])


def test_each_dataset_keeps_its_own_calendar() -> None:
    dg.Definitions.validate_loadable(defs)
    trips = defs.resolve_job_def("trips_daily").partitions_def
    events = defs.resolve_job_def("events_daily").partitions_def
    assert trips is not None and events is not None
    assert trips.get_first_partition_key() == "2024-01-01"
    assert trips.get_last_partition_key() == "2026-06-30"  # end_date is exclusive
    assert events.get_first_partition_key() == "2026-01-01"
    # Each job selects its dataset only, so no job mixes the two calendars.
    graph = defs.resolve_asset_graph()
    for dataset in ("trips", "events", "orders"):
        job = defs.resolve_job_def(f"{dataset}_daily")
        keys = {k for k in job.asset_layer.selected_asset_keys}
        assert keys and all(graph.get(k).group_name == dataset for k in keys)
    assert defs.resolve_schedule_def("trips_daily_schedule").job_name == "trips_daily"
    assert defs.resolve_sensor_def("trips_landing_sensor").job_name == "trips_daily"


def test_the_daily_schedule_follows_its_dataset_calendar() -> None:
    schedule = defs.resolve_schedule_def("trips_daily_schedule")
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2024, 3, 2, 1, 0, tzinfo=UTC)
        )
        data = schedule.evaluate_tick(context)
    # 2024 is before every other dataset's calendar; trips has the day.
    assert [r.partition_key for r in data.run_requests or []] == ["2024-03-01"]


def test_the_landing_sensor_requests_days_of_its_own_calendar(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    store = ObjectStore(f"file://{tmp_path / 'lake'}")
    land_trips(store, date(2025, 6, 1), rows=5)
    land_trips(store, date(2023, 12, 31), rows=5)  # before trips' calendar: not a partition
    land_trips(store, date(2026, 7, 1), rows=5)  # after it ended: never a partition
    sensor = defs.resolve_sensor_def("trips_landing_sensor")
    assert sensor.job_name == "trips_daily"
    context = dg.build_sensor_context(
        definitions=defs, resources={"object_store": ObjectStoreResource(url=store.url)}
    )
    result = sensor.evaluate_tick(context)
    assert result.run_requests is not None
    assert [r.partition_key for r in result.run_requests] == ["2025-06-01"]
    log = capfd.readouterr().err  # the sensor's log: Dagster's handler writes to stderr
    assert "2023-12-31 is before the dataset's first day 2024-01-01" in log
    assert "2026-07-01 is after the dataset's last day 2026-06-30" in log


def test_the_backfill_plan_gives_each_calendar_its_part_of_the_range() -> None:
    plan = plan_backfill(defs, date(2025, 12, 30), date(2026, 1, 2))
    commands = [s.args("m")[6:] for s in plan.steps]
    assert commands == [
        ["group:events", "--partition-range", "2026-01-01...2026-01-02"],
        ["group:orders", "--partition-range", "2026-01-01...2026-01-02"],
        ["group:trips", "--partition-range", "2025-12-30...2026-01-02"],
        ["group:maintenance"],
    ]
    one_day = plan_backfill(defs, date(2026, 1, 1), date(2026, 1, 1), maintenance=False)
    assert one_day.steps[0].args("m")[6:] == [
        "group:events",
        "--partition",
        "2026-01-01",
    ]
    assert len(one_day.steps) == 3  # no maintenance
    before_all = plan_backfill(defs, date(2023, 1, 1), date(2023, 1, 2))
    assert [s.selection for s in before_all.steps] == ["group:maintenance"]
    assert sorted(r.split(":")[0] for r in before_all.skipped) == ["events", "orders", "trips"]
    after_trips = plan_backfill(defs, date(2026, 7, 1), date(2026, 7, 1), maintenance=False)
    assert [s.selection for s in after_trips.steps] == ["group:events", "group:orders"]
    assert [r.split(":")[0] for r in after_trips.skipped] == ["trips"]
    with pytest.raises(ValueError, match="before"):
        plan_backfill(defs, date(2026, 1, 2), date(2026, 1, 1))


@pytest.mark.e2e
def test_every_calendar_through_every_layer_by_the_cli(tmp_path: Path) -> None:
    lake, home = tmp_path / "lake", tmp_path / "dagster"
    store = ObjectStore(str(lake))
    days = [date(2025, 12, 31), date(2026, 1, 1)]
    landed = {d.isoformat(): land_trips(store, d, rows=120, seed=3) for d in days}
    events = generate_events(store, days[1], days=1, rows_per_day=200, seed=5, bad_rows=False)
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    env = {k: v for k, v in os.environ.items() if k not in LAKE_VARIABLES}
    env.update(LAKE_HOME=str(lake), DAGSTER_HOME=str(home))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "lake_pipelines.backfill",
            "-m",
            MODULE,
            "--start",
            days[0].isoformat(),
            "--end",
            days[1].isoformat(),
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert done.stderr.count("RUN_SUCCESS") == 4  # events, orders, trips, maintenance
    # what `make demo` prints (this is its command): no warning a user cannot act on
    log = done.stdout + done.stderr
    assert not re.findall(r"^\S+:\d+: \w*Warning: .*$", log, re.MULTILINE)
    assert "Delete operation did not match any records" not in log
    rewriting = [line for line in log.splitlines() if " rewriting " in line]
    assert all(" - compacting " in line for line in rewriting), rewriting

    with dg.DagsterInstance.from_config(str(home)) as instance:
        for layer in ("bronze", "silver"):
            assert instance.get_materialized_partitions(key(layer, "trips")) == set(landed)
            assert instance.get_materialized_partitions(key(layer, "events")) == {"2026-01-01"}
        for asset in ("trips_bronze_compaction", "trips_iceberg_snapshots"):
            assert instance.get_latest_materialization_event(key("maintenance", asset))

    # The trips' own year/month/day come back unchanged from bronze (read by DuckDB with the
    # dataset's utc_* levels) and from silver, every row, in both years.
    expected = sorted(
        ({c: normalise(v) for c, v in r.items()} for rows in landed.values() for r in rows),
        key=lambda r: r["trip_id"],
    )
    for r in expected:
        r["ts"] = normalise(datetime.fromisoformat(r["ts"]))
    bronze = duckdb_hive(
        store.path(TRIPS.bronze_prefix), TRIP_COLUMNS, TRIPS.hive_partition_columns
    )
    catalog = sql_catalog(store, lake / "catalog.db")
    silver = catalog.load_table(TRIPS.table_name).scan().to_arrow().select(TRIP_COLUMNS)
    for table in (bronze, silver):
        got = sorted(
            ({c: normalise(v) for c, v in r.items()} for r in table.to_pylist()),
            key=lambda r: r["trip_id"],
        )
        assert got == expected
    local_days = {(r["year"], r["month"], r["day"]) for r in expected}
    assert (2025, 12, 30) in local_days  # early UTC hours of 12-31 are 12-30 in New York
    events_rows = catalog.load_table("lake.events").scan().to_arrow().num_rows
    assert events_rows == events[0].valid.num_rows
