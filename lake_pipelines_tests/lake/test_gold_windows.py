"""Gold tables with a lookback (the 7-day active users): a late file for day D changes the
windows of D..D+6, and only those are recomputed; which days' windows a silver update makes
stale."""

from __future__ import annotations

from datetime import date, timedelta

from pyiceberg.catalog.sql import SqlCatalog

from lake_pipelines.datasets import get_dataset
from lake_pipelines.lake.analytics.queries import gold_identifier, gold_tables_for
from lake_pipelines.lake.analytics.session import SessionSettings
from lake_pipelines.lake.bronze import ingest_day
from lake_pipelines.lake.gold import commit_gold_days
from lake_pipelines.lake.gold_windows import stale_window_days
from lake_pipelines.lake.layout import consecutive_days
from lake_pipelines.lake.silver import commit_days
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.sample_data import generate_events

SPEC = get_dataset("events")
START = date(2026, 11, 1)
[ACTIVE] = [g for g in gold_tables_for(SPEC) if g.lookback_days]
HEADER = "event_id,ts,user_id,session_id,event_type,url,price,properties,latencies_ms\n"


def _active_users(catalog: SqlCatalog) -> dict[date, int]:
    table = catalog.load_table(gold_identifier(SPEC, ACTIVE)).scan().to_arrow()
    return {r["day"]: r["active_users_7d"] for r in table.to_pylist()}


def test_the_days_after_a_late_silver_day_are_recomputed_and_only_they(
    local_store: ObjectStore, local_catalog: SqlCatalog
) -> None:
    landed = generate_events(local_store, START, days=12, rows_per_day=30, seed=23, bad_rows=False)
    days = [d.day for d in landed]
    for day in days:
        ingest_day(local_store, SPEC, day)
    commit_days(local_store, local_catalog, SPEC, days, "r1")
    settings = SessionSettings(2)
    commit_gold_days(local_store, local_catalog, SPEC, ACTIVE, days, settings)
    before = _active_users(local_catalog)

    # a late file on day D brings a user nobody else has: D..D+6 count one more
    late = days[2]
    row = f"late-1,{late}T12:00:00Z,late-user,s1,click,,,,\n"
    local_store.write_bytes(f"landing/events/{late}/late.csv", (HEADER + row).encode())
    ingest_day(local_store, SPEC, late)
    commit_days(local_store, local_catalog, SPEC, [late], "r2")
    window = [late + timedelta(days=k) for k in range(ACTIVE.lookback_days + 1)]

    # gold re-run for every day: exactly the days whose window holds D are recomputed
    reports = commit_gold_days(local_store, local_catalog, SPEC, ACTIVE, days, settings)
    assert [r.day for r in reports if not r.unchanged] == window
    after = _active_users(local_catalog)
    assert after == {d: before[d] + (1 if d in window else 0) for d in days}


def test_stale_window_days_are_those_after_a_newer_silver_day() -> None:
    d = [START + timedelta(days=i) for i in range(12)]
    # storage ids: everything materialized in order, then silver day 2 again (id 100)
    gold = {day: 50 + i for i, day in enumerate(d)}
    silver = {day: 10 + i for i, day in enumerate(d)} | {d[2]: 100}
    # day 2 itself and the six after it; never a day gold has not materialized
    assert stale_window_days(silver, gold, lookback_days=6) == d[2:9]
    assert stale_window_days(silver, {k: v for k, v in gold.items() if k != d[5]}, 6) == [
        *d[2:5],
        *d[6:9],
    ]
    # a gold day materialized after the silver update is current
    assert stale_window_days(silver, gold | {day: 200 for day in d[2:6]}, 6) == d[6:9]
    assert stale_window_days(silver, gold, lookback_days=0) == [d[2]]
    assert stale_window_days({}, gold, 6) == [] == stale_window_days(silver, {}, 6)


def test_consecutive_days_are_the_runs_of_days() -> None:
    d = [START + timedelta(days=i) for i in range(10)]
    assert consecutive_days([d[4], d[1], d[2], d[3], d[7], d[7]]) == [(d[1], d[4]), (d[7], d[7])]
    assert consecutive_days([]) == []
