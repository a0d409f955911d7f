"""The daily event metrics: per day and event type, events, distinct users and sessions,
revenue and exact price percentiles (gold table ``events_daily_metrics``).

Two plans for the same numbers: one query while the groups' distinct values fit the memory
limit, three that spill when they do not; a window of several days runs a day per worker.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import pyarrow as pa
import pyarrow.compute as pc
from datafusion import SessionContext

from lake_pipelines.lake.analytics.sql import DAY_OF_TS, day_start, percentile_sql

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
# while the GROUP BY has many small groups and spills sorted runs under the memory limit.
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


# The one query's numbers in two queries of about the same cost, for two workers on one day
# (one day of 714k events: totals with the distinct users 0.17 s CPU, distinct sessions 0.18 s,
# the one query 0.30 s; benchmarks/ANALYSIS.md, run 24). The revenue is the same sum, in the
# same order, as the one query's.
EVENT_METRICS_HALVES = (
    """
SELECT day, event_type, COUNT(*) AS events, COUNT(DISTINCT user_id) AS distinct_users,
       SUM(price) AS revenue, {p50} AS price_p50, {p95} AS price_p95
FROM ({{rows}})
GROUP BY day, event_type
""".format(p50=percentile_sql("price", 0.5), p95=percentile_sql("price", 0.95)),
    """
SELECT day, event_type, COUNT(DISTINCT session_id) AS distinct_sessions
FROM ({rows})
GROUP BY day, event_type
""",
)


def event_metrics(ctx: SessionContext, first: date, end: date, workers: int = 0) -> pa.Table:
    """Per day of `first`..`end` (exclusive) and event type: events, distinct users and
    sessions, revenue, price p50/p95.

    With one worker, the window is one query (`EVENT_METRICS_ONE_QUERY`), on one core when
    the session has one partition (`session.automatic_partitions`: 2 partitions hash every
    distinct value twice). With more (0: one per core; DataFusion releases the GIL), the days
    run `workers` at a time, a query each; with fewer days than workers, each day is two
    queries at once (`EVENT_METRICS_HALVES`). Every group is one day's, so the numbers are the
    one query's to the last digit of the sum (a day's rows are added in the same order); a
    day per worker costs no more CPU than the one query, the halves a sixth more for about
    0.6x the time on two idle cores (benchmarks/ANALYSIS.md, run 24).

    When a query does not fit the session's memory limit, DataFusion says "Resources
    exhausted" before any result exists, and that day (or window) is computed again by the
    spillable plan: three queries, one after the other, joined here (a row per day and type
    each); the totals hold the groups' prices for the exact percentiles, which cannot spill,
    and run alone they have the session's whole memory; the distinct counts spill. Both plans
    give the same numbers (the tests compare them).
    """
    days = [first + timedelta(days=i) for i in range((end - first).days)]
    workers = min(workers or os.cpu_count() or 1, 2 * len(days))
    if workers <= 1:
        return _fitted(ctx, first, end, [_attempt(ctx, EVENT_METRICS_ONE_QUERY, first, end)])
    queries = EVENT_METRICS_HALVES if len(days) < workers else (EVENT_METRICS_ONE_QUERY,)
    tasks = [(day, sql) for day in days for sql in queries]
    with ThreadPoolExecutor(min(workers, len(tasks)), thread_name_prefix="metrics") as pool:
        done = list(pool.map(lambda t: _attempt(ctx, t[1], t[0], t[0] + timedelta(days=1)), tasks))
    n = len(queries)
    return pa.concat_tables(
        _fitted(ctx, day, day + timedelta(days=1), done[i * n : (i + 1) * n])
        for i, day in enumerate(days)
    )


def _rows(first: date, end: date) -> str:
    return EVENTS_OF_WINDOW.format(start=day_start(first), end=day_start(end))


def _attempt(ctx: SessionContext, sql: str, first: date, end: date) -> pa.Table | None:
    """The query's result, or None when it does not fit the session's memory limit."""
    try:
        return ctx.sql(sql.format(rows=_rows(first, end))).to_arrow_table()
    except Exception as exc:  # datafusion raises its errors as plain Exceptions
        if "Resources exhausted" not in str(exc):
            raise
        return None


def _fitted(ctx: SessionContext, first: date, end: date, parts: list[pa.Table | None]) -> pa.Table:
    """The window's metrics from its queries' results (one, or the halves), or from the
    spillable plan when one of them did not fit."""
    keys = [("day", "ascending"), ("event_type", "ascending")]
    result = parts[0]
    if result is None or any(p is None for p in parts):
        result = spillable_event_metrics(ctx, _rows(first, end))
    elif len(parts) > 1:  # the same groups in each half: aligned once sorted by them
        result = result.sort_by(keys)
        for part in parts[1:]:
            part = part.sort_by(keys)  # type: ignore[union-attr]
            for name, _ in keys:
                if not part.column(name).equals(result.column(name)):
                    raise AssertionError("the halves of the daily metrics hold other groups")
            for name in part.column_names[len(keys) :]:
                result = result.append_column(name, part.column(name))
    schema = DAILY_EVENT_METRICS_SCHEMA
    return result.select(schema.names).cast(schema)


def spillable_event_metrics(ctx: SessionContext, rows: str) -> pa.Table:
    """`event_metrics` of the `rows` subquery in the plan that spills (see there)."""
    keys = ["day", "event_type"]
    result = ctx.sql(EVENT_TOTALS.format(rows=rows)).to_arrow_table()
    for value, name in (("user_id", "distinct_users"), ("session_id", "distinct_sessions")):
        sql = DISTINCT_PER_GROUP.format(keys=", ".join(keys), value=value, name=name, rows=rows)
        result = _left_join(result, ctx.sql(sql).to_arrow_table(), keys, name)
    return result


def daily_event_metrics(ctx: SessionContext, day: date) -> pa.Table:
    """Per day and event type: events, distinct users/sessions, revenue, price p50/p95."""
    return event_metrics(ctx, day, day + timedelta(days=1))
