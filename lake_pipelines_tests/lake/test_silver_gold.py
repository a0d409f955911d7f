"""Bronze → silver (Iceberg) → gold (DataFusion), checked against pyiceberg scans and DuckDB."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pyiceberg.catalog.sql import SqlCatalog

from lake_pipelines.datasets import get_dataset
from lake_pipelines.lake.analytics.session import SessionSettings
from lake_pipelines.lake.bronze import ingest_day, read_lineage
from lake_pipelines.lake.gold import commit_daily_metrics, metrics_table_name
from lake_pipelines.lake.iceberg.snapshots import day_tag
from lake_pipelines.lake.ingest.readers import LANDING_SUFFIXES
from lake_pipelines.lake.layout import bronze_lineage_key, landing_dir
from lake_pipelines.lake.silver import commit_day, day_filter
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.sample_data import SampleDay, generate_events
from lake_pipelines_tests.support import duckdb_hive, duckdb_query, rows, summary_of

SPEC = get_dataset("events")
START = date(2026, 11, 1)
COLUMNS = list(SPEC.schema.names)


@pytest.fixture
def two_days(local_store: ObjectStore, local_catalog: SqlCatalog) -> list[SampleDay]:
    days = generate_events(local_store, START, days=2, rows_per_day=400, seed=3)
    for d in days:
        report = ingest_day(local_store, SPEC, d.day, run_id="r1")
        commit_day(local_store, local_catalog, SPEC, d.day, "r1", report.sources)
    return days


def test_silver_holds_every_valid_row_once(
    two_days: list[SampleDay], local_catalog: SqlCatalog
) -> None:
    table = local_catalog.load_table(SPEC.table_name)
    expected = [r for d in two_days for r in rows(d.valid)]
    assert rows(table.scan().to_arrow(), columns=COLUMNS) == sorted(
        expected, key=lambda r: r["event_id"]
    )
    spec_fields = [(f.name, str(f.transform)) for f in table.spec().fields]
    assert spec_fields == [("ts_day", "day")]
    assert [f.source_id for f in table.sort_order().fields] == [
        table.schema().find_field("ts").field_id,
        table.schema().find_field("user_id").field_id,
    ]


def test_silver_rerun_replaces_the_day_in_one_commit(
    two_days: list[SampleDay], local_store: ObjectStore, local_catalog: SqlCatalog
) -> None:
    table = local_catalog.load_table(SPEC.table_name)
    before = rows(table.scan().to_arrow(), columns=COLUMNS)
    metadata_files = len(table.metadata.metadata_log)
    report = commit_day(local_store, local_catalog, SPEC, START, "r2", [])
    table = local_catalog.load_table(SPEC.table_name)
    assert rows(table.scan().to_arrow(), columns=COLUMNS) == before
    assert len(table.metadata.metadata_log) == metadata_files + 1  # one catalog commit
    summary = summary_of(table.current_snapshot())
    assert summary["lake.run-id"] == "r2" and summary["lake.partition"] == START.isoformat()
    assert report.rows_committed == two_days[0].valid.num_rows
    # the other day was not touched
    other = table.scan(row_filter=day_filter(SPEC, two_days[1].day)).to_arrow()
    assert other.num_rows == two_days[1].valid.num_rows


def test_silver_snapshot_records_source_files(
    two_days: list[SampleDay], local_catalog: SqlCatalog
) -> None:
    table = local_catalog.load_table(SPEC.table_name)
    summary = summary_of(table.current_snapshot())
    assert summary["lake.partition"] == two_days[1].day.isoformat()
    for key in two_days[1].files:
        assert key in summary["lake.source-files"]


def test_gold_matches_duckdb_over_the_bronze_files(
    two_days: list[SampleDay], local_store: ObjectStore, local_catalog: SqlCatalog
) -> None:
    for d in two_days:
        commit_daily_metrics(local_store, local_catalog, SPEC, d.day, SessionSettings(2))
    commit_daily_metrics(local_store, local_catalog, SPEC, START, SessionSettings(2))  # re-run
    gold = local_catalog.load_table(metrics_table_name(SPEC)).scan().to_arrow()
    gold = gold.select(
        ["day", "event_type", "events", "distinct_users", "distinct_sessions", "revenue"]
    )
    bronze = duckdb_hive(local_store.path(SPEC.bronze_prefix), COLUMNS)
    expected = duckdb_query(
        """
        SELECT CAST(ts AS DATE) AS day, event_type, COUNT(*) AS events,
               COUNT(DISTINCT user_id) AS distinct_users,
               COUNT(DISTINCT session_id) AS distinct_sessions, SUM(price) AS revenue
        FROM bronze GROUP BY ALL
        """,
        bronze=bronze,
    )

    def keyed(t):
        out = {}
        for r in t.to_pylist():
            rev = r.pop("revenue")
            out[(str(r.pop("day")), r.pop("event_type"))] = (
                r,
                None if rev is None else round(rev, 6),
            )
        return out

    assert keyed(gold) == keyed(expected)
    assert len(gold) == len(expected)  # no duplicates after the re-run


def test_rerun_of_the_same_files_is_recognised(
    two_days: list[SampleDay], local_store: ObjectStore, local_catalog: SqlCatalog
) -> None:
    day = two_days[0].day
    sources = local_store.list(f"landing/events/{day}")
    first = commit_day(local_store, local_catalog, SPEC, day, "a", sources)
    snapshots = len(local_catalog.load_table(SPEC.table_name).snapshots())
    again = commit_day(local_store, local_catalog, SPEC, day, "b", sources)
    assert again.unchanged and again.snapshot_id == first.snapshot_id
    assert len(local_catalog.load_table(SPEC.table_name).snapshots()) == snapshots
    # a new landed file changes the inputs: the day is committed again, with the new rows
    extra = "event_id,ts,user_id,session_id,event_type,url,price,properties,latencies_ms\n"
    extra += f"late-1,{day}T23:00:00Z,u1,s1,click,,,,\n"
    local_store.write_bytes(f"landing/events/{day}/late.csv", extra.encode())
    report = ingest_day(local_store, SPEC, day)
    third = commit_day(local_store, local_catalog, SPEC, day, "c", report.sources)
    assert not third.unchanged and third.rows_committed == two_days[0].valid.num_rows + 1


def test_a_corrected_file_of_the_same_size_is_committed_again(
    local_store: ObjectStore, local_catalog: SqlCatalog
) -> None:
    """Same names, same sizes, new content: silver must not take it for the last commit."""
    day = date(2026, 11, 20)
    header = "event_id,ts,user_id,session_id,event_type,url,price,properties,latencies_ms\n"
    key = f"landing/events/{day}/fix.csv"
    for price in ("20.50", "30.50"):
        local_store.write_bytes(
            key, f"{header}c1,{day}T10:00:00Z,u1,s1,click,,{price},,\n".encode()
        )
        report = ingest_day(local_store, SPEC, day)
        committed = commit_day(local_store, local_catalog, SPEC, day, "r", report.sources)
        table = local_catalog.load_table(SPEC.table_name)
        prices = table.scan(row_filter=day_filter(SPEC, day)).to_arrow().column("price")
        assert prices.to_pylist() == [float(price)]
    assert not committed.unchanged
    # the same file ingested again: bronze rewrites the same bytes (new mtime), silver knows it
    report = ingest_day(local_store, SPEC, day)
    again = commit_day(local_store, local_catalog, SPEC, day, "r", report.sources)
    assert again.unchanged and again.snapshot_id == committed.snapshot_id


def _source_files(catalog: SqlCatalog, day: date) -> list[dict]:
    table = catalog.load_table(SPEC.table_name)
    tagged = table.snapshot_by_id(table.metadata.refs[day_tag(day)].snapshot_id)
    return json.loads(summary_of(tagged)["lake.source-files"])


def test_silver_lineage_comes_from_bronze_not_the_landing_folder(
    local_store: ObjectStore, local_catalog: SqlCatalog, tmp_path: Path
) -> None:
    """Silver records every landed file of the day (path, size, etag), the one quarantined
    whole included, from bronze's manifest: the landing folder may be gone by then."""
    day = generate_events(local_store, START, days=1, rows_per_day=300, seed=8)[0]
    landing = local_store.list(landing_dir(SPEC, day.day), suffixes=LANDING_SUFFIXES)
    expected: list[dict[str, Any]] = [
        {"path": e.key, "size": e.size, "etag": e.etag} for e in landing
    ]
    report = ingest_day(local_store, SPEC, day.day)
    assert report.file_rejects  # the truncated file: no bronze file, yet a landed file
    shutil.move(local_store.path(landing_dir(SPEC, day.day)), tmp_path / "elsewhere")
    committed = commit_day(local_store, local_catalog, SPEC, day.day, "r")
    assert _source_files(local_catalog, day.day) == expected
    assert sorted(f["path"] for f in expected) == sorted(day.files)
    # what the Dagster asset used to pass (the landing listing) gives the same fingerprint:
    # an existing lake is not committed again for this change
    again = commit_day(local_store, local_catalog, SPEC, day.day, "r", landing)
    assert again.unchanged and again.snapshot_id == committed.snapshot_id


def test_a_day_bronze_ingested_without_a_manifest_falls_back_to_the_landing_folder(
    local_store: ObjectStore, local_catalog: SqlCatalog
) -> None:
    day = generate_events(local_store, START, days=1, rows_per_day=300, seed=9)[0]
    ingest_day(local_store, SPEC, day.day)
    local_store.delete([bronze_lineage_key(SPEC, day.day)])  # as an older version left it
    assert read_lineage(local_store, SPEC, day.day) is None
    commit_day(local_store, local_catalog, SPEC, day.day, "r")
    assert [f["path"] for f in _source_files(local_catalog, day.day)] == sorted(day.files)
