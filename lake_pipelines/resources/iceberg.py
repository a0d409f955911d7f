"""The Iceberg catalog as a Dagster resource: SQL (SQLite default, PostgreSQL), REST, Glue, ..."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from lake_pipelines import config as settings
from lake_pipelines.errors import ConfigError
from lake_pipelines.lake.storage import ObjectStore

if TYPE_CHECKING:  # imported on first use: pyiceberg and SQLAlchemy take a while to import
    from pyiceberg.catalog import Catalog


class IcebergCatalogResource(dg.ConfigurableResource):
    """A pyiceberg catalog whose warehouse lives on the lake's object store.

    Defaults: a SQL catalog in ``./.lake/catalog.db`` (SQLite) with the warehouse at
    ``<store>/warehouse``. Set ``LAKE_CATALOG_URI=postgresql+psycopg2://...`` for PostgreSQL,
    or ``LAKE_CATALOG_TYPE=rest`` / ``glue`` with ``LAKE_CATALOG_URI`` for those catalogs.
    """

    name: str = Field(default="", description="catalog name; empty: LAKE_CATALOG_NAME or 'lake'")
    type: str = Field(default="", description="sql, rest, glue, ...; empty: LAKE_CATALOG_TYPE")
    uri: str = Field(default="", description="catalog URI; empty: LAKE_CATALOG_URI or SQLite")
    warehouse: str = Field(default="", description="warehouse URL; empty: <store>/warehouse")

    def properties(self, store: ObjectStore) -> dict[str, str]:
        kind = settings.resolve("catalog_type", self.type)
        props = {
            "type": kind,
            "uri": settings.resolve("catalog_uri", self.uri),
            "warehouse": settings.resolve("warehouse", self.warehouse) or store.uri("warehouse"),
            **store.iceberg_properties(),
        }
        if kind == "sql" and props["uri"].startswith("sqlite:///"):
            from pathlib import Path

            Path(props["uri"].removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return props

    def load(self, store: ObjectStore) -> Catalog:
        from pyiceberg.catalog import load_catalog

        name = settings.resolve("catalog_name", self.name)
        props = self.properties(store)
        try:
            return load_catalog(name, **props)
        except Exception as exc:
            raise ConfigError(
                "LAKE_CATALOG_URI", props["uri"], f"cannot open {props['type']} catalog: {exc}"
            ) from exc
