"""Dagster resources: thin wrappers that turn settings into engine objects."""

from __future__ import annotations

from lake_pipelines.resources.datafusion import DataFusionResource
from lake_pipelines.resources.iceberg import IcebergCatalogResource
from lake_pipelines.resources.object_store import ObjectStoreResource

__all__ = ["DataFusionResource", "IcebergCatalogResource", "ObjectStoreResource"]
