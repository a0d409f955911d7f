"""Encodings fitted to the first row group."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from lake_pipelines.datasets import get_dataset
from lake_pipelines.lake.parquet import encodings as encodings_mod
from lake_pipelines.lake.parquet.writer import RollingParquetWriter
from lake_pipelines.lake.storage import ObjectStore

EVENTS = get_dataset("events")


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

    monkeypatch.setattr(encodings_mod, "DICTIONARY_SAMPLE_ROWS", 16_384)
    monkeypatch.setattr(encodings_mod, "DICTIONARY_PAGE_BYTES", 256 << 10)
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
