"""A backfill of a range of days through the Dagster CLI, on the project's own instance settings."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg

from lake_pipelines.datasets import get_dataset
from lake_pipelines.lake.gold import metrics_table_name
from lake_pipelines.lake.ingest import quarantine
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.sample_data import generate_events
from lake_pipelines_tests.conftest import sql_catalog
from lake_pipelines_tests.support import duckdb_hive, materialize_cli, rows

ROOT = Path(__file__).resolve().parents[2]
SPEC = get_dataset("events")
COLUMNS = list(SPEC.schema.names)
LAYERS = [
    dg.AssetKey(["lake", "bronze", "events"]),
    dg.AssetKey(["lake", "silver", "events"]),
    dg.AssetKey(["lake", "gold", "events_daily_metrics"]),
]
DAYS = ["2026-11-01", "2026-11-02", "2026-11-03"]


def by_day(table_rows: list[dict]) -> dict[str, list[dict]]:
    """Normalised rows (see support.rows: ts as epoch seconds) grouped by their UTC day."""
    out: dict[str, list[dict]] = {}
    for r in table_rows:
        out.setdefault(datetime.fromtimestamp(r["ts"], UTC).date().isoformat(), []).append(r)
    return out


def _day_metadata(instance: dg.DagsterInstance, key: dg.AssetKey, day: str) -> dict:
    """The metadata values of the latest materialization of `key`'s partition `day`."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[day]), limit=1
    ).records
    assert records, (key, day)
    materialization = records[0].asset_materialization
    assert materialization is not None and materialization.partition == day
    return {k: v.value for k, v in materialization.metadata.items()}


def test_three_day_backfill_through_the_cli(tmp_path: Path) -> None:
    lake, home = tmp_path / "lake", tmp_path / "dagster"
    store = ObjectStore(str(lake))
    days = generate_events(store, date(2026, 11, 1), days=3, rows_per_day=300, seed=21)
    shipped = (ROOT / "dagster.yaml").read_text()  # pools, queue, retries as shipped
    done = materialize_cli(
        ["--select", "group:events", "--partition-range", f"{DAYS[0]}...{DAYS[-1]}"],
        lake,
        home,
        dagster_yaml=shipped,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("RUN_SUCCESS") == 1  # one run for the whole range

    expected = {d.day.isoformat(): rows(d.valid) for d in days}
    bronze = by_day(rows(duckdb_hive(store.path(SPEC.bronze_prefix), COLUMNS)))
    catalog = sql_catalog(store, lake / "catalog.db")
    silver = by_day(rows(catalog.load_table(SPEC.table_name).scan().to_arrow(), columns=COLUMNS))
    gold = catalog.load_table(metrics_table_name(SPEC)).scan().to_arrow().to_pylist()
    for d in days:
        day = d.day.isoformat()
        assert bronze[day] == expected[day]
        assert silver[day] == expected[day]
        want = Counter(r["event_type"] for r in expected[day])
        got = {r["event_type"]: r["events"] for r in gold if r["day"] == d.day}
        assert got == dict(want)
        q = quarantine.read(store, SPEC.name, d.day).column("kind").to_pylist()
        assert (q.count("row"), q.count("file")) == (d.bad_rows, d.bad_files)
    assert sorted(bronze) == sorted(silver) == DAYS

    with dg.DagsterInstance.from_config(str(home)) as instance:
        for key in LAYERS:
            assert instance.get_materialized_partitions(key) == set(DAYS), key
        event = instance.get_latest_materialization_event(LAYERS[0])
        assert event is not None and event.asset_materialization is not None
        per_day_table = event.asset_materialization.metadata["per_day"]
        assert isinstance(per_day_table, dg.TableMetadataValue)
        per_day = per_day_table.value.records
        assert [
            (r.data["day"], r.data["rows_written"], r.data["rows_quarantined"]) for r in per_day
        ] == [(d.day.isoformat(), d.valid.num_rows, d.bad_rows) for d in days]
        # silver and gold: one snapshot for the range, per-day numbers in the metadata
        event = instance.get_latest_materialization_event(LAYERS[1])
        assert event is not None and event.asset_materialization is not None
        per_day_table = event.asset_materialization.metadata["per_day"]
        assert isinstance(per_day_table, dg.TableMetadataValue)
        per_day = per_day_table.value.records
        assert [(r.data["day"], r.data["rows"]) for r in per_day] == [
            (d.day.isoformat(), d.valid.num_rows) for d in days
        ]
        # each day's own event carries that day's numbers, not the range's: what the asset
        # page plots per partition
        gold_rows = Counter(r["day"].isoformat() for r in gold)
        for d in days:
            day = d.day.isoformat()
            b, s, g = (_day_metadata(instance, key, day) for key in LAYERS)
            assert b["dagster/row_count"] == b["dagster/partition_row_count"] == len(bronze[day])
            assert b["rows_quarantined"] == d.bad_rows
            assert b["rows_read"] == b["rows_written"] + b["rows_quarantined"]
            assert b["files_read"] == len(d.files)
            assert b["files_quarantined"] == d.bad_files
            assert b["quarantined_share"] >= d.bad_rows / b["rows_read"]
            assert s["dagster/row_count"] == len(silver[day])
            assert s["rows_quarantined"] == d.bad_rows
            assert g["dagster/row_count"] == gold_rows[day]
        files = catalog.load_table(SPEC.table_name).inspect.data_files().to_pylist()
        # silver's files and bytes per day add up to the table's (each file holds one day)
        silver_meta = [_day_metadata(instance, LAYERS[1], day) for day in DAYS]
        assert sum(m["files"] for m in silver_meta) == len(files)
        assert sum(m["bytes"] for m in silver_meta) == sum(f["file_size_in_bytes"] for f in files)
    assert len(catalog.load_table(SPEC.table_name).snapshots()) == 1
    assert len(catalog.load_table(metrics_table_name(SPEC)).snapshots()) == 1
