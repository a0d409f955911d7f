"""Iceberg compaction: one commit per partition, concurrency, S3."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import Table

from lake_pipelines.lake.compaction.iceberg import compact_iceberg
from lake_pipelines.lake.compaction.options import CompactionOptions
from lake_pipelines.lake.parquet.options import file_schema
from lake_pipelines.lake.silver import day_filter, ensure_silver_table
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines_tests.conftest import sql_catalog
from lake_pipelines_tests.lake.compaction.data import (
    COLUMNS,
    DAY,
    ICE_SPEC,
    ORDER,
    SPEC,
    TUNING,
    assert_sorted,
    checksum_of,
    data_file_rows,
    events,
    of_day,
)
from lake_pipelines_tests.support import (
    assert_snappy_table_codec,
    current_snapshot,
    rows,
    summary_of,
)


def test_iceberg_partitions_compact_in_one_commit_each(
    local_store: ObjectStore, local_catalog: SqlCatalog, tiny_table: tuple[Table, pa.Table]
) -> None:
    table, original = tiny_table
    before = current_snapshot(table).snapshot_id
    commits = len(table.metadata.metadata_log)
    big_file = max(table.scan().plan_files(), key=lambda t: t.file.file_size_in_bytes).file

    assert compact_iceberg(
        local_store, table, ICE_SPEC, options=CompactionOptions(dry_run=True)
    ).results
    assert current_snapshot(table).snapshot_id == before  # the dry run committed nothing

    report = compact_iceberg(local_store, table, ICE_SPEC, run_id="r9", options=TUNING)
    assert [(r.partition, r.status) for r in report.results] == [
        ("ts_day=2026-11-03", "compacted"),
        ("ts_day=2026-11-04", "compacted"),
    ]
    table = local_catalog.load_table(SPEC.table_name)
    assert len(table.metadata.metadata_log) == commits + 2  # one commit per partition
    for result in report.results:
        assert result.snapshot_id is not None
        summary = summary_of(table.snapshot_by_id(result.snapshot_id))
        assert summary["lake.operation"] == "compaction"
        assert summary["lake.compacted-partition"] == result.partition
        assert summary["lake.run-id"] == "r9"
        assert int(summary["deleted-data-files"]) == result.files_rewritten
        assert int(summary["added-data-files"]) == result.files_written
        assert summary["added-records"] == summary["deleted-records"] == str(result.rows)
        assert summary["lake.checksum"] == result.checksum
    assert report.results[0].files_rewritten == 60 and report.results[1].files_rewritten == 40

    # same rows, read by DuckDB from the data files and by pyiceberg; the old snapshot too
    assert rows(data_file_rows(table)) == rows(original)
    assert rows(table.scan().to_arrow(), columns=COLUMNS) == rows(original)
    assert rows(table.scan(snapshot_id=before).to_arrow(), columns=COLUMNS) == rows(original)
    for result in report.results:
        day = date.fromisoformat(result.partition.split("=")[1])
        day_rows = table.scan(row_filter=day_filter(SPEC, day)).to_arrow().select(COLUMNS)
        small = of_day(original, day)
        if day == DAY:  # the big file was not rewritten, so it is not in the checksum
            big_ids = set(
                pq.read_table(big_file.file_path.removeprefix("file://"))
                .column("event_id")
                .to_pylist()
            )
            small = small.filter(pc.invert(pc.is_in(small["event_id"], pa.array(big_ids))))
        assert result.checksum == checksum_of(small)
        assert day_rows.num_rows == of_day(original, day).num_rows
    current = {t.file.file_path for t in table.scan().plan_files()}
    assert big_file.file_path in current  # the healthy file was left alone
    for path in current - {big_file.file_path}:
        assert "/data/ts_day=" in path and path.split("/")[-1].startswith("compact-")
        assert_sorted(path.removeprefix("file://"))
    assert compact_iceberg(local_store, table, ICE_SPEC).results == []  # converged


def test_iceberg_concurrent_append_to_another_partition_lands(
    local_store: ObjectStore,
    local_catalog: SqlCatalog,
    tiny_table: tuple[Table, pa.Table],
    tmp_path: Path,
) -> None:
    table, original = tiny_table
    other = sql_catalog(local_store, tmp_path / "catalog.db").load_table(SPEC.table_name)
    late = events(np.random.default_rng(11), DAY + timedelta(days=2), 50, 900_000)
    other.append(late.cast(other.schema().as_arrow()))  # commits while `table` is stale
    appended = current_snapshot(other).snapshot_id

    report = compact_iceberg(local_store, table, ICE_SPEC, options=TUNING)
    assert [r.status for r in report.results] == ["compacted", "compacted"]
    fresh = local_catalog.load_table(SPEC.table_name)
    assert rows(data_file_rows(fresh)) == rows(pa.concat_tables([original, late]))
    assert report.results[0].snapshot_id is not None
    first = fresh.snapshot_by_id(report.results[0].snapshot_id)
    assert first is not None
    assert first.parent_snapshot_id == appended  # retried on top of the concurrent append


@pytest.mark.parametrize("write", ["append", "overwrite"])
def test_iceberg_concurrent_write_to_the_same_partition_skips_it(
    local_store: ObjectStore,
    local_catalog: SqlCatalog,
    tiny_table: tuple[Table, pa.Table],
    tmp_path: Path,
    write: str,
) -> None:
    table, original = tiny_table
    other = sql_catalog(local_store, tmp_path / "catalog.db").load_table(SPEC.table_name)
    new = events(np.random.default_rng(12), DAY, 50, 800_000).cast(other.schema().as_arrow())
    if write == "append":
        other.append(new)
        expected = pa.concat_tables([original, new.cast(file_schema(SPEC))])
    else:  # a silver re-run replacing the day
        other.overwrite(new, overwrite_filter=day_filter(SPEC, DAY))
        rest = original.filter(pc.field("ts") >= datetime(2026, 11, 4, tzinfo=UTC))
        expected = pa.concat_tables([rest, new.cast(file_schema(SPEC))])

    report = compact_iceberg(local_store, table, ICE_SPEC, options=TUNING)
    status = {r.partition: (r.status, r.reason) for r in report.results}
    assert status["ts_day=2026-11-04"][0] == "compacted"  # the untouched day still compacts
    if write == "append":
        assert status["ts_day=2026-11-03"][0] == "skipped"
        assert "concurrent write" in status["ts_day=2026-11-03"][1]
    else:
        # the overwrite left one file in the day: the commit fails validation (skipped)
        assert status["ts_day=2026-11-03"][0] == "skipped"
    fresh = local_catalog.load_table(SPEC.table_name)
    assert rows(data_file_rows(fresh)) == rows(expected)  # nothing lost, nothing doubled
    day_dir = Path(local_store.path(f"warehouse/lake/events/data/ts_day={DAY}"))
    referenced = {t.file.file_path.removeprefix("file://") for t in fresh.scan().plan_files()}
    leftovers = [p for p in day_dir.glob("compact-*") if str(p) not in referenced]
    assert not leftovers  # the skipped rewrite removed its files


def test_iceberg_compaction_on_s3(s3_store: ObjectStore, s3_catalog: SqlCatalog) -> None:
    """Through the moto server: footers read, files written and committed on s3://."""
    table = ensure_silver_table(s3_catalog, ICE_SPEC)
    data = events(np.random.default_rng(31), DAY, 40 * 3, 3_000_000)
    arrow = table.schema().as_arrow()
    uris = []
    for i in range(40):
        key = f"incoming/{DAY}/s3-{i:04d}.parquet"
        part = data.slice(i * 3, 3).sort_by(ORDER)
        pq.write_table(part.cast(arrow), s3_store.path(key), filesystem=s3_store.arrow_fs)
        uris.append(s3_store.uri(key))
    table.add_files(uris)

    report = compact_iceberg(s3_store, table, ICE_SPEC, options=TUNING)
    assert [(r.partition, r.status) for r in report.results] == [(f"ts_day={DAY}", "compacted")]
    table = s3_catalog.load_table(SPEC.table_name)
    paths = [t.file.file_path for t in table.scan().plan_files()]
    assert len(paths) == report.results[0].files_written < 40
    assert all(p.startswith("s3://") for p in paths)
    # the new files, read straight from the bucket by pyarrow, hold exactly the rows
    read = pa.concat_tables(
        pq.read_table(p.removeprefix("s3://"), filesystem=s3_store.arrow_fs) for p in paths
    )
    assert rows(read, columns=COLUMNS) == rows(data, columns=COLUMNS)
    for p in paths:  # each output sorted, as the table's sort order says
        ts = pq.read_table(p.removeprefix("s3://"), filesystem=s3_store.arrow_fs, columns=["ts"])
        assert ts.column("ts").to_pylist() == sorted(ts.column("ts").to_pylist())


def test_iceberg_compaction_writes_with_the_tables_codec_where_the_spec_names_none(
    local_store: ObjectStore, local_catalog: SqlCatalog, tiny_table: tuple[Table, pa.Table]
) -> None:
    """A codec a data engineer set on the table (`write.parquet.compression-codec`) is what
    the compacted files are written with, as silver's own files are; a column whose codec
    the dataset's spec names keeps that one."""
    table, _ = tiny_table
    with table.transaction() as tx:
        tx.set_properties({"write.parquet.compression-codec": "snappy"})
    table = local_catalog.load_table(SPEC.table_name)
    report = compact_iceberg(local_store, table, ICE_SPEC, run_id="r", options=TUNING)
    assert [r.status for r in report.results] == ["compacted", "compacted"]
    compacted = [
        t.file.file_path.removeprefix("file://")
        for t in table.refresh().scan().plan_files()
        if t.file.file_path.split("/")[-1].startswith("compact-")
    ]
    assert compacted
    for path in compacted:
        assert_snappy_table_codec(path)
