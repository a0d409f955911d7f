"""`tables`, `history` and `scan`: the catalog's tables, a table's snapshots, its rows."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import TYPE_CHECKING

from lake_pipelines.cli.text import text_table, when
from lake_pipelines.errors import ArgumentError, TableNotFoundError, describe_span

if TYPE_CHECKING:
    from pyiceberg.table import Table

    from lake_pipelines.config import CatalogSettings
    from lake_pipelines.lake.iceberg.peek import TableView
    from lake_pipelines.lake.storage import ObjectStore


def table_views(settings: CatalogSettings, store: ObjectStore, name: str | None) -> list[TableView]:
    """The metadata of table `name` (every table when None): read straight from the SQLite
    catalog and the metadata files when both are local (`lake.iceberg.peek`), else through
    pyiceberg.

    Raises:
        TableNotFoundError: there is no table `name` (the message lists those there are).
    """
    from lake_pipelines.lake.iceberg.peek import TableView, local_tables

    found = local_tables(settings.type, settings.uri, settings.name)
    if found is not None:
        if name is None:
            return [TableView.read(n, location) for n, location in found.items()]
        return [TableView.read(name, _location(found, name))]
    from lake_pipelines.lake.iceberg.tables import load_table, table_names

    catalog = settings.load(store, metadata_only=True)
    names = table_names(catalog) if name is None else [name]
    return [TableView.of(load_table(catalog, n)) for n in names]


def _location(found: dict[str, str], name: str) -> str:
    """Table `name`'s metadata location among the catalog's `found` tables.

    Raises:
        TableNotFoundError: there is no table `name` (the message lists those there are).
    """
    if name not in found:
        raise TableNotFoundError(name, list(found))
    return found[name]


def tables(views: list[TableView]) -> str:
    """One line per table: rows, files, snapshots, partitioning, last commit."""
    rows = []
    for view in views:
        snap = view.current_snapshot()
        summary = snap.get("summary") if snap else None
        rows.append(
            {
                "table": view.name,
                "snapshots": len(view.snapshots()),
                "rows": summary.get("total-records") if summary else 0,
                "files": summary.get("total-data-files") if summary else 0,
                "partitioned by": ", ".join(view.partitioning()),
                "updated": when(snap["timestamp-ms"]) if snap else "",
            }
        )
    return text_table(rows, ["table", "rows", "files", "snapshots", "partitioned by", "updated"])


def history(view: TableView) -> str:
    """The table's snapshots, oldest first, with their refs and our lineage keys."""
    refs = view.refs_by_snapshot()
    current = view.current_snapshot()
    rows = []
    current_id = current["snapshot-id"] if current else None
    for snap in view.snapshots():
        summary = snap.get("summary") or {}
        rows.append(
            {
                "snapshot": snap["snapshot-id"],
                "committed": when(snap["timestamp-ms"]),
                "operation": summary.get("operation", ""),
                "partition": summary.get("lake.partition", ""),
                "added": summary.get("added-records", ""),
                "deleted": summary.get("deleted-records", ""),
                "total": summary.get("total-records", ""),
                "run": summary.get("lake.run-id", "")[:8],
                "refs": ", ".join(refs.get(snap["snapshot-id"], []))
                + (" *current" if snap["snapshot-id"] == current_id else ""),
            }
        )
    cols = ["snapshot", "committed", "operation", "partition", "added", "deleted", "total"]
    return text_table(rows, [*cols, "run", "refs"])


def _as_of(table: Table, text: str | None) -> datetime | None:
    if text is None:
        return None
    from lake_pipelines.lake.iceberg.snapshots import snapshot_span

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


def open_table(settings: CatalogSettings, store: ObjectStore, name: str) -> Table:
    """Table `name` for reading: straight from its metadata file when the catalog is a local
    SQLite file (`lake.iceberg.peek`), else through the catalog.

    Raises:
        TableNotFoundError: there is no table `name` (the message lists those there are).
    """
    from lake_pipelines.lake.iceberg.peek import local_tables, static_table

    found = local_tables(settings.type, settings.uri, settings.name)
    if found is not None:
        return static_table(name, _location(found, name), store.iceberg_properties())
    from lake_pipelines.lake.iceberg.tables import load_table

    return load_table(settings.load(store), name)


def scan(table: Table, args: argparse.Namespace) -> str:
    """The table's rows (as of a snapshot, tag or time), filtered, as a text table."""
    from lake_pipelines.lake.iceberg.snapshots import read_as_of

    columns = tuple(c.strip() for c in args.columns.split(",")) if args.columns else ("*",)
    as_of = _as_of(table, args.as_of_time)
    data = read_as_of(table, args.snapshot, args.tag, as_of, args.where, columns, args.limit)
    return text_table(data.to_pylist(), data.column_names) + f"\n({data.num_rows} rows)"
