"""The Iceberg table every peer of task 10 lands the day into: a SQLite-backed pyiceberg
`SqlCatalog` on local disk, namespace ``lake``, table ``events`` in the target schema."""

from __future__ import annotations

import os
from typing import Any

import pyarrow as pa

NAMESPACE, TABLE = "lake", "events"


def events_table(out: str, schema: pa.Schema) -> Any:  # -> pyiceberg Table
    """A new, empty ``lake.events`` under `out` (catalog ``out/catalog.db``)."""
    from pyiceberg.catalog.sql import SqlCatalog

    os.makedirs(out, exist_ok=True)
    catalog = SqlCatalog(
        "peer", uri=f"sqlite:///{out}/catalog.db", warehouse=f"file://{out}/warehouse"
    )
    catalog.create_namespace_if_not_exists(NAMESPACE)
    return catalog.create_table(f"{NAMESPACE}.{TABLE}", schema=schema)


def table_dir(out: str) -> str:
    """Where the table's data and metadata live (the count after the run reads it)."""
    return f"{out}/warehouse/{NAMESPACE}/{TABLE}"
