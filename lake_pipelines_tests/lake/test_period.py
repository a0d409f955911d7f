"""Units of work of each calendar (`lake.period`) and the specs that declare them."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from typing import Any

import pytest

from lake_pipelines.datasets.spec import DatasetSpec, PartitionField
from lake_pipelines.errors import SpecError
from lake_pipelines.lake.analytics.queries import gold_tables_for
from lake_pipelines.lake.layout import (
    bronze_dir,
    bronze_lineage_key,
    hive_pattern,
    landing_dir,
    quarantine_key,
)
from lake_pipelines.lake.period import Calendar, Period, bounds, follows, partition_key
from lake_pipelines.lake.silver import units_per_commit
from lake_pipelines_tests.period_defs import READINGS, SHIFTS

HOURLY = Calendar("hourly")
BERLIN = Calendar("daily", "Europe/Berlin")


def test_an_hour_has_its_key_folder_levels_and_utc_bounds() -> None:
    hour = HOURLY.of_key("2025-03-01-05:00")
    assert hour == Period(datetime(2025, 3, 1, 5), "hourly")
    assert isinstance(hour, Period)
    assert partition_key(hour) == "2025-03-01-05:00"  # Dagster's hourly key
    assert hour.isoformat() == "2025-03-01T05" == str(hour)
    assert HOURLY.of_folder("2025-03-01T05") == hour
    assert HOURLY.of_folder("2025-03-01") is None and HOURLY.of_folder("2025-03-01T5") is None
    assert bounds(hour) == (
        datetime(2025, 3, 1, 5, tzinfo=UTC),
        datetime(2025, 3, 1, 6, tzinfo=UTC),
    )
    last = HOURLY.of_key("2025-03-01-23:00")
    assert follows(last, HOURLY.of_key("2025-03-02-00:00"))
    assert not follows(hour, last)
    assert landing_dir(READINGS, hour) == "landing/readings/2025-03-01T05"
    assert bronze_dir(READINGS, hour) == (
        "bronze/readings/utc_year=2025/utc_month=03/utc_day=01/utc_hour=05"
    )
    assert bronze_lineage_key(READINGS, hour).endswith("/utc_hour=05/_lineage.json")
    assert quarantine_key("readings", hour) == (
        "quarantine/readings/year=2025/month=03/day=01/hour=05/part-00000.parquet"
    )
    assert hive_pattern(READINGS.hive_partition_columns).endswith("/utc_hour=HH")
    assert hour.tag == "hour-2025-03-01T05"


def test_a_daily_utc_day_stays_a_date_with_the_paths_it_always_had() -> None:
    day = Calendar().of_key("2026-11-01")
    assert type(day) is date and day == date(2026, 11, 1)
    assert Calendar().of_folder("2026-11-01") == day
    assert partition_key(day) == "2026-11-01"


def test_a_local_day_is_23_24_or_25_utc_hours() -> None:
    spring, summer, autumn = (BERLIN.of_key(k) for k in ("2025-03-30", "2025-06-01", "2025-10-26"))
    hours = [(b[1] - b[0]).total_seconds() / 3600 for b in map(bounds, (spring, summer, autumn))]
    assert hours == [23, 24, 25]
    start, end = bounds(summer)  # a Berlin summer day starts at 22:00 UTC the day before
    assert (start, end) == (
        datetime(2025, 5, 31, 22, tzinfo=UTC),
        datetime(2025, 6, 1, 22, tzinfo=UTC),
    )
    assert landing_dir(SHIFTS, summer) == "landing/shifts/2025-06-01"
    assert bronze_dir(SHIFTS, summer) == "bronze/shifts/year=2025/month=06/day=01"
    assert isinstance(summer, Period)
    assert summer.tag == "day-2025-06-01"


def test_hourly_and_zoned_datasets_default_to_hour_partitions() -> None:
    assert READINGS.partitioning == (PartitionField("ts", "hour"),)
    assert SHIFTS.partitioning == (PartitionField("ts", "hour"),)
    assert units_per_commit(READINGS) == 168 and units_per_commit(SHIFTS) == 31
    assert gold_tables_for(READINGS) == [] and gold_tables_for(SHIFTS) == []


def _spec(spec: DatasetSpec = READINGS, /, **changes: Any) -> DatasetSpec:
    return dataclasses.replace(spec, **changes)


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        # the data column `hour` would be replaced by the folder's hour
        ({"hive_partition_columns": ("y", "m", "d")}, "hive_partition_columns", "hour is a data"),
        ({"hive_partition_columns": ("y", "m", "d", "h", "x")}, "hive_partition_columns", "four"),
        ({"partitioning": (PartitionField("ts", "day"),)}, "partitioning", "by 'hour'"),
        ({"timezone": "Europe/Berlin"}, "timezone", "local hour repeats"),
        ({"granularity": "weekly"}, "granularity", "'daily' or 'hourly'"),
    ],
)
def test_an_hourly_spec_that_cannot_work_is_refused(
    changes: dict[str, object], field: str, reason: str
) -> None:
    with pytest.raises(SpecError, match=reason) as caught:
        _spec(**changes)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("zone", "reason"),
    [
        ("Asia/Kolkata", "UTC offset 5:30:00, not a whole hour"),
        ("Australia/Lord_Howe", "not a whole hour"),  # +10:30, and a 30-minute DST shift
        ("Mars/Olympus", "not an IANA time zone"),
    ],
)
def test_a_zone_whose_days_are_not_whole_utc_hours_is_refused(zone: str, reason: str) -> None:
    with pytest.raises(SpecError, match=reason) as caught:
        _spec(SHIFTS, timezone=zone)
    assert caught.value.field == "timezone"
    with pytest.raises(SpecError, match="by 'hour'"):
        _spec(SHIFTS, partitioning=(PartitionField("ts", "day"),))
