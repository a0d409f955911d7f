"""`lake-pipelines`: look at the lake from a terminal (summary, tables, snapshots)."""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.exceptions import NoSuchTableError

from lake_pipelines.config import CatalogSettings, StoreSettings
from lake_pipelines.datasets import ALL_DATASETS
from lake_pipelines.errors import LakeError
from lake_pipelines.lake.analytics.queries import gold_identifier, gold_tables_for
from lake_pipelines.lake.bronze import bronze_files
from lake_pipelines.lake.iceberg.maintenance import expire_snapshots, remove_orphans
from lake_pipelines.lake.iceberg.snapshots import read_as_of
from lake_pipelines.lake.ingest import quarantine
from lake_pipelines.lake.ingest.readers import LANDING_SUFFIXES
from lake_pipelines.lake.layout import hive_pattern, landing_dir
from lake_pipelines.lake.storage import ObjectStore

if TYPE_CHECKING:  # pyiceberg.catalog takes seconds to import; loading a catalog imports it
    from pyiceberg.catalog import Catalog


def _days_landed(store: ObjectStore, prefix: str) -> list[date]:
    days = set()
    for entry in store.list(prefix, suffixes=LANDING_SUFFIXES):
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
    widths = (10, 12, 11, 5, 16, 14, 9, 9)
    first = f"  {cells[0]!s:<{widths[0]}}"
    return first + "".join(f" {c!s:>{w}}" for c, w in zip(cells[1:], widths[1:], strict=True))


def summary(store: ObjectStore, catalog_settings: CatalogSettings) -> str:
    """Rows and files per layer and per day, quarantine, and where everything lives."""
    catalog = catalog_settings.load(store)
    lines = [f"lake: {store.uri()}", f"catalog: {catalog_settings.properties(store)['uri']}"]
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
        gold_tables = [gold_identifier(spec, g) for g in gold_tables_for(spec)]
        gold_totals: dict[str, int] = {}
        for name in gold_tables:
            if catalog.table_exists(name):
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
                "silver",
                "gold rows",
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
        lines.append(f"  landing:    {store.uri(spec.landing_prefix)}")
        layout = hive_pattern(spec.hive_partition_columns)
        lines.append(f"  bronze:     {store.uri(spec.bronze_prefix)}  (Hive: {layout})")
        lines.append(f"  quarantine: {store.uri('quarantine/' + spec.name)}")
        lines.append(f"  silver:     iceberg {spec.table_name}")
        for name in gold_tables:
            lines.append(f"  gold:       iceberg {name} ({gold_totals.get(name, 0)} rows)")
    return "\n".join(lines)


def _format(rows: list[dict[str, object]], columns: list[str]) -> str:
    """A plain aligned text table."""
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def tables(catalog: Catalog) -> str:
    rows = []
    for ns in catalog.list_namespaces():
        for ident in catalog.list_tables(ns):
            t = catalog.load_table(ident)
            snap = t.current_snapshot()
            rows.append(
                {
                    "table": ".".join(ident),
                    "snapshots": len(t.snapshots()),
                    "rows": snap.summary.get("total-records") if snap and snap.summary else 0,
                    "files": snap.summary.get("total-data-files") if snap and snap.summary else 0,
                    "partitioned by": ", ".join(
                        f"{f.transform}({t.schema().find_column_name(f.source_id)})"
                        for f in t.spec().fields
                    ),
                    "updated": _when(snap.timestamp_ms) if snap else "",
                }
            )
    return _format(rows, ["table", "rows", "files", "snapshots", "partitioned by", "updated"])


