"""The `lake-pipelines` command: the summary's numbers, history with day tags, time-travel scans."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

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


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    return lines[0]


def _span(table) -> tuple[str, str]:
    times = sorted(s.timestamp_ms for s in table.snapshots())
    return tuple(
        datetime.fromtimestamp(t / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
        for t in (times[0], times[-1])
    )  # type: ignore[return-value]


def test_a_bad_as_of_time_names_the_format_and_the_snapshot_times(small_lake, capsys) -> None:
    _, catalog, _ = small_lake
    first, last = _span(catalog.load_table(SPEC.table_name))
    assert cli.main(["scan", SPEC.table_name, "--as-of-time", "yesterday"]) == 2
    line = _one_line_error(capsys)
    assert "--as-of-time 'yesterday': not an ISO time" in line
    assert f"from {first} to {last} UTC" in line and f"e.g. {last}" in line


def test_a_time_before_the_first_snapshot_names_the_times_there_are(small_lake, capsys) -> None:
    _, catalog, _ = small_lake
    first, last = _span(catalog.load_table(SPEC.table_name))
    assert cli.main(["scan", SPEC.table_name, "--as-of-time", "2020-01-01T00:00:00"]) == 2
    line = _one_line_error(capsys)
    assert "had no snapshot at 2020-01-01T00:00:00+00:00" in line
    assert f"from {first} to {last} UTC" in line
    assert cli.main(["scan", SPEC.table_name, "--snapshot", "12345"]) == 2
    assert f"has no snapshot 12345 (its snapshots were committed from {first}" in _one_line_error(
        capsys
    )


def test_a_time_after_the_last_snapshot_reads_the_current_table(small_lake, capsys) -> None:
    _, _, days = small_lake
    args = ["scan", SPEC.table_name, "--as-of-time", "2999-01-01", "--limit", "100000"]
    assert cli.main(args) == 0
    rows = sum(d.valid.num_rows for d in days)
    assert capsys.readouterr().out.strip().endswith(f"({rows} rows)")


@pytest.mark.parametrize("name", ["events", "lake.nope", "nope.events"])
def test_an_unknown_table_names_the_tables_there_are(small_lake, capsys, name: str) -> None:
    assert cli.main(["history", name]) == 2
    line = _one_line_error(capsys)
    assert f"table {name}: no such table" in line and "(tables: lake.events)" in line
    if "." not in name:
        assert "a table name has its namespace, e.g. lake.events" in line


def test_a_filter_on_an_unknown_column_names_the_columns(small_lake, capsys) -> None:
    columns = ", ".join(SPEC.schema.names)
    assert cli.main(["scan", SPEC.table_name, "--where", "nope = 1"]) == 2
    line = _one_line_error(capsys)
    assert "row filter 'nope = 1': no column 'nope'" in line and f"(columns: {columns})" in line
    assert cli.main(["scan", SPEC.table_name, "--columns", "event_id,nope"]) == 2
    assert f"no column nope (columns: {columns})" in _one_line_error(capsys)


def test_a_filter_that_does_not_parse_shows_how_one_is_written(small_lake, capsys) -> None:
    assert cli.main(["scan", SPEC.table_name, "--where", "event_type =="]) == 2
    line = _one_line_error(capsys)
    assert "row filter 'event_type ==' does not parse" in line
    assert "write it like \"event_type = 'click' AND price > 10\"" in line


def test_a_bad_argument_is_one_line_with_exit_code_2(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["scan", "lake.events", "--limit", "-3"])
    assert exc.value.code == 2
    line = _one_line_error(capsys)
    assert "argument --limit: -3 is negative; give 0 or more" in line
    with pytest.raises(SystemExit) as exc:
        cli.main(["nope"])
    assert exc.value.code == 2 and "invalid choice: 'nope'" in _one_line_error(capsys)


def test_the_installed_command_prints_no_traceback_and_no_warning(small_lake) -> None:
    command = str(Path(sys.executable).parent / "lake-pipelines")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
        return subprocess.run(
            [command, *args], capture_output=True, text=True, timeout=300, env=env
        )

    done = run("history", "events")
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "lake.events" in done.stderr
    for args in (
        ["tables"],
        ["history", SPEC.table_name],
        ["scan", SPEC.table_name],
        ["summary"],
        ["expire", SPEC.table_name, "--dry-run"],
        ["orphans", SPEC.table_name],
    ):  # every command, in the process the executable makes (which hides pandas)
        done = run(*args)
        assert done.returncode == 0 and done.stderr == "", done.stderr  # no warnings either


def test_views_read_the_local_catalog_without_pyiceberg_and_print_what_pyiceberg_reads(
    small_lake, capsys, monkeypatch
) -> None:
    """`tables` and `history` read the SQLite catalog and the metadata files themselves
    (`lake.iceberg.peek`); through pyiceberg's catalog they print the same."""
    from lake_pipelines.lake.iceberg import peek

    _, catalog, days = small_lake
    table = catalog.load_table(SPEC.table_name)
    commands = (["tables"], ["history", SPEC.table_name], ["scan", SPEC.table_name, "--limit", "5"])
    direct = []
    for args in commands:
        assert cli.main(args) == 0
        direct.append(capsys.readouterr().out)
    monkeypatch.setattr(peek, "local_tables", lambda *_: None)
    for args, text in zip(commands, direct, strict=True):
        assert cli.main(args) == 0
        assert capsys.readouterr().out == text, args
    # and what they print is the table's: its snapshots, tags, rows and partitioning
    snapshots = table.snapshots()
    history = direct[1].splitlines()[2:]
    assert [int(line.split()[0]) for line in history] == [s.snapshot_id for s in snapshots]
    assert all(f"day-{d.day}" in direct[1] for d in days)
    assert direct[1].count("*current") == 1
    line = next(x for x in direct[0].splitlines() if x.startswith(f"{SPEC.table_name} "))
    rows, files, count = map(int, line.split()[1:4])
    assert rows == sum(d.valid.num_rows for d in days) == table.scan().count()
    assert (files, count) == (len(table.inspect.files()), len(snapshots))
    assert "day(ts)" in line


