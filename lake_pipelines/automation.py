"""Jobs, schedules and sensors: what starts runs without anyone clicking.

Per dataset: a job over its calendar (``<dataset>_daily``: every layer of one day;
``<dataset>_hourly`` for an hourly dataset), its catch-up schedule for the last finished
partition (stopped by default: the landing sensor is the primary trigger), its landing sensor
(running by default), and, for a dataset with gold tables, its gold window sensor (running by
default: gold days computed before a silver day they read was materialized again, e.g. the 7
days after a late file's day). One automation-condition sensor (running by default) evaluates
the assets' `AutomationCondition`s, so silver and gold follow bronze when only bronze ran.
"""

from __future__ import annotations

import dagster as dg

from lake_pipelines.assets.common import asset_key
from lake_pipelines.datasets import ALL_DATASETS, DatasetSpec
from lake_pipelines.lake.analytics.queries import gold_tables_for
from lake_pipelines.runs import build_reaper_sensor
from lake_pipelines.sensors import build_gold_window_sensor, build_landing_sensor

AUTOMATION_SENSOR = "lake_automation_sensor"


def job_name(spec: DatasetSpec) -> str:
    """``<dataset>_daily`` or ``<dataset>_hourly``: the job of the dataset's calendar."""
    return f"{spec.name}_{spec.granularity}"


def daily_job(spec: DatasetSpec) -> dg.UnresolvedAssetJobDefinition:
    """The dataset's job: every layer of one partition (a day, or an hour)."""
    unit = "hour" if spec.granularity == "hourly" else "day"
    return dg.define_asset_job(
        name=job_name(spec),
        selection=dg.AssetSelection.groups(spec.name),
        description=f"Landing → bronze → silver → gold for one {unit} of {spec.name}.",
    )


def build_jobs_and_schedules(
    datasets: tuple[DatasetSpec, ...] = ALL_DATASETS,
) -> tuple[list[dg.UnresolvedAssetJobDefinition], list]:
    """A job per dataset (its own calendar: jobs never mix partitions definitions) and the
    schedule built from that job's partitions, so each fires on its dataset's cadence."""
    jobs, schedules = [], []
    for spec in datasets:
        job = daily_job(spec)
        jobs.append(job)
        # daily: at 01:00 of the calendar's zone, for the day before; hourly: at :10,
        # for the hour before (late files of an hour get ten minutes)
        when = {"minute_of_hour": 10} if spec.granularity == "hourly" else {"hour_of_day": 1}
        schedules.append(
            dg.build_schedule_from_partitioned_job(
                job,
                minute_of_hour=when.get("minute_of_hour", 0),
                hour_of_day=when.get("hour_of_day"),
                default_status=dg.DefaultScheduleStatus.STOPPED,
                name=f"{job.name}_schedule",
            )
        )
    return jobs, schedules


def automation_sensor() -> dg.AutomationConditionSensorDefinition:
    """Evaluates every asset's automation condition; declared so that it runs by default."""
    return dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description=(
            "Requests silver and gold partitions whose upstream was updated "
            "(AutomationCondition.eager: the latest day; runs of the daily job update every "
            "layer together and trigger nothing more)."
        ),
    )


def build_sensors(
    jobs: list[dg.UnresolvedAssetJobDefinition],
    datasets: tuple[DatasetSpec, ...] = ALL_DATASETS,
) -> list[dg.SensorDefinition]:
    """A landing sensor per dataset (targeting its daily job), a gold window sensor per dataset
    with gold tables, the automation sensor, and the reaper of runs whose process died."""
    by_name = {job.name: job for job in jobs}
    landing = [build_landing_sensor(spec, by_name[job_name(spec)]) for spec in datasets]
    windows = [gold_window_sensor(spec) for spec in datasets if gold_tables_for(spec)]
    return [*landing, *windows, automation_sensor(), build_reaper_sensor()]


def gold_window_sensor(spec: DatasetSpec) -> dg.SensorDefinition:
    """Gold days whose silver window changed after they were computed → their runs."""
    windows = {asset_key("gold", g.name): g.lookback_days for g in gold_tables_for(spec)}
    return build_gold_window_sensor(spec, windows, asset_key("silver", spec.name))
