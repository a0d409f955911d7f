"""Per-day lineage in snapshot summaries, and which data files hold which day.

A commit that replaces one day keeps the flat summary every snapshot had before ranges
(``lake.partition`` = the day, ``lake.fingerprint``, ``lake.rows``, ``lake.source-files``, ...);
a commit that replaces several days records ``lake.partition`` = ``first..last`` and
``lake.days``: one JSON object with the same lineage per day. `days_of` reads both, so the
latest lineage of any day is found whichever way it was committed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pyiceberg.conversions import from_bytes
from pyiceberg.expressions import BooleanExpression, Or
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot
from pyiceberg.types import DateType, TimestampType, TimestamptzType

from lake_pipelines.lake.layout import consecutive_days
from lake_pipelines.lake.period import Unit, bounds

SUMMARY_PREFIX = "lake."
DAYS = "days"  # the per-day lineage of a multi-day commit
PARTITION = "partition"
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
_FLAT_JSON = {"source-files", "bronze-files"}  # flat keys whose values are JSON


def summary_properties(summary: Mapping[str, object]) -> dict[str, str]:
    """`summary` as snapshot summary properties: ``lake.``-prefixed, non-strings as JSON."""
    return {
        f"{SUMMARY_PREFIX}{k}": v if isinstance(v, str) else json.dumps(v, default=str)
        for k, v in summary.items()
    }


def lineage_summary(per_day: Mapping[Any, Mapping[str, object]]) -> dict[str, object]:
    """The summary entries of a commit replacing the days (units) of `per_day`: their lineage."""
    days: list[Unit] = sorted(per_day)  # one calendar: all alike
    if len(days) == 1:
        return {PARTITION: days[0].isoformat(), **per_day[days[0]]}
    return {
        PARTITION: f"{days[0].isoformat()}..{days[-1].isoformat()}",
        DAYS: {d.isoformat(): dict(per_day[d]) for d in days},
    }


def days_of(snapshot: Snapshot) -> dict[str, dict[str, Any]]:
    """The days a snapshot replaced and each day's lineage (empty for other snapshots)."""
    if snapshot.summary is None:
        return {}
    props = snapshot.summary.additional_properties
    raw = props.get(f"{SUMMARY_PREFIX}{DAYS}")
    if raw is not None:
        days: dict[str, dict[str, Any]] = json.loads(raw)
        return days
    day = props.get(f"{SUMMARY_PREFIX}{PARTITION}")
    if not day or ".." in day:
        return {}
    flat: dict[str, Any] = {}
    for key, value in props.items():
        if key.startswith(SUMMARY_PREFIX) and key != f"{SUMMARY_PREFIX}{PARTITION}":
            name = key.removeprefix(SUMMARY_PREFIX)
            flat[name] = json.loads(value) if name in _FLAT_JSON else value
    return {day: flat}


def last_lineage(table: Table, days: Iterable[Unit]) -> dict[Unit, tuple[int, dict[str, Any]]]:
    """For each of `days` the latest snapshot of the main branch that replaced it, and the
    day's lineage there. One walk back through history, which stops once every day is found;
    days never committed (or whose snapshot expired) are absent."""
    wanted = {d.isoformat(): d for d in days}
    found: dict[Unit, tuple[int, dict[str, Any]]] = {}
    for entry in reversed(table.history()):
        if not wanted:
            break
        snap = table.snapshot_by_id(entry.snapshot_id)
        if snap is None:
            continue
        for day, lineage in days_of(snap).items():
            if day in wanted:
                found[wanted.pop(day)] = (snap.snapshot_id, lineage)
    return found


def time_span(table: Table, data_file: DataFile, column: str) -> tuple[datetime, datetime] | None:
    """The first and last instant (UTC) of `column` in `data_file`, from its column bounds (a
    date column: the midnights of its first and last day); None without bounds."""
    field = table.schema().find_field(column)
    lower = data_file.lower_bounds.get(field.field_id) if data_file.lower_bounds else None
    upper = data_file.upper_bounds.get(field.field_id) if data_file.upper_bounds else None
    if lower is None or upper is None:
        return None
    kind = field.field_type
    if isinstance(kind, DateType):
        lo, hi = int(from_bytes(kind, lower)), int(from_bytes(kind, upper))
        return _EPOCH_UTC + timedelta(days=lo), _EPOCH_UTC + timedelta(days=hi)
    if isinstance(kind, (TimestampType, TimestamptzType)):
        lo, hi = int(from_bytes(kind, lower)), int(from_bytes(kind, upper))
        return _EPOCH_UTC + timedelta(microseconds=lo), _EPOCH_UTC + timedelta(microseconds=hi)
    return None


def day_span(table: Table, data_file: DataFile, column: str) -> tuple[date, date] | None:
    """The first and last UTC day of `column` in `data_file`, from its column bounds; None
    when the file has no bounds for it (it may hold any day)."""
    span = time_span(table, data_file, column)
    return None if span is None else (span[0].date(), span[1].date())


@dataclass
class DayFiles:
    """The data files holding one day at a snapshot, and the day's rows in them."""

    files: list[DataFile]
    rows: int = 0

    @property
    def bytes(self) -> int:
        return sum(f.file_size_in_bytes for f in self.files)


def any_of(filters: list[BooleanExpression]) -> BooleanExpression:
    """`filters` or-ed as a balanced tree (pyiceberg's visitors recurse: no deep chains)."""
    if len(filters) == 1:
        return filters[0]
    mid = len(filters) // 2
    return Or(any_of(filters[:mid]), any_of(filters[mid:]))


SpanFilter = Callable[[Any, Any], BooleanExpression]  # rows of the days (units) first..last


def files_by_day(
    table: Table,
    column: str,
    days: Iterable[Unit],
    span_filter: SpanFilter,
    snapshot_id: int | None,
) -> dict[Unit, DayFiles]:
    """The files and rows of each of `days` (or periods) at `snapshot_id`, from one scan plan.

    A file whose bounds lie within one day counts its rows for that day; the few that span
    days (or lack bounds: another writer's, a coarser partitioning) are counted row by row
    for each day they may hold, by a scan of that day.
    """
    days = sorted(set(days))  # one calendar: all alike
    out = {d: DayFiles([]) for d in days}
    if not days or snapshot_id is None:
        return out
    wanted = any_of([span_filter(lo, hi) for lo, hi in consecutive_days(days)])
    inexact: set[Unit] = set()
    limits = {d: bounds(d) for d in days}
    for task in table.scan(row_filter=wanted, snapshot_id=snapshot_id).plan_files():
        span = time_span(table, task.file, column)
        for d in days:
            lo, hi = limits[d]
            if span is not None and (span[0] >= hi or span[1] < lo):
                continue
            out[d].files.append(task.file)
            within = span is not None and lo <= span[0] and span[1] < hi
            if not within or task.delete_files:
                inexact.add(d)
            else:
                out[d].rows += task.file.record_count
    for d in inexact:
        out[d].rows = table.scan(row_filter=span_filter(d, d), snapshot_id=snapshot_id).count()
    return out
