"""Jobs and schedules: one daily job per dataset, and its catch-up schedule."""

from __future__ import annotations

import dagster as dg

from lake_pipelines.datasets import ALL_DATASETS, DatasetSpec


def daily_job(spec: DatasetSpec) -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        name=f"{spec.name}_daily",
        selection=dg.AssetSelection.groups(spec.name),
        description=f"Landing → bronze → silver → gold for one day of {spec.name}.",
    )


def build_jobs_and_schedules() -> tuple[list[dg.UnresolvedAssetJobDefinition], list]:
    jobs, schedules = [], []
    for spec in ALL_DATASETS:
        job = daily_job(spec)
        jobs.append(job)
        schedules.append(
            dg.build_schedule_from_partitioned_job(
                job,
                hour_of_day=1,
                minute_of_hour=0,
                default_status=dg.DefaultScheduleStatus.STOPPED,
                name=f"{spec.name}_daily_schedule",
            )
        )
    return jobs, schedules
