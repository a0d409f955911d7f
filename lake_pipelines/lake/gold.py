"""Silver → gold: DataFusion computations over silver committed to Iceberg, a range of days
in one snapshot; a day whose silver inputs did not change is neither computed nor committed."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual, LessThanOrEqual

from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.errors import TableReadError
from lake_pipelines.lake import logs, metrics, retries
from lake_pipelines.lake.analytics.queries import GoldTable, gold_identifier, gold_tables_for
from lake_pipelines.lake.analytics.session import (
    SessionSettings,
    make_session,
    memory_errors,
    register_files,
)
from lake_pipelines.lake.iceberg.evolution import plan_evolution
from lake_pipelines.lake.iceberg.lineage import (
    day_span,
    files_by_day,
    last_lineage,
    lineage_summary,
)
from lake_pipelines.lake.iceberg.replace import PartitionReplace
from lake_pipelines.lake.iceberg.tables import ensure_table
from lake_pipelines.lake.silver import DAYS_PER_COMMIT, ensure_silver_table, span_filter
from lake_pipelines.lake.storage import ObjectStore

if TYPE_CHECKING:  # pyiceberg.catalog is slow to import; annotations only
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table


log = logs.logger(__name__)


@dataclass
class GoldReport:
    table: str
    day: date
    rows: int
    source_snapshot_id: int | None
    source_files: int  # silver data files the day's window reads
    snapshot_id: int  # the gold table's current snapshot after the day's commit (or check)
    seconds: float  # the day's own work plus its share of the commit
    files: int = 0  # data files holding the day after the commit
    bytes: int = 0
    unchanged: bool = False  # its silver inputs were those of its last commit: not recomputed


def metrics_table_name(spec: DatasetSpec) -> str:
    """The events daily metrics table (the first gold table of a dataset)."""
    return gold_identifier(spec, gold_tables_for(spec)[0])


def _day_span(first: date, last: date) -> And:
    lo = GreaterThanOrEqual("day", first.isoformat())  # type: ignore[call-arg,arg-type]
    hi = LessThanOrEqual("day", last.isoformat())  # type: ignore[call-arg,arg-type]
    return And(lo, hi)


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
    return commit_gold_days(store, catalog, spec, gold, [day], settings, run_id)[0]


def commit_gold_days(
    store: ObjectStore,
    catalog: Catalog,
    spec: DatasetSpec,
    gold: GoldTable,
    days: Iterable[date],
    settings: SessionSettings,
    run_id: str = "",
    days_per_commit: int = DAYS_PER_COMMIT,
) -> list[GoldReport]:
    """Compute `gold` for each of `days` from the current silver snapshot and replace the
    days that changed, one snapshot per `days_per_commit` days.

    A day's fingerprint is the set of silver data files its window (the day and its
    lookback) reads at that snapshot: silver writes new files for every day it replaces,
    so the same files mean the same rows, and the day is left as its last commit made it.

    Returns:
        One report per day, in day order.
    """
    ordered = sorted(set(days))
    step = max(days_per_commit, 1)
    reports: list[GoldReport] = []
    for i in range(0, len(ordered), step):
        batch = ordered[i : i + step]

        def commit(batch: list[date] = batch) -> list[GoldReport]:
            return _commit_batch(store, catalog, spec, gold, batch, settings, run_id)

        # as silver's: a store failure before the catalog commit, then the batch again
        reports.extend(retries.call_with_retries(commit, store.max_attempts))
    for r in reports:
        log.info(
            "%s %s: %s: %d rows%s",
            spec.name,
            r.day,
            r.table,
            r.rows,
            " (silver inputs unchanged: not recomputed)" if r.unchanged else "",
            extra=logs.context(spec.name, r.day, layer="gold", table=r.table, rows=r.rows),
        )
    metrics.record_gold(reports)
    return reports


def _silver_inputs(
    silver: Table, spec: DatasetSpec, first: date, last: date, snapshot_id: int | None
) -> list[tuple[str, tuple[date, date] | None]]:
    """The silver files holding days `first`..`last`, each with the days it spans."""
    if snapshot_id is None:
        return []
    scan = silver.scan(row_filter=span_filter(spec, first, last), snapshot_id=snapshot_id)
    out = []
    for task in scan.plan_files():
        if task.delete_files:
            raise TableReadError(
                spec.table_name,
                f"data file {task.file.file_path} has delete files",
                snapshot_id=snapshot_id,
                file=task.file.file_path,
            )
        out.append((task.file.file_path, day_span(silver, task.file, spec.timestamp_column)))
    return out


def _commit_batch(
    store: ObjectStore,
    catalog: Catalog,
    spec: DatasetSpec,
    gold: GoldTable,
    days: list[date],
    settings: SessionSettings,
    run_id: str,
) -> list[GoldReport]:
    silver = ensure_silver_table(catalog, spec)
    source = silver.current_snapshot()
    source_id = source.snapshot_id if source is not None else None
    schema = (
        silver.schemas()[source.schema_id]
        if source is not None and source.schema_id is not None
        else silver.schema()
    ).as_arrow()
    lookback = timedelta(days=gold.lookback_days)
    inputs = _silver_inputs(silver, spec, days[0] - lookback, days[-1], source_id)
    identifier = gold_identifier(spec, gold)
    table = ensure_table(catalog, identifier, gold.schema, [("day", "identity")], gold.sort_by)
    base = table.current_snapshot()
    held = files_by_day(table, "day", days, _day_span, base.snapshot_id if base else None)
    last = last_lineage(table, days)
    replace = PartitionReplace(table)
    evolution = plan_evolution(table, gold.schema, [("day", "identity")])
    replace.evolve(evolution)
    done: dict[date, tuple[int, int, float, bool]] = {}  # rows, silver files, seconds, unchanged
    lineage: dict[date, dict[str, object]] = {}
    for day in days:
        started = time.perf_counter()
        window = sorted(
            path
            for path, span in inputs
            if span is None or (span[0] <= day and span[1] >= day - lookback)
        )
        # A window query (active users) would give a day with no silver rows of its own a
        # row from the days before it: such a day has no gold rows at all.
        own = any(span is None or span[0] <= day <= span[1] for _, span in inputs)
        basis = json.dumps([gold.name, str(gold.schema), window, *([] if own else ["empty"])])
        fingerprint = hashlib.sha256(basis.encode()).hexdigest()[:32]
        previous = last.get(day)
        if not evolution and previous is not None and previous[1].get("fingerprint") == fingerprint:
            rows = held[day].rows
            done[day] = (rows, len(window), time.perf_counter() - started, True)
            continue
        # a session per day: a gold query may register views of its own
        if own:
            ctx = make_session(settings, (store,))
            register_files(ctx, "source", store, window, schema, spec.table_name)
            # one day's aggregate rows (a row per group), small whatever the day's size
            with memory_errors(settings, f"gold table {identifier} for {day}"):
                result = gold.compute(ctx, day)
            result = result.sort_by([(c, "ascending") for c in gold.sort_by])
        else:
            result = gold.schema.empty_table()
        of_day = EqualTo("day", day.isoformat())  # type: ignore[call-arg,arg-type]
        replace.replace(of_day, result, held[day].files)
        lineage[day] = {
            "rows": str(result.num_rows),
            "silver-files": len(window),
            "fingerprint": fingerprint,
        }
        done[day] = (result.num_rows, len(window), time.perf_counter() - started, False)
    started = time.perf_counter()
    after = held
    if replace:
        summary = {
            "run-id": run_id,
            **lineage_summary(lineage),
            "source-table": spec.table_name,
            "source-snapshot-id": str(source_id) if source_id is not None else "",
        }
        snapshot_id = replace.commit(summary)
        after = {**held, **files_by_day(table, "day", lineage, _day_span, snapshot_id)}
    share = (time.perf_counter() - started) / max(len(lineage), 1)
    current = table.current_snapshot()
    return [
        GoldReport(
            identifier,
            day,
            rows,
            source_id,
            files,
            current.snapshot_id if current is not None else 0,
            seconds + (0.0 if unchanged else share),
            files=len(after[day].files),
            bytes=after[day].bytes,
            unchanged=unchanged,
        )
        for day, (rows, files, seconds, unchanged) in done.items()
    ]


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
