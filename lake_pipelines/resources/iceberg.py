"""The Iceberg catalog as a Dagster resource: SQL (SQLite default, PostgreSQL), REST, Glue, ..."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

from lake_pipelines.config import CatalogSettings
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.resources.fields import overrides, setting_field

if TYPE_CHECKING:  # imported on first use: pyiceberg and SQLAlchemy take a while to import
    from pyiceberg.catalog import Catalog


class IcebergCatalogResource(dg.ConfigurableResource):
    """A pyiceberg catalog whose warehouse lives on the lake's object store.

    Defaults: a SQL catalog in ``./.lake/catalog.db`` (SQLite) with the warehouse at
    ``<store>/warehouse``. Set ``LAKE_CATALOG_URI=postgresql+psycopg2://...`` for PostgreSQL,
    or ``LAKE_CATALOG_TYPE=rest`` / ``glue`` with ``LAKE_CATALOG_URI`` for those catalogs.
    """

    name: str | None = setting_field(CatalogSettings, "name")
    type: str | None = setting_field(CatalogSettings, "type")
    uri: str | None = setting_field(CatalogSettings, "uri")
    warehouse: str | None = setting_field(CatalogSettings, "warehouse")

    def settings(self) -> CatalogSettings:
        return CatalogSettings.from_env(None, **overrides(self, CatalogSettings))

    def properties(self, store: ObjectStore) -> dict[str, str]:
        return self.settings().properties(store)

    def load(self, store: ObjectStore) -> Catalog:
        return self.settings().load(store)
