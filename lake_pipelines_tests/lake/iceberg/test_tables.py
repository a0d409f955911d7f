"""The Iceberg layer: tables from specs, evolution, time travel, concurrency, maintenance."""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import Table

from lake_pipelines.datasets import PartitionField, SchemaChange, get_dataset
from lake_pipelines.errors import LakeError, TableCommitError
from lake_pipelines.lake.bronze import ingest_day
from lake_pipelines.lake.iceberg.maintenance import (
    expire_snapshots,
    reachable_files,
    remove_orphans,
)
from lake_pipelines.lake.iceberg.snapshots import day_tag, read_as_of
from lake_pipelines.lake.iceberg.writer import DataFileWriter
from lake_pipelines.lake.silver import commit_day, day_filter, ensure_silver_table
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.sample_data import SampleDay, generate_events
from lake_pipelines_tests.conftest import sql_catalog
from lake_pipelines_tests.support import current_snapshot, rows, summary_of

EVENTS = get_dataset("events")
START = date(2026, 11, 1)
COLUMNS = list(EVENTS.schema.names)


@pytest.fixture
def landed(local_store: ObjectStore) -> list[SampleDay]:
    days = generate_events(local_store, START, days=3, rows_per_day=300, seed=31, bad_rows=False)
    for d in days:
        ingest_day(local_store, EVENTS, d.day)
    return days


def _all(days: list[SampleDay]) -> list[dict]:
    return sorted([r for d in days for r in rows(d.valid)], key=lambda r: r["event_id"])


def test_table_is_created_from_the_spec(local_catalog: SqlCatalog) -> None:
    table = ensure_silver_table(local_catalog, EVENTS)
    schema = table.schema()
    props = schema.find_field("properties").field_type
    assert [f.name for f in props.fields] == ["browser", "country", "referrer"]
    assert str(schema.find_field("latencies_ms").field_type) == "list<double>"
    assert schema.find_field("event_id").required and not schema.find_field("price").required
    assert [(f.name, str(f.transform)) for f in table.spec().fields] == [("ts_day", "day")]
    assert table.properties["commit.retry.num-retries"] == "10"
    assert table.properties["write.parquet.compression-codec"] == "zstd"
    assert table.format_version == 2


def test_adding_a_column_to_the_spec_evolves_the_table(
    local_store: ObjectStore, local_catalog: SqlCatalog, landed: list[SampleDay]
) -> None:
    commit_day(local_store, local_catalog, EVENTS, START)
    old_snapshot = current_snapshot(local_catalog.load_table(EVENTS.table_name)).snapshot_id
    wider = replace(EVENTS, schema=EVENTS.schema.append(pa.field("channel", pa.string())))
    commit_day(local_store, local_catalog, wider, landed[1].day)
    table = local_catalog.load_table(EVENTS.table_name)
    assert "channel" in table.schema().as_arrow().names
    now = table.scan().to_arrow()
    assert now.num_rows == 600 and now.column("channel").null_count == 600  # old rows: null
    then = read_as_of(table, snapshot_id=old_snapshot)
    assert "channel" not in then.column_names and then.num_rows == 300  # its own schema
    assert "add column channel" in summary_of(table.current_snapshot())["lake.evolution"]


def test_rename_is_applied_once_and_history_keeps_old_names(
    local_store: ObjectStore, local_catalog: SqlCatalog, landed: list[SampleDay]
) -> None:
    commit_day(local_store, local_catalog, EVENTS, START)
    before = current_snapshot(local_catalog.load_table(EVENTS.table_name)).snapshot_id
    renamed = replace(
        EVENTS,
        schema=pa.schema(
            [f.with_name("page_url") if f.name == "url" else f for f in EVENTS.schema]
        ),
        codecs={k: v for k, v in EVENTS.codecs.items() if k != "url"},
        schema_changes=(SchemaChange("rename-url", "rename", "url", "page_url"),),
    )
    table = local_catalog.load_table(EVENTS.table_name)
    url_id = table.schema().find_field("url").field_id
    commit_day(local_store, local_catalog, renamed, START)
    commit_day(local_store, local_catalog, renamed, START)  # applied once: no error, no change
    table = local_catalog.load_table(EVENTS.table_name)
    assert table.schema().find_field("page_url").field_id == url_id  # same column, new name
    assert "url" not in table.schema().as_arrow().names
    assert table.properties["lake.schema-changes-applied"] == '["rename-url"]'
    old = read_as_of(table, snapshot_id=before)
    assert "url" in old.column_names
    now = table.scan().to_arrow()  # bronze written before the rename is read under the new name
    assert sorted(now.column("page_url").to_pylist()) == sorted(old.column("url").to_pylist())
    assert now.column("page_url").null_count == 0


