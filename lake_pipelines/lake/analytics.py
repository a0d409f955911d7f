"""DataFusion over the lake: a configured session, table registration and named queries.

SQL lives here as named queries, not scattered through asset code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date

import pyarrow as pa
from datafusion import RuntimeEnvBuilder, SessionConfig, SessionContext
from pyiceberg.table import Table

from lake_pipelines.lake.storage import ObjectStore


@dataclass(frozen=True)
class SessionSettings:
    """How a DataFusion session may use the machine.

    Args:
        target_partitions: parallelism of scans and aggregations (0: number of cores).
        batch_size: rows per record batch inside the engine.
        memory_limit: bytes the memory pool may hand out before operators spill (0: no limit).
        spill_dir: directory for spill files (empty: the OS temporary directory).
    """

    target_partitions: int = 0
    batch_size: int = 8192
    memory_limit: int = 0
    spill_dir: str = ""


def make_session(settings: SessionSettings, stores: tuple[ObjectStore, ...] = ()) -> SessionContext:
    """A `SessionContext` with the settings applied and each store's object store registered."""
    partitions = settings.target_partitions or os.cpu_count() or 1
    config = (
        SessionConfig()
        .with_target_partitions(partitions)
        .with_batch_size(settings.batch_size)
        .with_parquet_pruning(True)
        .with_information_schema(True)
    )
    runtime = RuntimeEnvBuilder()
    if settings.memory_limit:
        runtime = runtime.with_fair_spill_pool(settings.memory_limit)
    if settings.spill_dir:
        os.makedirs(settings.spill_dir, exist_ok=True)
        runtime = runtime.with_disk_manager_specified(settings.spill_dir)
    ctx = SessionContext(config, runtime)
    for store in stores:
        registration = store.datafusion_store()
        if registration is not None:
            url, obj = registration
            scheme, host = url.split("://", 1)
            ctx.register_object_store(f"{scheme}://", obj, host)
    return ctx


def register_iceberg(ctx: SessionContext, name: str, table: Table) -> None:
    """Register an Iceberg table (as of its current snapshot) under `name`."""
    if ctx.table_exist(name):
        ctx.deregister_table(name)
    ctx.register_table(name, table)


# -- named queries ------------------------------------------------------------------------------

DAILY_EVENT_METRICS = """
SELECT
    CAST(date_trunc('day', ts) AS DATE)      AS day,
    event_type,
    COUNT(*)                                 AS events,
    COUNT(DISTINCT user_id)                  AS distinct_users,
    COUNT(DISTINCT session_id)               AS distinct_sessions,
    SUM(price)                               AS revenue
FROM {source}
WHERE ts >= TIMESTAMP '{start}' AND ts < TIMESTAMP '{end}'
GROUP BY 1, 2
ORDER BY 1, 2
"""

DAILY_EVENT_METRICS_SCHEMA = pa.schema(
    [
        pa.field("day", pa.date32(), nullable=False),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("events", pa.int64(), nullable=False),
        pa.field("distinct_users", pa.int64(), nullable=False),
        pa.field("distinct_sessions", pa.int64(), nullable=False),
        pa.field("revenue", pa.float64()),
    ]
)


def daily_event_metrics(ctx: SessionContext, source: str, day: date) -> pa.Table:
    """Per day and event type: events, distinct users and sessions, revenue (sum of price)."""
    sql = DAILY_EVENT_METRICS.format(
        source=source, start=f"{day.isoformat()}T00:00:00Z", end=_next(day)
    )
    result = ctx.sql(sql).to_arrow_table()
    return result.cast(DAILY_EVENT_METRICS_SCHEMA)


def _next(day: date) -> str:
    from datetime import timedelta

    return f"{(day + timedelta(days=1)).isoformat()}T00:00:00Z"
