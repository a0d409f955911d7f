"""Landing sensors: newly landed files of a dataset → runs of its daily job, nothing twice.

The planning (file ids, cursor, batching) is `lake_pipelines.lake.landing`; this module only
wires it to Dagster.
"""

import time
from datetime import date, datetime
from typing import TYPE_CHECKING

import dagster as dg

from lake_pipelines.assets.common import partitions_for
from lake_pipelines.assets.observability import step_metrics
from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.lake import metrics
from lake_pipelines.lake.gold_windows import stale_window_days
from lake_pipelines.lake.landing.cursor import LOOKBACK_SECONDS, LandingCursor
from lake_pipelines.lake.landing.lag import landing_lag
from lake_pipelines.lake.landing.listing import list_landed
from lake_pipelines.lake.landing.planner import MAX_FILES_PER_RUN, RunBatch, plan_runs
from lake_pipelines.lake.layout import consecutive_days
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


# -- gold windows ---------------------------------------------------------------------------

# Runs in these states may still write the gold table: the sensor waits for them.
UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def _versions(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[date, int]:
    """Per day, the storage id of the asset's latest materialization (ids grow with time)."""
    latest = instance.get_latest_storage_id_by_partition(
        key, dg.DagsterEventType.ASSET_MATERIALIZATION
    )
    return {date.fromisoformat(day): storage_id for day, storage_id in latest.items()}


def _unfinished_writers(
    instance: dg.DagsterInstance, spec: DatasetSpec, keys: list[dg.AssetKey]
) -> set[dg.AssetKey]:
    """Those of `keys` a queued or running run will materialize (its daily job: all of them)."""
    busy: set[dg.AssetKey] = set()
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=UNFINISHED)):
        if run.asset_selection is None:
            busy.update(keys if run.job_name == f"{spec.name}_daily" else [])
        else:
            busy.update(k for k in keys if k in run.asset_selection)
    return busy


def _window_request(
    spec: DatasetSpec, key: dg.AssetKey, first: date, last: date, newest: int
) -> dg.RunRequest:
    run_key = f"{key.to_user_string()}:{first}...{last}@{newest}"
    tags = {"lake/dataset": spec.name}
    if first == last:
        return dg.RunRequest(run_key, asset_selection=[key], partition_key=str(first), tags=tags)
    tags |= {RANGE_START_TAG: str(first), RANGE_END_TAG: str(last)}
    return dg.RunRequest(run_key, asset_selection=[key], tags=tags)


def build_gold_window_sensor(
    spec: DatasetSpec,
    windows: dict[dg.AssetKey, int],
    silver_key: dg.AssetKey,
    *,
    minimum_interval_seconds: int = 60,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
) -> dg.SensorDefinition:
    """After a silver day D of `spec` is materialized, request the days of each gold table in
    `windows` (key → its lookback days L) that were computed before and read D: D..D+L, one
    single-run range per span of consecutive days.

    For Dagster, gold day G depends on silver day G alone (a lookback partition mapping would
    split every group backfill into several runs), and the eager automation condition only
    follows the latest day: without this sensor, re-running silver for an older day (a late
    file) would leave gold's days D..D+L as they were."""
    keys = sorted(windows, key=lambda k: k.to_user_string())

    @dg.sensor(
        name=f"{spec.name}_gold_window_sensor",
        target=keys,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=(
            f"When a day D of `{silver_key.to_user_string()}` is materialized again, requests "
            "the gold days computed before it that read D: D itself, and D..D+L of a table "
            "whose days read the L days before them too (a 7-day window: D..D+6). Waits "
            "while a run that writes those tables is unfinished."
        ),
    )
    def gold_window_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        instance = context.instance
        silver = _versions(instance, silver_key)
        newest = max(silver.values(), default=0)
        if newest <= int(context.cursor or 0):
            return dg.SensorResult(skip_reason="no silver day materialized since the last tick")
        busy = _unfinished_writers(instance, spec, keys)
        if busy:  # their runs will bring those days up to date (or fail): look again then
            names = ", ".join(k.to_user_string() for k in sorted(busy, key=str))
            return dg.SensorResult(skip_reason=f"waiting for the unfinished runs of {names}")
        requests = []
        for key in keys:
            stale = stale_window_days(silver, _versions(instance, key), windows[key])
            for first, last in consecutive_days(stale):
                requests.append(_window_request(spec, key, first, last, newest))
        if not requests:
            return dg.SensorResult(
                skip_reason="every gold day is newer than the silver days it reads",
                cursor=str(newest),
            )
        return dg.SensorResult(run_requests=requests, cursor=str(newest))

    return gold_window_sensor
