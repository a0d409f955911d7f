"""lake_pipelines: a data-lake ETL run as Dagster assets.

Landing CSV/JSON files become Hive-partitioned Parquet (bronze), then Apache Iceberg tables
(silver), then DataFusion aggregates committed back to Iceberg (gold).
"""

from __future__ import annotations

import os

# numpy's OpenBLAS starts a thread pool when numpy is imported (pyarrow imports numpy in every
# run, sensor tick and CLI command): ~70 ms of each process's start on a 2-core machine
# (benchmarks/ANALYSIS.md, run 25). The lake does no linear algebra; a value set wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


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
