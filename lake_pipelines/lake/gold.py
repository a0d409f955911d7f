"""Silver → gold for one day: a DataFusion aggregation committed to an Iceberg table."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date

from pyiceberg.catalog import Catalog
from pyiceberg.expressions import EqualTo

from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.lake.analytics import (
    DAILY_EVENT_METRICS_SCHEMA,
    SessionSettings,
    daily_event_metrics,
    make_session,
    register_iceberg,
)
from lake_pipelines.lake.iceberg_tables import ensure_table, overwrite_partition
from lake_pipelines.lake.silver import ensure_silver_table
from lake_pipelines.lake.storage import ObjectStore


@dataclass
class GoldReport:
    table: str
    day: date
    rows: int
    source_snapshot_id: int | None
    snapshot_id: int
    seconds: float


def metrics_table_name(spec: DatasetSpec) -> str:
    return f"{spec.namespace}.{spec.name}_daily_metrics"


def commit_daily_metrics(
    store: ObjectStore,
    catalog: Catalog,
    spec: DatasetSpec,
    day: date,
    settings: SessionSettings,
    run_id: str = "",
) -> GoldReport:
    """Aggregate the silver day with DataFusion and replace that day of the metrics table."""
    started = time.perf_counter()
    silver = ensure_silver_table(catalog, spec)
    ctx = make_session(settings, (store,))
    register_iceberg(ctx, "silver", silver)
    result = daily_event_metrics(ctx, "silver", day)
    gold = ensure_table(
        catalog,
        metrics_table_name(spec),
        DAILY_EVENT_METRICS_SCHEMA,
        [("day", "identity")],
        ("day", "event_type"),
    )
    source = silver.current_snapshot()
    snapshot_id = overwrite_partition(
        gold,
        result,
        EqualTo("day", day.isoformat()),
        {
            "run-id": run_id,
            "partition": day.isoformat(),
            "source-table": spec.table_name,
            "source-snapshot-id": str(source.snapshot_id) if source else "",
        },
    )
    return GoldReport(
        metrics_table_name(spec),
        day,
        result.num_rows,
        source.snapshot_id if source else None,
        snapshot_id,
        time.perf_counter() - started,
    )
