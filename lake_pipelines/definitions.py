"""The code location: every asset, check, job, schedule and resource of lake_pipelines."""

from __future__ import annotations

import dagster as dg

from lake_pipelines.assets import build_all_assets
from lake_pipelines.automation import build_jobs_and_schedules
from lake_pipelines.resources import (
    DataFusionResource,
    IcebergCatalogResource,
    ObjectStoreResource,
)


def build_definitions() -> dg.Definitions:
    jobs, schedules = build_jobs_and_schedules()
    return dg.Definitions(
        assets=build_all_assets(),
        jobs=jobs,
        schedules=schedules,
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
