"""The deployment profile as Dagster objects: executor, backfill policy and write pools.

`LAKE_EXECUTOR` picks the profile when the code location loads (`DeploySettings`):

* ``in_process`` (embedded, the default): every step of a run in the run's own process, a
  backfill of any range in one run, one writer of a table at a time through its pool.
* ``celery`` (distributed): every step a task on the Celery broker, run by whichever worker
  process takes it; a backfill split into runs of ``LAKE_BACKFILL_DAYS_PER_RUN`` days that run
  side by side, and no pool on the layers' steps: writers of different days of one table
  compute in parallel and only their commits meet, in the catalog's compare-and-swap of the
  table's metadata pointer, where the loser retries on the new metadata (pyiceberg's
  ``commit.retry.*``). Compaction keeps its pools.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from lake_pipelines.config import DeploySettings
from lake_pipelines.preflight import check_broker


def profile() -> DeploySettings:
    return DeploySettings.from_env()


def backfill_policy() -> dg.BackfillPolicy:
    """Embedded: a range in one run. Distributed: runs of `days_per_run` days each."""
    settings = profile()
    if settings.distributed:
        return dg.BackfillPolicy.multi_run(max_partitions_per_run=settings.days_per_run)
    return dg.BackfillPolicy.single_run()


def window_dependency(upstream: dg.AssetKey, lookback_days: int) -> dg.AssetKey | dg.AssetDep:
    """The dependency of a daily asset that reads upstream days D-`lookback_days`..D.

    Embedded: on upstream day D alone, so a backfill of a range stays one run (a lookback
    mapping would split it); the asset reads the window itself and the gold window sensor
    recomputes the days after a late upstream day. Distributed: on the whole window, because
    there a backfill is runs of `days_per_run` days side by side, and only a window mapping
    makes Dagster's backfill daemon launch day D after the run that writes upstream D-1 has
    finished, not next to it (the day would read a window with a hole). Days before the
    partitions' start are not required.
    """
    if not lookback_days or not profile().distributed:
        return upstream
    return dg.AssetDep(
        upstream,
        partition_mapping=dg.TimeWindowPartitionMapping(
            start_offset=-lookback_days, allow_nonexistent_upstream_partitions=True
        ),
    )


def write_pool(pool: str) -> str | None:
    """The pool of a layer's writing step: `pool` embedded, none distributed (see above)."""
    return None if profile().distributed else pool


@dg.executor(
    name="lake_celery",
    requirements=dg.multiple_process_executor_requirements(),
)
def lake_celery_executor(init_context: dg.InitExecutorContext) -> Any:
    """Dagster's Celery executor, configured from the LAKE_CELERY_* settings when a run starts;
    an unreachable broker fails the run here, naming the setting and the address."""
    from dagster._core.execution.retries import RetryMode
    from dagster_celery.executor import CeleryExecutor

    settings = profile()
    check_broker(settings)
    config = settings.celery_config()
    return CeleryExecutor(
        retries=RetryMode.ENABLED,
        broker=config["broker"],
        backend=config["backend"],
        config_source=config["config_source"],
    )


def executor() -> dg.ExecutorDefinition:
    """The executor of every job of the code location, per the profile."""
    return lake_celery_executor if profile().distributed else dg.in_process_executor
