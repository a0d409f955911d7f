"""Hive compaction: layout, guarantees, concurrent changes, S3."""

from __future__ import annotations

import dataclasses
import os
import time
from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake_pipelines.datasets.spec import CompactionPolicy
from lake_pipelines.lake import progress
from lake_pipelines.lake.compaction import hive as compaction_hive
from lake_pipelines.lake.compaction import hive_footers as compaction_footers
from lake_pipelines.lake.compaction import rewrite as compaction_rewrite
from lake_pipelines.lake.compaction import verify as compaction_verify
from lake_pipelines.lake.compaction.hive import JOURNAL_NAME, compact_hive, plan_hive
from lake_pipelines.lake.compaction.options import CompactionOptions
from lake_pipelines.lake.compaction.plan import CompactionError
from lake_pipelines.lake.compaction.rewrite import conform
from lake_pipelines.lake.layout import bronze_dir
from lake_pipelines.lake.parquet.options import writer_options
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines_tests.lake.compaction.data import (
    DAY,
    KILL_SPEC,
    ORDER,
    SPEC,
    TUNING,
    arrow_rows,
    assert_sorted,
    checksum_of,
    events,
    hive_rows,
    land_tiny_files,
    of_day,
    visible,
)
from lake_pipelines_tests.support import rows

# -- Hive ---------------------------------------------------------------------------------------


def test_thousands_of_tiny_files_compact_to_the_target_layout(local_store: ObjectStore) -> None:
    days = [date(2026, 11, 1), date(2026, 11, 2)]
    original = pa.concat_tables(
        [land_tiny_files(local_store, d, 1000, 2, seed=i) for i, d in enumerate(days)]
    )
    before = {d: visible(local_store, d) for d in days}

    dry = compact_hive(local_store, SPEC, options=CompactionOptions(dry_run=True))
    assert [p.flagged for p in dry.plans] == [True, True]
    assert all(r.status == "planned" and r.files_rewritten == 1000 for r in dry.results)
    assert {d: visible(local_store, d) for d in days} == before  # a dry run changes nothing

    report = compact_hive(local_store, SPEC, options=TUNING)
    assert [r.status for r in report.results] == ["compacted", "compacted"]
    assert rows(hive_rows(local_store)) == rows(original)
    totals = report.totals()
    assert totals["files_before"] == 2000 and totals["rows"] == original.num_rows
    assert totals["files_after"] == sum(len(visible(local_store, d)) for d in days) <= 6
    assert totals["bytes_after"] < totals["bytes_before"]
    for d, result in zip(days, report.results, strict=True):
        names = visible(local_store, d)
        assert all(n.startswith("compact-") for n in names)  # no temp file, no journal
        for name in names:
            path = f"{local_store.path(bronze_dir(SPEC, d))}/{name}"
            assert_sorted(path)
            meta = pq.ParquetFile(path).metadata
            assert meta.row_group(0).column(0).compression == "ZSTD"
            assert "RLE_DICTIONARY" not in meta.row_group(0).column(0).encodings  # event_id
            assert [c.column_index for c in meta.row_group(0).sorting_columns] == [1, 2]
            assert meta.metadata[b"lake_pipelines.dataset"] == b"events"
        # the reported checksum is the checksum of the rows DuckDB reads for that day
        assert result.checksum == checksum_of(of_day(hive_rows(local_store), d))
    assert not any(p.flagged for p in plan_hive(local_store, SPEC))
    assert compact_hive(local_store, SPEC).results == []  # converged: a re-run does nothing


