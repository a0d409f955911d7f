"""Choices made for the gold queries' speed keep their answers: the day key, one phase."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pytest
from datafusion import DataFrame, SessionContext

from lake_pipelines.lake.analytics.event_metrics import (
    EVENT_TOTALS,
    EVENTS_OF_WINDOW,
    event_metrics,
    halves_pay,
)
from lake_pipelines.lake.analytics.event_metrics import _busy_threads as em_busy_threads
from lake_pipelines.lake.analytics.session import (
    SessionSettings,
    automatic_partitions,
    make_session,
)
from lake_pipelines.lake.analytics.sql import DAY_OF_TS
from lake_pipelines_tests.support import duckdb_query


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_the_day_key_is_the_calendar_day_in_the_timestamps_zone(zone: str) -> None:
    """Around midnight, before 1970 and across a DST change: the day a clock there shows."""
    tz = ZoneInfo(zone)
    instants = [
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(1960, 6, 1, 12, tzinfo=UTC),
        datetime(2026, 3, 8, 6, 59, 59, tzinfo=UTC),  # New York's clocks go forward at 7:00
        datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
    ]
    moments = [t + timedelta(microseconds=d) for t in instants for d in (-1, 0, 1)]
    ctx = make_session(SessionSettings(1))
    ts = pa.array(moments, pa.timestamp("us", zone))
    ctx.register_record_batches("t", [pa.table({"ts": ts}).to_batches()])
    got = ctx.sql(f"SELECT {DAY_OF_TS} AS day FROM t").to_arrow_table().column("day")
    assert got.to_pylist() == [m.astimezone(tz).date() for m in moments]


def test_automatic_partitions_are_one_up_to_two_cores_then_one_per_core() -> None:
    assert [automatic_partitions(n) for n in (1, 2, 3, 8)] == [1, 1, 3, 8]


def _events(rows: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    micros = np.sort(rng.integers(0, 3 * 86_400_000_000, rows))
    price = np.round(rng.gamma(2, 20, rows), 2)
    return pa.table(
        {
            "ts": pa.array(
                [start + timedelta(microseconds=int(m)) for m in micros], pa.timestamp("us", "UTC")
            ),
            "user_id": [f"u{x:05d}" for x in rng.integers(0, 3_000, rows)],
            "session_id": [f"s{x:07d}" for x in rng.integers(0, 40_000, rows)],
            "event_type": rng.choice(["view", "click", "buy"], rows).tolist(),
            "price": pa.array(price, mask=rng.random(rows) < 0.7),
        }
    )


@pytest.mark.parametrize("partitions", [1, 2, 4])
def test_daily_metrics_are_the_same_in_one_phase_and_in_two(partitions: int) -> None:
    """One partition plans a single-phase aggregate, more a partial and a final one; both
    give DuckDB's counts, and exactly the same percentiles."""
    data = _events(60_000, seed=7)
    ctx = make_session(SessionSettings(partitions))
    ctx.register_record_batches("source", [data.to_batches(max_chunksize=4096)])
    rows = EVENTS_OF_WINDOW.format(
        start="TIMESTAMP '2026-11-01T00:00:00Z'",
        end="TIMESTAMP '2026-11-04T00:00:00Z'",
    )
    plan = "\n".join(ctx.sql(f"EXPLAIN {EVENT_TOTALS.format(rows=rows)}").to_pandas()["plan"])
    modes = set(re.findall(r"AggregateExec: mode=(\w+)", plan))
    assert modes == ({"Single"} if partitions == 1 else {"Partial", "FinalPartitioned"})
    got = event_metrics(ctx, date(2026, 11, 1), date(2026, 11, 4)).sort_by(
        [("day", "ascending"), ("event_type", "ascending")]
    )
    expected = duckdb_query(
        """
        SELECT CAST(ts AS DATE) AS day, event_type, COUNT(*) AS events,
               COUNT(DISTINCT user_id) AS distinct_users,
               COUNT(DISTINCT session_id) AS distinct_sessions,
               quantile_cont(price, 0.5) AS price_p50, quantile_cont(price, 0.95) AS price_p95
        FROM data GROUP BY ALL ORDER BY 1, 2
        """,
        data=data,
    )
    for name in expected.column_names:
        assert got.column(name).to_pylist() == expected.column(name).to_pylist(), name


