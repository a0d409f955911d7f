"""Time each gold query of one day alone, with the process's peak RSS (ANALYSIS.md, run 30).

    LAKE_HOME=... LAKE_STORE_URL=file://... LAKE_CATALOG_URI=sqlite:///... \\
        python -m benchmarks.gold_profile 2026-11-01 [query ...] [--explain users]

The lake's settings come from the environment as the code location reads them. Each query
runs in a fresh DataFusion session over the day's silver files (registered as gold does);
the queries: count, totals, users, sessions (the spillable plan's three parts, unsliced),
metrics (the daily metrics as gold computes them), top_domains, active_7d. Not a benchmark
task: no peer and no repetition; it says where a day's gold time and memory go.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from benchmarks.sampling import OwnPeak


def main() -> None:
    from lake_pipelines.config import LakeSettings
    from lake_pipelines.datasets import events
    from lake_pipelines.lake.analytics import event_metrics as em
    from lake_pipelines.lake.analytics import queries
    from lake_pipelines.lake.analytics.session import make_session, register_files
    from lake_pipelines.lake.analytics.sql import day_start
    from lake_pipelines.lake.silver import ensure_silver_table, span_filter

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("day", type=date.fromisoformat)
    parser.add_argument("queries", nargs="*")
    parser.add_argument("--explain", metavar="VALUE", help="EXPLAIN ANALYZE one distinct count")
    args = parser.parse_args()
    day: date = args.day
    settings = LakeSettings.from_env()
    store = settings.store.object_store()
    spec = events.SPEC
    silver = ensure_silver_table(settings.catalog.load(store), spec)
    files = [
        t.file.file_path for t in silver.scan(row_filter=span_filter(spec, day, day)).plan_files()
    ]
    schema = silver.schema().as_arrow()
    session = settings.datafusion.session_settings()
    print(f"{len(files)} silver files, memory limit {session.memory_limit >> 20} MiB")

    def ctx() -> Any:
        c = make_session(session, (store,))
        register_files(c, "source", store, files, schema, spec.table_name)
        return c

    rows = em.EVENTS_OF_WINDOW.format(start=day_start(day), end=day_start(day + timedelta(1)))

    def distinct(value: str) -> Callable[[Any], Any]:
        sql = em.DISTINCT_PER_GROUP.format(keys="day, event_type", value=value, name="n", rows=rows)
        return lambda c: c.sql(sql).to_arrow_table()

    jobs: dict[str, Callable[[Any], Any]] = {
        "count": lambda c: c.sql(f"SELECT COUNT(*) FROM ({rows})").to_arrow_table(),
        "totals": lambda c: c.sql(em.EVENT_TOTALS.format(rows=rows)).to_arrow_table(),
        "users": distinct("user_id"),
        "sessions": distinct("session_id"),
        "metrics": lambda c: em.daily_event_metrics(c, day),
        "top_domains": lambda c: queries.top_domains(c, day),
        "active_7d": lambda c: queries.active_users_7d(c, day),
    }
    if args.explain:
        sql = em.DISTINCT_PER_GROUP.format(
            keys="day, event_type", value=args.explain, name="n", rows=rows
        )
        for batch in ctx().sql(f"EXPLAIN ANALYZE {sql}").collect():
            for row in batch.to_pylist():
                print(row["plan"])
        return
    peak = OwnPeak()
    for name in args.queries or jobs:
        c = ctx()
        peak.reset()
        wall, cpu = time.perf_counter(), time.process_time()
        out = jobs[name](c)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(
            f"{name}: {wall:.1f} s, {cpu:.1f} CPU s, peak {peak.bytes >> 20} MiB, "
            f"{out.num_rows} rows"
        )


if __name__ == "__main__":
    main()
