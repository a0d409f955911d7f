"""The daily event metrics: per day and event type, events, distinct users and sessions,
revenue and exact price percentiles (gold table ``events_daily_metrics``).

Two plans for the same numbers: one query while the groups' distinct values fit the memory
limit, three that do not hold them all at once when they do not (each distinct count a slice
of its key at a time, `analytics.slices`); a window of several days runs a day per worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from lake_pipelines.lake.analytics.slices import slice_bounds, sliced_sum, slices_for
from lake_pipelines.lake.analytics.sql import DAY_OF_TS, day_start, memory_exhausted, percentile_sql
from lake_pipelines.lake.cores import usable_cores

if TYPE_CHECKING:  # loading the code location does not load DataFusion (run 25)
    from datafusion import SessionContext

# The rows of the window, as each of the queries below reads them.
EVENTS_OF_WINDOW = f"""
SELECT {DAY_OF_TS} AS day, event_type, user_id, session_id, price
FROM source
WHERE ts >= {{start}} AND ts < {{end}}
"""

EVENT_TOTALS = """
SELECT day, event_type, COUNT(*) AS events, SUM(price) AS revenue,
       {p50} AS price_p50, {p95} AS price_p95
FROM ({{rows}})
GROUP BY day, event_type
""".format(p50=percentile_sql("price", 0.5), p95=percentile_sql("price", 0.95))

# A distinct count as a GROUP BY over (group, value), its non-null values counted per group,
# not COUNT(DISTINCT): a COUNT(DISTINCT) keeps every distinct value of a group in one
# accumulator that cannot spill (5 event types of a 20M-row day: millions of sessions each),
# while the GROUP BY has many small groups and spills sorted runs under the memory limit
# (and runs a slice of the values at a time when they are many: `spillable_event_metrics`).
DISTINCT_PER_GROUP = """
SELECT {keys}, COUNT({value}) AS {name}
FROM (SELECT {keys}, {value} FROM ({rows}) GROUP BY {keys}, {value})
GROUP BY {keys}
"""

DAILY_EVENT_METRICS_SCHEMA = pa.schema(
    [
        pa.field("day", pa.date32(), nullable=False),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("events", pa.int64(), nullable=False),
        pa.field("distinct_users", pa.int64(), nullable=False),
        pa.field("distinct_sessions", pa.int64(), nullable=False),
        pa.field("revenue", pa.float64()),
        pa.field("price_p50", pa.float64()),
        pa.field("price_p95", pa.float64()),
    ]
)


def _left_join(left: pa.Table, right: pa.Table, keys: list[str], count: str) -> pa.Table:
    joined = left.join(right, keys, join_type="left outer")
    return joined.set_column(
        joined.schema.get_field_index(count), count, pc.fill_null(joined.column(count), 0)
    )


# The same numbers in one query and one scan: the fastest plan while the groups' distinct
# values fit the memory limit (a week of 5M events: 1.45x DuckDB's time in three queries,
# about par in one; benchmarks/ANALYSIS.md, run 22), but its per-group sets cannot spill.
EVENT_METRICS_ONE_QUERY = """
SELECT day, event_type, COUNT(*) AS events,
       COUNT(DISTINCT user_id) AS distinct_users, COUNT(DISTINCT session_id) AS distinct_sessions,
       SUM(price) AS revenue, {p50} AS price_p50, {p95} AS price_p95
FROM ({{rows}})
GROUP BY day, event_type
""".format(p50=percentile_sql("price", 0.5), p95=percentile_sql("price", 0.95))

# The one query in two halves that run at once on two cores (`halves_pay`): each half holds one
# of the two distinct counts' sets, so together they hold what the one query does.
EVENT_METRICS_USERS_HALF = """
SELECT day, event_type, COUNT(*) AS events, COUNT(DISTINCT user_id) AS distinct_users,
       SUM(price) AS revenue, {p50} AS price_p50, {p95} AS price_p95