class _Recording:
    """The session, recording the SQL it is asked to run (threads append to one list)."""

    def __init__(self, ctx: SessionContext) -> None:
        self.ctx = ctx
        self.texts: list[str] = []

    def sql(self, text: str) -> DataFrame:
        self.texts.append(text)
        return self.ctx.sql(text)


def test_a_window_of_days_runs_a_query_per_day_and_gives_the_numbers_of_one_query() -> None:
    """Two workers take a day each at a time; the numbers are the one query's over the whole
    window, to the last digit of the sum (each day's rows are added in the same order)."""
    data = _events(60_000, seed=11)
    ctx = make_session(SessionSettings(1))
    ctx.register_record_batches("source", [data.to_batches(max_chunksize=4096)])
    first, end = date(2026, 11, 1), date(2026, 11, 4)
    recording = _Recording(ctx)
    per_day = event_metrics(recording, first, end, workers=2)  # type: ignore[arg-type]
    windows = sorted(
        re.search(r"ts >= TIMESTAMP '(\S+)T.*? AND ts < TIMESTAMP '(\S+)T", text, re.S).groups()  # type: ignore[union-attr]
        for text in recording.texts
    )
    days = [(first + timedelta(days=i)).isoformat() for i in range(4)]
    assert windows == list(pairwise(days))
    one = _Recording(ctx)
    whole = event_metrics(one, first, end, workers=1, halves=False)  # type: ignore[arg-type]
    assert len(one.texts) == 1
    order = [("day", "ascending"), ("event_type", "ascending")]
    assert per_day.num_rows == 9
    assert per_day.sort_by(order).equals(whole.sort_by(order))


def test_the_one_query_in_two_halves_gives_its_numbers_to_the_last_digit() -> None:
    """Distinct users (with the totals) and distinct sessions as two queries at once: the one
    query's table exactly."""
    data = _events(60_000, seed=13)
    ctx = make_session(SessionSettings(1))
    ctx.register_record_batches("source", [data.to_batches(max_chunksize=4096)])
    first, end = date(2026, 11, 1), date(2026, 11, 4)
    halves, one = _Recording(ctx), _Recording(ctx)
    split = event_metrics(halves, first, end, workers=1, halves=True)  # type: ignore[arg-type]
    whole = event_metrics(one, first, end, workers=1, halves=False)  # type: ignore[arg-type]
    assert len(one.texts) == 1
    assert len(halves.texts) == 2
    assert ["COUNT(DISTINCT session_id)" in text for text in halves.texts].count(True) == 1
    assert ["COUNT(DISTINCT user_id)" in text for text in halves.texts].count(True) == 1
    order = [("day", "ascending"), ("event_type", "ascending")]
    assert split.num_rows == 9
    assert split.sort_by(order).equals(whole.sort_by(order))


@pytest.mark.parametrize(
    ("partitions", "share", "cores", "busy", "expected"),
    [
        (1, 1, 2, 0, True),  # one window alone, nothing else running
        (1, 1, 2, None, True),  # not known: assumed free
        (1, 1, 2, 1, False),  # something else holds the second core
        (1, 1, 4, 2, True),  # explicit one partition on 4 cores, 2 of them free
        (1, 2, 2, 0, False),  # windows already run a day per core
        (3, 1, 3, 0, False),  # DataFusion spreads the one query over the cores itself
        (1, 1, 1, 0, False),  # one core: nothing to run the second half on
    ],
)
def test_halves_run_only_for_a_window_alone_with_a_free_core(
    partitions: int, share: int, cores: int, busy: int | None, expected: bool
) -> None:
    asked: list[bool] = []

    def running() -> int | None:
        asked.append(True)
        return busy

    assert halves_pay(partitions, share, cores, running) is expected
    # the threads are counted only when the rest allows the halves (a /proc read, 2 ms)
    assert bool(asked) == (share == 1 and partitions == 1 and cores >= 2)


