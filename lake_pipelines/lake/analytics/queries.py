"""The gold tables: their named queries, schemas and how each day of them is computed.

SQL lives here, readable and in one place; one table is built with the DataFrame API instead.
Every function takes a session where the source is registered as ``source`` (already pruned
to the days the result needs) and returns the rows of one day.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.errors import SpecError

if TYPE_CHECKING:
    from datafusion import SessionContext

Compute = Callable[["SessionContext", date], pa.Table]


@dataclass(frozen=True)
class GoldTable:
    """A daily aggregate of one dataset's silver table, committed to Iceberg per day."""

    name: str
    dataset: str
    description: str
    schema: pa.Schema
    compute: Compute
    lookback_days: int = 0  # extra days of source before the partition the result needs
    sort_by: tuple[str, ...] = ("day",)


def _ts(day: date) -> str:
    return f"TIMESTAMP '{day.isoformat()}T00:00:00Z'"


def _run(ctx: SessionContext, sql: str, schema: pa.Schema) -> pa.Table:
    # Collected whole: a gold result is one day's aggregate (a row per group: event types,
    # currencies, top-N domains), never the day's rows, which DataFusion streams (and
    # spills under `SessionSettings.memory_limit`).
    return ctx.sql(sql).to_arrow_table().select(schema.names).cast(schema)


# The calendar day of ``ts``: the same day as ``date_trunc('day', ts)`` in the timestamp's own
# zone (tests: UTC, before 1970, other zones) at a third of its cost, which on 5M rows made the
# grouping key the largest cost after the distinct counts (benchmarks/ANALYSIS.md, run 19).
DAY_OF_TS = "CAST(ts AS DATE)"


def percentile_sql(column: str, q: float) -> str:
    """An exact continuous percentile of `column` in a GROUP BY, as native DataFusion SQL.

    Sort the group's non-null, non-NaN values and interpolate linearly between the two
    neighbours of position ``q * (n - 1)`` (numpy's default and DuckDB's ``quantile_cont``);
    null for a group without values. DataFusion 53's own ``percentile_cont`` drifts in the
    6th-8th significant digit (47.77397 where the answer is 47.774), and a Python UDF over the
    group's list costs a trip through Python (and pyarrow importing pandas on first use).
    """
    if not 0 <= q <= 1:
        raise ValueError(f"percentile {q} is not between 0 and 1")
    keep = f"{column} IS NOT NULL AND NOT isnan({column})"
    values = f"array_sort(array_agg({column}) FILTER (WHERE {keep}))"
    pos = f"({q!r} * (cardinality({values}) - 1))"
    low = f"array_element({values}, CAST(floor({pos}) AS BIGINT) + 1)"
    high = f"array_element({values}, CAST(ceil({pos}) AS BIGINT) + 1)"
    return f"({low} + ({pos} - floor({pos})) * ({high} - {low}))"


# -- events -------------------------------------------------------------------------------------

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


def event_metrics(ctx: SessionContext, first: date, end: date) -> pa.Table:
    """Per day of `first`..`end` (exclusive) and event type: events, distinct users and
    sessions, revenue, price p50/p95.

    One query first (`EVENT_METRICS_ONE_QUERY`). When it does not fit the session's memory
    limit, DataFusion says "Resources exhausted" before any result exists, and the window is
    computed again by the spillable plan: three queries, one after the other, joined here (a
    row per day and type each); the totals hold the groups' prices for the exact
    percentiles, which cannot spill, and run alone they have the session's whole memory; the
    distinct counts spill. Both plans give the same numbers (the tests compare them).
    """
    rows = EVENTS_OF_WINDOW.format(start=_ts(first), end=_ts(end))
    schema = DAILY_EVENT_METRICS_SCHEMA
    try:
        result = ctx.sql(EVENT_METRICS_ONE_QUERY.format(rows=rows)).to_arrow_table()
    except Exception as exc:  # datafusion raises its errors as plain Exceptions
        if "Resources exhausted" not in str(exc):
            raise
        result = spillable_event_metrics(ctx, rows)
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


