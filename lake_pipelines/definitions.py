"""The code location: every asset, check, job, schedule and resource of lake_pipelines."""

from __future__ import annotations

import warnings

import dagster as dg

from lake_pipelines.assets import build_all_assets
from lake_pipelines.assets.maintenance import build_maintenance
from lake_pipelines.assets.snapshot_maintenance import build_all_snapshot_maintenance
from lake_pipelines.automation import build_jobs_and_schedules, build_sensors
from lake_pipelines.datasets import ALL_DATASETS, DatasetSpec
from lake_pipelines.deployment import executor
from lake_pipelines.resources import (
    DataFusionResource,
    IcebergCatalogResource,
    ObjectStoreResource,
)

# Single-run backfills are a deliberate choice; Dagster marks `backfill_policy` beta and says so
# once per asset at every load of the code location (the CLI, the UI, each run's process).
# Silence that one notice only, so real warnings stand out in the logs.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)


def build_definitions(datasets: tuple[DatasetSpec, ...] = ALL_DATASETS) -> dg.Definitions:
    """The code location over `datasets` (every registered one by default). Each dataset
    keeps its own calendar: its assets, job, schedule and landing sensor share one
    partitions definition, and nothing spans datasets except unpartitioned maintenance."""
    jobs, schedules = build_jobs_and_schedules(datasets)
    maintenance = build_maintenance(datasets)
    return dg.Definitions(
        assets=[
            *build_all_assets(datasets),
            *maintenance.assets,
            *build_all_snapshot_maintenance(datasets),
        ],
        asset_checks=maintenance.checks,
        jobs=[*jobs, *maintenance.jobs],
        schedules=[*schedules, *maintenance.schedules],
        sensors=build_sensors(jobs, datasets),
        resources={
            # No field is set here: each run reads LAKE_* on its own worker when it builds a
            # store, catalog or session (lake_pipelines.config); run config may override.
            "object_store": ObjectStoreResource(),
            "iceberg": IcebergCatalogResource(),
            "datafusion": DataFusionResource(),
        },
        # Embedded (LAKE_EXECUTOR unset): each step is Arrow-parallel already; one process per
        # run avoids ~4 s of process start-up per step (measured) and keeps single-run
        # backfills in one process. Distributed: Dagster's Celery executor (deployment.py).
        executor=executor(),
    )


defs = build_definitions()
