"""Silver → gold for one day: a DataFusion computation committed to an Iceberg table."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual, LessThan

from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.lake.analytics.queries import GoldTable, gold_identifier, gold_tables_for
from lake_pipelines.lake.analytics.session import SessionSettings, make_session, register_iceberg
from lake_pipelines.lake.iceberg.evolution import plan_evolution
from lake_pipelines.lake.iceberg.tables import ensure_table, files_of, overwrite_partition
from lake_pipelines.lake.layout import day_bounds
from lake_pipelines.lake.silver import ensure_silver_table
from lake_pipelines.lake.storage import ObjectStore

if TYPE_CHECKING:  # pyiceberg.catalog is slow to import; annotations only
    from pyiceberg.catalog import Catalog


@dataclass
class GoldReport:
    table: str
    day: date
    rows: int
    source_snapshot_id: int | None
    source_files: int
    snapshot_id: int
    seconds: float
    files: int = 0  # data files holding the day after the commit
    bytes: int = 0


def metrics_table_name(spec: DatasetSpec) -> str:
    """The events daily metrics table (the first gold table of a dataset)."""
    return gold_identifier(spec, gold_tables_for(spec)[0])


def commit_gold_day(
    store: ObjectStore,
    catalog: Catalog,
    spec: DatasetSpec,
    gold: GoldTable,
    day: date,
    settings: SessionSettings,
    run_id: str = "",
) -> GoldReport:
    """Compute `gold` for `day` from the silver table and replace that day in one commit."""
    started = time.perf_counter()
    silver = ensure_silver_table(catalog, spec)
    source = silver.current_snapshot()
    ctx = make_session(settings, (store,))
    first, _ = day_bounds(day - timedelta(days=gold.lookback_days))
    _, end = day_bounds(day)
    ts = spec.timestamp_column
    lo = GreaterThanOrEqual(ts, first.isoformat())  # type: ignore[call-arg,arg-type]
    hi = LessThan(ts, end.isoformat())  # type: ignore[call-arg,arg-type]
    window = And(lo, hi)
    files = register_iceberg(
        ctx, "source", silver, store, window, source.snapshot_id if source else None
    )
    result = gold.compute(ctx, day)
    table = ensure_table(
        catalog, gold_identifier(spec, gold), gold.schema, [("day", "identity")], gold.sort_by
    )
    evolution = plan_evolution(table, gold.schema, [("day", "identity")])
    of_day = EqualTo("day", day.isoformat())  # type: ignore[call-arg,arg-type]
    snapshot_id = overwrite_partition(
        table,
        result.sort_by([(c, "ascending") for c in gold.sort_by]),
        of_day,
        {
            "run-id": run_id,
            "partition": day.isoformat(),
            "source-table": spec.table_name,
            "source-snapshot-id": str(source.snapshot_id) if source else "",
        },
        evolution,
    )
    day_files, day_bytes = files_of(table, of_day, snapshot_id)
    return GoldReport(
        gold_identifier(spec, gold),
        day,
        result.num_rows,
        source.snapshot_id if source else None,
        files,
        snapshot_id,
        time.perf_counter() - started,
        files=day_files,
        bytes=day_bytes,
    )


def commit_daily_metrics(
    store: ObjectStore,
    catalog: Catalog,
    spec: DatasetSpec,
    day: date,
    settings: SessionSettings,
    run_id: str = "",
) -> GoldReport:
    """The events daily metrics for `day` (kept for callers that want just that table)."""
    return commit_gold_day(store, catalog, spec, gold_tables_for(spec)[0], day, settings, run_id)
