"""The `lake-pipelines` command: the summary's numbers, history with day tags, time-travel scans."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lake_pipelines import cli
from lake_pipelines.datasets import get_dataset
from lake_pipelines.lake.bronze import ingest_day
from lake_pipelines.lake.iceberg.snapshots import day_tag
from lake_pipelines.lake.layout import bronze_dir, quarantine_key
from lake_pipelines.lake.silver import commit_day
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.sample_data import generate_events
from lake_pipelines_tests.conftest import sql_catalog
from lake_pipelines_tests.support import duckdb_hive

SPEC = get_dataset("events")
START = date(2026, 11, 1)


@pytest.fixture
def small_lake(local_store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    days = generate_events(local_store, START, days=2, rows_per_day=150, seed=4)
    db = tmp_path / "catalog.db"
    catalog = sql_catalog(local_store, db)
    for d in days:
        report = ingest_day(local_store, SPEC, d.day)
        commit_day(local_store, catalog, SPEC, d.day, "cli-test", report.sources)
    monkeypatch.setenv("LAKE_STORE_URL", local_store.url)
    monkeypatch.setenv("LAKE_CATALOG_URI", f"sqlite:///{db}")
    return local_store, catalog, days


def test_summary_counts_each_layer_from_the_lake(small_lake, capsys) -> None:
    store, catalog, days = small_lake
    assert cli.main(["summary"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    silver = catalog.load_table(SPEC.table_name)
    for d in days:
        day = d.day.isoformat()
        landed, bronze_rows, files, q_rows, q_files, silver_rows, _ = map(int, lines[day])
        bronze = duckdb_hive(store.path(SPEC.bronze_prefix), ["event_id", "ts"])
        in_day = [t for t in bronze.column("ts").to_pylist() if t.date() == d.day]
        assert bronze_rows == len(in_day) == d.valid.num_rows
        assert files == len(store.list(bronze_dir(SPEC, d.day)))
        quarantine = pq.read_table(store.path(quarantine_key(SPEC.name, d.day)))
        kinds = quarantine.column("kind").to_pylist()
        assert (q_rows, q_files) == (kinds.count("row"), kinds.count("file"))
        assert q_rows == d.bad_rows and q_files == d.bad_files
        assert landed == len(store.list(f"landing/events/{day}"))
        day_rows = silver.scan(
            row_filter=f"ts >= '{day}T00:00:00+00:00' AND ts < '{day}T23:59:59.999999+00:00'"
        )
        assert silver_rows == day_rows.count() == d.valid.num_rows
    assert sum(d.bad_files for d in days) == 1  # the sample lands one truncated file: counted above


def test_history_and_scans_as_of_a_tag_or_snapshot(small_lake, capsys) -> None:
    _, catalog, days = small_lake
    table = catalog.load_table(SPEC.table_name)
    first = table.metadata.refs[day_tag(days[0].day)].snapshot_id
    assert cli.main(["history", SPEC.table_name]) == 0
    history = capsys.readouterr().out
    assert day_tag(days[0].day) in history and day_tag(days[1].day) in history
    assert str(first) in history and "*current" in history

    assert cli.main(["scan", SPEC.table_name, "--snapshot", str(first), "--limit", "1000"]) == 0
    as_of_first = capsys.readouterr().out
    assert (
        cli.main(["scan", SPEC.table_name, "--tag", day_tag(days[1].day), "--limit", "1000"]) == 0
    )
    as_of_second = capsys.readouterr().out
    first_ids = set(days[0].valid.column("event_id").to_pylist())
    second_ids = set(days[1].valid.column("event_id").to_pylist())
    assert all(i in as_of_first for i in list(first_ids)[:20])
    assert not any(i in as_of_first for i in list(second_ids)[:20])  # not committed yet then
    assert all(i in as_of_second for i in list(second_ids)[:20])


def test_a_missing_table_is_a_clear_error(small_lake, capsys) -> None:
    assert cli.main(["history", "lake.nope"]) == 2
    assert "no such table" in capsys.readouterr().err


def test_the_command_imports_no_dagster() -> None:
    probe = (
        "import lake_pipelines.cli, sys; "
        "assert not any(m == 'dagster' or m.startswith('dagster.') for m in sys.modules); "
        "assert 'dagster_aws' not in sys.modules"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_bad_setting_is_a_clear_error(small_lake, capsys, monkeypatch) -> None:
    monkeypatch.setenv("LAKE_S3_MAX_ATTEMPTS", "many")
    assert cli.main(["tables"]) == 2
    assert "LAKE_S3_MAX_ATTEMPTS='many'" in capsys.readouterr().err
