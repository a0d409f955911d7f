"""Every layer over an hourly dataset (`period_defs.READINGS`): bronze's hour folders as four
engines read them, silver replacing exactly whole hour partitions, a week of hours in bounded
snapshots, compaction of hour partitions, and the CLI over the hourly table."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import Table

from lake_pipelines import cli
from lake_pipelines.cli.summary import summary
from lake_pipelines.config import CatalogSettings
from lake_pipelines.lake.bronze import bronze_files, ingest_day, read_lineage
from lake_pipelines.lake.compaction.hive import compact_hive
from lake_pipelines.lake.compaction.iceberg import compact_iceberg
from lake_pipelines.lake.ingest import quarantine
from lake_pipelines.lake.layout import bronze_dir
from lake_pipelines.lake.period import Period, bounds
from lake_pipelines.lake.silver import commit_days, day_filter, ensure_silver_table
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines_tests.period_defs import READINGS, land_readings
from lake_pipelines_tests.support import normalise, read_by_every_engine, summary_of

DATA = ["reading_id", "meter", "hour", "kwh"]


def hours(first: datetime, count: int) -> list[Period]:
    return [Period(first + timedelta(hours=i), "hourly") for i in range(count)]


def _expected(landed: list[dict]) -> dict[str, dict]:
    return {r["reading_id"]: {c: normalise(r[c]) for c in DATA} for r in landed}


def _silver_ids(table: Table, hour: Period) -> set[str]:
    scan = table.scan(row_filter=day_filter(READINGS, hour), selected_fields=("reading_id",))
    return set(scan.to_arrow().column("reading_id").to_pylist())


def test_bronze_writes_hour_folders_every_engine_reads_unchanged(
    local_store: ObjectStore,
) -> None:
    # across midnight: the last two hours of one day and the first of the next
    units = hours(datetime(2025, 3, 1, 22), 3)
    landed: list[dict] = []
    for unit in units:
        landed += land_readings(local_store, unit, rows=20, bad=2)
        report = ingest_day(local_store, READINGS, unit)
        assert (report.rows_read, report.rows_written, report.rows_quarantined) == (20, 18, 2)
        assert report.stored.rows_in_parquet == 18 and report.stored.rows_in_quarantine == 2
    folders = {e.key.rsplit("/", 1)[0] for e in local_store.list(READINGS.bronze_prefix)}
    assert folders == {
        f"bronze/readings/utc_year=2025/utc_month=03/utc_day={d}/utc_hour={h}"
        for d, h in (("01", "22"), ("01", "23"), ("02", "00"))
    }
    expected = _expected(landed)
    levels = READINGS.hive_partition_columns
    for engine, got in read_by_every_engine(local_store, READINGS).items():
        assert got.num_rows == len(expected), engine
        for name in levels:
            assert pa.types.is_integer(got.schema.field(name).type), (engine, name)
        for row in got.to_pylist():
            # the data's own `hour` column is the meter's, never the folder's
            assert {c: normalise(row[c]) for c in DATA} == expected[row["reading_id"]], engine
            ts = row["ts"]
            assert (row["utc_year"], row["utc_month"], row["utc_day"], row["utc_hour"]) == (
                ts.year,
                ts.month,
                ts.day,
                ts.hour,
            ), engine


def test_silver_replaces_exactly_the_hours_of_a_run(
    local_store: ObjectStore, local_catalog: SqlCatalog
) -> None:
    units = hours(datetime(2025, 3, 1, 22), 3)
    for unit in units:
        land_readings(local_store, unit, rows=12, bad=1)
        ingest_day(local_store, READINGS, unit)
    reports = commit_days(local_store, local_catalog, READINGS, units, "run-1")
    table = local_catalog.load_table(READINGS.table_name)
    assert [f.transform.__class__.__name__ for f in table.spec().fields] == ["HourTransform"]
    assert len(table.snapshots()) == 1  # three hours, one snapshot
    for r in reports:
        bronze_read = sum(lf.rows_read for lf in (read_lineage(local_store, READINGS, r.day) or []))
        q_rows, _ = quarantine.counts(local_store, READINGS.name, r.day)
        assert bronze_read == 12 == r.rows_committed + q_rows  # read = committed + quarantined
        assert r.rows_read == r.rows_committed == 11
    tag = table.metadata.refs["hour-2025-03-01T23"]
    assert tag.snapshot_id == reports[0].snapshot_id
    assert tag.max_ref_age_ms == 7 * 24 * 3600 * 1000  # a week of hour tags, not 30 days
    partitions = {p["partition"]["ts_hour"] for p in table.inspect.partitions().to_pylist()}
    assert len(partitions) == 3

    # a re-run changes nothing: no new snapshot
    again = commit_days(local_store, local_catalog, READINGS, units, "run-2")
    assert all(r.unchanged for r in again)
    assert len(local_catalog.load_table(READINGS.table_name).snapshots()) == 1

    # the middle hour re-landed: only its partition is replaced
    table = local_catalog.load_table(READINGS.table_name)
    before = {
        u: {t.file.file_path for t in table.scan(row_filter=day_filter(READINGS, u)).plan_files()}
        for u in units
    }
    for f in local_store.list(f"landing/readings/{units[1]}"):
        local_store.delete([f.key])
    new = land_readings(local_store, units[1], rows=5, seed=7)
    ingest_day(local_store, READINGS, units[1])
    (report,) = commit_days(local_store, local_catalog, READINGS, [units[1]], "run-3")
    table = local_catalog.load_table(READINGS.table_name)
    snapshot = table.current_snapshot()
    assert summary_of(snapshot)["lake.partition"] == "2025-03-01T23"
    assert report.rows_committed == 5
    assert _silver_ids(table, units[1]) == {r["reading_id"] for r in new}
    after = {
        u: {t.file.file_path for t in table.scan(row_filter=day_filter(READINGS, u)).plan_files()}
        for u in units
    }
    assert after[units[0]] == before[units[0]] and after[units[2]] == before[units[2]]
    assert not after[units[1]] & before[units[1]]
    assert table.scan().to_arrow().num_rows == 11 + 5 + 11


def test_a_week_of_hours_commits_in_bounded_snapshots(
    local_store: ObjectStore, local_catalog: SqlCatalog
) -> None:
    week = hours(datetime(2025, 3, 10), 7 * 24)
    for unit in week:
        land_readings(local_store, unit, rows=3, bad=1 if unit.local.hour == 12 else 0)
        ingest_day(local_store, READINGS, unit)
    first = commit_days(local_store, local_catalog, READINGS, week[:72], "r1", days_per_commit=24)
    table = local_catalog.load_table(READINGS.table_name)
    assert len(table.snapshots()) == 3  # 72 hours, 24 per snapshot
    reports = commit_days(local_store, local_catalog, READINGS, week, "r2")  # the default batch
    table = local_catalog.load_table(READINGS.table_name)
    assert len(table.snapshots()) == 4  # the week: one more snapshot, its first 72 hours unchanged
    assert [r.unchanged for r in reports] == [True] * 72 + [False] * 96
    assert {r.snapshot_id for r in first} | {reports[-1].snapshot_id} == {
        s.snapshot_id for s in table.snapshots()
    }
    quarantined = quarantine.rows_quarantined(local_store, READINGS.name, week)
    assert quarantined == 7  # one bad reading at noon of each day
    assert sum(r.rows_committed for r in reports) + quarantined == 3 * len(week)
    assert table.scan().to_arrow().num_rows == 3 * len(week) - 7


def test_compaction_works_over_hour_partitions(
    local_store: ObjectStore, local_catalog: SqlCatalog
) -> None:
    (unit,) = hours(datetime(2025, 3, 1, 5), 1)
    landed = land_readings(local_store, unit, rows=60, files=6)
    ingest_day(local_store, READINGS, unit)
    assert len(bronze_files(local_store, READINGS, unit)) == 6
    report = compact_hive(local_store, READINGS)
    assert [(r.partition, r.status) for r in report.results] == [
        ("utc_year=2025/utc_month=03/utc_day=01/utc_hour=05", "compacted")
    ]
    (merged,) = bronze_files(local_store, READINGS, unit)
    assert merged.key.startswith(bronze_dir(READINGS, unit) + "/")
    got = {
        r["reading_id"] for r in read_by_every_engine(local_store, READINGS)["duckdb"].to_pylist()
    }
    assert got == {r["reading_id"] for r in landed}

    commit_days(local_store, local_catalog, READINGS, [unit], "r1")
    table = ensure_silver_table(local_catalog, READINGS)
    start, _ = bounds(unit)
    for i in range(5):  # another writer's small appends to the same hour
        extra = {
            "reading_id": [f"x{i}"],
            "ts": [start + timedelta(minutes=i)],
            "meter": ["mx"],
            "hour": [1],
            "kwh": [0.5],
        }
        table.append(pa.table(extra, schema=table.schema().as_arrow()))
    assert len(list(table.scan().plan_files())) == 6
    result = compact_iceberg(local_store, table, READINGS, run_id="c1")
    assert [(r.partition, r.status) for r in result.results] == [
        ("ts_hour=2025-03-01-05", "compacted")
    ]
    table = local_catalog.load_table(READINGS.table_name)
    assert len(list(table.scan().plan_files())) == 1
    assert table.scan().to_arrow().num_rows == 65


def test_the_cli_lists_shows_and_scans_an_hourly_table(
    local_store: ObjectStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from lake_pipelines_tests.conftest import sql_catalog

    catalog = sql_catalog(local_store, tmp_path / "catalog.db")
    units = hours(datetime(2025, 3, 1, 5), 2)
    landed = {}
    for unit in units:
        landed[unit] = land_readings(local_store, unit, rows=4, seed=2)
        ingest_day(local_store, READINGS, unit)
        commit_days(local_store, catalog, READINGS, [unit], "cli")
    monkeypatch.setenv("LAKE_STORE_URL", local_store.url)
    monkeypatch.setenv("LAKE_CATALOG_URI", f"sqlite:///{tmp_path / 'catalog.db'}")
    assert cli.main(["tables"]) == 0
    assert READINGS.table_name in capsys.readouterr().out
    assert cli.main(["history", READINGS.table_name]) == 0
    history = capsys.readouterr().out
    assert "hour-2025-03-01T05" in history and "hour-2025-03-01T06" in history
    args = ["scan", READINGS.table_name, "--tag", "hour-2025-03-01T05", "--limit", "100"]
    assert cli.main(args) == 0
    as_of_first = capsys.readouterr().out
    assert all(r["reading_id"] in as_of_first for r in landed[units[0]])
    assert not any(r["reading_id"] in as_of_first for r in landed[units[1]])
    # the summary has a line per hour: landed files, bronze rows, files, quarantine, silver
    text = summary(local_store, CatalogSettings.from_env(), (READINGS,))
    lines = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.strip()}
    for unit in units:
        assert lines[unit.isoformat()] == ["1", "4", "1", "0", "0", "4", "0"]
    assert "(Hive: utc_year=YYYY/utc_month=MM/utc_day=DD/utc_hour=HH)" in text
