"""`tables`, `history` and `scan`: the catalog's tables, a table's snapshots, its rows."""

from __future__ import annotations

import argparse
from collections import defaultdict
from datetime import datetime
from typing import TYPE_CHECKING

from lake_pipelines.cli.text import text_table, when
from lake_pipelines.errors import ArgumentError, describe_span
from lake_pipelines.lake.iceberg.snapshots import read_as_of, snapshot_span
from lake_pipelines.lake.iceberg.tables import load_table, table_names

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table


def tables(catalog: Catalog) -> str:
    """One line per table: rows, files, snapshots, partitioning, last commit."""
    rows = []
    for name in table_names(catalog):
        t = catalog.load_table(name)
        snap = t.current_snapshot()
        summary = snap.summary if snap and snap.summary else None
        rows.append(
            {
                "table": name,
                "snapshots": len(t.snapshots()),
                "rows": summary.get("total-records") if summary else 0,
                "files": summary.get("total-data-files") if summary else 0,
                "partitioned by": ", ".join(
                    f"{f.transform}({t.schema().find_column_name(f.source_id)})"
                    for f in t.spec().fields
                ),
                "updated": when(snap.timestamp_ms) if snap else "",
            }
        )
    return text_table(rows, ["table", "rows", "files", "snapshots", "partitioned by", "updated"])


def history(catalog: Catalog, name: str) -> str:
    """The table's snapshots, oldest first, with their refs and our lineage keys."""
    t = load_table(catalog, name)
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
                "committed": when(snap.timestamp_ms),
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
    cols = ["snapshot", "committed", "operation", "partition", "added", "deleted", "total"]
    return text_table(rows, [*cols, "run", "refs"])


def _as_of(table: Table, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        span = snapshot_span(table)
        example = "2026-11-03T10:00:00"
        known = ""
        if span is not None:
            example = span[1].strftime("%Y-%m-%dT%H:%M:%S")
            known = f"; {'.'.join(table.name())}: {describe_span(span)}"
        raise ArgumentError(
            "--as-of-time", text, f"not an ISO time; give e.g. {example} (naive means UTC){known}"
        ) from None


def scan(catalog: Catalog, args: argparse.Namespace) -> str:
    """The table's rows (as of a snapshot, tag or time), filtered, as a text table."""
    t = load_table(catalog, args.table)
    columns = tuple(c.strip() for c in args.columns.split(",")) if args.columns else ("*",)
    as_of = _as_of(t, args.as_of_time)
    data = read_as_of(t, args.snapshot, args.tag, as_of, args.where, columns, args.limit)
    return text_table(data.to_pylist(), data.column_names) + f"\n({data.num_rows} rows)"
