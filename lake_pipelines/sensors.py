"""Landing sensors: newly landed files of a dataset → runs of its daily job, nothing twice.

The planning (file ids, cursor, batching) is `lake_pipelines.lake.landing`; this module only
wires it to Dagster.
"""

import time
from datetime import datetime
from typing import TYPE_CHECKING

import dagster as dg

from lake_pipelines.assets.common import partitions_for
from lake_pipelines.assets.observability import step_metrics
from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.lake import metrics
from lake_pipelines.lake.landing.cursor import LOOKBACK_SECONDS, LandingCursor
from lake_pipelines.lake.landing.lag import landing_lag
from lake_pipelines.lake.landing.listing import list_landed
from lake_pipelines.lake.landing.planner import MAX_FILES_PER_RUN, RunBatch, plan_runs
from lake_pipelines.lake.period import as_period
from lake_pipelines.resources import ObjectStoreResource

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )


# The run tags `dagster asset materialize --partition-range A...B` and the UI's single-run
# backfills set: the run materializes every day from A to B at once.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


# -- the Dagster sensor --------------------------------------------------------------------


def run_request(spec: DatasetSpec, batch: RunBatch) -> dg.RunRequest:
    tags = {"lake/dataset": spec.name, "lake/landed_files": str(len(batch.file_ids))}
    if len(batch.days) == 1:
        return dg.RunRequest(run_key=batch.run_key, partition_key=batch.days[0], tags=tags)
    # Several days in one run: the assets' BackfillPolicy.single_run() reads the range.
    tags[RANGE_START_TAG] = batch.days[0]
    tags[RANGE_END_TAG] = batch.days[-1]
    return dg.RunRequest(run_key=batch.run_key, tags=tags)


def calendar_ended(spec: DatasetSpec, last_day: str | None) -> bool:
    """Whether `last_day` (a partition key) is the dataset's last partition ever (its end
    date has passed)."""
    if spec.end_date is None or last_day is None:
        return False
    after = as_period(spec.calendar.of_key(last_day)).next().local
    return after >= datetime.fromisoformat(spec.end_date)


def build_landing_sensor(
    spec: DatasetSpec,
    job: "UnresolvedAssetJobDefinition",
    *,
    lookback: int = LOOKBACK_SECONDS,
    max_files_per_run: int = MAX_FILES_PER_RUN,
    minimum_interval_seconds: int = 30,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
) -> dg.SensorDefinition:
    """The dataset's landing sensor: new files of a day → a run of ``job`` for that day."""
    name = f"{spec.name}_landing_sensor"
    partitions = partitions_for(spec)

    @dg.sensor(
        name=name,
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=(
            f"Watches `{spec.landing_prefix}/<{spec.calendar.folder_pattern}>/` and runs "
            f"`{job.name}` for each {'hour' if spec.granularity == 'hourly' else 'day'} with "
            f"new or changed files (consecutive days together, up to {max_files_per_run} new "
            "files per run). Temporary, hidden and empty files wait until they are complete; "
            "files of today wait until today's partition exists."
        ),
    )
    def landing_sensor(
        context: dg.SensorEvaluationContext, object_store: ObjectStoreResource
    ) -> dg.SensorResult:
        store = object_store.get_store()
        cursor = LandingCursor.parse(context.cursor, name)
        with step_metrics(context, spec.name, "landing", "landing_sensor"):
            files = list_landed(store, spec.landing_prefix, cursor.floor(lookback))
            last_day = partitions.get_last_partition_key()
            plan = plan_runs(
                files,
                cursor,
                landing_prefix=spec.landing_prefix,
                first_day=partitions.get_first_partition_key(),
                last_day=last_day,
                calendar_ended=calendar_ended(spec, last_day),
                lookback=lookback,
                max_files_per_run=max_files_per_run,
                calendar=spec.calendar,
            )
            lag = landing_lag(files, plan, time.time())
            metrics.record_landing(lag.files, lag.oldest_seconds)
        for key, reason in plan.incomplete:
            context.log.debug(f"waiting until complete: {store.uri(key)}: {reason}")
        for key, reason in plan.skipped:
            context.log.warning(f"ignored: {store.uri(key)}: {reason}")
        for day, count in plan.waiting.items():
            context.log.info(f"{count} files of {day} wait until that partition exists")
        requests = [run_request(spec, b) for b in plan.batches]
        if not requests:
            return dg.SensorResult(skip_reason="no new landed files", cursor=plan.cursor.dump())
        return dg.SensorResult(run_requests=requests, cursor=plan.cursor.dump())

    return landing_sensor
