"""The gold window sensor: a late file for an older day D re-runs silver for D alone; the
sensor then requests the gold days that read D (D..D+6 of the 7-day active users, D of the
daily tables), and running its requests brings gold up to date."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from pathlib import Path

import dagster as dg

from lake_pipelines.assets import build_dataset_assets
from lake_pipelines.datasets import get_dataset
from lake_pipelines.definitions import defs
from lake_pipelines.lake.analytics.queries import gold_identifier, gold_tables_for
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.sample_data import generate_events
from lake_pipelines.sensors import RANGE_END_TAG, RANGE_START_TAG
from lake_pipelines_tests.conftest import dagster_resources, sql_catalog

SPEC = get_dataset("events")
START = date(2026, 11, 1)
DAYS = [START + timedelta(days=i) for i in range(10)]
BRONZE = dg.AssetKey(["lake", "bronze", "events"])
SILVER = dg.AssetKey(["lake", "silver", "events"])
[ACTIVE] = [g for g in gold_tables_for(SPEC) if g.lookback_days]
HEADER = "event_id,ts,user_id,session_id,event_type,url,price,properties,latencies_ms\n"


def requested(result) -> set[tuple[str, str, str]]:
    """(gold table, first day, last day) of each run request."""
    out = set()
    for r in result.run_requests or []:
        [key] = r.asset_selection
        first = r.partition_key or r.tags[RANGE_START_TAG]
        out.add((key.path[-1], first, r.partition_key or r.tags[RANGE_END_TAG]))
    return out


def test_a_late_silver_day_gets_the_gold_days_that_read_it_recomputed(
    local_store: ObjectStore, tmp_path: Path
) -> None:
    generate_events(local_store, START, days=len(DAYS), rows_per_day=30, seed=5, bad_rows=False)
    assets = build_dataset_assets(SPEC)
    resources = dagster_resources(local_store, tmp_path / "c.db")
    sensor = defs.resolve_sensor_def("events_gold_window_sensor")  # as the code location has it
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING

    def active_users() -> dict[date, int]:
        catalog = sql_catalog(local_store, tmp_path / "c.db")
        rows = catalog.load_table(gold_identifier(SPEC, ACTIVE)).scan().to_arrow().to_pylist()
        return {r["day"]: r["active_users_7d"] for r in rows}

    def materialize(selection, **kwargs) -> None:
        result = dg.materialize(
            assets, selection=selection, resources=resources, instance=instance, **kwargs
        )
        assert result.success

    def tick(cursor: str | None):
        return sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
        )

    with dg.instance_for_test() as instance:
        range_tags = {RANGE_START_TAG: str(DAYS[0]), RANGE_END_TAG: str(DAYS[-1])}
        materialize([a.key for a in assets], tags=range_tags)  # every layer, ten days
        first = tick(None)
        assert requested(first) == set() and first.cursor  # gold is newer than silver
        before = active_users()

        # A late file for day D with a user no other day has; bronze and silver re-run D only.
        late = DAYS[2]
        row = f"late-1,{late}T12:00:00Z,late-user,s1,click,,,,\n"
        local_store.write_bytes(f"landing/events/{late}/late.csv", (HEADER + row).encode())
        materialize([BRONZE, SILVER], partition_key=str(late))

        # While a run that writes gold is unfinished, the sensor waits (cursor unchanged).
        running = dg.DagsterRun(
            job_name="events_daily", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED
        )
        instance.add_run(running)
        waiting = tick(first.cursor)
        assert requested(waiting) == set() and waiting.cursor == first.cursor
        assert "waiting for the unfinished runs" in (waiting.skip_message or "")
        instance.delete_run(running.run_id)

        result = tick(first.cursor)
        end = late + timedelta(days=ACTIVE.lookback_days)
        assert requested(result) == {
            (ACTIVE.name, str(late), str(end)),
            *((g.name, str(late), str(late)) for g in gold_tables_for(SPEC) if g != ACTIVE),
        }
        for request in result.run_requests or []:
            materialize(request.asset_selection, tags=request.tags)
        window = {late + timedelta(days=k) for k in range(ACTIVE.lookback_days + 1)}
        assert active_users() == {d: before[d] + (d in window) for d in DAYS}

        # Gold is current again; the same silver history requests nothing more.
        assert requested(tick(result.cursor)) == set()
        assert requested(tick(None)) == set()
