"""A dataset's unit of work: one partition of its calendar (a UTC day, a local day, an hour).

Every layer takes a *unit*: a `datetime.date` for the daily UTC calendar every lake had
before (so its paths, partition keys, tags and lineage stay exactly what they were), or a
`Period` for the other calendars:

=============  ====================  ======================  ===========================
calendar       Dagster key           landing folder          Hive levels
=============  ====================  ======================  ===========================
daily, UTC     ``2026-11-01``        ``2026-11-01/``         ``year/month/day`` (a date)
daily, zone    ``2026-11-01``        ``2026-11-01/`` (local)  ``year/month/day`` (local)
hourly (UTC)   ``2026-11-01-05:00``  ``2026-11-01T05/``      ``year/month/day/hour``
=============  ====================  ======================  ===========================

A period's rows are those whose timestamp is in its UTC ``[start, end)``: Iceberg stays UTC.
A local day is 23, 24 or 25 UTC hours, so a zoned or hourly dataset's table is partitioned by
``hour(ts)`` and each period replaces whole Iceberg partitions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal, Union
from zoneinfo import ZoneInfo

Granularity = Literal["daily", "hourly"]
HOUR_KEY = "%Y-%m-%d-%H:%M"  # Dagster's hourly partition key
HOUR_LABEL = "%Y-%m-%dT%H"  # an hour's landing folder, tag, lineage and log name
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


@dataclass(frozen=True, order=True)
class Period:
    """One partition of a non-default calendar: a local day, or a UTC hour.

    Attributes:
        local: the wall-clock start in `zone` (naive).
        granularity: ``daily`` or ``hourly``.
        zone: the IANA zone of the calendar (``UTC`` for hourly).
    """

    local: datetime
    granularity: Granularity = "daily"
    zone: str = "UTC"

    @property
    def start(self) -> datetime:
        """The first UTC instant of the period."""
        return self.local.replace(tzinfo=ZoneInfo(self.zone)).astimezone(UTC)

    @property
    def end(self) -> datetime:
        """The first UTC instant after the period."""
        return self.next().start

    def next(self) -> Period:
        step = HOUR if self.granularity == "hourly" else DAY
        return Period(self.local + step, self.granularity, self.zone)

    @property
    def key(self) -> str:
        """The Dagster partition key."""
        if self.granularity == "hourly":
            return self.local.strftime(HOUR_KEY)
        return self.local.date().isoformat()

    def isoformat(self) -> str:
        """The name of the period in folders, tags, lineage and logs."""
        if self.granularity == "hourly":
            return self.local.strftime(HOUR_LABEL)
        return self.local.date().isoformat()

    def __str__(self) -> str:
        return self.isoformat()

    @property
    def hive_values(self) -> tuple[int, ...]:
        """Values of the Hive levels: year, month, day (local), and the hour if hourly."""
        ymd = (self.local.year, self.local.month, self.local.day)
        return (*ymd, self.local.hour) if self.granularity == "hourly" else ymd

    @property
    def tag(self) -> str:
        """The Iceberg tag of the snapshot that last replaced the period."""
        return f"{'hour' if self.granularity == 'hourly' else 'day'}-{self.isoformat()}"


Unit = Union[date, Period]  # noqa: UP007  (a runtime alias: `date | Period` needs 3.10 types)


def as_period(unit: Unit) -> Period:
    """`unit` as a `Period`: a date is the UTC day."""
    if isinstance(unit, Period):
        return unit
    return Period(datetime(unit.year, unit.month, unit.day))


def partition_key(unit: Unit) -> str:
    """The Dagster partition key of `unit`."""
    return as_period(unit).key


def bounds(unit: Unit) -> tuple[datetime, datetime]:
    """[start, end) of `unit` in UTC."""
    period = as_period(unit)
    return period.start, period.end


def follows(before: Unit, after: Unit) -> bool:
    """Whether `after` is the partition right after `before`."""
    return as_period(before).next() == as_period(after)


@dataclass(frozen=True)
class Calendar:
    """The partitions of a dataset: their granularity and zone (`DatasetSpec.calendar`)."""

    granularity: Granularity = "daily"
    zone: str = "UTC"

    @property
    def is_default(self) -> bool:
        """Daily UTC: units are plain dates, as in every lake before calendars."""
        return self.granularity == "daily" and self.zone == "UTC"

    def unit(self, local: datetime) -> Unit:
        """The unit starting at the wall-clock time `local` (naive, in the zone)."""
        if self.is_default:
            return local.date()
        return Period(local, self.granularity, self.zone)

    def of_key(self, key: str) -> Unit:
        """The unit of a Dagster partition key (`Period.key`).

        Raises:
            ValueError: `key` is not a key of this calendar.
        """
        if self.granularity == "hourly":
            return self.unit(datetime.strptime(key, HOUR_KEY))
        return self.unit(datetime.combine(date.fromisoformat(key), datetime.min.time()))

    def of_folder(self, name: str) -> Unit | None:
        """The unit a landing folder holds (``2026-11-01`` or ``2026-11-01T05``), None when
        `name` is not one of this calendar's folders."""
        try:
            if self.granularity == "hourly":
                local = datetime.strptime(name, HOUR_LABEL)
            else:
                local = datetime.combine(date.fromisoformat(name), datetime.min.time())
        except ValueError:
            return None
        unit = self.unit(local)
        return unit if unit.isoformat() == name else None

    @property
    def folder_pattern(self) -> str:
        return "YYYY-MM-DDTHH" if self.granularity == "hourly" else "YYYY-MM-DD"


def fractional_offset(zone: str, first: date, last: date) -> datetime | None:
    """The first local midnight in `first`..`last` that is not on a whole UTC hour (a zone
    such as Asia/Kolkata, +05:30), None if every one is."""
    tz = ZoneInfo(zone)
    day = first
    while day <= last:
        offset = datetime(day.year, day.month, day.day, tzinfo=tz).utcoffset()
        if offset is not None and offset % HOUR:
            return datetime(day.year, day.month, day.day, tzinfo=tz)
        day += DAY
    return None
