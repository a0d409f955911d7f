"""The pieces that overlap reading and writing: read-ahead, the sorted check, the encoder."""

from __future__ import annotations

import os
import random
import signal
import threading
from collections.abc import Iterator
from datetime import date

import pyarrow as pa
import pytest

from lake_pipelines.datasets import get_dataset
from lake_pipelines.lake import parquet as parquet_mod
from lake_pipelines.lake.batches import ordered_map, read_ahead
from lake_pipelines.lake.parquet import RollingParquetWriter, is_sorted, sort_rows
from lake_pipelines.lake.readers import read_file
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.sample_data import generate_events

EVENTS = get_dataset("events")


def test_read_ahead_keeps_order_and_raises_at_the_failing_item() -> None:
    def items() -> Iterator[int]:
        yield from range(5)
        raise ValueError("block 5 is broken")

    seen = []
    with pytest.raises(ValueError, match="block 5 is broken"):
        for x in read_ahead(items(), depth=2):
            seen.append(x)
    assert seen == [0, 1, 2, 3, 4]


def test_read_ahead_closed_early_stops_the_producer_and_closes_the_source() -> None:
    closed = threading.Event()
    produced = []

    def items() -> Iterator[int]:
        try:
            for i in range(1000):
                produced.append(i)
                yield i
        finally:
            closed.set()

    it = read_ahead(items(), depth=1)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    it.close()
    assert closed.is_set()
    assert len(produced) <= 3 + 2  # the producer got at most one item and one slot ahead


def _random_table(rnd: random.Random, n: int, nulls: bool) -> pa.Table:
    ts = [rnd.randint(0, 5) for _ in range(n)]
    user = [rnd.choice("abc") for _ in range(n)]
    if nulls:
        user[rnd.randrange(n)] = None
    return pa.table({"ts": ts, "user_id": user, "x": list(range(n))})


@pytest.mark.parametrize("seed", range(40))
def test_is_sorted_agrees_with_sort_by(seed: int) -> None:
    rnd = random.Random(seed)
    keys = [("ts", "ascending"), ("user_id", "ascending")]
    table = _random_table(rnd, rnd.randint(0, 30), nulls=seed % 5 == 0)
    ordered = table.sort_by(keys)
    if is_sorted(table, ["ts", "user_id"]):
        assert table.equals(ordered)  # skipping the sort never changes the file
    if table.column("user_id").null_count == 0:
        assert is_sorted(ordered, ["ts", "user_id"])  # and a sorted table is recognised
    assert is_sorted(ordered.slice(0, 1), ["ts", "user_id"])


@pytest.mark.parametrize("encoders", [1, 2])
def test_an_encoder_failure_surfaces_in_the_caller_and_abort_leaves_nothing(
    local_store: ObjectStore, monkeypatch: pytest.MonkeyPatch, encoders: int
) -> None:
    day = date(2026, 11, 1)
    generate_events(local_store, day, days=1, rows_per_day=3000, seed=3, bad_rows=False)
    key = local_store.list_files(f"landing/events/{day}")[0].key
    table = pa.concat_tables([b.table for b in read_file(local_store, key, EVENTS)])
    writer = RollingParquetWriter(
        local_store, EVENTS, "out", "x", row_group_bytes=1 << 14, encoders=encoders
    )
    real = writer._write_group
    calls = []

    def flaky(lane: object, group: pa.Table) -> None:  # runs on an encoder thread
        calls.append(group.num_rows)
        if len(calls) == 3:
            raise OSError("disk full")
        real(lane, group)

    monkeypatch.setattr(writer, "_write_group", flaky)
    with pytest.raises(OSError, match="disk full"):
        for i in range(0, table.num_rows, 100):
            writer.write(table.slice(i, 100))
        writer.close()
    written = [f.tmp_path for f in writer.files]
    assert written  # the first groups were written before the failure
    writer.abort()
    assert not any(local_store.arrow_fs.get_file_info(p).is_file for p in written)
    assert local_store.fs.find(local_store.path("out")) == []  # nothing, hidden or not