def test_a_failed_commit_leaves_no_half_evolved_table(
    local_store: ObjectStore,
    local_catalog: SqlCatalog,
    landed: list[SampleDay],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    commit_day(local_store, local_catalog, EVENTS, START)
    table = local_catalog.load_table(EVENTS.table_name)
    schema_before, snapshots_before = table.schema(), len(table.snapshots())
    wider = replace(EVENTS, schema=EVENTS.schema.append(pa.field("channel", pa.string())))
    data_dir = f"{local_store.key_of(table.location())}/data"
    files_before = {e.key for e in local_store.list(data_dir, suffixes=(".parquet",))}
    written = DataFileWriter.close

    def crash(self, *args, **kwargs):
        written(self)  # the day's data files are on the store by then
        raise RuntimeError("worker lost between the schema change and the data")

    # the schema change is staged by then; the data write dies
    monkeypatch.setattr(DataFileWriter, "close", crash)
    with pytest.raises(RuntimeError, match="worker lost"):
        commit_day(local_store, local_catalog, wider, landed[1].day)
    table = local_catalog.load_table(EVENTS.table_name)
    assert table.schema() == schema_before  # not half-evolved
    assert len(table.snapshots()) == snapshots_before
    # the files written for the failed commit were removed, not left as orphans
    assert {e.key for e in local_store.list(data_dir, suffixes=(".parquet",))} == files_before
    assert table.scan().to_arrow().num_rows == 300
    monkeypatch.undo()
    commit_day(local_store, local_catalog, wider, landed[1].day)  # the retry does both
    table = local_catalog.load_table(EVENTS.table_name)
    assert "channel" in table.schema().as_arrow().names and table.scan().count() == 600


def test_partition_evolution_keeps_reads_and_overwrites_right(
    local_store: ObjectStore, local_catalog: SqlCatalog, landed: list[SampleDay]
) -> None:
    commit_day(local_store, local_catalog, EVENTS, START)
    hourly = replace(EVENTS, partitioning=(PartitionField("ts", "hour"),))
    for d in landed[1:]:
        commit_day(local_store, local_catalog, hourly, d.day)
    commit_day(local_store, local_catalog, hourly, START)  # re-run a day written by the old spec
    table = local_catalog.load_table(EVENTS.table_name)
    assert [(f.name, str(f.transform)) for f in table.spec().fields] == [("ts_hour", "hour")]
    transforms = {str(f.transform) for spec in table.specs().values() for f in spec.fields}
    assert transforms == {"day", "hour"}  # files of both specs are still in the table
    assert rows(table.scan().to_arrow(), columns=COLUMNS) == _all(landed)
    for d in landed:
        assert table.scan(row_filter=day_filter(EVENTS, d.day)).count() == 300


def test_time_travel_by_id_tag_and_timestamp(
    local_store: ObjectStore, local_catalog: SqlCatalog, landed: list[SampleDay]
) -> None:
    commit_day(local_store, local_catalog, EVENTS, START)
    first = current_snapshot(local_catalog.load_table(EVENTS.table_name))
    time.sleep(0.01)
    commit_day(local_store, local_catalog, EVENTS, landed[1].day)
    table = local_catalog.load_table(EVENTS.table_name)
    by_id = read_as_of(table, snapshot_id=first.snapshot_id)
    by_tag = read_as_of(table, tag=day_tag(START))
    at = datetime.fromtimestamp(first.timestamp_ms / 1000, tz=UTC)
    by_time = read_as_of(table, as_of=at)
    assert rows(by_id, columns=COLUMNS) == rows(landed[0].valid)
    assert rows(by_tag, columns=COLUMNS) == rows(landed[0].valid)
    assert rows(by_time, columns=COLUMNS) == rows(landed[0].valid)
    assert table.scan().to_arrow().num_rows == 600
    assert (
        table.metadata.refs[day_tag(landed[1].day)].snapshot_id
        == current_snapshot(table).snapshot_id
    )
    with pytest.raises(LakeError, match="no tag or branch 'nope'"):
        read_as_of(table, tag="nope")
    with pytest.raises(LakeError, match="had no snapshot"):
        read_as_of(table, as_of=at - timedelta(days=1))


def _commit_in_process(args: tuple[str, str, str]) -> int:
    url, db, day = args
    store = ObjectStore(url)
    catalog = sql_catalog(store, Path(db))
    return commit_day(store, catalog, EVENTS, date.fromisoformat(day), run_id=day).rows_committed


def test_parallel_commits_of_different_days_all_land(
    local_store: ObjectStore, tmp_path: Path, landed: list[SampleDay]
) -> None:
    more = generate_events(
        local_store, date(2026, 11, 4), days=1, rows_per_day=200, seed=5, bad_rows=False
    )
    for d in more:
        ingest_day(local_store, EVENTS, d.day)
    db = tmp_path / "catalog.db"
    ensure_silver_table(sql_catalog(local_store, db), EVENTS)  # created once, up front
    days = [d.day.isoformat() for d in landed + more]
    # ProcessPoolExecutor: multiprocessing.Pool's terminate() once hung here after the map
    # had finished (a worker never saw its sentinel); the executor joins its workers cleanly.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(len(days), mp_context=ctx) as pool:
        args = [(local_store.url, str(db), d) for d in days]
        committed = list(pool.map(_commit_in_process, args))
    assert committed == [300, 300, 300, 200]
    table = sql_catalog(local_store, db).load_table(EVENTS.table_name)
    assert rows(table.scan().to_arrow(), columns=COLUMNS) == _all(landed + more)
    partitions = {
        summary_of(s)["lake.partition"]
        for s in table.snapshots()
        if summary_of(s).get("lake.partition")
    }
    assert partitions == set(days)
    for day in days:  # every day's tag survived the retries and points at that day's data
        tagged = table.snapshot_by_id(table.metadata.refs[f"day-{day}"].snapshot_id)
        assert summary_of(tagged)["lake.partition"] == day


def test_a_commit_retried_after_a_concurrent_update_keeps_its_day_tag(
    local_store: ObjectStore, local_catalog: SqlCatalog, landed: list[SampleDay]
) -> None:
    commit_day(local_store, local_catalog, EVENTS, START)
    stale = local_catalog.load_table(EVENTS.table_name)  # loaded before the other run commits
    commit_day(local_store, local_catalog, EVENTS, landed[1].day)
    data = stale.scan(row_filter=day_filter(EVENTS, START)).to_arrow().slice(0, 7)
    from lake_pipelines.lake.iceberg.replace import overwrite_partition

    # main moved under `stale`: pyiceberg retries the commit, which drops ref updates
    sid = overwrite_partition(
        stale,
        data,
        day_filter(EVENTS, START),
        {"partition": START.isoformat()},
        tag=(day_tag(START), None),
    )
    table = local_catalog.load_table(EVENTS.table_name)
    assert current_snapshot(table).snapshot_id == sid
    assert table.metadata.refs[day_tag(START)].snapshot_id == sid
    assert rows(read_as_of(table, tag=day_tag(START)), columns=COLUMNS) == sorted(
        rows(data, columns=COLUMNS) + rows(landed[1].valid), key=lambda r: r["event_id"]
    )
    other = table.metadata.refs[day_tag(landed[1].day)].snapshot_id
    assert summary_of(table.snapshot_by_id(other))["lake.partition"] == landed[1].day.isoformat()


def test_a_rerun_repoints_a_day_tag_that_was_left_behind(
    local_store: ObjectStore, local_catalog: SqlCatalog, landed: list[SampleDay]
) -> None:
    first = commit_day(local_store, local_catalog, EVENTS, START)
    table = local_catalog.load_table(EVENTS.table_name)
    table.manage_snapshots().remove_tag(day_tag(START)).commit()  # as a crash would leave it
    again = commit_day(local_store, local_catalog, EVENTS, START)
    assert again.unchanged and again.snapshot_id == first.snapshot_id
    table = local_catalog.load_table(EVENTS.table_name)
    assert table.metadata.refs[day_tag(START)].snapshot_id == first.snapshot_id


def test_two_writers_of_the_same_day_one_fails_cleanly(
    local_store: ObjectStore, local_catalog: SqlCatalog, landed: list[SampleDay]
) -> None:
    commit_day(local_store, local_catalog, EVENTS, START)
    first = local_catalog.load_table(EVENTS.table_name)
    second = local_catalog.load_table(EVENTS.table_name)  # a stale handle: the other run
    data = first.scan(row_filter=day_filter(EVENTS, START)).to_arrow()
    from lake_pipelines.lake.iceberg.replace import overwrite_partition

    overwrite_partition(first, data.slice(0, 10), day_filter(EVENTS, START), {"run-id": "a"})
    with pytest.raises(TableCommitError, match="concurrently"):
        overwrite_partition(second, data, day_filter(EVENTS, START), {"run-id": "b"})
    table = local_catalog.load_table(EVENTS.table_name)
    assert table.scan().count() == 10
    assert summary_of(table.current_snapshot())["lake.run-id"] == "a"


def _files_on_disk(table: Table) -> set[str]:
    root = table.location().removeprefix("file://")
    return {str(p) for p in Path(root).rglob("*") if p.is_file()}


def test_expiry_deletes_only_files_no_live_snapshot_needs(
    local_store: ObjectStore, local_catalog: SqlCatalog, landed: list[SampleDay]
) -> None:
    for _ in range(3):  # rewrites of the same days: lots of dead files
        for d in landed:
            commit_day(local_store, local_catalog, EVENTS, d.day)
    table = local_catalog.load_table(EVENTS.table_name)
    # drop the day tags so only age and count decide
    manage = table.manage_snapshots()
    for name in [n for n in table.metadata.refs if n.startswith("day-")]:
        manage = manage.remove_tag(name)
    manage.commit()
    table = table.refresh()
    before_rows = rows(table.scan().to_arrow(), columns=COLUMNS)
    snapshots = len(table.snapshots())
    report = expire_snapshots(table, local_store, older_than=timedelta(0), retain_last=2)
    table = local_catalog.load_table(EVENTS.table_name)
    assert len(report.snapshots_expired) == snapshots - 2 and len(table.snapshots()) == 2
    assert report.files_deleted and report.bytes_deleted > 0
    live = {p.removeprefix("file://") for p in reachable_files(table)}
    on_disk = _files_on_disk(table)
    assert live <= on_disk  # every live snapshot still has all its files
    for snap in table.snapshots():  # every live snapshot reads whole
        expected = int(summary_of(snap)["total-records"])
        assert table.scan(snapshot_id=snap.snapshot_id).to_arrow().num_rows == expected
    data_on_disk = {p for p in on_disk if "/data/" in p}
    assert data_on_disk == {p for p in live if "/data/" in p}  # no dead data file is left
    assert rows(table.scan().to_arrow(), columns=COLUMNS) == before_rows


def test_day_tags_protect_snapshots_until_they_age_out(
    local_store: ObjectStore, local_catalog: SqlCatalog, landed: list[SampleDay]
) -> None:
    for _ in range(2):
        commit_day(local_store, local_catalog, EVENTS, START)
    table = local_catalog.load_table(EVENTS.table_name)
    tagged = table.metadata.refs[day_tag(START)].snapshot_id
    report = expire_snapshots(table, local_store, timedelta(0), retain_last=1)
    assert tagged not in report.snapshots_expired and not report.tags_removed
    later = datetime.now(UTC) + timedelta(days=31)
    table = local_catalog.load_table(EVENTS.table_name)
    report = expire_snapshots(table, local_store, timedelta(0), retain_last=1, now=later)
    assert report.tags_removed == [day_tag(START)]


def test_orphans_are_listed_then_removed_after_the_safety_window(
    local_store: ObjectStore, local_catalog: SqlCatalog, landed: list[SampleDay]
) -> None:
    commit_day(local_store, local_catalog, EVENTS, START)
    table = local_catalog.load_table(EVENTS.table_name)
    data_dir = Path(table.location().removeprefix("file://")) / "data"
    old, fresh = data_dir / "stray-old.parquet", data_dir / "stray-new.parquet"
    for p in (old, fresh):
        p.write_bytes(b"PAR1 not really")
    four_days_ago = time.time() - 4 * 86400
    os.utime(old, (four_days_ago, four_days_ago))
    live_before = {p.removeprefix("file://") for p in reachable_files(table)}
    dry = remove_orphans(table, local_store)
    assert dry.orphans == [str(old)] and not dry.deleted and old.exists()
    done = remove_orphans(table, local_store, dry_run=False)
    assert done.deleted and not old.exists() and fresh.exists()  # inside the window: kept
    assert live_before <= _files_on_disk(table)
    assert table.scan().to_arrow().num_rows == 300


def test_evolve_mode_carries_new_columns_and_keys_to_the_table(
    local_store: ObjectStore, local_catalog: SqlCatalog, landed: list[SampleDay]
) -> None:
    evolving = replace(EVENTS, unknown_columns="evolve")
    commit_day(local_store, local_catalog, evolving, START)  # a day without new columns first
    day = date(2026, 11, 9)
    header = (
        "event_id,ts,user_id,session_id,event_type,url,price,properties,latencies_ms,campaign\n"
    )
    local_store.write_bytes(
        f"landing/events/{day}/a.csv",
        (header + f"c1,{day}T10:00:00Z,u1,s1,click,,,,,spring\n").encode(),
    )
    local_store.write_bytes(
        f"landing/events/{day}/b.ndjson",
        (
            f'{{"event_id":"n1","ts":"{day}T11:00:00Z","user_id":"u2","session_id":"s2",'
            f'"event_type":"click","channel":"email","ab":{{"variant":"B"}}}}\n'
        ).encode(),
    )
    report = ingest_day(local_store, evolving, day)
    assert report.rows_quarantined == 0 and report.rows_written == 2
    commit_day(local_store, local_catalog, evolving, day)
    table = local_catalog.load_table(EVENTS.table_name)
    names = table.schema().as_arrow().names
    assert {"campaign", "channel", "ab"} <= set(names)
    got = {
        r["event_id"]: r
        for r in table.scan(row_filter=day_filter(EVENTS, day)).to_arrow().to_pylist()
    }
    assert got["c1"]["campaign"] == "spring" and got["c1"]["channel"] is None
    assert got["n1"]["channel"] == "email" and got["n1"]["ab"] == {"variant": "B"}
    old = table.scan(row_filter=day_filter(EVENTS, START)).to_arrow()
    assert old.num_rows == 300 and old.column("campaign").null_count == 300
    # under freeze (the default) the same files are quarantined instead
    frozen = ingest_day(local_store, EVENTS, day)
    assert frozen.rows_quarantined == 2 and frozen.rows_written == 0


def test_drop_and_move_changes_apply_once(
    local_store: ObjectStore, local_catalog: SqlCatalog, landed: list[SampleDay]
) -> None:
    commit_day(local_store, local_catalog, EVENTS, START)
    changed = replace(
        EVENTS,
        schema=pa.schema([f for f in EVENTS.schema if f.name != "latencies_ms"]),
        codecs={k: v for k, v in EVENTS.codecs.items() if k != "latencies_ms"},
        schema_changes=(
            SchemaChange("drop-latencies", "drop", "latencies_ms"),
            SchemaChange("price-first", "move_first", "price"),
        ),
    )
    commit_day(local_store, local_catalog, changed, landed[1].day)
    commit_day(local_store, local_catalog, changed, landed[1].day)
    table = local_catalog.load_table(EVENTS.table_name)
    names = table.schema().as_arrow().names
    assert names[0] == "price" and "latencies_ms" not in names
    assert table.scan().count() == 600
