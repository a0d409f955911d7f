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

from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.errors import SpecError
from lake_pipelines.lake.analytics.active_users import ACTIVE_USERS_SCHEMA, active_users_7d
from lake_pipelines.lake.analytics.event_metrics import (
    DAILY_EVENT_METRICS_SCHEMA,
    count_rows,
    daily_event_metrics,
)
from lake_pipelines.lake.analytics.slices import slice_bounds, sliced_sum, slices_for
from lake_pipelines.lake.analytics.sql import DAY_OF_TS, day_start

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


def _run(ctx: SessionContext, sql: str, schema: pa.Schema) -> pa.Table:
    # Collected whole: a gold result is one day's aggregate (a row per group: event types,
    # currencies, top-N domains), never the day's rows, which DataFusion streams (and
    # spills under `SessionSettings.memory_limit`).
    return ctx.sql(sql).to_arrow_table().select(schema.names).cast(schema)


# One scan and one `extract_domain` call per row: the visits are grouped by (day, domain, user)
# once, and the domains' events and distinct users both come from those groups. Written with
# a CTE read twice and a `domain IS NOT NULL` filter, DataFusion scanned the day twice and
# called the Python UDF twice in each scan (4 calls a row; ~115 s of a 20M-row day, run 23).
# The rows without a domain form their own group, kept out of the ranking after the
# aggregates, where no filter can be pushed back into the scan.
DOMAIN_VISITS = """
SELECT {day_of_ts} AS day, extract_domain(url) AS domain, user_id
FROM source
WHERE ts >= {start} AND ts < {end}
"""

# Per day and domain: events and distinct users. Both add up across slices of the users.
EVENTS_PER_DOMAIN = """
SELECT day, domain, SUM(events) AS events, COUNT(user_id) AS distinct_users
FROM (
    SELECT day, domain, user_id, COUNT(*) AS events
    FROM ({visits})
    GROUP BY day, domain, user_id
)
GROUP BY day, domain
"""

TOP_DOMAINS = """
SELECT day, domain, events, distinct_users, rank
FROM (
    SELECT day, domain, events, distinct_users,
           ROW_NUMBER() OVER (ORDER BY domain IS NULL, events DESC, domain) AS rank
    FROM ({per_domain})
)
WHERE rank <= {top} AND domain IS NOT NULL
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
    """The day's most visited domains (by the `extract_domain` UDF), ranked.

    Under a memory limit that the day's (day, domain, user) groups would not fit, the events
    and users per domain are computed a slice of the users at a time (`slices`), added up,
    then ranked by the same query."""
    from lake_pipelines.lake.analytics.session import settings_of

    visits = DOMAIN_VISITS.format(
        day_of_ts=DAY_OF_TS, start=day_start(day), end=day_start(day + timedelta(days=1))
    )
    settings = settings_of(ctx)
    total = count_rows(ctx, visits) if settings.memory_limit else 0
    slices = slices_for(total, settings.memory_limit)
    if slices <= 1:
        per_domain = EVENTS_PER_DOMAIN.format(visits=visits)
        return _run(ctx, TOP_DOMAINS.format(per_domain=per_domain, top=top), TOP_DOMAINS_SCHEMA)
    bounds = slice_bounds(ctx, visits, "user_id", total, slices)
    per_domain = sliced_sum(
        ctx,
        visits,
        "user_id",
        bounds,
        lambda rows: EVENTS_PER_DOMAIN.format(visits=rows),
        ["day", "domain"],
        ["events", "distinct_users"],
        settings.spill_dir,
    )
    # ranked by the same SQL as the unsliced plan, over the slices' sums
    ctx.from_arrow(per_domain, name="lake_per_domain")
    try:
        ranking = TOP_DOMAINS.format(per_domain="SELECT * FROM lake_per_domain", top=top)
        return _run(ctx, ranking, TOP_DOMAINS_SCHEMA)
    finally:
        ctx.deregister_table("lake_per_domain")


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
