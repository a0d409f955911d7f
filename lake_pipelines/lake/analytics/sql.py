"""SQL text the gold queries share (the day key, a day's first instant, exact percentiles) and
how DataFusion says a query ran out of memory."""

from __future__ import annotations

from datetime import date

# How DataFusion words a query that needed more memory than its limit allows and could not
# spill the rest. It raises its errors as plain Exceptions: the text is all that tells them apart.
EXHAUSTED = "Resources exhausted"


def memory_exhausted(exc: BaseException) -> bool:
    """Whether DataFusion raised `exc` for a query over its memory limit (see `EXHAUSTED`)."""
    return EXHAUSTED in str(exc)


def day_start(day: date) -> str:
    """The first instant of `day` (UTC) as a SQL timestamp literal."""
    return f"TIMESTAMP '{day.isoformat()}T00:00:00Z'"


# The calendar day of ``ts``: the same day as ``date_trunc('day', ts)`` in the timestamp's own
# zone (tests: UTC, before 1970, other zones) at a third of its cost, which on 5M rows made the
# grouping key the largest cost after the distinct counts (benchmarks/ANALYSIS.md, run 19).
# `to_date`, not `CAST(ts AS DATE)` (the same day, the same cost): DataFusion knows the cast
# keeps the order of `ts`, and over silver files that declare their sort order it then plans
# `GROUP BY day, ...` as an order-aware aggregate that cannot spill (run 23); `to_date` it
# does not see through, so the distinct counts of a big day spill under the memory limit.
DAY_OF_TS = "to_date(ts)"


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