def history(catalog: Catalog, name: str) -> str:
    t = catalog.load_table(name)
    tags: dict[int, list[str]] = defaultdict(list)
    for ref_name, ref in t.metadata.refs.items():
        tags[ref.snapshot_id].append(ref_name)
    current = t.current_snapshot()
    rows = []
    for snap in sorted(t.snapshots(), key=lambda s: s.timestamp_ms):
        summary = snap.summary
        props = summary.additional_properties if summary else {}
        rows.append(
            {
                "snapshot": snap.snapshot_id,
                "committed": _when(snap.timestamp_ms),
                "operation": summary.operation.value if summary else "",
                "partition": props.get("lake.partition", ""),
                "added": props.get("added-records", ""),
                "deleted": props.get("deleted-records", ""),
                "total": props.get("total-records", ""),
                "run": props.get("lake.run-id", "")[:8],
                "refs": ", ".join(sorted(tags.get(snap.snapshot_id, [])))
                + (" *current" if current and snap.snapshot_id == current.snapshot_id else ""),
            }
        )
    cols = [
        "snapshot",
        "committed",
        "operation",
        "partition",
        "added",
        "deleted",
        "total",
        "run",
        "refs",
    ]
    return _format(rows, cols)


def scan(catalog: Catalog, args: argparse.Namespace) -> str:
    t = catalog.load_table(args.table)
    as_of = datetime.fromisoformat(args.as_of_time) if args.as_of_time else None
    columns = tuple(c.strip() for c in args.columns.split(",")) if args.columns else ("*",)
    data = read_as_of(t, args.snapshot, args.tag, as_of, args.where, columns, args.limit)
    rows = data.to_pylist()
    return _format(rows, data.column_names) + f"\n({data.num_rows} rows)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lake-pipelines", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("summary", help="rows and files per layer and day")
    sub.add_parser("tables", help="the Iceberg tables of the catalog")
    h = sub.add_parser("history", help="a table's snapshots, with tags and lake.* summary")
    h.add_argument("table")
    sc = sub.add_parser("scan", help="read a table, optionally as of a snapshot, tag or time")
    sc.add_argument("table")
    sc.add_argument("--snapshot", type=int, help="snapshot id")
    sc.add_argument("--tag", help="tag or branch name, e.g. day-2026-11-01")
    sc.add_argument("--as-of-time", help="ISO timestamp; naive means UTC")
    sc.add_argument("--where", help="pyiceberg row filter, e.g. \"event_type = 'click'\"")
    sc.add_argument("--columns", help="comma-separated columns")
    sc.add_argument("--limit", type=int, default=20)
    ex = sub.add_parser("expire", help="expire old snapshots and delete the files only they used")
    ex.add_argument("table")
    ex.add_argument("--older-than-days", type=float, default=7.0)
    ex.add_argument("--retain-last", type=int, default=5)
    orph = sub.add_parser("orphans", help="list (or --delete) files no snapshot references")
    orph.add_argument("table")
    orph.add_argument("--older-than-days", type=float, default=3.0)
    orph.add_argument("--delete", action="store_true")
    args = parser.parse_args(argv)
    try:
        store = StoreSettings.from_env().object_store()
        catalog_settings = CatalogSettings.from_env()
        if args.command == "summary":
            print(summary(store, catalog_settings))
            return 0
        catalog = catalog_settings.load(store)
        if args.command == "tables":
            print(tables(catalog))
        elif args.command == "history":
            print(history(catalog, args.table))
        elif args.command == "scan":
            print(scan(catalog, args))
        elif args.command == "expire":
            rep = expire_snapshots(
                catalog.load_table(args.table),
                store,
                timedelta(days=args.older_than_days),
                args.retain_last,
            )
            print(
                f"{rep.table}: expired {len(rep.snapshots_expired)} snapshots, removed "
                f"{len(rep.tags_removed)} tags, deleted {len(rep.files_deleted)} files "
                f"({rep.bytes_deleted} bytes)"
            )
        elif args.command == "orphans":
            found = remove_orphans(
                catalog.load_table(args.table),
                store,
                timedelta(days=args.older_than_days),
                dry_run=not args.delete,
            )
            verb = "deleted" if found.deleted else "would delete (dry run; add --delete)"
            print("\n".join(found.orphans))
            print(f"{found.table}: {verb} {len(found.orphans)} orphan files ({found.bytes} bytes)")
    except NoSuchTableError as exc:
        print(f"error: no such table: {exc}", file=sys.stderr)
        return 2
    except LakeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
