"""Data and helpers the compaction tests share."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from lake_pipelines.datasets import get_dataset
from lake_pipelines.datasets.spec import CompactionPolicy
from lake_pipelines.lake.compaction.options import CompactionOptions
from lake_pipelines.lake.compaction.rewrite import conform
from lake_pipelines.lake.hashing import RowChecksum
from lake_pipelines.lake.layout import bronze_dir
from lake_pipelines.lake.parquet.options import file_schema, writer_options
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines_tests.support import duckdb_query

# Small numbers so that a few thousand rows exercise bins, row groups, spills and merges.
POLICY = CompactionPolicy(target_file_bytes=256 << 10, max_small_files=4)
SPEC = dataclasses.replace(get_dataset("events"), compaction=POLICY)
COLUMNS = list(SPEC.schema.names)
ORDER = [(c, "ascending") for c in SPEC.sort_by]
TUNING = CompactionOptions(sort_memory_bytes=48 << 10, row_group_bytes=24 << 10)
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
