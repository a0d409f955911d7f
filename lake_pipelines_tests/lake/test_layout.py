"""Bronze's Hive folders: zero-padded, never colliding with data columns, as four engines read them.

The readers are the ones the README promises (DuckDB, Polars, pyarrow's dataset and our
DataFusion `register_hive`), not our own code.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandera.pandas as pdr
import pyarrow as pa
import pytest

from lake_pipelines.datasets import get_dataset
from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.errors import SpecError
from lake_pipelines.lake.bronze import ingest_day
from lake_pipelines.lake.layout import bronze_dir, hive_dir, landing_dir
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.sample_data import generate_events
from lake_pipelines_tests.support import duckdb_query, read_by_every_engine, rows

EVENTS = get_dataset("events")
# A dataset whose rows carry their own local calendar date: in UTC+14 most of a UTC day is
# already the next day (and 2026-12-31 is 2027-01-01), so the folder's values always differ.
LOCAL = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("year", pa.int32()),
        pa.field("month", pa.int32()),
        pa.field("day", pa.int32()),
        pa.field("amount", pa.float64()),
    ]
)
UTC_LEVELS = ("utc_year", "utc_month", "utc_day")


def _local_dated(**overrides: Any) -> DatasetSpec:
    args: dict[str, Any] = {
        "name": "local_dated",
        "schema": LOCAL,
        "timestamp_column": "ts",
        "start_date": "2026-01-01",
        "contract": pdr.DataFrameSchema({"id": pdr.Column(str, nullable=False)}),
        "hive_partition_columns": UTC_LEVELS,
    }
    return DatasetSpec(**{**args, **overrides})


def _land_local_dated(store: ObjectStore, spec: DatasetSpec, day: date) -> pa.Table:
    """Six rows of `day` (UTC) with their UTC+14 date, landed as CSV; returns them."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    ts = [start + timedelta(hours=10, minutes=50 * i) for i in range(6)]
    local = [t + timedelta(hours=14) for t in ts]
    table = pa.table(
        {
            "id": [f"{day}-{i}" for i in range(6)],
            "ts": ts,
            "year": [t.year for t in local],
            "month": [t.month for t in local],
            "day": [t.day for t in local],
            "amount": [1.5 * i for i in range(6)],
        },
        schema=LOCAL,
    )
    lines = ["id,ts,year,month,day,amount"]
    for r in table.to_pylist():
        stamp = r["ts"].strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(f"{r['id']},{stamp},{r['year']},{r['month']},{r['day']},{r['amount']}")
    store.write_bytes(f"{landing_dir(spec, day)}/local.csv", ("\n".join(lines) + "\n").encode())
    return table


def _levels(table: pa.Table, names: tuple[str, ...], key: str) -> dict[str, tuple[int, ...]]:
    """Each row's partition values by `key`, after checking the engine typed them as integers."""
    for name in names:
        assert pa.types.is_integer(table.schema.field(name).type), (name, table.schema)
    return {r[key]: tuple(r[n] for n in names) for r in table.select([key, *names]).to_pylist()}


def test_levels_named_like_data_columns_are_refused() -> None:
    with pytest.raises(SpecError) as refused:
        _local_dated(hive_partition_columns=("year", "month", "day"))
    assert refused.value.field == "hive_partition_columns"
    assert "year, month, day are data columns" in str(refused.value)
    assert "utc_year" in str(refused.value)  # the way out
    with pytest.raises(SpecError, match="Month is a data column"):  # DuckDB ignores case
        _local_dated(
            schema=LOCAL.set(3, pa.field("Month", pa.int32())),
            hive_partition_columns=("year_", "month", "day_"),
        )


@pytest.mark.parametrize(
    "levels",
    [
        ("y", "m"),
        ("y", "y", "d"),
        ("y", "M", "m"),
        ("_y", "m", "d"),
        ("y", "m/x", "d"),
        ("y", "m", ""),
    ],
)
def test_level_names_must_be_three_distinct_visible_names(levels: tuple[str, ...]) -> None:
    with pytest.raises(SpecError, match="three distinct names"):
        _local_dated(hive_partition_columns=levels)


def test_year_month_day_data_columns_read_back_unchanged_by_every_engine(
    local_store: ObjectStore,
) -> None:
    spec = _local_dated()
    days = [date(2026, 1, 5), date(2026, 12, 31)]
    landed = pa.concat_tables([_land_local_dated(local_store, spec, d) for d in days])
    for d in days:
        assert ingest_day(local_store, spec, d).rows_written == 6
    assert local_store.list(f"{spec.bronze_prefix}/utc_year=2026/utc_month=01/utc_day=05")
    expected_levels = {
        r["id"]: (r["ts"].year, r["ts"].month, r["ts"].day) for r in landed.to_pylist()
    }
    local_dates = {(r["year"], r["month"], r["day"]) for r in landed.to_pylist()}
    assert local_dates.isdisjoint(expected_levels.values())  # the columns and folders differ

    for engine, got in read_by_every_engine(local_store, spec).items():
        assert rows(got, key="id", columns=LOCAL.names) == rows(landed, key="id"), engine
        assert _levels(got, UTC_LEVELS, "id") == expected_levels, engine


def test_folders_are_zero_padded_and_every_engine_reads_integers(local_store: ObjectStore) -> None:
    days = [date(2026, 1, 5), date(2026, 1, 10), date(2026, 10, 1)]
    expected = {}
    for d in days:
        (sample,) = generate_events(local_store, d, days=1, rows_per_day=40, seed=5, bad_rows=False)
        ingest_day(local_store, EVENTS, d)
        expected.update({r["event_id"]: (d.year, d.month, d.day) for r in sample.valid.to_pylist()})
    assert bronze_dir(EVENTS, days[0]).endswith("/year=2026/month=01/day=05")
    assert hive_dir(days[2], ("a", "b", "c")) == "a=2026/b=10/c=01"
    # an object store lists keys in byte order: with padding that is date order
    listed = [e.key for e in local_store.list(EVENTS.bronze_prefix)]
    folders = list(dict.fromkeys(k.rsplit("/", 1)[0] for k in listed))
    assert folders == [bronze_dir(EVENTS, d) for d in days]

    for engine, got in read_by_every_engine(local_store, EVENTS).items():
        assert _levels(got, ("year", "month", "day"), "event_id") == expected, engine
    # DuckDB (2.0) types a zero-padded level as text unless given `hive_types` (README):
    # equality with an integer still holds, a range comparison needs a cast
    root = local_store.path(EVENTS.bronze_prefix)
    untyped = duckdb_query(
        f"SELECT DISTINCT month, day FROM read_parquet('{root}/**/*.parquet', "
        "hive_partitioning = true) WHERE month = 1 AND day = 5"
    )
    assert untyped.to_pylist() == [{"month": "01", "day": "05"}]