def test_the_executable_imports_only_what_its_command_needs(small_lake) -> None:
    """On the default catalog `tables` and `history` import neither pyiceberg nor pyarrow's
    readers; no command imports SQLAlchemy or pandas (together about 1.5 s of a 2 s scan)."""
    probe = (
        "import sys; "
        "sys.argv = ['lake-pipelines', *sys.argv[1:]]; "
        "from lake_pipelines.cli import command; "
        "code = command(); "
        "heavy = ('pyiceberg', 'sqlalchemy', 'pandas', 'pyarrow.dataset', 'datafusion'); "
        "print(sorted(m for m in heavy if m in sys.modules), file=sys.stderr); "
        "sys.exit(code)"
    )

    def imported(*args: str) -> list[str]:
        done = subprocess.run(
            [sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return eval(done.stderr.strip().splitlines()[-1])

    assert imported("tables") == []
    assert imported("history", SPEC.table_name) == []
    assert imported("scan", SPEC.table_name, "--limit", "3") == ["pyarrow.dataset", "pyiceberg"]


def test_a_gzipped_metadata_file_reads_like_a_plain_one(tmp_path: Path) -> None:
    import gzip
    import json

    from lake_pipelines.lake.iceberg.peek import TableView

    metadata: dict[str, Any] = {
        "current-snapshot-id": 7,
        "snapshots": [{"snapshot-id": 7, "timestamp-ms": 1, "summary": {"operation": "append"}}],
        "refs": {"main": {"snapshot-id": 7, "type": "branch"}},
        "default-spec-id": 0,
        "partition-specs": [
            {"spec-id": 0, "fields": [{"source-id": 2, "transform": "day", "name": "d"}]}
        ],
        "current-schema-id": 0,
        "schemas": [
            {
                "schema-id": 0,
                "fields": [
                    {
                        "id": 1,
                        "name": "at",
                        "type": {
                            "type": "struct",
                            "fields": [{"id": 2, "name": "ts", "type": "timestamptz"}],
                        },
                    }
                ],
            }
        ],
    }
    plain = tmp_path / "00001-x.metadata.json"
    plain.write_text(json.dumps(metadata))
    zipped = tmp_path / "00001-x.gz.metadata.json"
    zipped.write_bytes(gzip.compress(json.dumps(metadata).encode()))
    for path in (plain, zipped):
        view = TableView.read("lake.t", f"file://{path}")
        assert view.current_snapshot() == metadata["snapshots"][0]
        assert view.refs_by_snapshot() == {7: ["main"]}
        assert view.partitioning() == ["day(at.ts)"]


def test_expire_dry_run_lists_what_expire_then_removes(small_lake, capsys) -> None:
    store, catalog, days = small_lake
    table = catalog.load_table(SPEC.table_name)
    table.manage_snapshots().remove_tag(day_tag(days[0].day)).commit()  # else it protects
    before = {s.snapshot_id for s in table.snapshots()}
    files_before = {e.key for e in store.list("warehouse", hidden=True)}
    args = ["expire", SPEC.table_name, "--older-than-days", "0", "--retain-last", "1"]
    assert cli.main([*args, "--dry-run"]) == 0
    planned = capsys.readouterr().out.splitlines()
    assert planned[-1].startswith(f"{SPEC.table_name}: would expire ")
    assert planned[-1].endswith("(dry run; nothing changed)")
    would_expire = {int(x.split()[1]) for x in planned if x.startswith("snapshot ")}
    would_delete = {x for x in planned[:-1] if not x.startswith(("snapshot ", "tag "))}
    assert would_expire and would_delete
    table = catalog.load_table(SPEC.table_name)
    assert {s.snapshot_id for s in table.snapshots()} == before  # nothing changed
    assert {e.key for e in store.list("warehouse", hidden=True)} == files_before

    assert cli.main(args) == 0
    assert f"expired {len(would_expire)} snapshots" in capsys.readouterr().out
    table = catalog.load_table(SPEC.table_name)
    assert before - {s.snapshot_id for s in table.snapshots()} == would_expire
    left = {store.path(e.key) for e in store.list("warehouse", hidden=True)}
    gone = {store.path(k) for k in files_before} - left
    assert {p.removeprefix("file://") for p in would_delete} == gone


def test_a_metadata_file_gone_or_garbled_is_one_line_naming_it(small_lake, capsys) -> None:
    _, catalog, _ = small_lake
    metadata = Path(catalog.load_table(SPEC.table_name).metadata_location.removeprefix("file://"))
    metadata.write_bytes(b"{not json")
    assert cli.main(["history", SPEC.table_name]) == 2
    line = _one_line_error(capsys)
    assert SPEC.table_name in line and str(metadata) in line
    metadata.unlink()
    assert cli.main(["tables"]) == 2
    assert str(metadata) in _one_line_error(capsys)


def test_the_catalog_file_is_found_under_any_folder_name(small_lake, tmp_path: Path) -> None:
    """SQLite reads `?`, `#` and `%` in a URI filename as syntax: the path is escaped."""
    import shutil

    from lake_pipelines.lake.iceberg.peek import local_tables

    db = Path(os.environ["LAKE_CATALOG_URI"].removeprefix("sqlite:///"))
    odd = tmp_path / "a b?c#d%20" / "catalog.db"
    odd.parent.mkdir()
    shutil.copy(db, odd)
    found = local_tables("sql", f"sqlite:///{odd}", "lake")
    assert found is not None and SPEC.table_name in found
    assert found == local_tables("sql", f"sqlite:///{db}", "lake")