def test_a_writer_that_fails_to_open_its_file_leaves_nothing_behind(
    local_store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The staged file exists from the moment the output stream opens; if the Parquet
    writer then fails, `abort` still removes it."""
    import pyarrow.parquet as pq

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("no writer today")

    monkeypatch.setattr(pq, "ParquetWriter", refuse)
    writer = RollingParquetWriter(local_store, EVENTS, "out", "x")
    table = pa.table({"event_id": ["e1"]}).cast(pa.schema([pa.field("event_id", pa.string())]))
    with pytest.raises(OSError, match="no writer today"):
        writer.write(table)
        writer.close()
    writer.abort()
    assert local_store.fs.find(local_store.path("out")) == []


def test_a_forked_child_parses_on_its_own_pool() -> None:
    assert list(ordered_map(lambda x: x * 2, range(5))) == [0, 2, 4, 6, 8]  # the parent's pool
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the inherited pool has no threads
        os.close(read)
        try:
            out = list(ordered_map(lambda x: x + 1, range(5)))
            os.write(write, repr(out).encode())
        finally:
            os._exit(0)
    os.close(write)
    done = threading.Event()
    threading.Thread(target=lambda: (os.waitpid(pid, 0), done.set()), daemon=True).start()
    if not done.wait(60):
        os.kill(pid, signal.SIGKILL)
        pytest.fail("the child hung on the inherited pool")
    assert os.read(read, 100) == b"[1, 2, 3, 4, 5]"


@pytest.mark.parametrize("seed", range(40))
def test_sort_rows_equals_a_full_stable_sort(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever shortcut `sort_rows` takes (nothing to do, only runs of tied first keys to
    sort, or a full sort), the rows come out exactly as `Table.sort_by` puts them, ties in the
    full key included (the `tag` column shows the order among rows equal on both keys)."""
    rng = random.Random(seed)
    n = rng.choice([0, 1, 2, 50, 400])
    ts = sorted(rng.randrange(0, max(n // rng.choice([1, 3, 50]), 1)) for _ in range(n))
    if seed % 5 == 0 and n > 3:  # the first key descends somewhere: a full sort
        ts[1], ts[-2] = ts[-2], ts[1]
    users = [rng.choice(["a", "b", "c", None] if seed % 7 == 0 else ["a", "b", "c"]) for _ in ts]
    table = pa.table(
        {
            "ts": pa.array(ts, pa.int64()),
            "user": pa.array(users, pa.string()),
            "tag": pa.array(range(n), pa.int64()),
        }
    )
    if n > 10:  # several chunks, as rows arrive from several batches
        table = pa.concat_tables([table.slice(0, n // 3), table.slice(n // 3)])
    if seed % 2:
        monkeypatch.setattr(parquet_mod, "MAX_TIED_SHARE", 1.0)  # take the tie path more often
    expected = table.sort_by([("ts", "ascending"), ("user", "ascending")])
    got = sort_rows(table, ["ts", "user"])
    assert got.to_pylist() == expected.to_pylist()
    assert is_sorted(got.combine_chunks(), ["ts", "user"]) or None in users


def test_dictionaries_are_kept_where_they_fit_and_dropped_where_they_would_overflow(
    local_store: ObjectStore,
) -> None:
    """Columns the spec leaves to the writer get a dictionary unless the first row group
    shows it would outgrow its page (near-unique text, many distinct numbers, nested ones
    too); a column whose codec asks for one keeps it regardless."""
    from dataclasses import replace

    import pyarrow.parquet as pq

    from lake_pipelines.datasets.spec import ColumnCodec

    n = 150_000  # 150k distinct floats: a 1.2 MB dictionary
    rng = random.Random(1)
    schema = pa.schema(
        [
            pa.field("ts", pa.timestamp("us", tz="UTC")),
            pa.field("unique_text", pa.string()),
            pa.field("few", pa.string()),
            pa.field("many_numbers", pa.float64()),
            pa.field("forced", pa.string()),
            pa.field("nested", pa.struct([pa.field("id", pa.string())])),
        ]
    )
    ids = [f"row-{i:08d}-{rng.random():.12f}" for i in range(n)]
    table = pa.table(
        {
            "ts": pa.array([0] * n, pa.timestamp("us", tz="UTC")),
            "unique_text": ids,
            "few": [rng.choice("abc") for _ in range(n)],
            "many_numbers": [rng.random() for _ in range(n)],
            "forced": ids,
            "nested": [{"id": i} for i in ids],
        },
        schema=schema,
    )
    spec = replace(
        EVENTS, schema=schema, sort_by=(), codecs={"forced": ColumnCodec(dictionary=True)}
    )
    with RollingParquetWriter(local_store, spec, "dict", "x") as writer:
        writer.write(table)
    (written,) = writer.files
    meta = pq.read_metadata(written.tmp_path).row_group(0)  # staged, not yet promoted
    encodings = {
        meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)
    }
    assert "RLE_DICTIONARY" in encodings["few"]
    assert "RLE_DICTIONARY" in encodings["forced"]  # asked for, though it overflows
    for name in ("unique_text", "many_numbers", "nested.id"):
        assert "RLE_DICTIONARY" not in encodings[name], name
    assert pq.read_table(written.tmp_path).equals(table.cast(writer.schema))


def test_clustered_keys_lose_the_dictionary_and_integers_without_one_pack_as_deltas(
    local_store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dictionary estimate follows how distinct values grow within the sample: a key
    repeated a few times in a row (TPC-H's l_orderkey) has few distinct values in the sample
    but many in the file, so it gets no dictionary. Integer-like columns without a
    dictionary, where the spec names no encoding, are written as packed deltas; categories
    keep their dictionary, and an encoding the spec names is kept."""
    from dataclasses import replace

    import pyarrow.parquet as pq

    from lake_pipelines.datasets.spec import ColumnCodec

    monkeypatch.setattr(parquet_mod, "DICTIONARY_SAMPLE_ROWS", 16_384)
    monkeypatch.setattr(parquet_mod, "DICTIONARY_PAGE_BYTES", 256 << 10)
    n = 100_000  # 50k distinct clustered keys: a 400 KB dictionary; the sample shows 8k
    rng = random.Random(7)
    schema = pa.schema(
        [
            pa.field("clustered", pa.int64()),
            pa.field("category", pa.int32()),
            pa.field("id_lists", pa.list_(pa.int64())),
            pa.field("when", pa.timestamp("us", tz="UTC")),
            pa.field("unique_text", pa.string()),
            pa.field("no_dictionary", pa.int64()),
            pa.field("plain", pa.int64()),
        ]
    )
    table = pa.table(
        {
            "clustered": [i // 2 for i in range(n)],
            "category": [rng.randrange(20) for _ in range(n)],
            "id_lists": [[3 * i, 3 * i + 1] for i in range(n)],
            "when": pa.array([i * 1_000_003 for i in range(n)], pa.timestamp("us", tz="UTC")),
            "unique_text": [f"t-{i}-{rng.random()}" for i in range(n)],
            "no_dictionary": [rng.randrange(10) for _ in range(n)],
            "plain": list(range(n)),
        },
        schema=schema,
    )
    spec = replace(
        EVENTS,
        schema=schema,
        timestamp_column="when",
        partitioning=(),
        sort_by=(),
        codecs={
            "no_dictionary": ColumnCodec(dictionary=False),
            "plain": ColumnCodec(encoding="PLAIN"),
        },
    )
    with RollingParquetWriter(local_store, spec, "enc", "x") as writer:
        writer.write(table)
    (written,) = writer.files
    meta = pq.read_metadata(written.tmp_path).row_group(0)
    encodings = {
        meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)
    }
    packed = {"clustered", "id_lists.list.element", "when", "no_dictionary"}
    for name in packed:
        assert "DELTA_BINARY_PACKED" in encodings[name], (name, encodings[name])
        assert "RLE_DICTIONARY" not in encodings[name], name
    assert "RLE_DICTIONARY" in encodings["category"]
    for name in ("unique_text", "plain"):
        assert "DELTA_BINARY_PACKED" not in encodings[name], name
        assert "RLE_DICTIONARY" not in encodings[name], name
    assert pq.read_table(written.tmp_path).equals(table.cast(writer.schema))
    # the engines the lake is read with decode the packed columns to the same values
    import datafusion
    import polars as pl

    from lake_pipelines_tests.support import duckdb_query

    cols = ["clustered", "id_lists", "when", "no_dictionary"]
    select = "SELECT " + ", ".join(f'"{c}"' for c in cols)
    order = 'ORDER BY "clustered", "when"'
    expected = table.select(cols).to_pylist()
    path = written.tmp_path
    assert duckdb_query(f"{select} FROM read_parquet('{path}') {order}").to_pylist() == expected
    assert pl.read_parquet(path, columns=cols).to_arrow().to_pylist() == expected
    ctx = datafusion.SessionContext()
    ctx.register_parquet("t", path, file_extension=".tmp")  # staged, not yet promoted
    got = ctx.sql(f"{select} FROM t {order}").to_arrow_table()
    assert got.to_pylist() == expected