def test_rows_below_their_files_footer_minimum_stop_the_compaction(
    local_store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Footer minimums order the files and let sorted rows stream out early; they are not
    taken on trust: a file whose rows start below its footer's minimum stops the run (here the
    footers are made to claim an hour later than the rows)."""
    day = date(2026, 11, 1)
    land_tiny_files(local_store, day, 40, 3, seed=5)
    before = visible(local_store, day)
    real = compaction_footers._stats_min
    monkeypatch.setattr(
        compaction_footers, "_stats_min", lambda stats: real(stats) + timedelta(hours=1)
    )
    with pytest.raises(CompactionError, match="below its footer statistics"):
        compact_hive(local_store, SPEC, options=TUNING)
    assert visible(local_store, day) == before


def test_healthy_partitions_and_big_files_are_left_alone(local_store: ObjectStore) -> None:
    busy, quiet = date(2026, 11, 1), date(2026, 11, 2)
    land_tiny_files(local_store, busy, 8, 3, seed=1)
    land_tiny_files(local_store, quiet, 3, 3, seed=2)  # 3 small files: not over the limit
    big_policy = CompactionPolicy(target_file_bytes=4096, small_file_ratio=0.5, max_small_files=4)
    spec = dataclasses.replace(SPEC, compaction=big_policy)  # every tiny file counts as big
    assert compact_hive(local_store, spec).results == []
    quiet_before = {
        n: os.stat(f"{local_store.path(bronze_dir(SPEC, quiet))}/{n}").st_mtime_ns
        for n in visible(local_store, quiet)
    }
    report = compact_hive(local_store, SPEC)
    assert [r.partition for r in report.results] == ["year=2026/month=11/day=01"]
    assert {
        n: os.stat(f"{local_store.path(bronze_dir(SPEC, quiet))}/{n}").st_mtime_ns
        for n in visible(local_store, quiet)
    } == quiet_before


def test_changed_rows_are_refused_and_the_partition_kept(
    local_store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = land_tiny_files(local_store, DAY, 10, 3, seed=3)
    before = visible(local_store, DAY)
    real = compaction_verify.footer_rows

    def lossy(store, paths):  # a writer that lost a row
        counts = real(store, paths)
        return [counts[0] - 1, *counts[1:]]

    monkeypatch.setattr(compaction_verify, "footer_rows", lossy)
    with pytest.raises(Exception, match="differ from rows read"):
        compact_hive(local_store, SPEC, options=TUNING)
    assert visible(local_store, DAY) == before  # no temp file left, no input touched
    assert rows(hive_rows(local_store)) == rows(original)

    monkeypatch.setattr(compaction_verify, "footer_rows", real)
    real_checksum = compaction_verify.checksum_files

    def altered(store, paths, schema, partition):  # right count, a value changed on disk
        c = real_checksum(store, paths, schema, partition)
        c.update(conform(events(np.random.default_rng(1), DAY, 1), schema, partition))
        c.rows -= 1
        return c

    monkeypatch.setattr(compaction_verify, "checksum_files", altered)
    with pytest.raises(Exception, match="differ from rows read"):
        compact_hive(local_store, SPEC, options=dataclasses.replace(TUNING, verify="content"))
    assert visible(local_store, DAY) == before
    monkeypatch.setattr(compaction_verify, "checksum_files", real_checksum)
    report = compact_hive(local_store, SPEC, options=dataclasses.replace(TUNING, verify="content"))
    assert [r.status for r in report.results] == ["compacted"]
    assert rows(hive_rows(local_store)) == rows(original)


def test_rows_lost_or_doubled_on_the_way_to_the_writer_are_refused(
    local_store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = land_tiny_files(local_store, DAY, 10, 3, seed=3)
    before = visible(local_store, DAY)
    real = compaction_rewrite.sorted_stream

    def swapped(*args, **kwargs):  # the count stays right: one row lost, another doubled
        out = pa.concat_tables(list(real(*args, **kwargs)))
        yield pa.concat_tables([out.slice(0, out.num_rows - 1), out.slice(0, 1)])

    monkeypatch.setattr(compaction_rewrite, "sorted_stream", swapped)
    with pytest.raises(Exception, match="differ from rows read"):
        compact_hive(local_store, SPEC, options=TUNING)
    assert visible(local_store, DAY) == before
    assert rows(hive_rows(local_store)) == rows(original)


@pytest.mark.parametrize("change", ["replaced before the swap", "removed before the read"])
def test_inputs_changed_meanwhile_skip_the_partition(
    local_store: ObjectStore, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    land_tiny_files(local_store, DAY, 10, 3, seed=4)
    (plan,) = plan_hive(local_store, SPEC)
    victim = plan.bins[0].files[0].path

    def reingest() -> None:  # the day is re-ingested meanwhile: a file of new rows
        replacement = events(np.random.default_rng(9), DAY, 5, 900).sort_by(ORDER)
        time.sleep(0.01)  # a distinct modification time
        pq.write_table(replacement, local_store.path(victim), **writer_options(SPEC))

    if change.startswith("removed"):
        os.remove(local_store.path(victim))
    else:
        real = compaction_verify.footer_rows

        def verify_then_change(*args):
            reingest()
            return real(*args)

        monkeypatch.setattr(compaction_verify, "footer_rows", verify_then_change)
    result = compaction_hive.compact_hive_partition(local_store, SPEC, plan, TUNING)
    current = rows(hive_rows(local_store))
    assert result.status == "skipped" and "changed" in result.reason
    assert all(n.startswith("part-") for n in visible(local_store, DAY))  # no output, no temp
    assert len(current) == 9 * 3 + (5 if change.startswith("replaced") else 0)


def test_a_day_reingested_after_a_crash_wins_over_the_journal(
    local_store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    land_tiny_files(local_store, DAY, 12, 3, seed=10)
    real_promote = ObjectStore.promote

    def promote(self, tmp_path, final_path):  # the journal is promoted, then the run dies
        if not final_path.endswith(JOURNAL_NAME):
            raise OSError("killed")
        real_promote(self, tmp_path, final_path)

    monkeypatch.setattr(ObjectStore, "promote", promote)
    with pytest.raises(OSError, match="killed"):
        compact_hive(local_store, SPEC, options=TUNING)
    monkeypatch.setattr(ObjectStore, "promote", real_promote)
    assert JOURNAL_NAME in visible(local_store, DAY)
    time.sleep(0.01)  # the re-ingested files get new modification times
    fresh = land_tiny_files(local_store, DAY, 12, 3, seed=11)  # same names, other rows

    report = compact_hive(local_store, SPEC, options=TUNING)
    assert report.recovered == ["year=2026/month=11/day=03"]
    assert rows(hive_rows(local_store)) == rows(fresh)  # the ingestion won; then compacted
    assert [r.status for r in report.results] == ["compacted"]
    assert all(n.startswith("compact-") for n in visible(local_store, DAY))


def test_on_s3_an_interrupted_swap_is_finished_by_the_next_run(
    s3_store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = land_tiny_files(s3_store, DAY, 30, 4, seed=6)
    real_promote = ObjectStore.promote
    promoted: list[str] = []

    def promote(self: ObjectStore, tmp_path: str, final_path: str) -> None:
        # the journal and one output, then a failure
        if len(promoted) == 2:
            raise OSError("connection reset")
        promoted.append(final_path)
        real_promote(self, tmp_path, final_path)

    monkeypatch.setattr(ObjectStore, "promote", promote)
    with pytest.raises(OSError, match="connection reset"):
        compact_hive(s3_store, KILL_SPEC, options=TUNING)
    journal = f"{bronze_dir(SPEC, DAY)}/{JOURNAL_NAME}"
    s3_store.fs.invalidate_cache()  # s3fs lists from a cache that pyarrow's writes miss
    assert s3_store.exists(journal)
    everyone = {r["event_id"] for r in rows(original)}
    assert everyone <= set(arrow_rows(s3_store).column("event_id").to_pylist())

    monkeypatch.setattr(ObjectStore, "promote", real_promote)
    report = compact_hive(s3_store, KILL_SPEC, options=TUNING)
    assert report.recovered == ["year=2026/month=11/day=03"]
    assert rows(arrow_rows(s3_store)) == rows(original)
    left = s3_store.fs.find(s3_store.path(SPEC.bronze_prefix))
    assert not [p for p in left if p.rsplit("/", 1)[-1].startswith((".", "_"))]
    assert len(left) < 30


def test_a_long_rewrite_reports_progress(
    local_store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    land_tiny_files(local_store, DAY, 12, 50, seed=4)
    monkeypatch.setattr(progress, "PROGRESS_INTERVAL", 0.0)  # a line per table read
    lines: list[str] = []
    report = compact_hive(local_store, SPEC, options=CompactionOptions(progress=lines.append))
    assert [r.partition for r in report.results] == ["year=2026/month=11/day=03"]
    assert lines and all(
        line.startswith("compaction year=2026/month=11/day=03: ") for line in lines
    )
    assert lines[-1].split(": ")[1].startswith("600 rows")
