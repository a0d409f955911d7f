"""lake_pipelines: a data-lake ETL run as Dagster assets.

Landing CSV/JSON files become Hive-partitioned Parquet (bronze), then Apache Iceberg tables
(silver), then DataFusion aggregates committed back to Iceberg (gold).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lake_pipelines")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