@pytest.mark.skipif(sys.platform != "linux", reason="reads Linux's /proc/loadavg")
def test_busy_threads_counts_what_runs_beside_the_caller() -> None:
    """A process spinning beside the caller is counted; the caller itself is not."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)
        busy = [em_busy_threads() for _ in range(5)]
    finally:
        spinner.kill()
        spinner.wait()
    assert None not in busy
    assert max(b or 0 for b in busy) >= 1


def _user_events(
    rng: np.random.Generator, rows: int, users: int, start: datetime, days: int
) -> pa.Table:
    """`rows` events (ts, user_id) spread over `days` days from `start`, a tenth without a user."""
    ids = pa.array([f"u{u}" for u in rng.integers(0, users, rows)], mask=rng.random(rows) < 0.1)
    micros = rng.integers(0, days * 86_400_000_000, rows)
    ts = [start + timedelta(microseconds=int(m)) for m in micros]
    return pa.table({"ts": pa.array(ts, pa.timestamp("us", "UTC")), "user_id": ids})


@pytest.mark.parametrize(("limit", "views"), [(0, False), (1 << 20, False), (1 << 20, True)])
def test_top_domains_call_the_domain_function_once_a_row_and_match_duckdb(
    tmp_path: Path, limit: int, views: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One scan, one `extract_domain` call per row of the day (it is Python: a 20M-row day
    called it 4 times a row before), and the ranking of DuckDB's reading of the same rows:
    rows without a domain (no URL, not a URL) and without a user are counted as they were.
    The same under a limit the day's (domain, user) groups do not fit (1 MiB: ~7 slices of
    the users, `analytics.slices`), also from string views (DataFusion's strings when a
    source is registered without a schema; pyarrow cannot sort them)."""
    from lake_pipelines.lake.analytics.functions import _extract_domain
    from lake_pipelines.lake.analytics.queries import TOP_DOMAINS_SCHEMA, top_domains

    rng = np.random.default_rng(26)
    rows = 20_000
    day = date(2026, 11, 1)
    start = datetime(2026, 10, 31, 12, tzinfo=UTC)  # half a day before, half after
    hosts = np.array([f"https://www.Site{i}.example/p" for i in range(40)] + ["not a url"])
    url = pa.array(hosts[np.minimum(rng.zipf(1.3, rows), len(hosts)) - 1])
    url = pa.array(url.to_pylist(), mask=rng.random(rows) < 0.05)
    data = _user_events(rng, rows, 3_000, start, days=2).append_column("url", url)
    calls: list[int] = []

    def counted(urls: pa.Array) -> pa.Array:
        calls.append(len(urls))
        return _extract_domain(urls)

    from datafusion import udf

    ctx = make_session(SessionSettings(2, memory_limit=limit, spill_dir=str(tmp_path)))
    ctx.register_udf(udf(counted, [pa.string()], pa.string(), "immutable", "extract_domain"))
    source = data
    if views:
        source = data.cast(
            pa.schema(
                [f.with_type(pa.string_view()) if f.type == pa.string() else f for f in data.schema]
            )
        )
    ctx.register_record_batches("source", [source.to_batches(max_chunksize=1024)])
    ran: list[str] = []
    real = SessionContext.sql

    def sql(self: SessionContext, query: str, *args: Any) -> DataFrame:
        ran.append(query)
        return real(self, query, *args)

    monkeypatch.setattr(SessionContext, "sql", sql)
    got = top_domains(ctx, day, top=5)
    copies = [q for q in ran if q.startswith("COPY ")]
    assert len(copies) == (1 if limit else 0)
    assert not copies or copies[0].count(" WHEN ") >= 5

    on_day = duckdb_query(
        "SELECT count(*) AS n FROM d WHERE CAST(ts AS DATE) = DATE '2026-11-01'", d=data
    )
    assert sum(calls) == on_day.column("n")[0].as_py()
    expected = duckdb_query(
        """
        SELECT day, domain, events, distinct_users, rank FROM (
          SELECT day, domain, COUNT(*) AS events, COUNT(DISTINCT user_id) AS distinct_users,
                 ROW_NUMBER() OVER (ORDER BY COUNT(*) DESC, domain) AS rank
          FROM (SELECT CAST(ts AS DATE) AS day, user_id,
                       regexp_replace(lower(regexp_extract(url, '^[a-z]+://([^:/?#]+)', 1)),
                                      '^www\\.', '') AS domain
                FROM d WHERE CAST(ts AS DATE) = DATE '2026-11-01')
          WHERE domain <> '' GROUP BY day, domain)
        WHERE rank <= 5 ORDER BY rank
        """,
        d=data,
    ).cast(TOP_DOMAINS_SCHEMA)
    assert got.num_rows == 5
    assert got.sort_by("rank").equals(expected)


