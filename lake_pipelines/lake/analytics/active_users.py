"""The 7-day active users: one query while the window's users fit, in slices when they do not.

Its groups are the window's users: 4M on one 20M-row day (580 MiB of DataFusion's hash table,
3.9 s), and a week of such days holds several times that. Under a memory limit DataFusion
spills them, and may still give up ("Failed to reserve memory for sort during spill"). Then
the users are counted a slice of them at a time (`slices`), as the other gold queries' groups
are. Slicing first would be safe but slow where it is not needed: on the 20M-row day the
sliced count took 16 s (the window's rows written once to Arrow files alone took 7.3 s) and
lowered the step's own peak from ~580 to ~280 MiB, not the run's (benchmarks/ANALYSIS.md,
run 36).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

import pyarrow as pa

from lake_pipelines.lake.analytics.event_metrics import count_rows
from lake_pipelines.lake.analytics.slices import slice_bounds, sliced_sum, slices_for
from lake_pipelines.lake.analytics.sql import DAY_OF_TS, day_start, memory_exhausted

if TYPE_CHECKING:
    from datafusion import SessionContext

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

# In slices: the window's rows, each with whether it lies on the window's last day ...
WINDOW_USERS = """
SELECT user_id, CASE WHEN ts >= {day_start} THEN 1 ELSE 0 END AS on_day
FROM source
WHERE ts >= {start} AND ts < {end}
"""

# ... the users of a slice and those of them active on the last day (one row, keyed by the
# day): counts of users, which add up across slices of the users ...
SLICE_USERS = """
SELECT CAST({day_lit} AS DATE) AS day,
       COUNT(user_id)                                                   AS active_users_7d,
       COALESCE(SUM(CASE WHEN user_id IS NOT NULL THEN on_day END), 0)  AS active_users_1d
FROM (
    SELECT user_id, MAX(on_day) AS on_day
    FROM ({rows})
    GROUP BY user_id
)
"""

# ... and the days with data, a distinct count that does not add up: apart, over the
# timestamps alone (at most 7 groups).
DAYS_WITH_DATA = """
SELECT COUNT(DISTINCT {day_of_ts}) AS days_with_data
FROM source
WHERE ts >= {start} AND ts < {end}
"""

ACTIVE_USERS_SCHEMA = pa.schema(
    [
        pa.field("day", pa.date32(), nullable=False),
        pa.field("active_users_7d", pa.int64(), nullable=False),
        pa.field("active_users_1d", pa.int64(), nullable=False),
        pa.field("days_with_data", pa.int64(), nullable=False),
    ]
)


def _window(day: date) -> dict[str, str]:
    """The values the queries' templates take for the window ending with `day`."""
    return {
        "day_lit": f"'{day.isoformat()}'",
        "day_start": day_start(day),
        "start": day_start(day - timedelta(days=6)),
        "end": day_start(day + timedelta(days=1)),
    }


def active_users_7d(ctx: SessionContext, day: date) -> pa.Table:
    """Distinct users over the 7 days ending with `day` (and on `day` alone): one query, or
    `active_users_sliced` when DataFusion says that query exhausted the memory limit."""
    sql = ACTIVE_USERS_7D.format(day_of_ts=DAY_OF_TS, **_window(day))
    try:
        # one row: the result is collected whole
        table = ctx.sql(sql).to_arrow_table()
    except Exception as exc:
        if not memory_exhausted(exc):
            raise
        return active_users_sliced(ctx, day)
    return table.select(ACTIVE_USERS_SCHEMA.names).cast(ACTIVE_USERS_SCHEMA)


def active_users_sliced(ctx: SessionContext, day: date) -> pa.Table:
    """`active_users_7d` a slice of the users at a time, as many slices as the window's rows
    (at most a group each) need to fit a share of the memory limit (`slices_for`)."""
    from lake_pipelines.lake.analytics.session import settings_of

    window = _window(day)
    rows = WINDOW_USERS.format(**window)
    settings = settings_of(ctx)
    total = count_rows(ctx, rows)
    slices = max(slices_for(total, settings.memory_limit), 2)  # here because one did not fit
    users = sliced_sum(
        ctx,
        rows,
        "user_id",
        slice_bounds(ctx, rows, "user_id", total, slices),
        lambda part: SLICE_USERS.format(rows=part, **window),
        ["day"],
        ["active_users_7d", "active_users_1d"],
        settings.spill_dir,
    )
    days = ctx.sql(DAYS_WITH_DATA.format(day_of_ts=DAY_OF_TS, **window)).to_arrow_table()
    table = users.append_column("days_with_data", days.column("days_with_data"))
    return table.select(ACTIVE_USERS_SCHEMA.names).cast(ACTIVE_USERS_SCHEMA)
