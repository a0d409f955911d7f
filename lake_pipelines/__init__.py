"""lake_pipelines: a data-lake ETL run as Dagster assets.

Landing CSV/JSON files become Hive-partitioned Parquet (bronze), then Apache Iceberg tables
(silver), then DataFusion aggregates committed back to Iceberg (gold).
"""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # Resolved on first use: importlib.metadata costs ~0.1 s, which `lake-pipelines --help`
    # and every other import of the package would otherwise pay.
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("lake_pipelines")
    except PackageNotFoundError:  # running from a source tree that was never installed
        found = "0.0.0+unknown"
    globals()["__version__"] = found
    return found


__all__ = ["__version__"]