@pytest.mark.parametrize(
    ("limit", "how", "copies"),
    [
        (0, "one query", 0),
        (1 << 20, "one query", None),  # spilled, or sliced if DataFusion gave up: either way
        (1 << 20, "fallback", 1),  # the one query said "Resources exhausted"
        (1 << 20, "sliced", 1),
    ],
)
def test_active_users_match_duckdb_in_one_query_and_in_slices(
    tmp_path: Path, limit: int, how: str, copies: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The distinct users of the 7 days ending with the day, of the day alone, and the days
    with data, as DuckDB counts them from the same rows (null users, rows outside the window
    on both sides): in one query, and a slice of the users at a time (each slice counted
    alone, the counts added up), which is where a query that exhausted the limit goes."""
    from lake_pipelines.lake.analytics.active_users import (
        ACTIVE_USERS_SCHEMA,
        active_users_7d,
        active_users_sliced,
    )

    rng = np.random.default_rng(7)
    day = date(2026, 11, 10)
    start = datetime(2026, 11, 1, tzinfo=UTC)  # D-9 .. D+1: the window and both sides of it
    data = _user_events(rng, 20_000, 6_000, start, days=11)
    ctx = make_session(SessionSettings(2, memory_limit=limit, spill_dir=str(tmp_path)))
    ctx.register_record_batches("source", [data.to_batches(max_chunksize=1024)])
    ran: list[str] = []
    real = SessionContext.sql

    def sql(self: SessionContext, query: str, *args: Any) -> DataFrame:
        ran.append(query)
        if how == "fallback" and "WITH window_rows" in query:
            raise Exception("DataFusion error: Resources exhausted: Failed to reserve memory")
        return real(self, query, *args)

    monkeypatch.setattr(SessionContext, "sql", sql)
    got = (active_users_sliced if how == "sliced" else active_users_7d)(ctx, day)
    if copies is not None:
        assert len([q for q in ran if q.startswith("COPY ")]) == copies
    expected = duckdb_query(
        """
        SELECT DATE '2026-11-10' AS day,
               COUNT(DISTINCT user_id) AS active_users_7d,
               COUNT(DISTINCT CASE WHEN CAST(ts AS DATE) = DATE '2026-11-10' THEN user_id END)
                   AS active_users_1d,
               COUNT(DISTINCT CAST(ts AS DATE)) AS days_with_data
        FROM d
        WHERE CAST(ts AS DATE) BETWEEN DATE '2026-11-04' AND DATE '2026-11-10'
        """,
        d=data,
    ).cast(ACTIVE_USERS_SCHEMA)
    assert expected.column("active_users_7d")[0].as_py() > 5_000  # most of the users
    assert got.equals(expected)
