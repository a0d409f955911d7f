"""The row filter that scopes an Iceberg compaction commit to exactly one partition.

pyiceberg validates a commit against concurrent ones through its delete predicate: with this
filter, appends to other partitions do not conflict with the compaction, a write to the same
partition does.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pyiceberg.expressions import (
    AlwaysTrue,
    And,
    BooleanExpression,
    EqualTo,
    GreaterThanOrEqual,
    IsNull,
    LessThan,
)
from pyiceberg.table import Table
from pyiceberg.transforms import (
    DayTransform,
    HourTransform,
    IdentityTransform,
    MonthTransform,
    YearTransform,
)
from pyiceberg.typedef import Record

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def partition_filter(table: Table, record: Record) -> BooleanExpression:
    """A row filter selecting exactly one partition, for conflict detection.

    Identity and time transforms are translated; any other transform gives ``AlwaysTrue``,
    which makes every concurrent write a conflict (safe, only less concurrent).
    """
    schema = table.schema()
    parts: list[BooleanExpression] = []
    for i, fld in enumerate(table.spec().fields):
        column = schema.find_column_name(fld.source_id)
        value = record[i]
        transform = fld.transform
        if column is None:
            return AlwaysTrue()
        if value is None:
            parts.append(IsNull(column))  # type: ignore[call-arg,arg-type]
        elif isinstance(transform, IdentityTransform):
            parts.append(EqualTo(column, value))  # type: ignore[call-arg,arg-type]
        elif isinstance(transform, DayTransform | HourTransform | MonthTransform | YearTransform):
            start, end = _bounds(transform, value)
            as_date = str(schema.find_field(fld.source_id).field_type) == "date"
            lo, hi = (start.date(), end.date()) if as_date else (start, end)
            low = GreaterThanOrEqual(column, lo.isoformat())  # type: ignore[call-arg,arg-type]
            high = LessThan(column, hi.isoformat())  # type: ignore[call-arg,arg-type]
            parts.append(And(low, high))
        else:
            return AlwaysTrue()
    if not parts:
        return AlwaysTrue()
    return parts[0] if len(parts) == 1 else And(*parts)


def _bounds(transform: Any, value: int) -> tuple[datetime, datetime]:
    if isinstance(transform, HourTransform):
        start = EPOCH + timedelta(hours=value)
        return start, start + timedelta(hours=1)
    if isinstance(transform, DayTransform):
        start = EPOCH + timedelta(days=value)
        return start, start + timedelta(days=1)
    months = value if isinstance(transform, MonthTransform) else value * 12
    step = 1 if isinstance(transform, MonthTransform) else 12

    def month(m: int) -> datetime:
        return datetime(1970 + m // 12, m % 12 + 1, 1, tzinfo=UTC)

    return month(months), month(months + step)
