"""The snapshot maintenance asset frees the files of expired snapshots and keeps the data."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg

from lake_pipelines.assets import build_all_assets
from lake_pipelines.assets.snapshot_maintenance import build_snapshot_maintenance
from lake_pipelines.datasets import get_dataset
from lake_pipelines.definitions import defs
from lake_pipelines.lake.iceberg.maintenance import reachable_files
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.sample_data import generate_events
from lake_pipelines_tests.conftest import dagster_resources, sql_catalog

EVENTS = get_dataset("events")


def test_weekly_maintenance_job_includes_snapshot_maintenance() -> None:
    assert defs.schedules is not None
    schedules = [s for s in defs.schedules if "0 3 * * 0" in str(getattr(s, "cron_schedule", ""))]
    assert schedules, "a weekly maintenance schedule exists"
    assert isinstance(schedules[0], dg.ScheduleDefinition)
    job = defs.resolve_job_def(schedules[0].job_name)
    keys = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert "lake/maintenance/events_iceberg_snapshots" in keys


def test_snapshot_maintenance_asset(local_store: ObjectStore, tmp_path: Path) -> None:
    days = generate_events(local_store, date(2026, 11, 1), days=1, rows_per_day=400, seed=8)
    db = tmp_path / "c.db"
    resources = dagster_resources(local_store, db)
    with dg.instance_for_test() as instance:
        header = "event_id,ts,user_id,session_id,event_type,url,price,properties,latencies_ms\n"
        for i in range(3):  # three runs of the day with new files: dead files from the first two
            late = f"late-{i},2026-11-01T23:00:0{i}Z,u1,s1,click,,,,\n"
            local_store.write_bytes(
                f"landing/events/2026-11-01/late-{i}.csv", (header + late).encode()
            )
            assert dg.materialize(
                build_all_assets(),
                resources=resources,
                instance=instance,
                partition_key="2026-11-01",
            ).success
        catalog = sql_catalog(local_store, db)
        table = catalog.load_table(EVENTS.table_name)
        before = len(table.snapshots())
        result = dg.materialize(
            [build_snapshot_maintenance(EVENTS)],
            resources=resources,
            instance=instance,
            run_config={
                "ops": {
                    "lake__maintenance__events_iceberg_snapshots": {
                        "config": {"expire_older_than_days": 0, "retain_last": 1}
                    }
                }
            },
        )
        assert result.success
        # each MetadataValue's kind (and so .value's type) is known at run time
        meta: Mapping[str, Any] = result.asset_materializations_for_node(
            "lake__maintenance__events_iceberg_snapshots"
        )[0].metadata
    table = catalog.load_table(EVENTS.table_name)
    # the day tag protects the latest snapshot; everything else older goes
    assert meta["snapshots_expired"].value >= before - 2 > 0
    assert meta["files_deleted"].value > 0 and meta["bytes_deleted"].value > 0
    root = Path(table.location().removeprefix("file://"))
    on_disk = {str(p) for p in (root / "data").rglob("*.parquet")}
    live = {p.removeprefix("file://") for p in reachable_files(table) if "/data/" in p}
    assert on_disk == live
    data = table.scan().to_arrow()
    assert data.num_rows == days[0].valid.num_rows + 3
    valid_ids = set(days[0].valid.column("event_id").to_pylist()) | {"late-0", "late-1", "late-2"}
    assert set(data.column("event_id").to_pylist()) == valid_ids
