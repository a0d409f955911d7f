"""The gold tables of one day computed one after another in one process, as the steps of a
Dagster run are: each table's time, peak RSS and what the process holds at its end (ANALYSIS.md,
runs 36-37).

    LAKE_HOME=... LAKE_STORE_URL=file://... LAKE_CATALOG_URI=sqlite:///... \\
        python -m benchmarks.gold_memory 2026-11-01 [table ...] [--df-purge-delay MS]

``--df-purge-delay`` sets ``MIMALLOC_PURGE_DELAY`` for DataFusion's own mimalloc only: the
variable is set after pyarrow (which links another copy) has loaded and before `datafusion`
is imported, since mimalloc reads it when its library loads. Nothing is committed: each table
is computed as gold computes it, in a fresh session, and dropped. Not a benchmark task.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import date

import pyarrow  # noqa: F401  (loads pyarrow's mimalloc before the variable is set)

from benchmarks.sampling import OwnPeak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("day", type=date.fromisoformat)
    parser.add_argument("tables", nargs="*", help="gold tables in order (default: all)")
    parser.add_argument(
        "--df-purge-delay", metavar="MS", help="MIMALLOC_PURGE_DELAY for DataFusion"
    )
    args = parser.parse_args()
    if args.df_purge_delay is not None:
        os.environ["MIMALLOC_PURGE_DELAY"] = args.df_purge_delay
    import datafusion  # noqa: F401  (its mimalloc reads the variable now)

    from lake_pipelines.config import LakeSettings
    from lake_pipelines.datasets import events
    from lake_pipelines.lake import memory
    from lake_pipelines.lake.analytics.queries import gold_tables_for
    from lake_pipelines.lake.analytics.session import make_session, register_files
    from lake_pipelines.lake.silver import ensure_silver_table, span_filter

    day: date = args.day
    settings = LakeSettings.from_env()
    store = settings.store.object_store()
    spec = events.SPEC
    silver = ensure_silver_table(settings.catalog.load(store), spec)
    schema = silver.schema().as_arrow()
    session = settings.datafusion.session_settings()
    tables = {g.name: g for g in gold_tables_for(spec)}
    peak = OwnPeak()
    for name in args.tables or list(tables):
        gold = tables[name]
        first = day.fromordinal(day.toordinal() - gold.lookback_days)
        scan = silver.scan(row_filter=span_filter(spec, first, day))
        files = [t.file.file_path for t in scan.plan_files()]
        entry = peak.now()
        peak.reset()
        started = time.perf_counter()
        ctx = make_session(session, (store,))
        register_files(ctx, "source", store, files, schema, spec.table_name)
        rows = gold.compute(ctx, day).num_rows
        del ctx
        seconds, end = time.perf_counter() - started, peak.now()
        memory.release_memory()
        print(
            f"{name}: {seconds:.1f} s, {rows} rows, MiB: entry {entry >> 20}, "
            f"peak {peak.bytes >> 20}, end {end >> 20}, released {peak.now() >> 20}",
            flush=True,
        )


if __name__ == "__main__":
    main()
