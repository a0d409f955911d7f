"""The code location: every asset, check, job, schedule and resource of lake_pipelines."""

from __future__ import annotations

import os
import warnings

import dagster as dg

from lake_pipelines import config as settings
from lake_pipelines.assets import build_all_assets
from lake_pipelines.assets.maintenance import build_maintenance
from lake_pipelines.assets.snapshot_maintenance import build_all_snapshot_maintenance
from lake_pipelines.automation import build_jobs_and_schedules, build_sensors
from lake_pipelines.resources import (
    DataFusionResource,
    IcebergCatalogResource,
    ObjectStoreResource,
)

# Single-run backfills are a deliberate choice; Dagster marks `backfill_policy` beta and says so
# once per asset at every load of the code location (the CLI, the UI, each run's process).
# Silence that one notice only, so real warnings stand out in the logs.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)

# resource field → the setting behind it (settings.ENV names its environment variable)
_FIELD_SETTINGS = {
    "object_store": {
        "url": "store_url",
        "endpoint_url": "s3_endpoint_url",
        "region": "s3_region",
        "allow_http": "s3_allow_http",
        "addressing_style": "s3_addressing_style",
        "max_attempts": "s3_max_attempts",
    },
    "iceberg": {
        "name": "catalog_name",
        "type": "catalog_type",
        "uri": "catalog_uri",
        "warehouse": "warehouse",
    },
    "datafusion": {
        "target_partitions": "df_target_partitions",
        "batch_size": "df_batch_size",
        "memory_limit": "df_memory_limit",
        "spill_dir": "df_spill_dir",
    },
}
_FIELDS_FROM_ENV = {
    resource: {f: settings.ENV[setting][0] for f, setting in fields.items()}
    for resource, fields in _FIELD_SETTINGS.items()
}


def env_fields(resource: str) -> dict[str, dg.EnvVar]:
    """The fields of `resource` whose variable is set where the code location loads, as
    `dg.EnvVar`: the UI shows which variable each comes from (never its value) and every run
    reads it on its own worker. Fields left out stay empty and take the embedded default
    under ``./.lake`` when a run starts (`settings.resolve`); secrets are never fields.
    """
    return {f: dg.EnvVar(var) for f, var in _FIELDS_FROM_ENV[resource].items() if os.getenv(var)}


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
            "object_store": ObjectStoreResource(**env_fields("object_store")),
            "iceberg": IcebergCatalogResource(**env_fields("iceberg")),
            "datafusion": DataFusionResource(**env_fields("datafusion")),
        },
        # Each step is Arrow-parallel already; one process per run avoids ~4 s of process
        # start-up per step (measured) and keeps single-run backfills in one process.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
