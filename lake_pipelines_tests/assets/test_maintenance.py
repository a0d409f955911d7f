"""The Dagster side of compaction: health checks warn, compaction assets fix, automation triggers."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa

from lake_pipelines.assets import build_dataset_assets
from lake_pipelines.assets.common import TABLE_HEALTH_CHECK
from lake_pipelines.assets.maintenance import (
    MAINTENANCE_JOB,
    WEEKLY_SCHEDULE,
    CompactionConfig,
    build_bronze_compaction,
    build_bronze_health_check,
    build_silver_compaction,
    build_silver_health_check,
)
from lake_pipelines.datasets import ALL_DATASETS, get_dataset
from lake_pipelines.definitions import defs
from lake_pipelines.lake.silver import ensure_silver_table
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines_tests.conftest import dagster_resources, sql_catalog
from lake_pipelines_tests.lake.compaction.data import (
    add_tiny_files,
    data_file_rows,
    hive_rows,
    land_tiny_files,
)
from lake_pipelines_tests.support import rows

SPEC = get_dataset("events")  # the default policy: files under 96 MiB are small, 4 allowed
DAY = date(2026, 11, 3)
BRONZE = dg.AssetKey(["lake", "bronze", "events"])
SILVER = dg.AssetKey(["lake", "silver", "events"])
BRONZE_COMPACTION = dg.AssetKey(["lake", "maintenance", "events_bronze_compaction"])
SILVER_COMPACTION = dg.AssetKey(["lake", "maintenance", "events_silver_compaction"])
HEALTH = [
    dg.AssetCheckKey(BRONZE, TABLE_HEALTH_CHECK),
    dg.AssetCheckKey(SILVER, TABLE_HEALTH_CHECK),
]


def _parts() -> tuple[
    list[dg.AssetsDefinition], list[dg.AssetsDefinition], list[dg.AssetChecksDefinition]
]:
    bronze, silver, *_ = build_dataset_assets(SPEC)
    compactions = [build_bronze_compaction(SPEC), build_silver_compaction(SPEC)]
    checks = [build_bronze_health_check(SPEC), build_silver_health_check(SPEC)]
    return [bronze, silver], compactions, checks


def _small_lake(store: ObjectStore, db: Path) -> tuple[pa.Table, pa.Table]:
    """Two bronze days of 12 tiny files each; a silver day of 10 tiny data files."""
    bronze = pa.concat_tables(
        [land_tiny_files(store, DAY + timedelta(days=i), 12, 5, seed=i) for i in range(2)]
    )
    table = ensure_silver_table(sql_catalog(store, db), SPEC)
    silver = add_tiny_files(store, table, DAY, 10, 5, seed=4)
    return bronze, silver


def _run_checks(
    layers: list[dg.AssetsDefinition],
    checks: list[dg.AssetChecksDefinition],
    store: ObjectStore,
    db: Path,
    instance: dg.DagsterInstance,
) -> dict[dg.AssetCheckKey, dg.AssetCheckEvaluation]:
    result = dg.materialize(
        [*layers, *checks],
        selection=dg.AssetSelection.checks(*HEALTH),
        resources=dagster_resources(store, db),
        instance=instance,
    )
    return {
        dg.AssetCheckKey(e.asset_key, e.check_name): e for e in result.get_asset_check_evaluations()
    }


def test_maintenance_is_part_of_the_code_location() -> None:
    dg.Definitions.validate_loadable(defs)
    keys = defs.resolve_all_asset_keys()
    graph = defs.resolve_asset_graph()
    for spec in ALL_DATASETS:
        for layer in ("bronze", "silver"):
            compaction = dg.AssetKey(["lake", "maintenance", f"{spec.name}_{layer}_compaction"])
            assert compaction in keys
            node = graph.get(compaction)
            assert node.parent_keys == {dg.AssetKey(["lake", layer, spec.name])}
            assert node.automation_condition is not None
            assert node.automation_condition.get_label() == "table health degraded"
            check = dg.AssetCheckKey(dg.AssetKey(["lake", layer, spec.name]), TABLE_HEALTH_CHECK)
            assert check in graph.asset_check_keys
            # the health check runs with every daily run of its dataset
            assert (
                check
                in defs.resolve_job_def(
                    f"{spec.name}_daily"
                ).asset_layer.asset_graph.asset_check_keys
            )
    schedule = defs.resolve_schedule_def(WEEKLY_SCHEDULE)
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert schedule.cron_schedule == "0 3 * * 0" and schedule.job_name == MAINTENANCE_JOB
    job = defs.resolve_job_def(MAINTENANCE_JOB)
    assert BRONZE_COMPACTION in job.asset_layer.executable_asset_keys
    assert SILVER_COMPACTION in job.asset_layer.executable_asset_keys


def test_health_checks_warn_and_the_compaction_assets_fix_it(
    local_store: ObjectStore, tmp_path: Path
) -> None:
    db = tmp_path / "catalog.db"
    bronze_rows, silver_rows = _small_lake(local_store, db)
    layers, compactions, checks = _parts()
    resources = dagster_resources(local_store, db)
    with dg.instance_for_test() as instance:
        warned = _run_checks(layers, checks, local_store, db, instance)
        for key in HEALTH:
            assert not warned[key].passed and warned[key].severity == dg.AssetCheckSeverity.WARN
        assert warned[HEALTH[0]].metadata["flagged_partitions"].value == 2
        assert warned[HEALTH[0]].metadata["max_small_files_in_a_partition"].value == 12
        assert warned[HEALTH[1]].metadata["flagged"].value == ["ts_day=2026-11-03"]

        ops = [
            "lake__maintenance__events_bronze_compaction",
            "lake__maintenance__events_silver_compaction",
        ]
        dry = dg.materialize(
            [*layers, *compactions],
            selection=[BRONZE_COMPACTION, SILVER_COMPACTION],
            resources=resources,
            instance=instance,
            run_config=dg.RunConfig({op: CompactionConfig(dry_run=True) for op in ops}),
        )
        assert dry.success
        planned_event = dry.get_asset_materialization_events()[0]
        # each MetadataValue's kind (and so .value's type) is known at run time
        planned: Mapping[str, Any] = planned_event.materialization.metadata
        assert planned["dry_run"].value is True and planned["partitions_touched"].value == 0
        assert "year=2026/month=11/day=03: 12 files, 12 small" in planned["plan"].value
        assert len(local_store.list(SPEC.bronze_prefix)) == 24  # nothing changed

        done = dg.materialize(  # new files read back and checksummed before the swap
            [*layers, *compactions],
            selection=[BRONZE_COMPACTION, SILVER_COMPACTION],
            resources=resources,
            instance=instance,
            run_config=dg.RunConfig({op: CompactionConfig(verify="content") for op in ops}),
        )
        assert done.success
        meta: dict[dg.AssetKey, Mapping[str, Any]] = {  # metadata values as above
            m.asset_key: m.metadata
            for e in done.get_asset_materialization_events()
            for m in [e.materialization]
        }
        bronze = meta[BRONZE_COMPACTION]
        assert bronze["verify"].value == meta[SILVER_COMPACTION]["verify"].value == "content"
        assert bronze["partitions_touched"].value == 2
        assert bronze["files_before"].value == 24 and bronze["files_after"].value == 2
        assert bronze["rows"].value == bronze_rows.num_rows
        assert bronze["bytes_after"].value < bronze["bytes_before"].value
        assert bronze["mb_per_second"].value > 0 and bronze["seconds"].value > 0
        assert set(bronze["checksums"].value) == {
            "year=2026/month=11/day=03",
            "year=2026/month=11/day=04",
        }
        silver = meta[SILVER_COMPACTION]
        assert silver["partitions_touched"].value == 1
        assert silver["files_before"].value == 10 and silver["files_after"].value == 1
        assert silver["rows"].value == silver_rows.num_rows
        assert silver["checksums"].value["ts_day=2026-11-03"].startswith(f"{silver_rows.num_rows}:")

        # the data is unchanged, read by DuckDB; the checks now pass
        assert rows(hive_rows(local_store)) == rows(bronze_rows)
        table = sql_catalog(local_store, db).load_table(SPEC.table_name)
        assert rows(data_file_rows(table)) == rows(silver_rows)
        healthy = _run_checks(layers, checks, local_store, db, instance)
        assert all(healthy[key].passed for key in HEALTH)


def test_a_health_warning_requests_one_compaction(local_store: ObjectStore, tmp_path: Path) -> None:
    db = tmp_path / "catalog.db"
    _small_lake(local_store, db)
    layers, compactions, checks = _parts()
    scoped = dg.Definitions(
        assets=[*layers, *compactions],
        asset_checks=checks,
        resources=dagster_resources(local_store, db),
    )
    with dg.instance_for_test() as instance:
        tick = dg.evaluate_automation_conditions(defs=scoped, instance=instance)
        assert tick.total_requested == 0
        _run_checks(layers, checks, local_store, db, instance)  # both warn
        tick = dg.evaluate_automation_conditions(defs=scoped, instance=instance, cursor=tick.cursor)
        requested = {r.key for r in tick.results if r.true_subset.size}
        assert requested == {BRONZE_COMPACTION, SILVER_COMPACTION}
        tick = dg.evaluate_automation_conditions(defs=scoped, instance=instance, cursor=tick.cursor)
        assert tick.total_requested == 0  # one request per warning, not one per tick
