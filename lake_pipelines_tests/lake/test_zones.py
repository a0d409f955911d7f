"""A dataset on local days (`period_defs.SHIFTS`, Europe/Berlin): Hive and landing folders are
local days, Iceberg stays UTC and partitioned by hour, so a local day (23, 24 or 25 hours)
replaces exactly its own hour partitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import Table

from lake_pipelines.cli.summary import summary
from lake_pipelines.config import CatalogSettings
from lake_pipelines.lake.bronze import ingest_day
from lake_pipelines.lake.ingest import quarantine
from lake_pipelines.lake.period import Calendar, Unit, bounds
from lake_pipelines.lake.silver import commit_days, day_filter
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines_tests.period_defs import SHIFTS, land_shifts
from lake_pipelines_tests.support import duckdb_hive

BERLIN = Calendar("daily", "Europe/Berlin")


def _hour_partitions(table: Table) -> dict[int, int]:
    """Rows per Iceberg ``ts_hour`` partition (hours since the epoch, UTC)."""
    return {
        p["partition"]["ts_hour"]: p["record_count"] for p in table.inspect.partitions().to_pylist()
    }


def _rows(table: Table, day: Unit) -> list[dict]:
    rows = table.scan(row_filter=day_filter(SHIFTS, day)).to_arrow().to_pylist()
    return sorted(rows, key=lambda r: r["shift_id"])


def _epoch_hour(ts: datetime) -> int:
    return int(ts.timestamp()) // 3600


def test_a_late_evening_event_lands_in_its_local_day_and_its_utc_hour(
    local_store: ObjectStore,
    local_catalog: SqlCatalog,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    day = BERLIN.of_key("2025-06-01")
    # 23:30 and 00:30 in Berlin (UTC+2): 21:30 UTC that day and 22:30 UTC the day before;
    # 00:30 Berlin the next day (22:30 UTC on 06-01) belongs to the next local day
    stamps = ["2025-06-01T21:30:00Z", "2025-05-31T22:30:00Z", "2025-06-01T22:30:00Z"]
    land_shifts(local_store, day, stamps)
    report = ingest_day(local_store, SHIFTS, day)
    assert (report.rows_written, report.rows_quarantined) == (2, 1)
    (reject,) = quarantine.read(local_store, SHIFTS.name, day).to_pylist()
    assert reject["line"] == 4 and reject["partition"].isoformat() == "2025-06-01"
    bronze = duckdb_hive(
        local_store.path(SHIFTS.bronze_prefix), ["shift_id", "year", "month", "day"]
    )
    assert {(r["year"], r["month"], r["day"]) for r in bronze.to_pylist()} == {(2025, 6, 1)}
    assert local_store.list("bronze/shifts/year=2025/month=06/day=01")  # the local day's folder

    (committed,) = commit_days(local_store, local_catalog, SHIFTS, [day], "z1")
    assert committed.rows_committed == 2
    table = local_catalog.load_table(SHIFTS.table_name)
    assert _hour_partitions(table) == {
        _epoch_hour(datetime(2025, 5, 31, 22, tzinfo=UTC)): 1,
        _epoch_hour(datetime(2025, 6, 1, 21, tzinfo=UTC)): 1,
    }
    assert table.metadata.refs["day-2025-06-01"].snapshot_id == committed.snapshot_id
    # the CLI summary counts silver rows by local day too: both on 06-01, none on 05-31
    monkeypatch.setenv("LAKE_STORE_URL", local_store.url)
    monkeypatch.setenv("LAKE_CATALOG_URI", f"sqlite:///{tmp_path / 'catalog.db'}")
    text = summary(local_store, CatalogSettings.from_env(), (SHIFTS,))
    lines = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.strip()}
    assert lines["2025-06-01"] == ["1", "2", "1", "1", "0", "2", "0"]
    assert "2025-05-31" not in lines


def test_daylight_saving_days_are_23_and_25_hours_replaced_whole(
    local_store: ObjectStore, local_catalog: SqlCatalog
) -> None:
    days = [BERLIN.of_key(k) for k in ("2025-10-25", "2025-10-26", "2025-10-27")]
    spring = BERLIN.of_key("2025-03-30")
    for day in [spring, *days]:
        start, end = bounds(day)
        every_hour = []
        while start < end:  # one shift in each UTC hour of the local day
            every_hour.append((start + timedelta(minutes=10)).isoformat())
            start += timedelta(hours=1)
        land_shifts(local_store, day, every_hour)
        assert ingest_day(local_store, SHIFTS, day).rows_quarantined == 0
    reports = commit_days(local_store, local_catalog, SHIFTS, [spring, *days], "dst")
    assert [r.rows_committed for r in reports] == [23, 24, 25, 24]
    table = local_catalog.load_table(SHIFTS.table_name)
    partitions = _hour_partitions(table)
    assert len(partitions) == 23 + 24 + 25 + 24 and set(partitions.values()) == {1}
    before = {p: _rows(table, p) for p in days}

    # the 25-hour day re-landed with a shift per hour less: its 25 partitions go, only them
    start, end = bounds(days[1])
    land_shifts(local_store, days[1], [(start + timedelta(hours=h)).isoformat() for h in (0, 24)])
    ingest_day(local_store, SHIFTS, days[1])
    (again,) = commit_days(local_store, local_catalog, SHIFTS, [days[1]], "dst2")
    assert again.rows_committed == 2
    table = local_catalog.load_table(SHIFTS.table_name)
    for p in (days[0], days[2]):
        assert _rows(table, p) == before[p]
    assert len(_hour_partitions(table)) == 23 + 24 + 2 + 24