TOP_DOMAINS = """
WITH visits AS (
    SELECT {day_of_ts} AS day, extract_domain(url) AS domain, user_id
    FROM source
    WHERE ts >= {start} AND ts < {end} AND extract_domain(url) IS NOT NULL
),
counted AS (
    SELECT day, domain, COUNT(*) AS events FROM visits GROUP BY day, domain
),
users AS (
    SELECT day, domain, COUNT(user_id) AS distinct_users
    FROM (SELECT day, domain, user_id FROM visits GROUP BY day, domain, user_id)
    GROUP BY day, domain
)
SELECT day, domain, events, distinct_users, rank
FROM (
    SELECT c.day, c.domain, c.events, COALESCE(u.distinct_users, 0) AS distinct_users,
           ROW_NUMBER() OVER (ORDER BY c.events DESC, c.domain) AS rank
    FROM counted c
    LEFT JOIN users u ON u.day = c.day AND u.domain = c.domain
)
WHERE rank <= {top}
"""

TOP_DOMAINS_SCHEMA = pa.schema(
    [
        pa.field("day", pa.date32(), nullable=False),
        pa.field("domain", pa.string(), nullable=False),
        pa.field("events", pa.int64(), nullable=False),
        pa.field("distinct_users", pa.int64(), nullable=False),
        pa.field("rank", pa.int64(), nullable=False),
    ]
)


def top_domains(ctx: SessionContext, day: date, top: int = 10) -> pa.Table:
    """The day's most visited domains (by the `extract_domain` UDF), ranked."""
    sql = TOP_DOMAINS.format(
        day_of_ts=DAY_OF_TS, start=_ts(day), end=_ts(day + timedelta(days=1)), top=top
    )
    return _run(ctx, sql, TOP_DOMAINS_SCHEMA)


ACTIVE_USERS_7D = """
WITH window_rows AS (
    SELECT user_id, ts FROM source WHERE ts >= {start} AND ts < {end}
),
per_user AS (
    SELECT user_id, MAX(CASE WHEN ts >= {day_start} THEN 1 ELSE 0 END) AS on_day
    FROM window_rows
    GROUP BY user_id
),
users AS (
    SELECT COUNT(user_id)                                                   AS active_users_7d,
           COALESCE(SUM(CASE WHEN user_id IS NOT NULL THEN on_day END), 0)  AS active_users_1d
    FROM per_user
),
days AS (
    SELECT COUNT(DISTINCT {day_of_ts}) AS days_with_data
    FROM window_rows
)
SELECT CAST({day_lit} AS DATE) AS day, active_users_7d, active_users_1d, days_with_data
FROM users CROSS JOIN days
"""

ACTIVE_USERS_SCHEMA = pa.schema(
    [
        pa.field("day", pa.date32(), nullable=False),
        pa.field("active_users_7d", pa.int64(), nullable=False),
        pa.field("active_users_1d", pa.int64(), nullable=False),
        pa.field("days_with_data", pa.int64(), nullable=False),
    ]
)


def active_users_7d(ctx: SessionContext, day: date) -> pa.Table:
    """Distinct users over the 7 days ending with `day` (and on `day` alone)."""
    sql = ACTIVE_USERS_7D.format(
        day_of_ts=DAY_OF_TS,
        day_lit=f"'{day.isoformat()}'",
        day_start=_ts(day),
        start=_ts(day - timedelta(days=6)),
        end=_ts(day + timedelta(days=1)),
    )
    return _run(ctx, sql, ACTIVE_USERS_SCHEMA)


# -- orders (DataFrame API) ---------------------------------------------------------------------

ORDERS_DAILY_SCHEMA = pa.schema(
    [
        pa.field("day", pa.date32(), nullable=False),
        pa.field("currency", pa.string(), nullable=False),
        pa.field("orders", pa.int64(), nullable=False),
        pa.field("items_sold", pa.int64()),
        pa.field("revenue", pa.decimal128(22, 2)),
        pa.field("median_unit_price", pa.float64()),
    ]
)


