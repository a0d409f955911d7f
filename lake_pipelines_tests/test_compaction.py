"""Compaction: planner, bounded-memory rewrite, Hive crash safety, Iceberg commits.

Data is always checked with readers that are not ours (DuckDB over the Hive files and over the
Iceberg data files, pyarrow footers), as a multiset of rows before and after.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from lake_pipelines.datasets import get_dataset
from lake_pipelines.datasets.spec import CompactionPolicy
from lake_pipelines.lake import compaction_hive, compaction_rewrite, hashing
from lake_pipelines.lake.bronze import bronze_dir
from lake_pipelines.lake.compaction import FileStat, plan_partition
from lake_pipelines.lake.compaction_hive import JOURNAL_NAME, compact_hive, plan_hive
from lake_pipelines.lake.compaction_iceberg import compact_iceberg
from lake_pipelines.lake.compaction_rewrite import conform, sorted_stream
from lake_pipelines.lake.hashing import RowChecksum
from lake_pipelines.lake.parquet import file_schema, writer_options
from lake_pipelines.lake.silver import day_filter, ensure_silver_table
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines_tests.conftest import sql_catalog
from lake_pipelines_tests.support import duckdb_query, rows

# Small numbers so that a few thousand rows exercise bins, row groups, spills and merges.
POLICY = CompactionPolicy(target_file_bytes=256 << 10, max_small_files=4)
SPEC = dataclasses.replace(get_dataset("events"), compaction=POLICY)
COLUMNS = list(SPEC.schema.names)
ORDER = [(c, "ascending") for c in SPEC.sort_by]
TUNING = {"sort_memory_bytes": 48 << 10, "row_group_bytes": 24 << 10}
# Bins of a few dozen tiny files: a day compacts into several outputs (several promotions).
KILL_POLICY = CompactionPolicy(target_file_bytes=16 << 10, small_file_ratio=0.5)
KILL_SPEC = dataclasses.replace(SPEC, compaction=KILL_POLICY)
DAY = date(2026, 11, 3)


# -- data ---------------------------------------------------------------------------------------


def events(rng: np.random.Generator, day: date, n: int, offset: int = 0) -> pa.Table:
    """`n` events of `day` with nulls at every level, in the bronze file schema."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    micros = rng.integers(0, 86_400_000_000, n)
    users = rng.integers(0, 40, n)  # few users: many (ts, user_id) ties would show in sorting
    lat = rng.integers(-1, 3, n)
    return pa.table(
        {
            "event_id": [f"{day:%Y%m%d}-{offset + i:07d}" for i in range(n)],
            "ts": [start + timedelta(microseconds=int(m // 1000 * 1000)) for m in micros],
            "user_id": [f"u{u:03d}" for u in users],
            "session_id": [f"s{u}-{m % 7}" for u, m in zip(users, micros, strict=True)],
            "event_type": [("click", "page_view", "search")[int(u) % 3] for u in users],
            "url": [None if i % 5 == 0 else f"https://x.example/{i % 13}" for i in range(n)],
            "price": [
                None if i % 2 else round(float(m % 10_000) / 100, 2) for i, m in enumerate(micros)
            ],
            "properties": [
                None if i % 7 == 0 else {"browser": "ff", "country": None, "referrer": f"r{i % 3}"}
                for i in range(n)
            ],
            "latencies_ms": [
                None if k < 0 else [float(x) for x in rng.integers(1, 500, k)] for k in lat
            ],
        },
        schema=file_schema(SPEC),
    )


def land_tiny_files(
    store: ObjectStore, day: date, files: int, rows_per_file: int, seed: int
) -> pa.Table:
    """Write `files` tiny bronze files (as ingestion names and writes them); return the rows."""
    rng = np.random.default_rng(seed)
    table = events(rng, day, files * rows_per_file)
    directory = store.path(bronze_dir(SPEC, day))
    store.arrow_fs.create_dir(directory, recursive=True)
    opts = writer_options(SPEC)
    for i in range(files):
        part = table.slice(i * rows_per_file, rows_per_file).sort_by(ORDER)
        stem = hashlib.sha256(f"landing/{day}/{i}".encode()).hexdigest()[:12]
        path = f"{directory}/part-{stem}-00000.parquet"
        pq.write_table(part, path, filesystem=store.arrow_fs, **opts)
    return table


def hive_rows(store: ObjectStore) -> pa.Table:
    """Every visible bronze row, read by DuckDB (hidden temp files and journals are skipped)."""
    cols = ", ".join(COLUMNS)
    path = store.path(SPEC.bronze_prefix)
    return duckdb_query(f"SELECT {cols} FROM read_parquet('{path}/**/*.parquet')")


def arrow_rows(store: ObjectStore) -> pa.Table:
    """Every visible bronze row, read by a pyarrow dataset (skips ``.`` and ``_`` names)."""
    found = ds.dataset(
        store.path(SPEC.bronze_prefix), filesystem=store.arrow_fs, partitioning="hive"
    )
    return found.to_table(columns=COLUMNS)


def visible(store: ObjectStore, day: date) -> list[str]:
    return sorted(os.listdir(store.path(bronze_dir(SPEC, day))))


def of_day(table: pa.Table, day: date) -> pa.Table:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    ts = pc.field("ts")
    return table.filter((ts >= start) & (ts < start + timedelta(days=1)))


def checksum_of(table: pa.Table) -> str:
    c = RowChecksum()
    c.update(conform(table, file_schema(SPEC), "test"))
    return c.value


def assert_sorted(path: str) -> None:
    table = pq.read_table(path, columns=list(SPEC.sort_by))
    assert table.equals(table.sort_by(ORDER)), f"{path} is not sorted by {SPEC.sort_by}"


# -- planner and rewrite units ------------------------------------------------------------------


def test_planner_bins_small_files_and_leaves_healthy_partitions_alone() -> None:
    policy = CompactionPolicy(target_file_bytes=100, small_file_ratio=0.5, max_small_files=3)
    files = [FileStat(f"p/{i}", size) for i, size in enumerate([10, 45, 30, 40, 20, 5, 90, 49])]
    plan = plan_partition("bronze", "p", files, policy)
    assert plan.small_files == 7 and plan.flagged  # 90 is not small
    assert all(b.bytes <= 100 and len(b.files) > 1 for b in plan.bins)
    binned = sorted(f.path for b in plan.bins for f in b.files)
    assert "p/6" not in binned
    assert plan.files_to_rewrite == len(binned) >= 6
    # the same files give the same bins, whatever order they are listed in
    again = plan_partition("bronze", "p", list(reversed(files)), policy)
    assert again.bins == plan.bins
    healthy = plan_partition("bronze", "q", [FileStat("q/0", 10), FileStat("q/1", 20)], policy)
    assert not healthy.flagged and healthy.bins  # two small files: mergeable, not worth a run
    alone = plan_partition("bronze", "r", [FileStat(f"r/{i}", 60) for i in range(5)], policy)
    assert not alone.bins and not alone.flagged  # nothing to merge (pairs exceed the target)
    pinned = plan_partition("silver", "s", files, policy, pinned={"p/0", "p/1"})
    assert not {"p/0", "p/1"} & {f.path for b in pinned.bins for f in b.files}


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("tz", ["UTC", None])
def test_footer_minimum_of_a_timestamp_equals_pyarrows_own(
    tmp_path: Path, unit: str, tz: str | None
) -> None:
    """The planner decodes ms/us timestamp minimums itself (pyarrow's is slow): same values,
    before and after the epoch, with and without a zone."""
    for values in (
        [1_793_491_200_085_199, -1_234_567, 0, 86_399_999_999],  # the minimum before 1970
        [1_793_491_200_085_199, 86_399_999_999, 1_234_567_890_123],  # after it
    ):
        path = tmp_path / "t.parquet"
        pq.write_table(pa.table({"t": pa.array(values, pa.timestamp(unit, tz=tz))}), path)
        stats = pq.read_metadata(path).row_group(0).column(0).statistics
        ours = compaction_hive._stats_min(stats)
        assert ours == stats.min and type(ours) is type(stats.min)
        assert (ours.tzinfo is None) == (tz is None)


def test_row_checksum_is_a_multiset_checksum_over_nested_types() -> None:
    schema = pa.schema(
        [
            pa.field("id", pa.string()),
            pa.field("amount", pa.decimal128(12, 2)),
            pa.field("flag", pa.bool_()),
            pa.field("ts", pa.timestamp("us", tz="UTC")),
            pa.field(
                "items",
                pa.list_(pa.struct([pa.field("sku", pa.string()), pa.field("q", pa.int32())])),
            ),
            pa.field("tags", pa.list_(pa.string())),
        ]
    )
    ts = datetime(2026, 1, 1, tzinfo=UTC)
    data = [
        {"id": "a", "amount": Decimal("1.50"), "flag": True, "ts": ts,
         "items": [{"sku": "x", "q": 1}, {"sku": "y", "q": None}], "tags": ["p", "q"]},
        {"id": "b", "amount": None, "flag": None, "ts": None, "items": None, "tags": []},
        {"id": "b", "amount": None, "flag": None, "ts": None, "items": None, "tags": []},
        {"id": None, "amount": Decimal("0"), "flag": False, "ts": ts,
         "items": [None, {"sku": None, "q": 2}], "tags": [None]},
    ]  # fmt: skip
    table = pa.Table.from_pylist(data, schema=schema)

    def checksum(*tables: pa.Table) -> str:
        return _checksum(tables, rows_per_hash=2)

    base = checksum(table)
    shuffled = table.take([3, 1, 0, 2])
    assert checksum(shuffled.slice(0, 1), shuffled.slice(1)) == base  # order, chunking
    assert checksum(table.slice(1)) != base  # a row fewer
    assert checksum(table.slice(0, 3), table.slice(1, 1)) != base  # a duplicate instead of one
    changed = [dict(r) for r in data]
    changed[0]["tags"] = ["q", "p"]  # same elements, other order
    assert checksum(pa.Table.from_pylist(changed, schema=schema)) != base
    changed[0]["tags"], changed[3]["items"] = ["p", "q"], [{"sku": None, "q": 2}, None]
    assert checksum(pa.Table.from_pylist(changed, schema=schema)) != base


def _checksum(tables: tuple[pa.Table, ...], rows_per_hash: int) -> str:
    c = RowChecksum(rows_per_hash=rows_per_hash)
    for t in tables:
        c.update(t)
    return c.value


def test_row_checksum_reads_strings_of_any_length_from_any_offset() -> None:
    words = ["", "a", "abcdefgh", "abcdefghi", "abcdefgh\x00", "x" * 300, "é" * 9, None]
    table = pa.table(
        {
            "s": pa.array(words * 3),
            "b": pa.array([None if w is None else w.encode() for w in words] * 3),
        }
    )

    def checksum(*tables: pa.Table) -> str:
        return _checksum(tables, rows_per_hash=1)

    base = checksum(table)
    assert checksum(*(table.slice(i, 5) for i in range(0, len(table), 5))) == base
    assert checksum(table.cast(pa.schema([("s", pa.large_string()), ("b", pa.binary())]))) == base
    hashes = hashing.row_hashes(table.slice(0, len(words)))
    assert len(set(hashes.tolist())) == len(words)  # every value hashes apart, "" from null
    changed = table.set_column(0, "s", pa.array(["abcdefgj", *words[1:]] + words * 2))
    assert checksum(changed) != base


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string(), pa.binary()])
def test_repetitive_strings_hash_through_their_dictionary_to_the_same_values(kind) -> None:
    """A column with few distinct values is hashed once per value (its dictionary): each
    row gets exactly the hash the byte-by-byte path gives it, nulls and offsets included,
    and a column that turns out mostly distinct after its sample still hashes right."""
    rng = np.random.default_rng(11)
    n = 5 * hashing.DICTIONARY_SAMPLE
    words = ["", "a", "click", "abcdefgh", "abcdefghi", "é" * 9, "x" * 40]
    picked = [None if i % 97 == 0 else words[j] for i, j in enumerate(rng.integers(0, 7, n))]
    if kind == pa.binary():
        picked = [None if w is None else w.encode() for w in picked]
    arr = pa.array(picked, kind)
    assert hashing._repetitive_bytes_hash(arr.slice(3)) is not None  # the dictionary path
    with np.errstate(over="ignore"):
        for part in (arr, arr.slice(3), arr.slice(7, n - 20)):
            direct = hashing._bytes_hash(part)
            fast = hashing._repetitive_bytes_hash(part)
            valid = part.is_valid().to_numpy(zero_copy_only=False)  # nulls: overwritten later
            assert fast is not None and np.array_equal(fast[valid], direct[valid])
            by_value = hashing.value_hashes(part)
            assert np.array_equal(by_value[valid], hashing._mix(direct)[valid])
        # repetitive at first, distinct afterwards: the sample misleads, the result does not
        tail = [f"id-{i}" for i in range(n)]
        mixed = pa.array(picked[: hashing.DICTIONARY_SAMPLE] + tail, pa.string())
        assert hashing._repetitive_bytes_hash(mixed) is None
    table = pa.table({"s": arr, "t": pa.array(range(n))})
    small = RowChecksum(rows_per_hash=1)  # row by row: arrays too short for a dictionary
    for i in range(0, n, 1000):
        small.update(table.slice(i, 1000))
    assert RowChecksum.of(table).value == small.value


@pytest.mark.parametrize("kind", [pa.string(), pa.large_binary()])
def test_an_all_null_string_column_checksums_like_any_other(kind) -> None:
    """A long column with no value at all (a column new in later files, null in every older
    one) has an empty dictionary: it is hashed directly, and its rows count like others."""
    n = 3 * hashing.DICTIONARY_SAMPLE
    with np.errstate(over="ignore"):
        hashes = hashing.value_hashes(pa.nulls(n, kind))
    assert len(hashes) == n and len(set(hashes.tolist())) == 1
    table = pa.table({"id": pa.array(range(n)), "ref": pa.nulls(n, kind)})
    small = RowChecksum(rows_per_hash=1)
    for i in range(0, n, 1000):
        small.update(table.slice(i, 1000))
    assert RowChecksum.of(table).value == small.value


def test_sorted_stream_streams_inputs_in_order_without_spilling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(6)
    whole = pa.concat_tables([events(rng, DAY, 300, 300 * i) for i in range(12)]).sort_by(ORDER)
    parts = [whole.slice(300 * i, 300) for i in range(12)]  # landed in order, none overlapping

    def no_spill(*_):
        raise AssertionError("spilled")

    monkeypatch.setattr(compaction_rewrite, "_spill", no_spill)
    floors = [(t, t["ts"][0]) for t in parts]  # each part starts where the rest starts
    chunks = list(sorted_stream(iter(floors), SPEC.sort_by, 60_000, str(tmp_path)))
    assert len(chunks) > 2  # written out as it came, not held until the end
    assert pa.concat_tables(chunks).equals(whole)


def test_sorted_stream_spills_and_merges_into_one_sorted_sequence(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    tables = [events(rng, DAY, 300, 300 * i) for i in range(12)]
    chunks = list(sorted_stream(iter(tables), SPEC.sort_by, 20_000, str(tmp_path)))
    assert len(chunks) > 2  # merged from spilled runs, not sorted in one piece
    out = pa.concat_tables(chunks)
    assert out.select(list(SPEC.sort_by)).equals(out.sort_by(ORDER).select(list(SPEC.sort_by)))
    assert rows(out) == rows(pa.concat_tables(tables))
    assert not list(tmp_path.iterdir())  # spill files removed
    with pytest.raises(Exception, match="not in the output schema"):
        conform(tables[0].append_column("extra", pa.nulls(300)), file_schema(SPEC), "p")


# -- Hive ---------------------------------------------------------------------------------------


def test_thousands_of_tiny_files_compact_to_the_target_layout(local_store: ObjectStore) -> None:
    days = [date(2026, 11, 1), date(2026, 11, 2)]
    original = pa.concat_tables(
        [land_tiny_files(local_store, d, 1000, 2, seed=i) for i, d in enumerate(days)]
    )
    before = {d: visible(local_store, d) for d in days}

    dry = compact_hive(local_store, SPEC, dry_run=True)
    assert [p.flagged for p in dry.plans] == [True, True]
    assert all(r.status == "planned" and r.files_rewritten == 1000 for r in dry.results)
    assert {d: visible(local_store, d) for d in days} == before  # a dry run changes nothing

    report = compact_hive(local_store, SPEC, **TUNING)
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
    real = compaction_hive._stats_min
    monkeypatch.setattr(
        compaction_hive, "_stats_min", lambda stats: real(stats) + timedelta(hours=1)
    )
    with pytest.raises(compaction_hive.CompactionError, match="below its footer statistics"):
        compact_hive(local_store, SPEC, **TUNING)
    assert visible(local_store, day) == before


def test_small_files_are_read_in_runs_and_big_ones_alone() -> None:
    small, big = compaction_hive.PARALLEL_READ_BYTES, compaction_hive.PARALLEL_READ_BYTES + 1
    budget = compaction_hive.GROUP_BYTES
    sizes = [budget // 3] * 4 + [big] + [10, 10] + [big, big] + [small]
    files = [FileStat(f"p/{i}", size) for i, size in enumerate(sizes)]
    groups = compaction_hive._read_groups(files)
    assert groups == [[0, 1, 2], [3], [4], [5, 6], [7], [8], [9]]
    assert sorted(i for g in groups for i in g) == list(range(len(files)))  # each file once


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
    assert [r.partition for r in report.results] == ["year=2026/month=11/day=1"]
    assert {
        n: os.stat(f"{local_store.path(bronze_dir(SPEC, quiet))}/{n}").st_mtime_ns
        for n in visible(local_store, quiet)
    } == quiet_before


def test_changed_rows_are_refused_and_the_partition_kept(
    local_store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = land_tiny_files(local_store, DAY, 10, 3, seed=3)
    before = visible(local_store, DAY)
    real = compaction_rewrite.footer_rows

    def lossy(store, paths):  # a writer that lost a row
        counts = real(store, paths)
        return [counts[0] - 1, *counts[1:]]

    monkeypatch.setattr(compaction_rewrite, "footer_rows", lossy)
    with pytest.raises(Exception, match="differ from rows read"):
        compact_hive(local_store, SPEC, **TUNING)
    assert visible(local_store, DAY) == before  # no temp file left, no input touched
    assert rows(hive_rows(local_store)) == rows(original)

    monkeypatch.setattr(compaction_rewrite, "footer_rows", real)
    real_checksum = compaction_rewrite.checksum_files

    def altered(store, paths, schema, partition):  # right count, a value changed on disk
        c = real_checksum(store, paths, schema, partition)
        c.update(conform(events(np.random.default_rng(1), DAY, 1), schema, partition))
        c.rows -= 1
        return c

    monkeypatch.setattr(compaction_rewrite, "checksum_files", altered)
    with pytest.raises(Exception, match="differ from rows read"):
        compact_hive(local_store, SPEC, **TUNING, verify="content")
    assert visible(local_store, DAY) == before
    monkeypatch.setattr(compaction_rewrite, "checksum_files", real_checksum)
    report = compact_hive(local_store, SPEC, **TUNING, verify="content")
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
        compact_hive(local_store, SPEC, **TUNING)
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
        real = compaction_rewrite.footer_rows

        def verify_then_change(*args):
            reingest()
            return real(*args)

        monkeypatch.setattr(compaction_rewrite, "footer_rows", verify_then_change)
    result = compaction_hive.compact_hive_partition(local_store, SPEC, plan, **TUNING)
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
        compact_hive(local_store, SPEC, **TUNING)
    monkeypatch.setattr(ObjectStore, "promote", real_promote)
    assert JOURNAL_NAME in visible(local_store, DAY)
    time.sleep(0.01)  # the re-ingested files get new modification times
    fresh = land_tiny_files(local_store, DAY, 12, 3, seed=11)  # same names, other rows

    report = compact_hive(local_store, SPEC, **TUNING)
    assert report.recovered == ["year=2026/month=11/day=3"]
    assert rows(hive_rows(local_store)) == rows(fresh)  # the ingestion won; then compacted
    assert [r.status for r in report.results] == ["compacted"]
    assert all(n.startswith("compact-") for n in visible(local_store, DAY))


def test_on_s3_an_interrupted_swap_is_finished_by_the_next_run(
    s3_store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = land_tiny_files(s3_store, DAY, 30, 4, seed=6)
    real_promote, promoted = ObjectStore.promote, []

    def promote(self, tmp_path, final_path):  # the journal and one output, then a failure
        if len(promoted) == 2:
            raise OSError("connection reset")
        promoted.append(final_path)
        real_promote(self, tmp_path, final_path)

    monkeypatch.setattr(ObjectStore, "promote", promote)
    with pytest.raises(OSError, match="connection reset"):
        compact_hive(s3_store, KILL_SPEC, **TUNING)
    journal = f"{bronze_dir(SPEC, DAY)}/{JOURNAL_NAME}"
    s3_store.fs.invalidate_cache()  # s3fs lists from a cache that pyarrow's writes miss
    assert s3_store.exists(journal)
    everyone = {r["event_id"] for r in rows(original)}
    assert everyone <= set(arrow_rows(s3_store).column("event_id").to_pylist())

    monkeypatch.setattr(ObjectStore, "promote", real_promote)
    report = compact_hive(s3_store, KILL_SPEC, **TUNING)
    assert report.recovered == ["year=2026/month=11/day=3"]
    assert rows(arrow_rows(s3_store)) == rows(original)
    left = s3_store.fs.find(s3_store.path(SPEC.bronze_prefix))
    assert not [p for p in left if p.rsplit("/", 1)[-1].startswith((".", "_"))]
    assert len(left) < 30


# -- Hive: killed mid-run -----------------------------------------------------------------------

# One driver process imports the package once, then forks a child per scenario; each child
# compacts its own copy of the lake and is SIGKILLed at its crash point (no cleanup runs): by
# a hook that kills it at an exact step, or by the driver at a random moment.
DRIVER = r"""
import dataclasses, json, os, random, signal, sys, time
from lake_pipelines.datasets import get_dataset
from lake_pipelines.datasets.spec import CompactionPolicy
from lake_pipelines.lake import compaction_hive, parquet
from lake_pipelines.lake.storage import ObjectStore

args = json.loads(sys.argv[1])
spec = dataclasses.replace(get_dataset("events"), compaction=CompactionPolicy(**args["policy"]))


def crash_after(cls, name, after):
    real, count = getattr(cls, name), [0]

    def wrapper(*a, **k):
        count[0] += 1
        if count[0] > after:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*a, **k)

    setattr(cls, name, wrapper)


def crash_after_deleting(after):
    real = ObjectStore.delete

    def delete(self, keys):
        if len(keys) > after:  # the inputs: delete some, then die
            real(self, keys[:after])
            os.kill(os.getpid(), signal.SIGKILL)
        real(self, keys)

    ObjectStore.delete = delete


def child(stage, after):
    if stage == "write":  # after `after` row groups of the outputs
        crash_after(parquet.RollingParquetWriter, "_write_group", after)
    elif stage == "promote":  # the 1st promotion is the journal's, then the outputs'
        crash_after(ObjectStore, "promote", after)
    elif stage == "delete":
        crash_after_deleting(after)
    compaction_hive.compact_hive(ObjectStore(args["url_of"][stage + str(after)]), spec,
                                 **args["tuning"])


status = {}
for stage, after in args["points"]:
    pid = os.fork()
    if pid == 0:
        child(stage, after)
        os._exit(0)
    if stage == "random":
        time.sleep(random.Random(args["seed"]).uniform(0.05, 0.9) * args["duration"])
        os.kill(pid, signal.SIGKILL)
    _, code = os.waitpid(pid, 0)
    status[stage + str(after)] = os.waitstatus_to_exitcode(code)
print(json.dumps(status))
"""


def _layout(store: ObjectStore) -> dict[str, list | None]:
    """Every file of the bronze layer (hidden ones too) → its rows, for exact comparisons."""
    out: dict[str, list | None] = {}
    for root, _, names in os.walk(store.path(SPEC.bronze_prefix)):
        for name in names:
            path = os.path.join(root, name)
            out[store.key_of(path)] = (
                rows(pq.read_table(path)) if name.endswith(".parquet") else None
            )
    return out


def _converge(store: ObjectStore) -> int:
    """Compact until nothing is flagged (outputs can still be small under this tiny policy)."""
    for runs in range(1, 5):
        if not compact_hive(store, KILL_SPEC, **TUNING).results:
            return runs
    raise AssertionError("compaction does not converge")


def test_a_killed_compaction_converges_on_rerun(tmp_path: Path) -> None:
    seed_lake = ObjectStore(f"file://{tmp_path / 'seed'}")
    original = land_tiny_files(seed_lake, DAY, 150, 4, seed=8)
    reference = ObjectStore(f"file://{tmp_path / 'reference'}")
    shutil.copytree(seed_lake.root, reference.root)
    started = time.perf_counter()
    compact_hive(reference, KILL_SPEC, **TUNING)
    duration = time.perf_counter() - started
    assert sum(k.endswith(".parquet") and "/compact-" in k for k in _layout(reference)) >= 3
    _converge(reference)
    expected = _layout(reference)

    points = [
        ("write", 3),  # outputs half written, no journal yet
        ("promote", 0),  # killed while promoting the journal
        ("promote", 2),  # journal written, one output promoted
        ("delete", 40),  # all outputs visible, 40 of the inputs deleted
        ("random", 0),  # anywhere
    ]
    lakes = {}
    for stage, after in points:
        lakes[stage + str(after)] = ObjectStore(f"file://{tmp_path / f'{stage}{after}'}")
        shutil.copytree(seed_lake.root, lakes[stage + str(after)].root)
    args = {
        "points": points,
        "url_of": {name: lake.url for name, lake in lakes.items()},
        "policy": dataclasses.asdict(KILL_POLICY),
        "tuning": TUNING,
        "duration": duration,
        "seed": 7,
    }
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    status = json.loads(done.stdout.strip().splitlines()[-1])
    killed = -signal.SIGKILL
    assert [status[n] for n in ("write3", "promote0", "promote2", "delete40")] == [killed] * 4
    assert status["random0"] in (0, killed)
    journal = f"{bronze_dir(SPEC, DAY)}/{JOURNAL_NAME}"
    assert [lakes[n].exists(journal) for n in ("write3", "promote0", "promote2", "delete40")] == [
        False,
        False,
        True,
        True,
    ]
    everyone = {r["event_id"] for r in rows(original)}
    for name, lake in lakes.items():
        # At the crash, readers see every row (some twice mid-swap: outputs come first).
        assert everyone <= set(hive_rows(lake).column("event_id").to_pylist()), name
        _converge(lake)  # the re-run (and whatever compaction would do next anyway)
        assert rows(hive_rows(lake)) == rows(original), name
        assert _layout(lake) == expected, name  # same files, same rows; no temp, no journal


# -- Iceberg ------------------------------------------------------------------------------------

# Tiny files (a few KiB) are small, a file of a few thousand rows is not.
ICE_SPEC = dataclasses.replace(
    SPEC, compaction=CompactionPolicy(target_file_bytes=64 << 10, small_file_ratio=0.25)
)


def add_tiny_files(
    store: ObjectStore, table, day: date, files: int, rows_per_file: int, seed: int
) -> pa.Table:
    """Commit `files` tiny data files to the day in one commit; return their rows."""
    data = events(np.random.default_rng(seed), day, files * rows_per_file, 100_000 * seed)
    arrow = table.schema().as_arrow()
    uris = []
    for i in range(files):
        key = f"incoming/{day}/{seed}-{i:04d}.parquet"
        os.makedirs(os.path.dirname(store.path(key)), exist_ok=True)
        part = data.slice(i * rows_per_file, rows_per_file).sort_by(ORDER)
        pq.write_table(part.cast(arrow), store.path(key))
        uris.append(store.uri(key))
    table.add_files(uris)
    return data


def data_file_rows(table) -> pa.Table:
    """The rows of the table's current data files, read by DuckDB straight from Parquet."""
    paths = [t.file.file_path.removeprefix("file://") for t in table.scan().plan_files()]
    cols = ", ".join(COLUMNS)
    return duckdb_query(f"SELECT {cols} FROM read_parquet({paths!r})")


@pytest.fixture
def tiny_table(local_store: ObjectStore, local_catalog: SqlCatalog):
    table = ensure_silver_table(local_catalog, ICE_SPEC)
    day1 = add_tiny_files(local_store, table, DAY, 60, 3, seed=1)
    big = events(np.random.default_rng(2), DAY, 3000, 500_000).sort_by(ORDER)
    table.append(big.cast(table.schema().as_arrow()))
    day2 = add_tiny_files(local_store, table, DAY + timedelta(days=1), 40, 3, seed=3)
    return table, pa.concat_tables([day1, big, day2])


def test_iceberg_partitions_compact_in_one_commit_each(
    local_store: ObjectStore, local_catalog: SqlCatalog, tiny_table
) -> None:
    table, original = tiny_table
    before = table.current_snapshot().snapshot_id
    commits = len(table.metadata.metadata_log)
    big_file = max(table.scan().plan_files(), key=lambda t: t.file.file_size_in_bytes).file

    assert compact_iceberg(local_store, table, ICE_SPEC, dry_run=True).results
    assert table.current_snapshot().snapshot_id == before  # the dry run committed nothing

    report = compact_iceberg(local_store, table, ICE_SPEC, run_id="r9", **TUNING)
    assert [(r.partition, r.status) for r in report.results] == [
        ("ts_day=2026-11-03", "compacted"),
        ("ts_day=2026-11-04", "compacted"),
    ]
    table = local_catalog.load_table(SPEC.table_name)
    assert len(table.metadata.metadata_log) == commits + 2  # one commit per partition
    for result in report.results:
        snapshot = table.snapshot_by_id(result.snapshot_id)
        summary = snapshot.summary
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
    local_store: ObjectStore, local_catalog: SqlCatalog, tiny_table, tmp_path: Path
) -> None:
    table, original = tiny_table
    other = sql_catalog(local_store, tmp_path / "catalog.db").load_table(SPEC.table_name)
    late = events(np.random.default_rng(11), DAY + timedelta(days=2), 50, 900_000)
    other.append(late.cast(other.schema().as_arrow()))  # commits while `table` is stale
    appended = other.current_snapshot().snapshot_id

    report = compact_iceberg(local_store, table, ICE_SPEC, **TUNING)
    assert [r.status for r in report.results] == ["compacted", "compacted"]
    fresh = local_catalog.load_table(SPEC.table_name)
    assert rows(data_file_rows(fresh)) == rows(pa.concat_tables([original, late]))
    first = fresh.snapshot_by_id(report.results[0].snapshot_id)
    assert first.parent_snapshot_id == appended  # retried on top of the concurrent append


@pytest.mark.parametrize("write", ["append", "overwrite"])
def test_iceberg_concurrent_write_to_the_same_partition_skips_it(
    local_store: ObjectStore,
    local_catalog: SqlCatalog,
    tiny_table,
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

    report = compact_iceberg(local_store, table, ICE_SPEC, **TUNING)
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


# -- Iceberg: killed mid-run --------------------------------------------------------------------

ICE_DRIVER = r"""
import dataclasses, json, os, signal, sys
from pyiceberg.catalog.sql import SqlCatalog
from lake_pipelines.datasets import get_dataset
from lake_pipelines.datasets.spec import CompactionPolicy
from lake_pipelines.lake import parquet
from lake_pipelines.lake.compaction_iceberg import compact_iceberg
from lake_pipelines.lake.storage import ObjectStore

args = json.loads(sys.argv[1])
spec = dataclasses.replace(get_dataset("events"), compaction=CompactionPolicy(**args["policy"]))
store = ObjectStore(args["url"])
catalog = SqlCatalog("lake", uri=args["uri"], warehouse=store.uri("warehouse"),
                     **store.iceberg_properties())


def die(*_a, **_k):
    os.kill(os.getpid(), signal.SIGKILL)


if args["point"] == "write":  # once the first output row group is written
    write_group = parquet.RollingParquetWriter._write_group

    def write_then_die(self, lane, group):
        write_group(self, lane, group)
        lane.sink.flush()
        die()

    parquet.RollingParquetWriter._write_group = write_then_die
else:  # the new table metadata is written, the catalog not yet pointed at it
    real = SqlCatalog._write_metadata

    def write_then_die(metadata, io, metadata_path):
        real(metadata, io, metadata_path)
        die()

    SqlCatalog._write_metadata = staticmethod(write_then_die)
compact_iceberg(store, catalog.load_table(spec.table_name), spec, **args["tuning"])
"""


@pytest.mark.parametrize("point", ["write", "metadata"])
def test_a_killed_iceberg_compaction_changes_nothing_and_reruns(
    local_store: ObjectStore, local_catalog: SqlCatalog, tiny_table, tmp_path: Path, point: str
) -> None:
    """SIGKILL while writing the new files, or between writing the new metadata and pointing
    the catalog at it: the table is as before, a re-run compacts, and what the killed run left
    behind is found by orphan cleanup (and only that)."""
    from lake_pipelines.lake.iceberg_maintenance import find_orphans, remove_orphans

    table, original = tiny_table
    before = table.current_snapshot().snapshot_id
    args = {
        "point": point,
        "url": local_store.url,
        "uri": f"sqlite:///{tmp_path / 'catalog.db'}",
        "policy": dataclasses.asdict(ICE_SPEC.compaction),
        "tuning": TUNING,
    }
    done = subprocess.run(
        [sys.executable, "-c", ICE_DRIVER, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]

    table = local_catalog.load_table(SPEC.table_name)
    assert table.current_snapshot().snapshot_id == before
    assert rows(data_file_rows(table)) == rows(original)
    left = find_orphans(table, local_store, older_than=timedelta(0))
    assert left  # the killed run's files, referenced by nothing
    if point == "metadata":
        assert any(p.endswith(".metadata.json") for p, _ in left)

    report = compact_iceberg(local_store, table, ICE_SPEC, **TUNING)
    assert [r.status for r in report.results] == ["compacted", "compacted"]
    table = local_catalog.load_table(SPEC.table_name)
    assert rows(data_file_rows(table)) == rows(original)
    removed = remove_orphans(table, local_store, older_than=timedelta(0), dry_run=False)
    assert set(removed.orphans) >= {p for p, _ in left}
    assert find_orphans(table, local_store, older_than=timedelta(0)) == []
    assert rows(table.scan().to_arrow()) == rows(original)  # nothing referenced was removed


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

    report = compact_iceberg(s3_store, table, ICE_SPEC, **TUNING)
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
