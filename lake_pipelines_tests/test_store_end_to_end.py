"""The whole lake on every store runs end to end and holds the same data everywhere.

One lake per store, ``file``, ``s3`` (moto over real HTTP), ``gs`` (gcp-storage-emulator) and
``az`` (Azurite): the same seeded landing files for three days, one Dagster run per day, a
re-run of a day (nothing may change), compaction of both layers, snapshot expiry and orphan
cleanup beside a fresh uncommitted file (which must survive: on Azure a listing without a
real modification time made every file look 55 years old), and a landing-sensor tick over
newly uploaded files. Everything is read back with independent readers (pyarrow's own S3,
GCS and Azure filesystems, pyiceberg scans), never with lake_pipelines' readers, and
compared with what was generated and across the four stores.

What the emulators lack is said where it matters: `emulators.py` and the README.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from datetime import timedelta

import dagster as dg
import pytest
from dagster._core.definitions.sensor_definition import SensorExecutionData

from lake_pipelines.definitions import defs
from lake_pipelines.errors import ConfigError
from lake_pipelines.lake.storage import AddressingStyle, ObjectStore
from lake_pipelines.sample_data import generate_events
from lake_pipelines.sensors import RANGE_END_TAG, RANGE_START_TAG
from lake_pipelines_tests.conftest import (
    S3_KEY,
    S3_REGION,
    S3_SECRET,
    S3Server,
    dagster_resources,
)
from lake_pipelines_tests.emulators import (
    AzuriteServer,
    GcsServer,
)
from lake_pipelines_tests.store_lakes import (
    DAYS,
    MAKERS,
    METRIC_COLUMNS,
    ROWS_PER_DAY,
    SEED,
    SENSOR,
    SPEC,
    START,
    STORES,
    Lake,
    Lakes,
    build_lake,
    checksum,
    expected_metrics,
    generated_rows,
)

# Every layer over four stores and their emulators (~2-5 min): make test-e2e, run by .ci/run.
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def lakes(
    s3_server: S3Server,
    gcs_server: GcsServer,
    azurite_server: AzuriteServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Lakes]:
    with pytest.MonkeyPatch.context() as mp:
        # Credentials come from the environment, as in production (see ObjectStoreResource).
        mp.setenv("AWS_ACCESS_KEY_ID", S3_KEY)
        mp.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
        mp.setenv("AWS_REGION", S3_REGION)
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        mp.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite_server.connection_string)
        # DataFusion's Azure store takes the emulator's URL only from here (object_store).
        mp.setenv("AZURITE_BLOB_STORAGE_URL", azurite_server.endpoint)

        def make(kind: str) -> Lake:
            tmp = tmp_path_factory.mktemp(f"lake_{kind}")
            store, fs, root = MAKERS[kind](tmp, s3_server, gcs_server, azurite_server)
            samples = generate_events(store, START, DAYS, ROWS_PER_DAY, SEED, bad_rows=True)
            lake = Lake(kind, store, tmp / "catalog.db", samples, fs, root)
            build_lake(lake)
            return lake

        yield Lakes(make)


@pytest.mark.parametrize("kind", STORES)
def test_every_layer_holds_the_generated_rows(lakes: Lakes, kind: str) -> None:
    lake = lakes.get(kind)
    columns = SPEC.schema.names
    generated = generated_rows(lake)
    assert generated.num_rows == DAYS * ROWS_PER_DAY
    want = checksum(generated, columns, ["event_id"])
    first = lake.seen["first"]
    assert first["bronze"] == want
    assert first["silver"] == want
    assert first["gold"] == checksum(
        expected_metrics(generated), METRIC_COLUMNS[:-1], ["day", "event_type"]
    )
    quarantined = lake.dataset("quarantine/events").to_table()
    kinds = quarantined.column("kind").to_pylist()
    assert kinds.count("row") == sum(s.bad_rows for s in lake.samples)
    assert kinds.count("file") == sum(s.bad_files for s in lake.samples)
    # Source files are store-relative keys: no bucket, prefix or local path leaks in.
    assert all(
        f.startswith(f"{SPEC.landing_prefix}/")
        for f in quarantined.column("source_file").to_pylist()
    )
    location = lake.catalog().load_table(SPEC.table_name).location()
    assert location.startswith(lake.store.uri("warehouse/"))


@pytest.mark.parametrize("kind", STORES)
def test_rerun_changes_nothing_and_spares_a_fresh_temporary_file(lakes: Lakes, kind: str) -> None:
    lake = lakes.get(kind)
    assert lake.seen["rerun"] == lake.seen["first"]
    assert lake.seen["bronze_keys_rerun"] == lake.seen["bronze_keys"]
    # Bronze clears temporaries older than an hour; one written just now may be a live writer's.
    assert lake.seen["fresh_tmp_kept"]


@pytest.mark.parametrize("kind", STORES)
def test_compaction_rewrites_files_and_keeps_every_row(lakes: Lakes, kind: str) -> None:
    lake = lakes.get(kind)
    assert lake.seen["compacted"] == lake.seen["before_compaction"]
    assert lake.seen["bronze_files_compacted"] < len(lake.seen["bronze_keys"])
    assert lake.seen["silver_files_after"] < lake.seen["silver_files_before"]
    assert all(lake.seen["compaction"].values()), lake.seen["compaction"]


@pytest.mark.parametrize("kind", STORES)
def test_expiry_and_orphan_cleanup_spare_an_uncommitted_file(lakes: Lakes, kind: str) -> None:
    lake = lakes.get(kind)
    assert lake.seen["snapshots_after"] == lake.seen["snapshots_protected"]
    assert lake.seen["snapshots_after"] < lake.seen["snapshots_before"]
    assert lake.seen["maintained"] == lake.seen["compacted"]
    # Within the 3-day window by its real modification time: kept. Four days on: an orphan.
    assert lake.seen["fresh_orphan_kept"]
    assert [k.rsplit("/", 1)[-1] for k in lake.seen["late_orphans"]] == [
        "fresh-uncommitted.parquet"
    ]
    assert lake.seen["fresh_orphan_gone"]
    # Expiry deleted what no snapshot reaches: every data file left is referenced.
    table = lake.catalog().load_table(SPEC.table_name)
    live = table.inspect.all_data_files().column("file_path").to_pylist()
    prefix = lake.store.key_of(table.location()) + "/data/"
    assert {k for k in lake.keys(prefix) if k.endswith(".parquet")} == {
        lake.store.key_of(p) for p in live
    }


@pytest.mark.parametrize("kind", STORES)
def test_sensor_requests_a_run_for_newly_uploaded_files(lakes: Lakes, kind: str) -> None:
    lake = lakes.get(kind)
    resource = dagster_resources(lake.store, lake.catalog_db)["object_store"]

    def tick(cursor: str | None) -> SensorExecutionData:
        context = dg.build_sensor_context(
            cursor=cursor, definitions=defs, resources={"object_store": resource}
        )
        return SENSOR.evaluate_tick(context)

    first = tick(None)  # no cursor yet: everything landed so far, consecutive days in one run
    landed = [(START + timedelta(days=d)).isoformat() for d in range(DAYS)]
    assert first.run_requests is not None
    assert [(r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]) for r in first.run_requests] == [
        (landed[0], landed[-1])
    ]
    assert not tick(first.cursor).run_requests

    new_day = START + timedelta(days=DAYS)
    uploaded = generate_events(lake.store, new_day, 1, 50, SEED + 1, bad_rows=False)[0].files
    after = tick(first.cursor)
    assert after.run_requests is not None
    assert [r.partition_key for r in after.run_requests] == [new_day.isoformat()]
    assert after.run_requests[0].tags["lake/landed_files"] == str(len(uploaded))
    assert not tick(after.cursor).run_requests


def test_every_store_holds_the_same_lake(lakes: Lakes) -> None:
    seen = {kind: lakes.get(kind).seen for kind in STORES}
    for step in ("first", "rerun", "before_compaction", "compacted", "maintained"):
        assert len({repr(s[step]) for s in seen.values()}) == 1, {
            k: s[step] for k, s in seen.items()
        }
    compaction = {kind: s["compaction"] for kind, s in seen.items()}
    assert len({repr(c) for c in compaction.values()}) == 1, compaction
    files = {
        kind: (s["bronze_files_compacted"], s["silver_files_after"]) for kind, s in seen.items()
    }
    assert len(set(files.values())) == 1, files
    # Revenue sums equal up to float rounding, and equal to pyarrow's from the generated rows.
    want = expected_metrics(generated_rows(lakes.get("file"))).sort_by(
        [("day", "ascending"), ("event_type", "ascending")]
    )
    assert seen["file"]["first"]["revenue"] == pytest.approx(want.column("revenue").to_pylist())


@pytest.mark.parametrize("kind", STORES)
def test_no_temporary_objects_left(lakes: Lakes, kind: str) -> None:
    lake = lakes.get(kind)
    keys = lake.keys()
    leftovers = [k for k in keys if posixpath.basename(k).startswith(".") and k.endswith(".tmp")]
    assert leftovers == []
    for layer in ("landing", "bronze", "quarantine", "warehouse"):
        assert any(k.startswith(f"{layer}/") for k in keys), layer


# -- S3 settings -----------------------------------------------------------------------------


def test_plain_http_endpoint_refused_without_allow_http() -> None:
    with pytest.raises(ConfigError, match="LAKE_S3_ENDPOINT_URL") as info:
        ObjectStore("s3://bucket/lake", endpoint_url="http://127.0.0.1:9000", allow_http=False)
    assert info.value.setting == "LAKE_S3_ENDPOINT_URL"


@pytest.mark.parametrize("style", ["auto", "path", "virtual"])
def test_datafusion_store_takes_every_addressing_style(style: AddressingStyle) -> None:
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
    style: AddressingStyle, endpoint: str, path_style: str | None
) -> None:
    store = ObjectStore("s3://bucket/lake", endpoint_url=endpoint, addressing_style=style)
    assert store.iceberg_properties().get("s3.path-style-access") == path_style


@pytest.mark.parametrize("kind", ["s3", "gs", "az"])
def test_datafusion_reads_the_lake_through_its_own_object_store(lakes: Lakes, kind: str) -> None:
    """The Hive listing table through DataFusion's own store for the bucket (S3) or container
    (Azure, Azurite by ``use_emulator``); pyiceberg-core's provider reads the Iceberg files
    with its own client, configured from the table's FileIO properties (S3, GCS).

    What the emulators keep out of reach: DataFusion's GCS store speaks the XML API, which
    gcp-storage-emulator lacks (``HEAD`` and ``list-type=2`` answer 501), so the Hive table is
    not read that way on GCS; pyiceberg-core's Azure client takes no connection string and
    speaks the ADLS Gen2 (dfs) API, which Azurite lacks. Gold reads GCS and Azure through
    pyarrow datasets over the lake's own filesystem, S3 through DataFusion's own store
    (`register_files`), as the runs above do.
    """
    from lake_pipelines.lake.analytics.session import (
        SessionSettings,
        make_session,
        register_hive,
        register_iceberg_provider,
    )
    from lake_pipelines.lake.parquet.options import file_schema

    lake = lakes.get(kind)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        ctx = make_session(SessionSettings(2), (lake.store,))
        if kind != "gs":
            register_hive(ctx, "bronze", lake.store, SPEC.bronze_prefix, file_schema(SPEC))
            per_day = ctx.sql("SELECT day, COUNT(*) AS n FROM bronze GROUP BY day ORDER BY day")
            assert per_day.to_pylist() == [
                {"day": (START + timedelta(days=i)).day, "n": s.valid.num_rows}
                for i, s in enumerate(lake.samples)
            ]
        if kind != "az":
            register_iceberg_provider(ctx, "silver", lake.catalog().load_table(SPEC.table_name))
            silver = ctx.sql("SELECT COUNT(*) AS n FROM silver").to_pylist()[0]["n"]
            # the generated rows and the 20 tiny appends before compaction
            assert silver == sum(s.valid.num_rows for s in lake.samples) + 20
