"""A range of days through silver and gold: one snapshot per range, per-day lineage, unchanged
days left alone, time travel without a missing day, metadata that does not pile up."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.expressions import EqualTo
from pyiceberg.table import Table

from lake_pipelines.datasets import get_dataset
from lake_pipelines.lake.analytics.queries import gold_tables_for
from lake_pipelines.lake.analytics.session import SessionSettings
from lake_pipelines.lake.bronze import ingest_day
from lake_pipelines.lake.gold import commit_gold_days, metrics_table_name
from lake_pipelines.lake.iceberg.lineage import days_of
from lake_pipelines.lake.iceberg.replace import overwrite_partition
from lake_pipelines.lake.iceberg.snapshots import day_tag
from lake_pipelines.lake.iceberg.tables import MAINTAINED_PROPERTIES, ensure_table
from lake_pipelines.lake.silver import commit_days, day_filter, span_filter
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.sample_data import SampleDay, generate_events
from lake_pipelines_tests.support import current_snapshot, sequence_number, summary_of

SPEC = get_dataset("events")
START = date(2026, 11, 1)
METRICS = gold_tables_for(SPEC)[0]
HEADER = "event_id,ts,user_id,session_id,event_type,url,price,properties,latencies_ms\n"


@pytest.fixture
def ten_days(local_store: ObjectStore) -> list[SampleDay]:
    days = generate_events(local_store, START, days=10, rows_per_day=40, seed=17, bad_rows=False)
    for d in days:
        ingest_day(local_store, SPEC, d.day)
    return days


def _days(ten_days: list[SampleDay]) -> list[date]:
    return [d.day for d in ten_days]


def _files_by_day(table: Table, days: list[date]) -> dict[date, set[str]]:
    return {
        day: {t.file.file_path for t in table.scan(row_filter=day_filter(SPEC, day)).plan_files()}
        for day in days
    }


def _land_late_row(store: ObjectStore, day: date) -> None:
    row = f"late-1,{day}T23:00:00Z,u1,s1,click,,,,\n"
    store.write_bytes(f"landing/events/{day}/late.csv", (HEADER + row).encode())
    ingest_day(store, SPEC, day)


def test_a_range_is_one_snapshot_with_each_days_lineage(
    local_store: ObjectStore, local_catalog: SqlCatalog, ten_days: list[SampleDay]
) -> None:
    reports = commit_days(local_store, local_catalog, SPEC, _days(ten_days), "r1")
    table = local_catalog.load_table(SPEC.table_name)
    [snapshot] = table.snapshots()
    summary = summary_of(snapshot)
    assert summary["lake.partition"] == f"{START}..{START + timedelta(days=9)}"
    assert summary["lake.run-id"] == "r1"
    lineage = days_of(snapshot)
    assert sorted(lineage) == [d.isoformat() for d in _days(ten_days)]
    for d, report in zip(ten_days, reports, strict=True):
        day = lineage[d.day.isoformat()]
        assert sorted(f["path"] for f in day["source-files"]) == sorted(d.files)
        assert day["bronze-files"] and len(day["fingerprint"]) == 32
        assert int(day["rows"]) == d.valid.num_rows
        # row accounting per day, and every day tagged at the range's snapshot
        assert report.day == d.day and report.rows_read == report.rows_committed
        assert report.rows_committed == d.valid.num_rows and report.files >= 1
        assert table.metadata.refs[day_tag(d.day)].snapshot_id == snapshot.snapshot_id
        assert table.scan(row_filter=day_filter(SPEC, d.day)).count() == d.valid.num_rows
    # a month at most per snapshot: 10 days in batches of 4 are 3 snapshots
    local_catalog.drop_table(SPEC.table_name)
    commit_days(local_store, local_catalog, SPEC, _days(ten_days), "r2", days_per_commit=4)
    assert len(local_catalog.load_table(SPEC.table_name).snapshots()) == 3


def test_an_unchanged_rerun_adds_no_snapshot_in_silver_or_gold(
    local_store: ObjectStore, local_catalog: SqlCatalog, ten_days: list[SampleDay]
) -> None:
    days = _days(ten_days)
    commit_days(local_store, local_catalog, SPEC, days, "r1")
    gold = commit_gold_days(local_store, local_catalog, SPEC, METRICS, days, SessionSettings(2))
    assert not any(r.unchanged for r in gold) and sum(r.rows for r in gold) > 0
    metrics = local_catalog.load_table(metrics_table_name(SPEC))
    assert len(metrics.snapshots()) == 1  # one snapshot for the range, not two per day
    assert sorted(days_of(current_snapshot(metrics))) == [d.isoformat() for d in days]

    again = commit_days(local_store, local_catalog, SPEC, days, "r2")
    assert all(r.unchanged for r in again)
    assert len(local_catalog.load_table(SPEC.table_name).snapshots()) == 1
    gold_again = commit_gold_days(
        local_store, local_catalog, SPEC, METRICS, days, SessionSettings(2)
    )
    assert all(r.unchanged for r in gold_again)
    assert [r.rows for r in gold_again] == [r.rows for r in gold]
    assert len(local_catalog.load_table(metrics_table_name(SPEC)).snapshots()) == 1


def test_a_range_where_one_day_changed_replaces_only_that_day(
    local_store: ObjectStore, local_catalog: SqlCatalog, ten_days: list[SampleDay]
) -> None:
    days = _days(ten_days)
    commit_days(local_store, local_catalog, SPEC, days, "r1")
    commit_gold_days(local_store, local_catalog, SPEC, METRICS, days, SessionSettings(2))
    table = local_catalog.load_table(SPEC.table_name)
    files_before = _files_by_day(table, days)
    changed = days[4]
    _land_late_row(local_store, changed)

    reports = commit_days(local_store, local_catalog, SPEC, days, "r2")
    assert [r.day for r in reports if not r.unchanged] == [changed]
    table = local_catalog.load_table(SPEC.table_name)
    assert len(table.snapshots()) == 2
    summary = summary_of(table.current_snapshot())
    assert summary["lake.partition"] == changed.isoformat()  # one day: the flat summary
    assert list(days_of(current_snapshot(table))) == [changed.isoformat()]
    files_after = _files_by_day(table, days)
    for day in days:  # the other days' data files are untouched
        assert (files_after[day] == files_before[day]) == (day != changed), day
    assert table.scan(row_filter=day_filter(SPEC, changed)).count() == (
        ten_days[4].valid.num_rows + 1
    )
    assert table.metadata.refs[day_tag(changed)].snapshot_id == current_snapshot(table).snapshot_id
    assert table.metadata.refs[day_tag(days[0])].snapshot_id == table.snapshots()[0].snapshot_id

    gold = commit_gold_days(local_store, local_catalog, SPEC, METRICS, days, SessionSettings(2))
    assert [r.day for r in gold if not r.unchanged] == [changed]
    metrics = local_catalog.load_table(metrics_table_name(SPEC))
    assert len(metrics.snapshots()) == 2
    assert summary_of(metrics.current_snapshot())["lake.partition"] == changed.isoformat()
    clicks = [
        r["events"]
        for r in metrics.scan().to_arrow().to_pylist()
        if r["day"] == changed and r["event_type"] == "click"
    ]
    valid = ten_days[4].valid
    assert clicks == [valid.column("event_type").to_pylist().count("click") + 1]


def test_time_travel_to_every_snapshot_shows_every_day(
    local_store: ObjectStore, local_catalog: SqlCatalog, ten_days: list[SampleDay]
) -> None:
    days = _days(ten_days)

    def both(run: str, these: list[date]) -> None:
        commit_days(local_store, local_catalog, SPEC, these, run)
        commit_gold_days(local_store, local_catalog, SPEC, METRICS, these, SessionSettings(2))

    both("a", days[:5])
    _land_late_row(local_store, days[1])
    both("b", days[:2])  # day 1 changed
    _land_late_row(local_store, days[3])
    both("c", days[2:])  # day 3 changed, 5-9 new
    table = local_catalog.load_table(SPEC.table_name)
    metrics = local_catalog.load_table(metrics_table_name(SPEC))
    assert len(table.snapshots()) == len(metrics.snapshots()) == 3
    seen: set[date] = set()
    for snap in sorted(table.snapshots(), key=sequence_number):
        ts = table.scan(snapshot_id=snap.snapshot_id, selected_fields=("ts",)).to_arrow()
        present = {t.date() for t in ts.column("ts").to_pylist()}
        assert seen <= present, summary_of(snap)["lake.partition"]  # no day missing, ever
        for d in ten_days:
            if d.day in present:
                count = table.scan(
                    row_filter=day_filter(SPEC, d.day), snapshot_id=snap.snapshot_id
                ).count()
                assert count in (d.valid.num_rows, d.valid.num_rows + 1)
        seen = present
    assert seen == set(days)
    seen = set()
    for snap in sorted(metrics.snapshots(), key=sequence_number):
        present = set(
            metrics.scan(snapshot_id=snap.snapshot_id).to_arrow().column("day").to_pylist()
        )
        assert seen <= present
        seen = present
    assert seen == set(days)


def test_commits_keep_metadata_bounded(local_catalog: SqlCatalog) -> None:
    """60 single-day commits: at most previous-versions-max + 1 metadata.json files, and
    manifests merged once min-count-to-merge pile up."""
    schema = pa.schema([pa.field("day", pa.date32(), nullable=False), pa.field("n", pa.int64())])
    table = ensure_table(local_catalog, "lake.bounded", schema, [("day", "identity")])
    assert {k: table.properties[k] for k in MAINTAINED_PROPERTIES} == MAINTAINED_PROPERTIES
    keep = int(table.properties["write.metadata.previous-versions-max"])
    merge_at = int(table.properties["commit.manifest.min-count-to-merge"])
    for i in range(60):
        day = START + timedelta(days=i)
        data = pa.table({"day": [day], "n": [i]}, schema=schema)
        of_day = _equal_day(day)
        overwrite_partition(table, data, of_day, {"partition": day.isoformat()})
    metadata_dir = Path(table.location().removeprefix("file://")) / "metadata"
    assert len(list(metadata_dir.glob("*.metadata.json"))) <= keep + 1
    assert len(current_snapshot(table).manifests(table.io)) <= merge_at
    assert table.scan().count() == 60 and len(table.snapshots()) == 60


def test_existing_tables_get_the_maintained_properties(local_catalog: SqlCatalog) -> None:
    schema = pa.schema([pa.field("day", pa.date32(), nullable=False)])
    local_catalog.create_namespace_if_not_exists("lake")
    local_catalog.create_table("lake.old", schema=schema)  # as an older version created it
    table = ensure_table(local_catalog, "lake.old", schema, [])
    assert {k: table.properties[k] for k in MAINTAINED_PROPERTIES} == MAINTAINED_PROPERTIES


def test_replacing_a_day_of_a_coarser_partition_keeps_the_other_days(
    local_store: ObjectStore, local_catalog: SqlCatalog, ten_days: list[SampleDay]
) -> None:
    """A file holding several days (month partitions) is rewritten without the day."""
    from dataclasses import replace

    from lake_pipelines.datasets import PartitionField

    monthly = replace(SPEC, partitioning=(PartitionField("ts", "month"),))
    days = _days(ten_days)
    commit_days(local_store, local_catalog, monthly, days, "r1")
    table = local_catalog.load_table(SPEC.table_name)
    whole = table.scan().to_arrow()
    overwrite_partition(table, whole, span_filter(SPEC, days[0], days[-1]), {"run-id": "one"})
    assert len(list(table.scan().plan_files())) == 1  # one file holds the ten days
    _land_late_row(local_store, days[2])
    commit_days(local_store, local_catalog, monthly, days[2:3], "r2")
    table = local_catalog.load_table(SPEC.table_name)
    assert len(table.snapshots()) == 3
    for d in ten_days:
        extra = 1 if d.day == days[2] else 0
        count = table.scan(row_filter=day_filter(SPEC, d.day)).count()
        assert count == d.valid.num_rows + extra
    assert json.loads(summary_of(table.current_snapshot())["lake.rows"]) == (
        ten_days[2].valid.num_rows + 1
    )


def _equal_day(day: date) -> EqualTo:
    # pydantic's dataclass_transform gives EqualTo a field-wise __init__ in place of its own
    return EqualTo("day", day.isoformat())  # type: ignore[call-arg,arg-type]


def test_a_store_failure_before_the_catalog_commit_writes_the_batch_again(
    local_store: ObjectStore,
    local_catalog: SqlCatalog,
    ten_days: list[SampleDay],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pyarrow gives up on CompleteMultipartUpload after one retry of an error embedded in a
    200 OK (the chaos test met it writing a manifest list): silver and gold then write the
    whole batch again, and the tables end as if nothing had failed, in one snapshot each."""
    from lake_pipelines.lake import gold as gold_mod
    from lake_pipelines.lake import retries
    from lake_pipelines.lake import silver as silver_mod

    monkeypatch.setattr(retries, "backoff", lambda attempt: 0.0)
    days = _days(ten_days)[:3]
    failures = {"silver": 1, "gold": 1}
    real_silver, real_gold = silver_mod._Batch.commit, gold_mod._commit_batch

    def fail_first(layer: str, real):
        def call(*args, **kwargs):
            if failures[layer]:
                failures[layer] -= 1
                raise OSError(
                    "When completing multiple part upload for key 'snap-1.avro': AWS Error "
                    "INTERNAL_FAILURE during CompleteMultipartUpload operation"
                )
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(silver_mod._Batch, "commit", fail_first("silver", real_silver))
    monkeypatch.setattr(gold_mod, "_commit_batch", fail_first("gold", real_gold))
    before = retries.retry_counts().get("boundary", 0)
    silver = commit_days(local_store, local_catalog, SPEC, days)
    gold = commit_gold_days(
        local_store, local_catalog, SPEC, METRICS, days, SessionSettings(), "run"
    )
    assert failures == {"silver": 0, "gold": 0}
    assert retries.retry_counts()["boundary"] - before == 2
    by_day = {d.day: d.valid.num_rows for d in ten_days}
    assert [(r.day, r.rows_committed) for r in silver] == [(d, by_day[d]) for d in days]
    table = local_catalog.load_table(SPEC.table_name)
    assert table.scan().to_arrow().num_rows == sum(by_day[d] for d in days)
    assert len(table.snapshots()) == 1  # the failed attempt left no snapshot
    assert {r.day for r in gold} == set(days)
    assert len(local_catalog.load_table(metrics_table_name(SPEC)).snapshots()) == 1