def orders_daily_sales(ctx: SessionContext, day: date) -> pa.Table:
    """Per day and currency: orders, items sold, revenue and the quantity-weighted median
    unit price (our `weighted_median` UDAF over the unnested line items)."""
    from datafusion import col, lit
    from datafusion import functions as f

    from lake_pipelines.lake.analytics.functions import WEIGHTED_MEDIAN

    start = pa.scalar(day.isoformat() + "T00:00:00+00:00").cast(pa.timestamp("us", tz="UTC"))
    end = pa.scalar((day + timedelta(days=1)).isoformat() + "T00:00:00+00:00").cast(
        pa.timestamp("us", tz="UTC")
    )
    orders = ctx.table("source").filter(
        (col("ordered_at") >= lit(start)) & (col("ordered_at") < lit(end))
    )
    per_order = orders.select(col("order_id"), col("currency"), col("total"), col("items"))
    totals = per_order.aggregate(
        [col("currency")],
        [f.count(col("order_id")).alias("orders"), f.sum(col("total")).alias("revenue")],
    )
    # UNNEST through SQL: DataFusion 53's DataFrame unnest_columns followed by a struct field
    # access trips its optimizer ("push_down_leaf_projections"); the rest stays DataFrame.
    ctx.register_view("day_orders", per_order)
    items = (
        ctx.sql("SELECT currency AS item_currency, unnest(items) AS item FROM day_orders")
        .select(
            col("item_currency"),
            col("item")["quantity"].alias("quantity"),
            col("item")["unit_price"].alias("unit_price"),
        )
        .aggregate(
            [col("item_currency")],
            [
                f.sum(col("quantity")).alias("items_sold"),
                WEIGHTED_MEDIAN(col("unit_price"), col("quantity").cast(pa.float64())).alias(
                    "median_unit_price"
                ),
            ],
        )
    )
    joined = totals.join(items, left_on="currency", right_on="item_currency", how="left")
    result = joined.select(
        lit(pa.scalar(day, pa.date32())).alias("day"),
        col("currency"),
        col("orders"),
        col("items_sold").cast(pa.int64()).alias("items_sold"),
        col("revenue"),
        col("median_unit_price"),
    )
    # collected whole: a row per currency of the day, as `_run` says
    return result.to_arrow_table().select(ORDERS_DAILY_SCHEMA.names).cast(ORDERS_DAILY_SCHEMA)


GOLD_TABLES: tuple[GoldTable, ...] = (
    GoldTable(
        "events_daily_metrics",
        "events",
        "Per day and event type: events, distinct users and sessions, revenue, price p50/p95.",
        DAILY_EVENT_METRICS_SCHEMA,
        daily_event_metrics,
        sort_by=("day", "event_type"),
    ),
    GoldTable(
        "events_top_domains",
        "events",
        "The ten most visited domains of the day (scalar UDF `extract_domain`).",
        TOP_DOMAINS_SCHEMA,
        top_domains,
        sort_by=("day", "rank"),
    ),
    GoldTable(
        "events_active_users_7d",
        "events",
        "Distinct users over the rolling 7 days ending with the day (reads 7 silver days).",
        ACTIVE_USERS_SCHEMA,
        active_users_7d,
        lookback_days=6,
    ),
    GoldTable(
        "orders_daily_sales",
        "orders",
        "Per day and currency: orders, items, revenue, quantity-weighted median unit price "
        "(DataFrame API and the `weighted_median` UDAF).",
        ORDERS_DAILY_SCHEMA,
        orders_daily_sales,
        sort_by=("day", "currency"),
    ),
)


def gold_tables_for(spec: DatasetSpec) -> list[GoldTable]:
    """The gold tables declared for a dataset.

    Gold tables are daily UTC aggregates: a dataset on another calendar (hourly, or local
    days) has none, and declaring one for it is refused.

    Raises:
        SpecError: a gold table is declared for a dataset whose calendar is not daily UTC.
    """
    declared = [g for g in GOLD_TABLES if g.dataset == spec.name]
    if declared and not spec.calendar.is_default:
        raise SpecError(
            spec.name,
            "granularity" if spec.granularity != "daily" else "timezone",
            spec.granularity if spec.granularity != "daily" else spec.timezone,
            f"gold tables ({', '.join(g.name for g in declared)}) are daily UTC aggregates; "
            "a dataset on another calendar declares none",
        )
    return declared


def gold_identifier(spec: DatasetSpec, gold: GoldTable) -> str:
    """Fully qualified Iceberg identifier of a gold table."""
    return f"{spec.namespace}.{gold.name}"