FROM ({{rows}})
GROUP BY day, event_type
""".format(p50=percentile_sql("price", 0.5), p95=percentile_sql("price", 0.95))

EVENT_METRICS_SESSIONS_HALF = """
SELECT day, event_type, COUNT(DISTINCT session_id) AS distinct_sessions
FROM ({rows})
GROUP BY day, event_type
"""


GROUP_ORDER = [("day", "ascending"), ("event_type", "ascending")]


def halves_pay(partitions: int, share: int, cores: int, busy: Callable[[], int | None]) -> bool:
    """Whether a window's one query should run as its two halves at once.

    Only when it runs alone (`share` 1) in a one-partition session (DataFusion's own
    parallelism off: 2 cores or fewer, `session.automatic_partitions`) and a core besides this
    one is free right now (`busy()`: other threads running or waiting for a core, None when not
    known, assumed free; asked only when the rest allows the halves). On 2 idle cores the halves
    took a day of 714k events from 0.39 to 0.27 s for a fifth more CPU; with the other core busy
    they gained nothing (0.347 against 0.358 s) for the same extra CPU, and under a heavier load
    they were slower (ANALYSIS.md, runs 24 and 43-46). The load average would not do: it
    trails by a minute, and the run's own last step (bronze and silver keep both cores busy)
    would count against it.
    """
    if share != 1 or partitions != 1 or cores < 2:
        return False
    running = busy()
    return running is None or running <= cores - 2


def _busy_threads(looks: int = 3) -> int | None:
    """Threads other than this one running or waiting for a core, the middle of `looks`
    snapshots 1 ms apart (Linux's ``/proc/loadavg``); None where the system does not say."""
    counts = []
    for i in range(looks):
        if i:
            time.sleep(0.001)
        try:
            with open("/proc/loadavg", "rb") as stats:
                running = stats.read().split()[3].split(b"/")[0]
            counts.append(int(running) - 1)  # this thread, reading, is one of them
        except (OSError, IndexError, ValueError):
            return None
    return sorted(counts)[len(counts) // 2]


# Memory the one-query plan takes per row of its window, which its limit does not bound:
# DataFusion's per-group distinct sets are not held to the pool (a 20M-row day took 6.5 GiB
# under the 2 GiB limit, 2M rows 0.43 GiB: ~330 bytes a row; benchmarks/ANALYSIS.md, run 23).
ONE_QUERY_BYTES_PER_ROW = 400


def count_rows(ctx: SessionContext, rows: str) -> int:
    """The rows of the `rows` subquery (one column read, its filter pushed down)."""
    counted = ctx.sql(f"SELECT COUNT(*) AS n FROM ({rows})").to_arrow_table()
    return int(counted.column(0)[0].as_py())


def one_query_fits(total: int, memory_limit: int, share: int = 1) -> bool:
    """Whether `total` rows are few enough for `EVENT_METRICS_ONE_QUERY` in a `share`-th of
    `memory_limit` (always, without a limit; `share`: windows run at once)."""
    return not memory_limit or total * ONE_QUERY_BYTES_PER_ROW * share <= memory_limit


def event_metrics(
    ctx: SessionContext, first: date, end: date, workers: int = 0, halves: bool | None = None
) -> pa.Table:
    """Per day of `first`..`end` (exclusive) and event type: events, distinct users and
    sessions, revenue, price p50/p95.

    A window of several days is computed a day at a time, `workers` days at once (0: one per
    core; DataFusion releases the GIL). Every group is one day's, so the numbers are those of
    one query over the window, to the last digit of the sum (each day's rows are added in the
    same order); a single query over a week ran on one core (one partition up to 2 cores:
    `session.automatic_partitions`), and 2 partitions hash every distinct value twice, while
    the days in parallel cost no more CPU than the one query (benchmarks/ANALYSIS.md, run 24).

    Each day (or the whole window, with one worker) is one query (`EVENT_METRICS_ONE_QUERY`)
    when its rows fit its share of the session's memory limit at `ONE_QUERY_BYTES_PER_ROW`,
    since DataFusion does not hold that plan to its limit. When they do not, or DataFusion
    says "Resources exhausted" anyway (before any result exists), that day is computed by
    the spillable plan: three queries, one after the other, joined here (a row per day and
    type each); the totals hold the groups' prices for the exact percentiles, which cannot
    spill, and run alone they have the session's whole memory; each distinct count runs a
    slice of its key at a time when its groups would not fit (`analytics.slices`; spilling
    them took 2.5x as long, run 30). Both plans give the same numbers (the tests compare them).

    A window that runs alone on a one-partition session runs its one query as two halves at
    once when a second core is free (`halves_pay`; `halves` True or False decides instead):
    the same numbers, to the last digit.
    """
    days = [first + timedelta(days=i) for i in range((end - first).days)]
    workers = min(workers or usable_cores(), len(days))
    if workers <= 1:
        return _window_metrics(ctx, first, end, 1, halves)
    with ThreadPoolExecutor(workers, thread_name_prefix="event-metrics") as pool:
        parts = pool.map(
            lambda day: _window_metrics(ctx, day, day + timedelta(days=1), workers, False), days
        )
        return pa.concat_tables(list(parts))


def _window_metrics(
    ctx: SessionContext, first: date, end: date, share: int, halves: bool | None
) -> pa.Table:
    from lake_pipelines.lake.analytics.session import automatic_partitions, settings_of

    rows = EVENTS_OF_WINDOW.format(start=day_start(first), end=day_start(end))
    schema = DAILY_EVENT_METRICS_SCHEMA
    settings = settings_of(ctx)
    limit = settings.memory_limit
    total = count_rows(ctx, rows) if limit else 0
    if not one_query_fits(total, limit, share):
        return spillable_event_metrics(ctx, rows, total, share).select(schema.names).cast(schema)
    if halves is None:
        cores = usable_cores()
        partitions = settings.target_partitions or automatic_partitions(cores)
        halves = halves_pay(partitions, share, cores, _busy_threads)
    try:
        result = _one_query_in_halves(ctx, rows) if halves else _one_query(ctx, rows)
    except Exception as exc:
        if not memory_exhausted(exc):
            raise
        result = spillable_event_metrics(ctx, rows, total, share)
    return result.select(schema.names).cast(schema)


def _one_query(ctx: SessionContext, rows: str) -> pa.Table:
    return ctx.sql(EVENT_METRICS_ONE_QUERY.format(rows=rows)).to_arrow_table()


def _one_query_in_halves(ctx: SessionContext, rows: str) -> pa.Table:
    """`EVENT_METRICS_ONE_QUERY`'s table from its two halves, run on two threads (DataFusion
    releases the GIL). Both halves group the same rows, so they have the same groups: sorted
    alike, the sessions' counts line up with the rest."""
    texts = [EVENT_METRICS_USERS_HALF, EVENT_METRICS_SESSIONS_HALF]
    with ThreadPoolExecutor(2, thread_name_prefix="event-metrics-half") as pool:
        users, sessions = pool.map(
            lambda text: ctx.sql(text.format(rows=rows)).to_arrow_table().sort_by(GROUP_ORDER),
            texts,
        )
    keys = [name for name, _ in GROUP_ORDER]
    if not users.select(keys).equals(sessions.select(keys)):
        raise RuntimeError("the two halves of the daily event metrics found different groups")
    return users.append_column("distinct_sessions", sessions.column("distinct_sessions"))


def spillable_event_metrics(
    ctx: SessionContext, rows: str, total: int = 0, share: int = 1
) -> pa.Table:
    """`event_metrics` of the `rows` subquery (`total` rows, if counted) in the plan that
    spills (see there). When the distinct counts' groups (at most one a row) would not fit
    their part of the memory limit, each count is computed a slice of its key at a time
    (`slices`): no spilling, the same numbers."""
    from lake_pipelines.lake.analytics.session import settings_of

    settings = settings_of(ctx)
    slices = slices_for(total, settings.memory_limit, share)
    keys = ["day", "event_type"]
    result = ctx.sql(EVENT_TOTALS.format(rows=rows)).to_arrow_table()
    for value, name in (("user_id", "distinct_users"), ("session_id", "distinct_sessions")):
        values = f"SELECT {', '.join(keys)}, {value} FROM ({rows})"
        bounds = slice_bounds(ctx, values, value, total, slices)

        def query(of: str, value: str = value, name: str = name) -> str:
            return DISTINCT_PER_GROUP.format(keys=", ".join(keys), value=value, name=name, rows=of)

        counts = sliced_sum(ctx, values, value, bounds, query, keys, [name], settings.spill_dir)
        result = _left_join(result, counts, keys, name)
    return result


def daily_event_metrics(ctx: SessionContext, day: date) -> pa.Table:
    """Per day and event type: events, distinct users/sessions, revenue, price p50/p95."""
    return event_metrics(ctx, day, day + timedelta(days=1))
