"""What a step reports besides its data: its Prometheus metrics and each day's own metadata.

`step_metrics` wraps an asset's (or check's) body: the engine records into the step while it
runs and the step is pushed to the Pushgateway when it ends (`lake.pushgateway`), if
``LAKE_PROMETHEUS_PUSHGATEWAY`` is set; a failed push is one warning in the run's log.

`record_days` puts each day's numbers on that day's materialization: a single-run backfill of
seven days records seven events, and without it each would carry the range's totals.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

import dagster as dg

from lake_pipelines.config import MetricsSettings
from lake_pipelines.lake import memory, metrics
from lake_pipelines.lake.period import Unit, partition_key
from lake_pipelines.lake.pushgateway import pusher


class _Logged(Protocol):
    @property
    def log(self) -> Any: ...


@contextmanager
def step_metrics(context: _Logged, dataset: str, layer: str, step: str) -> Iterator[None]:
    """The metrics of one step of `dataset`'s `layer`, pushed as group `step` when it ends
    (`step`: ``materialize``, a gold table, ``compaction``, ``table_health`` or
    ``landing_sensor``: the alerts select on it). A sensor tick is a step too."""
    settings = MetricsSettings.from_env()
    push = pusher(settings.pushgateway, settings.job, step, settings.timeout, context.log.warning)
    memory.reset_peak_resident()
    try:
        with metrics.step(push, dataset, layer):
            yield
    finally:
        _release(context, f"{layer} {step}")


def _release(context: _Logged, what: str) -> None:
    """Hand what the step freed back to the OS before the next step of the run's process
    (`lake.memory.release_memory`), and log the step's own peak and what it leaves behind."""
    peak, held = memory.peak_resident_bytes(), memory.resident_bytes()
    memory.release_memory()
    if peak:
        context.log.info(
            f"memory of {what}: peak {peak >> 20} MiB resident, {held >> 20} MiB at its end, "
            f"{memory.resident_bytes() >> 20} MiB after releasing what it freed"
        )


def day_numbers(rows: int, **numbers: Any) -> dict[str, Any]:
    """One day's metadata: its row count (as Dagster's standard keys) and its own numbers."""
    return {"dagster/row_count": rows, "dagster/partition_row_count": rows, **numbers}


def record_days(context: dg.AssetExecutionContext, per_day: Mapping[Unit, dict[str, Any]]) -> None:
    """Each day's numbers on the materialization event of that day's partition; they win over
    the run's metadata, which then only carries what is true of every day (where, schema)."""
    for day, numbers in per_day.items():
        context.add_asset_metadata(numbers, partition_key=partition_key(day))
