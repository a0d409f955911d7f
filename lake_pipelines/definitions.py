"""The code location: every asset, check, job, schedule and resource of lake_pipelines."""

from __future__ import annotations

import dagster as dg

from lake_pipelines.assets import build_all_assets
from lake_pipelines.assets.maintenance import build_maintenance
from lake_pipelines.assets.snapshot_maintenance import build_all_snapshot_maintenance
from lake_pipelines.automation import build_jobs_and_schedules, build_sensors
from lake_pipelines.resources import (
    DataFusionResource,
    IcebergCatalogResource,
    ObjectStoreResource,
)


def build_definitions() -> dg.Definitions:
    jobs, schedules = build_jobs_and_schedules()
    maintenance = build_maintenance()
    return dg.Definitions(
        assets=[*build_all_assets(), *maintenance.assets, *build_all_snapshot_maintenance()],
        asset_checks=maintenance.checks,
        jobs=[*jobs, *maintenance.jobs],
        schedules=[*schedules, *maintenance.schedules],
        sensors=build_sensors(jobs),
        resources={
            # Empty fields resolve from the environment when a run starts (see settings.py).
            "object_store": ObjectStoreResource(),
            "iceberg": IcebergCatalogResource(),
            "datafusion": DataFusionResource(),
        },
        # Each step is Arrow-parallel already; one process per run avoids ~4 s of process
        # start-up per step (measured) and keeps single-run backfills in one process.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
