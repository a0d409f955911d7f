"""The whole lake on S3 (moto over real HTTP) runs end to end and equals the local lake.

Both lakes get the same seeded landing files and the same Dagster runs; everything is then read
back with independent readers (pyarrow's own S3 filesystem, boto3, pyiceberg scans), never with
lake_pipelines' readers, and compared with each other and with what was generated.

The S3 server is conftest's `s3_server`: moto in a separate process (see there why).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from lake_pipelines.assets import build_all_assets
from lake_pipelines.datasets import events
from lake_pipelines.errors import ConfigError
from lake_pipelines.lake.gold import metrics_table_name
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.sample_data import SampleDay, generate_events
from lake_pipelines_tests.conftest import (
    S3_KEY,
    S3_REGION,
    S3_SECRET,
    S3Server,
    dagster_resources,
    new_s3_lake,
    sql_catalog,
)

START = date(2026, 3, 2)
DAYS = 2
ROWS_PER_DAY = 300
SEED = 7
SPEC = events.SPEC
# Everything but run_id and quarantined_at, which differ from run to run.
QUARANTINE_COMPARED = [
    "dataset",
    "partition",
    "kind",
    "source_file",
    "line",
    "column",
    "reason",
    "raw",
]
METRIC_COLUMNS = ["day", "event_type", "events", "distinct_users", "distinct_sessions", "revenue"]


@dataclass(frozen=True)
class Lake:
    """One materialized lake, and independent ways to look at it."""

    store: ObjectStore
    catalog_db: Path
    samples: list[SampleDay]
    fs: pafs.FileSystem  # pyarrow's own filesystem, built here, not by ObjectStore
    root: str  # the lake's root as `fs` sees it
    catalog_props: dict[str, str]

    def dataset(self, prefix: str) -> ds.Dataset:
        return ds.dataset(
            posixpath.join(self.root, prefix),
            format="parquet",
            partitioning="hive",
            filesystem=self.fs,
        )

    def catalog(self) -> SqlCatalog:
        return SqlCatalog("lake", uri=f"sqlite:///{self.catalog_db}", **self.catalog_props)


@dataclass(frozen=True)
class Lakes:
    local: Lake
    s3: Lake
    server: S3Server
    bucket: str


def _materialize(store: ObjectStore, catalog_db: Path) -> None:
    """One Dagster run per day, as the daily schedule would start them; each must succeed."""
    assets = build_all_assets()
    with dg.instance_for_test() as instance:
        for d in range(DAYS):
            result = dg.materialize(
                assets,
                resources=dagster_resources(store, catalog_db),
                partition_key=(START + timedelta(days=d)).isoformat(),
                instance=instance,
            )
            assert result.success
            checks = result.get_asset_check_evaluations()
            assert checks, "the bronze and silver checks did not run"
            assert [c.check_name for c in checks if not c.passed] == []


@pytest.fixture(scope="module")
def lakes(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lakes]:
    """The same seeded data landed and materialized once on local disk and once on S3."""
    with pytest.MonkeyPatch.context() as mp:
        # Credentials come from the environment, as in production (see ObjectStoreResource).
        mp.setenv("AWS_ACCESS_KEY_ID", S3_KEY)
        mp.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
        mp.setenv("AWS_REGION", S3_REGION)
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")

        tmp = tmp_path_factory.mktemp("s3_end_to_end")
        local_store = ObjectStore(f"file://{tmp / 'lake'}")
        s3_store = new_s3_lake(s3_server)
        bucket = s3_store.bucket

        local_samples = generate_events(local_store, START, DAYS, ROWS_PER_DAY, SEED, bad_rows=True)
        s3_samples = generate_events(s3_store, START, DAYS, ROWS_PER_DAY, SEED, bad_rows=True)
        _materialize(local_store, tmp / "local.db")
        _materialize(s3_store, tmp / "s3.db")

        endpoint = s3_server.endpoint.removeprefix("http://")
        s3_fs = pafs.S3FileSystem(
            access_key=S3_KEY,
            secret_key=S3_SECRET,
            region=S3_REGION,
            endpoint_override=endpoint,
            scheme="http",
        )
        yield Lakes(
            local=Lake(
                local_store,
                tmp / "local.db",
                local_samples,
                pafs.LocalFileSystem(),
                str(tmp / "lake"),
                {},
            ),
            s3=Lake(
                s3_store,
                tmp / "s3.db",
                s3_samples,
                s3_fs,
                f"{bucket}/lake",
                {
                    "py-io-impl": "pyiceberg.io.pyarrow.PyArrowFileIO",
                    "s3.endpoint": s3_server.endpoint,
                    "s3.access-key-id": S3_KEY,
                    "s3.secret-access-key": S3_SECRET,
                    "s3.region": S3_REGION,
                },
            ),
            server=s3_server,
            bucket=bucket,
        )


def _rows(table: pa.Table, columns: list[str], sort_by: list[str]) -> list[dict[str, Any]]:
    return table.select(columns).sort_by([(c, "ascending") for c in sort_by]).to_pylist()


def _generated(lake: Lake) -> pa.Table:
    return pa.concat_tables(s.valid for s in lake.samples)


def _bucket_keys(lakes: Lakes) -> list[str]:
    pages = lakes.server.client().get_paginator("list_objects_v2").paginate(Bucket=lakes.bucket)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def _read(lake: Lake, key: str) -> bytes:
    with lake.fs.open_input_stream(posixpath.join(lake.root, key), compression=None) as f:
        return bytes(f.read())


def test_same_landing_data(lakes: Lakes) -> None:
    assert _generated(lakes.s3).equals(_generated(lakes.local))
    files = [k for s in lakes.s3.samples for k in s.files]
    assert files == [k for s in lakes.local.samples for k in s.files]
    for key in files:
        assert _read(lakes.s3, key) == _read(lakes.local, key), key


def test_bronze_equal_and_holds_the_valid_rows(lakes: Lakes) -> None:
    columns = SPEC.schema.names
    expected = _rows(_generated(lakes.local), columns, ["event_id"])
    assert len(expected) == DAYS * ROWS_PER_DAY
    local = _rows(lakes.local.dataset(SPEC.bronze_prefix).to_table(), columns, ["event_id"])
    s3 = _rows(lakes.s3.dataset(SPEC.bronze_prefix).to_table(), columns, ["event_id"])
    assert s3 == local
    assert s3 == expected


def test_quarantine_equal(lakes: Lakes) -> None:
    order = ["partition", "source_file", "line", "kind", "reason"]
    local = _rows(lakes.local.dataset("quarantine/events").to_table(), QUARANTINE_COMPARED, order)
    s3 = _rows(lakes.s3.dataset("quarantine/events").to_table(), QUARANTINE_COMPARED, order)
    assert s3 == local
    bad_rows = sum(s.bad_rows for s in lakes.s3.samples)
    bad_files = sum(s.bad_files for s in lakes.s3.samples)
    assert sum(r["kind"] == "row" for r in s3) == bad_rows
    assert sum(r["kind"] == "file" for r in s3) == bad_files
    # Source files are store-relative keys: no bucket, prefix or local path leaks in.
    assert all(r["source_file"].startswith(f"{SPEC.landing_prefix}/") for r in s3)


def test_silver_table_equal(lakes: Lakes) -> None:
    columns = SPEC.schema.names
    local_table = lakes.local.catalog().load_table(SPEC.table_name)
    s3_table = lakes.s3.catalog().load_table(SPEC.table_name)
    assert s3_table.location().startswith(f"s3://{lakes.bucket}/lake/warehouse/")
    local = _rows(local_table.scan().to_arrow(), columns, ["event_id"])
    s3 = _rows(s3_table.scan().to_arrow(), columns, ["event_id"])
    assert s3 == local
    assert s3 == _rows(_generated(lakes.s3), columns, ["event_id"])
    # One replace per day: the same history shape on both lakes.
    assert len(s3_table.history()) == len(local_table.history()) == DAYS


def _metrics(lake: Lake) -> pa.Table:
    table = lake.catalog().load_table(metrics_table_name(SPEC)).scan().to_arrow()
    return table.sort_by([("day", "ascending"), ("event_type", "ascending")])


def _expected_metrics(generated: pa.Table) -> pa.Table:
    """The gold query worked out with pyarrow from the generated rows."""
    with_day = generated.append_column("day", pc.cast(generated.column("ts"), pa.date32()))
    agg = with_day.group_by(["day", "event_type"]).aggregate(
        [
            ("event_id", "count"),
            ("user_id", "count_distinct"),
            ("session_id", "count_distinct"),
            ("price", "sum"),
        ]
    )
    agg = agg.select(
        [
            "day",
            "event_type",
            "event_id_count",
            "user_id_count_distinct",
            "session_id_count_distinct",
            "price_sum",
        ]
    ).rename_columns(METRIC_COLUMNS)
    return agg.sort_by([("day", "ascending"), ("event_type", "ascending")])


def test_gold_metrics_equal(lakes: Lakes) -> None:
    local, s3 = _metrics(lakes.local), _metrics(lakes.s3)
    want = _expected_metrics(_generated(lakes.s3))
    assert s3.num_rows == want.num_rows > 0
    exact = METRIC_COLUMNS[:-1]
    assert s3.select(exact).to_pylist() == local.select(exact).to_pylist()
    assert s3.select(exact).to_pylist() == want.select(exact).to_pylist()
    # Float sums may be added up in another order on another run: equal up to rounding.
    revenue = s3.column("revenue").to_pylist()
    assert revenue == pytest.approx(local.column("revenue").to_pylist())
    assert revenue == pytest.approx(want.column("revenue").to_pylist())


def test_no_temporary_objects_left_on_s3(lakes: Lakes) -> None:
    keys = _bucket_keys(lakes)
    leftovers = [k for k in keys if posixpath.basename(k).startswith(".") and k.endswith(".tmp")]
    assert leftovers == []
    # Every layer really is on S3: landing, bronze, quarantine and the Iceberg warehouse.
    for layer in ("landing", "bronze", "quarantine", "warehouse"):
        assert any(k.startswith(f"lake/{layer}/") for k in keys), layer


def test_plain_http_endpoint_refused_without_allow_http() -> None:
    with pytest.raises(ConfigError, match="LAKE_S3_ENDPOINT_URL") as info:
        ObjectStore("s3://bucket/lake", endpoint_url="http://127.0.0.1:9000", allow_http=False)
    assert info.value.setting == "LAKE_S3_ENDPOINT_URL"


@pytest.mark.parametrize("style", ["auto", "path", "virtual"])
def test_datafusion_store_takes_every_addressing_style(style: str) -> None:
    store = ObjectStore(
        "s3://bucket/lake", endpoint_url="https://s3.example:9000", addressing_style=style
    )
    registration = store.datafusion_store()
    assert registration is not None and registration[0] == "s3://bucket"


@pytest.mark.parametrize(
    ("style", "endpoint", "path_style"),
    [("auto", "https://s3.example:9000", "true"), ("path", "", "true"), ("auto", "", None)],
)
def test_iceberg_properties_ask_rust_reader_for_path_style(
    style: str, endpoint: str, path_style: str | None
) -> None:
    store = ObjectStore("s3://bucket/lake", endpoint_url=endpoint, addressing_style=style)
    assert store.iceberg_properties().get("s3.path-style-access") == path_style


def test_datafusion_reads_the_s3_lake_through_its_own_object_store(lakes: Lakes) -> None:
    """The Hive listing table through DataFusion's own S3 store (registered for the bucket);
    pyiceberg-core's provider reads the Iceberg files with its own S3 client, configured from
    the table's FileIO properties."""
    from lake_pipelines.lake.analytics.session import (
        SessionSettings,
        make_session,
        register_hive,
        register_iceberg_provider,
    )
    from lake_pipelines.lake.parquet.options import file_schema

    s3 = lakes.s3
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        ctx = make_session(SessionSettings(2), (s3.store,))
        register_hive(ctx, "bronze", s3.store, events.SPEC.bronze_prefix, file_schema(events.SPEC))
        catalog = sql_catalog(s3.store, s3.catalog_db)  # configured as the lake configures it
        register_iceberg_provider(ctx, "silver", catalog.load_table(events.SPEC.table_name))
        per_day = ctx.sql(
            "SELECT day, COUNT(*) AS n FROM bronze GROUP BY day ORDER BY day"
        ).to_pylist()
        silver = ctx.sql("SELECT COUNT(*) AS n FROM silver").to_pylist()[0]["n"]
    expected = [
        {"day": (START + timedelta(days=i)).day, "n": s.valid.num_rows}
        for i, s in enumerate(s3.samples)
    ]
    assert per_day == expected
    assert silver == sum(s.valid.num_rows for s in s3.samples)
