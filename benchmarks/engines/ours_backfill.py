"""A year of a small dataset backfilled in ONE run, layer by layer, as the assets do it.

`prepare` lands `days` days of events (`rows_per_day` each) once and clears what an earlier
round left; `year_backfill` (timed) then runs bronze day by day (`ingest_day`, as the bronze
asset does), silver over the whole range (`commit_days`), and every gold table of the dataset
(`commit_gold_days`), and returns per-layer seconds, the silver commits' cost over the year
(first month vs last month per day) and the metadata on disk. A second silver table is then
fed the same bronze one day per commit (a daily schedule over the year) to show that a
commit's cost does not grow with the table's age.
"""

from __future__ import annotations

import shutil
import statistics
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from lake_pipelines.datasets.events import SPEC
from lake_pipelines.lake.analytics.queries import gold_tables_for
from lake_pipelines.lake.analytics.session import SessionSettings
from lake_pipelines.lake.bronze import ingest_day
from lake_pipelines.lake.gold import commit_gold_days
from lake_pipelines.lake.silver import commit_days
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.sample_data import generate_events

MONTH = 30  # days compared at each end of the year


def _catalog(store: ObjectStore, root: Path, name: str):  # -> SqlCatalog
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog(
        name,
        uri=f"sqlite:///{root / f'{name}.db'}",
        warehouse=store.uri(f"warehouse-{name}"),
        **store.iceberg_properties(),
    )


def _days(first_day: str, days: int) -> list[date]:
    start = date.fromisoformat(first_day)
    return [start + timedelta(days=i) for i in range(days)]


def prepare(op: str, out: str, days: int, rows_per_day: int, first_day: str, **_: Any) -> None:
    """Land the year once (kept between rounds); remove every layer an earlier round wrote."""
    root = Path(out)
    lake = root / "lake"
    marker = root / f"landed-{days}x{rows_per_day}"
    if not marker.exists():
        shutil.rmtree(root, ignore_errors=True)
        lake.mkdir(parents=True)
        start = date.fromisoformat(first_day)
        generate_events(ObjectStore(str(lake)), start, days, rows_per_day, seed=8, bad_rows=False)
        marker.touch()
    for child in lake.iterdir():
        if child.name != "landing":
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    for db in root.glob("*.db"):
        db.unlink()


def _metadata(table: Any) -> dict[str, Any]:
    folder = Path(table.location().removeprefix("file://")) / "metadata"
    files = [p for p in folder.iterdir() if p.is_file()]
    current = Path(table.metadata_location.removeprefix("file://"))
    return {
        "metadata_json_bytes": current.stat().st_size,
        "metadata_json_files": sum(p.name.endswith(".metadata.json") for p in files),
        "metadata_files": len(files),
        "metadata_bytes": sum(p.stat().st_size for p in files),
        "snapshots": len(table.snapshots()),
        "manifests": len(table.current_snapshot().manifests(table.io)),
    }


def _ends(costs: list[float]) -> tuple[float, float]:
    """Mean per-day cost of the first and the last month (halves when shorter than two)."""
    n = min(MONTH, max(len(costs) // 2, 1))
    return statistics.fmean(costs[:n]), statistics.fmean(costs[-n:])


def year_backfill(out: str, days: int, rows_per_day: int, first_day: str, **_: Any) -> dict:
    root = Path(out)
    store = ObjectStore(str(root / "lake"))
    range_days = _days(first_day, days)
    t0 = time.perf_counter()
    rows = 0
    for day in range_days:
        rows += ingest_day(store, SPEC, day, run_id="bench").rows_written
    bronze_s = time.perf_counter() - t0

    catalog = _catalog(store, root, "range")
    t0 = time.perf_counter()
    silver = commit_days(store, catalog, SPEC, range_days, "bench")
    silver_s = time.perf_counter() - t0
    assert all(r.rows_read == r.rows_committed for r in silver)
    commits: dict[int, list[float]] = {}
    for r in silver:
        commits.setdefault(r.snapshot_id, []).append(r.seconds)
    per_day = [sum(c) / len(c) for c in commits.values()]  # one cost per commit, per day
    first, last = per_day[0], per_day[-1]

    t0 = time.perf_counter()
    gold_rows = 0
    for gold in gold_tables_for(SPEC):
        reports = commit_gold_days(
            store, catalog, SPEC, gold, range_days, SessionSettings(2), "bench"
        )
        gold_rows += sum(r.rows for r in reports)
    gold_s = time.perf_counter() - t0
    silver_meta = _metadata(catalog.load_table(SPEC.table_name))

    daily_catalog = _catalog(store, root, "daily")
    daily_costs = []
    for day in range_days:
        t = time.perf_counter()
        commit_days(store, daily_catalog, SPEC, [day], "bench-daily")
        daily_costs.append(time.perf_counter() - t)
    daily_first, daily_last = _ends(daily_costs)
    return {
        "days": days,
        "rows": rows,
        "bronze_s": round(bronze_s, 2),
        "silver_s": round(silver_s, 2),
        "gold_s": round(gold_s, 2),
        "gold_rows": gold_rows,
        "silver_commits": len(commits),
        "silver_first_commit_per_day_s": round(first, 4),
        "silver_last_commit_per_day_s": round(last, 4),
        "silver_metadata": silver_meta,
        "daily_commits": len(daily_costs),
        "daily_first_month_s": round(daily_first, 4),
        "daily_last_month_s": round(daily_last, 4),
        "daily_total_s": round(sum(daily_costs), 2),
        "daily_metadata": _metadata(daily_catalog.load_table(SPEC.table_name)),
    }
