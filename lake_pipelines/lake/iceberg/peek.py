"""Table metadata for read-only views, read with the standard library where the catalog allows.

The CLI's `tables` and `history` need nothing but each table's metadata file (its snapshots,
refs, partition spec and schemas). With the default catalog (pyiceberg's SQL catalog on a
SQLite file) and a local warehouse, `local_tables` finds the tables with `sqlite3` and
`TableView.read` parses their metadata JSON: no SQLAlchemy, pyiceberg or pyarrow import, which
were most of those commands' two seconds. For any other catalog or store, `TableView.of` turns
a pyiceberg table into the same view, from pyiceberg's own JSON of its metadata, so both paths
print the same thing.
"""

from __future__ import annotations

import gzip
import json
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlparse

from lake_pipelines.errors import TableReadError

if TYPE_CHECKING:
    from pyiceberg.table import Table

SQLITE_PREFIX = "sqlite:///"


@dataclass(frozen=True)
class TableView:
    """One table's metadata as its JSON file holds it (Iceberg's table-metadata spec)."""

    name: str
    metadata: dict[str, Any]

    @classmethod
    def read(cls, name: str, metadata_location: str) -> TableView:
        """The metadata file at `metadata_location` (a local path or ``file://`` URL; gzip
        when its name says ``.gz.``).

        Raises:
            TableReadError: the file is gone or is not a table's metadata JSON.
        """
        path = Path(unquote(urlparse(metadata_location).path))
        try:
            raw = path.read_bytes()
            if ".gz." in path.name or raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            metadata = json.loads(raw)
        except (OSError, EOFError, ValueError) as exc:
            reason = f"cannot read its metadata file {path}: {exc}"
            raise TableReadError(name, reason, file=str(path)) from None
        if not isinstance(metadata, dict):
            raise TableReadError(name, f"{path} is not a table's metadata JSON", file=str(path))
        return cls(name, metadata)

    @classmethod
    def of(cls, table: Table) -> TableView:
        """A pyiceberg table's metadata, as pyiceberg writes it to the metadata file."""
        return cls(".".join(table.name()), json.loads(table.metadata.model_dump_json()))

    def snapshots(self) -> list[dict[str, Any]]:
        """The snapshots, oldest first."""
        return sorted(self.metadata.get("snapshots") or [], key=lambda s: s["timestamp-ms"])

    def current_snapshot(self) -> dict[str, Any] | None:
        current = self.metadata.get("current-snapshot-id")
        return next((s for s in self.snapshots() if s["snapshot-id"] == current), None)

    def refs_by_snapshot(self) -> dict[int, list[str]]:
        """Snapshot id -> the names of the tags and branches pointing at it, sorted."""
        refs: dict[int, list[str]] = defaultdict(list)
        for name, ref in (self.metadata.get("refs") or {}).items():
            refs[ref["snapshot-id"]].append(name)
        return {snapshot: sorted(names) for snapshot, names in refs.items()}

    def partitioning(self) -> list[str]:
        """The default spec's fields as ``transform(column)``, e.g. ``day(ts)``."""
        spec_id = self.metadata.get("default-spec-id", 0)
        spec: dict[str, Any] = next(
            (s for s in self.metadata.get("partition-specs") or [] if s["spec-id"] == spec_id),
            {"fields": []},
        )
        schema_id = self.metadata.get("current-schema-id", 0)
        schema: dict[str, Any] = next(
            (s for s in self.metadata.get("schemas") or [] if s["schema-id"] == schema_id),
            {"fields": []},
        )
        names = _column_names(schema["fields"])
        return [
            f"{f['transform']}({names.get(f['source-id'], f['source-id'])})" for f in spec["fields"]
        ]


def _column_names(fields: list[dict[str, Any]], prefix: str = "") -> dict[int, str]:
    """Field id -> dotted column name, through structs (how pyiceberg names a nested column)."""
    names: dict[int, str] = {}
    for f in fields:
        name = f"{prefix}{f['name']}"
        names[f["id"]] = name
        kind = f.get("type")
        if isinstance(kind, dict) and kind.get("type") == "struct":
            names.update(_column_names(kind["fields"], f"{name}."))
    return names


def local_tables(catalog_type: str, uri: str, catalog_name: str) -> dict[str, str] | None:
    """``namespace.table`` -> metadata location of every table of a SQL catalog kept in a
    SQLite file whose metadata files are local; None for any other catalog (or a SQLite file
    that does not exist yet, or a table whose metadata is not on this machine's disk)."""
    if catalog_type != "sql" or not uri.startswith(SQLITE_PREFIX):
        return None
    path = Path(uri.removeprefix(SQLITE_PREFIX))
    if not path.is_file():
        return None
    try:
        # read-only, by URI: `?`, `#` and `%` in the path are escaped, as SQLite's URIs need
        with sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True) as db:
            columns = {row[1] for row in db.execute("PRAGMA table_info(iceberg_tables)")}
            if not {"table_namespace", "table_name", "metadata_location"} <= columns:
                return None
            # views other engines keep in the same table are not tables (as pyiceberg reads it)
            views = " AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL)"
            rows = db.execute(
                "SELECT table_namespace, table_name, metadata_location FROM iceberg_tables "
                "WHERE catalog_name = ?" + (views if "iceberg_type" in columns else ""),
                (catalog_name,),
            ).fetchall()
    except sqlite3.Error:
        return None  # pyiceberg's path says what is wrong with the file
    found = {f"{ns}.{table}": location for ns, table, location in rows}
    if not all(location and _is_local(location) for location in found.values()):
        return None
    return dict(sorted(found.items()))


def _is_local(location: str) -> bool:
    scheme = urlparse(location).scheme
    return scheme in ("", "file")


def static_table(name: str, metadata_location: str, properties: dict[str, str]) -> Table:
    """The table whose current metadata file `local_tables` found, read-only and without the
    SQL catalog (whose SQLAlchemy import costs a CLI scan about half a second)."""
    from pyiceberg.catalog.noop import NoopCatalog
    from pyiceberg.io import load_file_io
    from pyiceberg.serializers import FromInputFile
    from pyiceberg.table import StaticTable

    io = load_file_io(properties=properties, location=metadata_location)
    return StaticTable(
        identifier=tuple(name.split(".")),
        metadata=FromInputFile.table_metadata(io.new_input(metadata_location)),
        metadata_location=metadata_location,
        io=io,
        catalog=NoopCatalog("read-only"),
    )
