"""`summary`: rows and files per layer and day, per dataset, and where each layer lives."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake_pipelines.config import CatalogSettings
from lake_pipelines.datasets import ALL_DATASETS, DatasetSpec
from lake_pipelines.lake.analytics.queries import gold_identifier, gold_tables_for
from lake_pipelines.lake.bronze import bronze_files
from lake_pipelines.lake.iceberg.lineage import time_span
from lake_pipelines.lake.ingest import quarantine
from lake_pipelines.lake.ingest.readers import LANDING_SUFFIXES
from lake_pipelines.lake.layout import hive_pattern, landing_dir
from lake_pipelines.lake.period import Calendar, Unit
from lake_pipelines.lake.storage import ObjectStore, split_uri

if TYPE_CHECKING:
    from pyiceberg.table import Table

DAILY = Calendar()


def _days_landed(store: ObjectStore, prefix: str, calendar: Calendar) -> list[Unit]:
    """The partitions (days, hours, local days) with a landing folder."""
    days = set()
    for entry in store.list(prefix, suffixes=LANDING_SUFFIXES):
        unit = calendar.of_folder(entry.key[len(prefix) + 1 :].split("/", 1)[0])
        if unit is not None:
            days.add(unit)
    return sorted(days)  # one calendar: all alike


def _count_by_day(table: pa.Table, column: str, calendar: Calendar = DAILY) -> dict[str, int]:
    """Rows per partition name (`Period.isoformat`): UTC days, hours, or local days."""
    if table.num_rows == 0:
        return {}
    if column == "day":
        days = table.column(column)
    elif calendar.is_default:
        days = pc.cast(pc.floor_temporal(table.column(column), unit="day"), "date32")
    else:
        local = pc.cast(table.column(column), pa.timestamp("us", tz=calendar.zone))
        fmt = "%Y-%m-%dT%H" if calendar.granularity == "hourly" else "%Y-%m-%d"
        days = pc.strftime(local, format=fmt)
    counts = pc.value_counts(days)
    return {str(v["values"]): v["counts"] for v in counts.to_pylist()}


def _silver_rows_by_day(
    store: ObjectStore, table: Table, column: str, calendar: Calendar
) -> dict[str, int]:
    """Rows per partition from the data files' record counts and time bounds (silver is
    partitioned by day or hour, so a file holds one partition): no row is read, whatever the
    days' sizes. A file whose bounds span several partitions (or that has deletes) has its
    timestamp column read, that file alone."""
    counts: dict[str, int] = defaultdict(int)
    for task in table.scan(selected_fields=(column,)).plan_files():
        span = time_span(table, task.file, column)
        if span is not None and not task.delete_files:
            ends = pa.table({column: pa.array(span, pa.timestamp("us", tz="UTC"))})
            names = _count_by_day(ends, column, calendar)
            if len(names) == 1:
                counts[next(iter(names))] += task.file.record_count
                continue
        _, path = split_uri(task.file.file_path)
        rows = pq.read_table(path, columns=[column], filesystem=store.arrow_fs)
        for day, n in _count_by_day(rows, column, calendar).items():
            counts[day] += n
    return counts


def _row(*cells: object) -> str:
    widths = (10, 12, 11, 5, 16, 14, 11, 10)
    first = f"  {cells[0]!s:<{widths[0]}}"
    return first + "".join(f" {c!s:>{w}}" for c, w in zip(cells[1:], widths[1:], strict=True))


def summary(
    store: ObjectStore,
    catalog_settings: CatalogSettings,
    datasets: tuple[DatasetSpec, ...] = ALL_DATASETS,
) -> str:
    """Rows and files per layer and per partition (day, or hour), quarantine, and where
    everything lives."""
    catalog = catalog_settings.load(store)
    lines = [f"lake: {store.uri()}", f"catalog: {catalog_settings.properties(store)['uri']}"]
    for spec in datasets:
        days = _days_landed(store, spec.landing_prefix, spec.calendar)
        silver_counts: dict[str, int] = defaultdict(int)
        gold_counts: dict[str, int] = defaultdict(int)
        if catalog.table_exists(spec.table_name):
            table = catalog.load_table(spec.table_name)
            silver_counts.update(
                _silver_rows_by_day(store, table, spec.timestamp_column, spec.calendar)
            )
        gold_tables = [gold_identifier(spec, g) for g in gold_tables_for(spec)]
        gold_totals: dict[str, int] = {}
        for name in gold_tables:
            if catalog.table_exists(name):
                # a day's aggregate rows (a row per group): small, unlike silver
                gold = catalog.load_table(name).scan(selected_fields=("day",)).to_arrow()
                gold_totals[name] = gold.num_rows
                for d, n in _count_by_day(gold, "day").items():
                    gold_counts[d] += n
        lines.append("")
        lines.append(f"dataset {spec.name}")
        lines.append(
            _row(
                "day",
                "landed files",
                "bronze rows",
                "files",
                "quarantined rows",
                "rejected files",
                "silver rows",
                "gold rows*",
            )
        )
        totals = [0, 0, 0, 0, 0, 0, 0]
        for day in days:
            landed = len(store.list(landing_dir(spec, day), suffixes=LANDING_SUFFIXES))
            files = bronze_files(store, spec, day)
            rows = sum(
                pq.read_metadata(store.path(f.key), filesystem=store.arrow_fs).num_rows
                for f in files
            )
            q_rows, q_files = quarantine.counts(store, spec.name, day)
            s, g = silver_counts.get(day.isoformat(), 0), gold_counts.get(day.isoformat(), 0)
            values = (landed, rows, len(files), q_rows, q_files, s, g)
            for i, v in enumerate(values):
                totals[i] += v
            lines.append(_row(day.isoformat(), *values))
        lines.append(_row("total", *totals))
        if gold_tables:
            lines.append(
                f"  * gold rows: the day's rows summed over the {len(gold_tables)} gold tables "
                "below (each with its own total)"
            )
        lines.append(f"  landing:    {store.uri(spec.landing_prefix)}")
        layout = hive_pattern(spec.hive_partition_columns)
        lines.append(f"  bronze:     {store.uri(spec.bronze_prefix)}  (Hive: {layout})")
        lines.append(f"  quarantine: {store.uri('quarantine/' + spec.name)}")
        lines.append(f"  silver:     iceberg {spec.table_name}")
        for name in gold_tables:
            lines.append(f"  gold:       iceberg {name} ({gold_totals.get(name, 0)} rows)")
    return "\n".join(lines)
