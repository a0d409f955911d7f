"""Lakes written before the folders were zero-padded (``year=2026/month=11/day=3``).

Every reader of a day still finds such a day, and its next re-ingestion moves it to the padded
folder. The old layout is made by hand: the files an ingestion wrote, moved to where the code
before padding put them.
"""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta
from pathlib import Path

import pyarrow.compute as pc
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from lake_pipelines import cli
from lake_pipelines.datasets import get_dataset
from lake_pipelines.lake.analytics.session import SessionSettings, make_session, register_hive
from lake_pipelines.lake.bronze import ingest_day, read_lineage, stored_counts
from lake_pipelines.lake.compaction.hive_footers import plan_hive
from lake_pipelines.lake.ingest import quarantine
from lake_pipelines.lake.layout import hive_dir, landing_dir
from lake_pipelines.lake.parquet.options import file_schema
from lake_pipelines.lake.silver import commit_day
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.sample_data import SampleDay, generate_events
from lake_pipelines_tests.conftest import sql_catalog
from lake_pipelines_tests.support import duckdb_hive, rows, summary_of

SPEC = get_dataset("events")
DAY = date(2026, 11, 3)
NEXT = DAY + timedelta(days=1)
COLUMNS = list(SPEC.schema.names)
LEGACY = "year=2026/month=11/day=3"
PREFIXES = (SPEC.bronze_prefix, "quarantine/events")


def _move_to_legacy_layout(store: ObjectStore, day: date) -> None:
    """Bronze, lineage and quarantine of `day` moved to the unpadded folders of old lakes."""
    legacy = f"year={day.year}/month={day.month}/day={day.day}"
    assert hive_dir(day) != legacy  # the writer no longer uses the old folder
    for prefix in PREFIXES:
        old = Path(store.path(f"{prefix}/{legacy}"))
        old.parent.mkdir(parents=True, exist_ok=True)
        Path(store.path(f"{prefix}/{hive_dir(day)}")).rename(old)


@pytest.fixture
def legacy_day(local_store: ObjectStore) -> SampleDay:
    """DAY in the old layout (bad rows, an unreadable file), NEXT in the current one."""
    sample, _ = generate_events(local_store, DAY, days=2, rows_per_day=300, seed=17)
    for day in (DAY, NEXT):
        ingest_day(local_store, SPEC, day, run_id="before")
    _move_to_legacy_layout(local_store, DAY)
    assert sample.bad_rows and local_store.list(f"{SPEC.bronze_prefix}/{LEGACY}")
    return sample


def test_every_reader_finds_a_day_in_the_unpadded_folder(
    legacy_day: SampleDay,
    local_store: ObjectStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    valid = legacy_day.valid.num_rows
    assert stored_counts(local_store, SPEC, DAY).rows_in_parquet == valid
    assert quarantine.counts(local_store, SPEC.name, DAY) == (legacy_day.bad_rows, 0)
    lineage = read_lineage(local_store, SPEC, DAY)
    assert lineage is not None and sorted(f.path for f in lineage) == sorted(legacy_day.files)
    plans = {p.partition: p for p in plan_hive(local_store, SPEC)}
    assert sorted(plans) == [hive_dir(NEXT), LEGACY]
    assert sum(f.rows or 0 for f in plans[LEGACY].files) == valid

    # DataFusion parses both folders as integers: a filter on the day finds either layout
    ctx = make_session(SessionSettings(2))
    register_hive(ctx, "bronze", local_store, SPEC.bronze_prefix, file_schema(SPEC))
    for day in (DAY, NEXT):
        sql = (
            f"SELECT COUNT(*) AS n FROM bronze WHERE year = 2026 AND month = 11 AND day = {day.day}"
        )
        got = ctx.sql(sql).to_pylist()[0]["n"]
        assert got == stored_counts(local_store, SPEC, day).rows_in_parquet > 0

    sql_catalog(local_store, tmp_path / "catalog.db")
    monkeypatch.setenv("LAKE_STORE_URL", local_store.url)
    monkeypatch.setenv("LAKE_CATALOG_URI", f"sqlite:///{tmp_path / 'catalog.db'}")
    assert cli.main(["summary"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.split()[:1] == [str(DAY)])
    _, _, bronze_rows, files, q_rows, *_ = line.split()
    assert (int(bronze_rows), int(q_rows)) == (valid, legacy_day.bad_rows) and int(files) > 0


def test_reingesting_moves_the_day_to_the_padded_folder(
    legacy_day: SampleDay, local_store: ObjectStore
) -> None:
    # a crashed compaction's journal and output there belong to the old copy: gone too
    local_store.write_bytes(f"{SPEC.bronze_prefix}/{LEGACY}/_compaction.json", b"{}")
    local_store.write_bytes(f"{SPEC.bronze_prefix}/{LEGACY}/.compact-0.parquet.1.tmp", b"")
    report = ingest_day(local_store, SPEC, DAY, run_id="after")
    assert report.rows_written == legacy_day.valid.num_rows
    for prefix in PREFIXES:
        assert not Path(local_store.path(f"{prefix}/{LEGACY}")).exists(), prefix
        assert local_store.list(f"{prefix}/{hive_dir(DAY)}"), prefix
    got = duckdb_hive(local_store.path(SPEC.bronze_prefix), [*COLUMNS, "day"])
    mine = got.filter(pc.field("day") == DAY.day)
    assert rows(mine, columns=COLUMNS) == rows(legacy_day.valid)  # every row once
    q = quarantine.read(local_store, SPEC.name, DAY)
    assert set(q.column("run_id").to_pylist()) == {"after"}
    lineage_keys = [e.key for e in local_store.list(SPEC.bronze_prefix, hidden=True)]
    assert [k for k in lineage_keys if k.endswith("_lineage.json") and "/day=03/" in k]
    assert not [k for k in lineage_keys if "/day=3/" in k]


def test_silver_commits_a_day_still_in_the_unpadded_folder(
    legacy_day: SampleDay, local_store: ObjectStore, local_catalog: SqlCatalog
) -> None:
    shutil.rmtree(local_store.path(landing_dir(SPEC, DAY)))  # sources come from the lineage
    report = commit_day(local_store, local_catalog, SPEC, DAY, "silver")
    assert report.rows_read == report.rows_committed == legacy_day.valid.num_rows
    table = local_catalog.load_table(SPEC.table_name)
    assert rows(table.scan().to_arrow(), columns=COLUMNS) == rows(legacy_day.valid)
    summary = summary_of(table.current_snapshot())
    sources = json.loads(summary["lake.source-files"])
    assert sorted(s["path"] for s in sources) == sorted(legacy_day.files)
    bronze = json.loads(summary["lake.bronze-files"])
    assert bronze and all(f"/{LEGACY}/" in key for key, _, _ in bronze)
