"""lake_pipelines: a data-lake ETL run as Dagster assets.

Landing CSV/JSON files become Hive-partitioned Parquet (bronze), then Apache Iceberg tables
(silver), then DataFusion aggregates committed back to Iceberg (gold).
"""

from __future__ import annotations

import os
import sys

# numpy's OpenBLAS starts a thread pool when numpy is imported (pyarrow imports numpy in every
# run, sensor tick and CLI command): ~70 ms of each process's start on a 2-core machine
# (benchmarks/ANALYSIS.md, run 25). The lake does no linear algebra; a value set wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# pyarrow's memory pool: jemalloc (built into pyarrow's Linux wheels), not its default mimalloc,
# which keeps the pages a thread freed in that thread's own heap: the readers, sort and
# encoder threads of each layer left memory that the next layer's peak stacked on. jemalloc's
# arenas are shared and its background thread hands freed pages back within about a second.
# A 20M-row day in one run peaked at 839 MiB against 948-1,004, no layer slower
# (benchmarks/ANALYSIS.md, run 41). The pool is chosen at pyarrow's first allocation, which
# comes after this; a value set in the environment wins.
if sys.platform == "linux":
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")


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
