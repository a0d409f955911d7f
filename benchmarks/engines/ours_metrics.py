"""Our gold aggregation: a session from `DataFusionResource`, our Hive registration, our query.

The session comes from the resource the gold assets use (settings from ``LAKE_DF_*``, our
UDAFs registered); the bronze Hive directory is registered with `analytics.register_hive`
instead of the Iceberg silver table, so every engine reads the very same files. The query is
`event_metrics.event_metrics` over the range, a day per core (one day:
`event_metrics.daily_event_metrics` itself).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

from benchmarks.schemas import metrics_digest
from lake_pipelines.datasets.events import SPEC
from lake_pipelines.lake.analytics import event_metrics
from lake_pipelines.lake.analytics.session import register_hive
from lake_pipelines.lake.parquet.options import file_schema
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.resources import DataFusionResource


def daily_metrics(bronze: str, start: str, end: str, **_: object) -> dict[str, int]:
    store = ObjectStore(str(Path(bronze).parents[1]))
    ctx = DataFusionResource().session(store)
    register_hive(ctx, "source", store, SPEC.bronze_prefix, file_schema(SPEC))
    lo, hi = datetime.fromisoformat(start), datetime.fromisoformat(end)
    first = date(lo.year, lo.month, lo.day)
    if hi - lo == timedelta(days=1):
        return metrics_digest(event_metrics.daily_event_metrics(ctx, first))
    last = date(hi.year, hi.month, hi.day)
    return metrics_digest(event_metrics.event_metrics(ctx, first, last))
