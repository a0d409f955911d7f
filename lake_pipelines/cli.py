"""`lake-pipelines`: look at the lake from a terminal (summary, tables, snapshots)."""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake_pipelines.datasets import ALL_DATASETS
from lake_pipelines.errors import LakeError
from lake_pipelines.lake import quarantine
from lake_pipelines.lake.bronze import bronze_dir, landing_dir
from lake_pipelines.lake.gold import metrics_table_name
from lake_pipelines.lake.readers import LANDING_SUFFIXES
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.resources import IcebergCatalogResource, ObjectStoreResource


def _days_landed(store: ObjectStore, prefix: str) -> list[date]:
    days = set()
    for entry in store.list_files(prefix, suffixes=LANDING_SUFFIXES):
        part = entry.key[len(prefix) + 1 :].split("/", 1)[0]
        try:
            days.add(date.fromisoformat(part))
        except ValueError:
            continue
    return sorted(days)


def _count_by_day(table: pa.Table, column: str) -> dict[str, int]:
    if table.num_rows == 0:
        return {}
    days = (
        pc.cast(pc.floor_temporal(table.column(column), unit="day"), "date32")
        if column != "day"
        else table.column(column)
    )
    counts = pc.value_counts(days)
    return {str(v["values"]): v["counts"] for v in counts.to_pylist()}


def _row(*cells: object) -> str:
    widths = (10, 12, 11, 5, 11, 11, 9)
    first = f"  {cells[0]!s:<{widths[0]}}"
    return first + "".join(f" {c!s:>{w}}" for c, w in zip(cells[1:], widths[1:], strict=True))


def summary(store: ObjectStore, catalog_resource: IcebergCatalogResource) -> str:
    """Rows and files per layer and per day, quarantine, and where everything lives."""
    catalog = catalog_resource.load(store)
    lines = [f"lake: {store.uri()}", f"catalog: {catalog_resource.properties(store)['uri']}"]
    for spec in ALL_DATASETS:
        days = _days_landed(store, spec.landing_prefix)
        silver_counts: dict[str, int] = defaultdict(int)
        gold_counts: dict[str, int] = defaultdict(int)
        if catalog.table_exists(spec.table_name):
            silver = (
                catalog.load_table(spec.table_name)
                .scan(selected_fields=(spec.timestamp_column,))
                .to_arrow()
            )
            silver_counts.update(_count_by_day(silver, spec.timestamp_column))
        if catalog.table_exists(metrics_table_name(spec)):
            gold = (
                catalog.load_table(metrics_table_name(spec))
                .scan(selected_fields=("day",))
                .to_arrow()
            )
            gold_counts.update(_count_by_day(gold, "day"))
        lines.append("")
        lines.append(f"dataset {spec.name}")
        lines.append(
            _row("day", "landed files", "bronze rows", "files", "quarantined", "silver", "gold")
        )
        totals = [0, 0, 0, 0, 0, 0]
        for day in days:
            landed = len(store.list_files(landing_dir(spec, day), suffixes=LANDING_SUFFIXES))
            files = store.list_files(bronze_dir(spec, day), suffixes=(".parquet",))
            rows = sum(
                pq.read_metadata(store.path(f.key), filesystem=store.arrow_fs).num_rows
                for f in files
            )
            q = quarantine.read(store, spec.name, day).num_rows
            s, g = silver_counts.get(day.isoformat(), 0), gold_counts.get(day.isoformat(), 0)
            for i, v in enumerate((landed, rows, len(files), q, s, g)):
                totals[i] += v
            lines.append(_row(day.isoformat(), landed, rows, len(files), q, s, g))
        lines.append(_row("total", *totals))
        lines.append(f"  landing:    {store.uri(spec.landing_prefix)}")
        lines.append(f"  bronze:     {store.uri(spec.bronze_prefix)}  (Hive: year=/month=/day=)")
        lines.append(f"  quarantine: {store.uri('quarantine/' + spec.name)}")
        lines.append(f"  silver:     iceberg {spec.table_name}")
        lines.append(f"  gold:       iceberg {metrics_table_name(spec)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lake-pipelines", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("summary", help="rows and files per layer and day")
    args = parser.parse_args(argv)
    try:
        store = ObjectStoreResource().get_store()
        catalog = IcebergCatalogResource()
        if args.command == "summary":
            print(summary(store, catalog))
    except LakeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
