"""Schedules and declarative automation: what runs without anyone clicking, and what does not."""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._config import Shape, process_config
from dagster._core.instance.config import dagster_instance_config_schema

from lake_pipelines.assets import build_dataset_assets
from lake_pipelines.assets.common import partitions_for
from lake_pipelines.automation import AUTOMATION_SENSOR
from lake_pipelines.datasets import ALL_DATASETS, get_dataset
from lake_pipelines.definitions import defs
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.sample_data import generate_events
from lake_pipelines_tests.conftest import dagster_resources

ROOT = Path(__file__).resolve().parents[1]
SPEC = get_dataset("events")
BRONZE = dg.AssetKey(["lake", "bronze", "events"])
SILVER = dg.AssetKey(["lake", "silver", "events"])
GOLD = dg.AssetKey(["lake", "gold", "events_daily_metrics"])


def test_default_statuses() -> None:
    repo = defs.get_repository_def()
    for spec in ALL_DATASETS:
        schedule = repo.get_schedule_def(f"{spec.name}_daily_schedule")
        assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
        sensor = repo.get_sensor_def(f"{spec.name}_landing_sensor")
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
        assert sensor.job_name == f"{spec.name}_daily"
    automation = repo.get_sensor_def(AUTOMATION_SENSOR)
    assert automation.default_status == dg.DefaultSensorStatus.RUNNING
    # Ours covers every asset, so Dagster adds no (stopped) default automation sensor.
    assert "default_automation_condition_sensor" not in {s.name for s in repo.sensor_defs}


def test_daily_schedule_catches_up_yesterday() -> None:
    schedule = defs.resolve_schedule_def("events_daily_schedule")
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 11, 5, 1, 0, tzinfo=UTC)
        )
        data = schedule.evaluate_tick(context)
    assert [r.partition_key for r in data.run_requests or []] == ["2026-11-04"]
    assert data.run_requests is not None
    assert data.run_requests[0].tags["dagster/partition"] == "2026-11-04"


def test_silver_and_gold_follow_bronze(local_store: ObjectStore, tmp_path: Path) -> None:
    latest = partitions_for(SPEC).get_last_partition_key()
    assert latest is not None
    generate_events(
        local_store, date.fromisoformat(latest), days=1, rows_per_day=200, bad_rows=False
    )
    assets = build_dataset_assets(SPEC)
    resources = dagster_resources(local_store, tmp_path / "c.db")
    location = dg.Definitions(assets=assets, resources=resources)
    # The layers of one day; gold assets over several days (or maintenance) have other rules.
    followers = dg.AssetSelection.assets(SILVER, GOLD)

    def run(*keys: dg.AssetKey) -> None:
        result = dg.materialize(
            assets,
            selection=list(keys),
            partition_key=latest,
            resources=resources,
            instance=instance,
        )
        assert result.success

    def evaluate(cursor):
        return dg.evaluate_automation_conditions(
            defs=location, instance=instance, cursor=cursor, asset_selection=followers
        )

    with dg.instance_for_test() as instance:
        start = evaluate(None)
        assert start.total_requested == 0  # bronze is missing: nothing downstream can run

        run(BRONZE)  # e.g. clicked in the UI, or a bronze-only backfill
        after_bronze = evaluate(start.cursor)
        assert after_bronze.get_requested_partitions(SILVER) == {latest}
        assert after_bronze.get_requested_partitions(GOLD) == {latest}  # in the same tick

        run(SILVER, GOLD)  # what the automation sensor launches
        settled = evaluate(after_bronze.cursor)
        assert settled.total_requested == 0

        # A run of the daily job (sensor or schedule) updates every layer: nothing follows.
        run(BRONZE, SILVER, GOLD)
        assert evaluate(settled.cursor).total_requested == 0


def test_instance_settings_are_valid_and_postgres_variant_matches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("DAGSTER_PG_HOST", "DAGSTER_PG_DB", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD"):
        monkeypatch.setenv(var, "x")
    configs = {}
    for name in ("dagster.yaml", "dagster.postgres.yaml"):
        raw = yaml.safe_load((ROOT / name).read_text())
        checked = process_config(Shape(dagster_instance_config_schema()), raw)
        assert checked.success, (name, [e.message for e in checked.errors or []])
        configs[name] = raw
    postgres = configs["dagster.postgres.yaml"].pop("storage")["postgres"]["postgres_db"]
    assert postgres["scheme"] == "postgresql+psycopg2"  # SQLAlchemy 2.1 would pick psycopg 3
    assert configs["dagster.postgres.yaml"] == configs["dagster.yaml"]  # the same settings
    settings = configs["dagster.yaml"]
    assert settings["telemetry"] == {"enabled": False}
    assert settings["concurrency"]["pools"] == {"default_limit": 1, "granularity": "op"}
    assert settings["run_retries"]["enabled"] and settings["run_monitoring"]["enabled"]
    # Every Iceberg writer declares a pool named after its table: one writer per table.
    writers = [k for k in defs.resolve_all_asset_keys() if k.path[1] in ("silver", "gold")]
    pools = {k.to_user_string(): defs.resolve_assets_def(k).op.pool for k in writers}
    assert pools and all(p and p.startswith("iceberg_") for p in pools.values()), pools
    assert len(set(pools.values())) == len(pools)  # one pool per table


def test_workspace_and_pyproject_name_the_same_code_location() -> None:
    (entry,) = yaml.safe_load((ROOT / "workspace.yaml").read_text())["load_from"]
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dagster"]
    assert entry["python_module"] == {
        "module_name": tool["module_name"],
        "location_name": tool["code_location_name"],
    }
