"""A spec's calendar and partitions: dates, daily or hourly, a local time zone, Hive levels.

Checked when the spec is built: what the defaults become (Iceberg partitioning, Hive level
names) and what cannot work (a coarser Iceberg partition than the period, a zone whose days
do not start on a whole UTC hour, a zoned hourly calendar, Hive levels named like data
columns).
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lake_pipelines.errors import SpecError
from lake_pipelines.lake.period import fractional_offset

if TYPE_CHECKING:
    from lake_pipelines.datasets.spec import DatasetSpec

# The Hive partition columns of the bronze folders (``year=2026/month=01/day=05``) unless a
# dataset names its own (`DatasetSpec.hive_partition_columns`).
DEFAULT_HIVE_PARTITION_COLUMNS = ("year", "month", "day")
# A folder name starting with ``_`` or ``.`` is hidden from every Hive reader.
_HIVE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
# The hour level an hourly dataset's folders add (``.../day=05/hour=07``) unless named.
DEFAULT_HIVE_HOUR_COLUMN = "hour"

# How far an open calendar's zone is checked for days off the whole hour.
ZONE_CHECK_YEARS = 30


def default_transform(spec: DatasetSpec) -> str:
    """The Iceberg transform of the timestamp when the spec names no partitioning: ``day``
    for the daily UTC calendar, ``hour`` for the others (a period is then exactly a set of
    whole partitions, which `PartitionReplace` replaces)."""
    return "hour" if spec.granularity == "hourly" or spec.timezone != "UTC" else "day"


def check_partitioning(spec: DatasetSpec) -> None:
    """Raises SpecError if an hourly or zoned dataset's timestamp is partitioned coarser
    than hours (a period would then be part of an Iceberg partition)."""
    fine = default_transform(spec) == "hour"
    coarse = [
        p.transform
        for p in spec.partitioning
        if p.column == spec.timestamp_column and p.transform != "hour"
    ]
    if fine and coarse:
        why = "hourly partitions" if spec.granularity == "hourly" else f"days of {spec.timezone}"
        raise SpecError(
            spec.name,
            "partitioning",
            spec.partitioning,
            f"{why} are sets of whole UTC hours: partition {spec.timestamp_column} by 'hour', "
            f"not {coarse[0]!r}, so each partition run replaces whole Iceberg partitions",
        )


def hive_level_names(spec: DatasetSpec) -> tuple[str, ...]:
    """The Hive level names: an hourly dataset's three given names get the ``hour`` level."""
    names = tuple(spec.hive_partition_columns)
    if spec.granularity == "hourly" and len(names) == 3:
        return (*names, DEFAULT_HIVE_HOUR_COLUMN)
    return names


def check_zone(spec: DatasetSpec) -> None:
    """A known IANA zone, daily only, whose every local midnight of the calendar is on a
    whole UTC hour.

    Raises:
        SpecError: naming `timezone` or `granularity` and why.
    """
    if spec.granularity not in ("daily", "hourly"):
        raise SpecError(spec.name, "granularity", spec.granularity, "give 'daily' or 'hourly'")
    if spec.timezone == "UTC":
        return
    try:
        ZoneInfo(spec.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SpecError(
            spec.name, "timezone", spec.timezone, "not an IANA time zone (e.g. 'Europe/Berlin')"
        ) from None
    if spec.granularity == "hourly":
        raise SpecError(
            spec.name,
            "timezone",
            spec.timezone,
            "hourly partitions are UTC hours: a local hour repeats when daylight saving time "
            "ends, so local hours cannot name partitions; drop the timezone",
        )
    first = date.fromisoformat(spec.start_date)
    if spec.end_date is not None:
        last = date.fromisoformat(spec.end_date)
    else:
        last = first + timedelta(days=366 * ZONE_CHECK_YEARS)
    off = fractional_offset(spec.timezone, first, last)
    if off is not None:
        raise SpecError(
            spec.name,
            "timezone",
            spec.timezone,
            f"its day {off.date()} starts at UTC offset {off.utcoffset()}, not a whole hour: "
            "a local day would not be a set of whole hour(ts) partitions of the UTC Iceberg "
            "table, so it could not be replaced exactly; use a zone on whole hours or UTC",
        )


def check_calendar(spec: DatasetSpec) -> None:
    """`start_date` and `end_date` are YYYY-MM-DD dates, the end after the start."""
    days = {"start_date": spec.start_date, "end_date": spec.end_date}
    for spec_field, value in days.items():
        if value is None and spec_field == "end_date":
            continue
        try:
            date.fromisoformat(str(value))
        except ValueError:
            raise SpecError(spec.name, spec_field, value, "not a YYYY-MM-DD date") from None
    if spec.end_date is not None and spec.end_date <= spec.start_date:
        raise SpecError(
            spec.name, "end_date", spec.end_date, f"must be after start_date {spec.start_date}"
        )


def check_hive_levels(spec: DatasetSpec) -> None:
    """Three (hourly: four) distinct, visible folder names, none of them a data column: DuckDB's and
    Polars' Hive readers would replace the column's values with the folder's, pyarrow's
    and DataFusion's refuse the table. Compared case-insensitively, as DuckDB does."""
    names = tuple(spec.hive_partition_columns)
    field_name = "hive_partition_columns"
    bad = [n for n in names if not isinstance(n, str) or not _HIVE_NAME.fullmatch(n)]
    levels = 4 if spec.granularity == "hourly" else 3
    if len(names) != levels or bad or len({n.lower() for n in names}) != levels:
        raise SpecError(
            spec.name,
            field_name,
            names,
            f"give {'four' if levels == 4 else 'three'} distinct names (year, month, day"
            f"{', hour' if levels == 4 else ''} levels) of letters, digits and _, "
            "starting with a letter",
        )
    data = {c.lower(): c for c in spec.schema.names}
    taken = [data[n.lower()] for n in names if n.lower() in data]
    if taken:
        verb = "is a data column" if len(taken) == 1 else "are data columns"
        raise SpecError(
            spec.name,
            field_name,
            names,
            f"{', '.join(taken)} {verb} too, and Hive readers would replace their values "
            "with the folder's: set DatasetSpec.hive_partition_columns to names the schema "
            "does not use, e.g. "
            f"{tuple('utc_' + n for n in DEFAULT_HIVE_PARTITION_COLUMNS)}",
        )
