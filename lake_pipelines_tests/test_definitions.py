"""The Dagster layer: loadable definitions, partitioned materializations, checks, the CLI."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import TypedDict

import dagster as dg
import pytest

from lake_pipelines.assets import build_all_assets
from lake_pipelines.checks import CONTRACT_CHECK, ROW_ACCOUNTING_CHECK
from lake_pipelines.config import CatalogSettings, DataFusionSettings, StoreSettings
from lake_pipelines.config_fields import Section
from lake_pipelines.datasets import get_dataset
from lake_pipelines.definitions import defs
from lake_pipelines.lake import bronze as bronze_core
from lake_pipelines.lake.analytics.session import SessionSettings
from lake_pipelines.lake.gold import metrics_table_name
from lake_pipelines.lake.ingest import quarantine
from lake_pipelines.lake.layout import landing_dir
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.resources import DataFusionResource, IcebergCatalogResource, ObjectStoreResource
from lake_pipelines.sample_data import generate_events
from lake_pipelines_tests.conftest import dagster_resources, sql_catalog
from lake_pipelines_tests.support import duckdb_hive, materialize_cli, rows, summary_of

SPEC = get_dataset("events")
START = date(2026, 11, 1)
COLUMNS = list(SPEC.schema.names)
BRONZE = dg.AssetKey(["lake", "bronze", "events"])
SILVER = dg.AssetKey(["lake", "silver", "events"])
GOLD = dg.AssetKey(["lake", "gold", "events_daily_metrics"])


def test_definitions_load() -> None:
    dg.Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_all_asset_keys()}
    assert {
        "lake/bronze/events",
        "lake/silver/events",
        "lake/gold/events_daily_metrics",
        "lake/bronze/orders",
        "lake/silver/orders",
    } <= keys
    job = defs.resolve_job_def("events_daily")
    assert job.partitions_def is not None


def test_loading_the_code_location_leaves_slow_imports_to_the_runs_that_need_them() -> None:
    # Dagster loads the code location in every run, sensor tick and UI reload: pandera (the
    # contract), DataFusion sessions and the Iceberg catalog are imported on first use.
    probe = (
        "import sys, lake_pipelines.definitions; "
        "print(sorted(m for m in ('pandas', 'pandera', 'pyiceberg', 'sqlalchemy', 'dagster_aws') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-W", "default", "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert out.stdout.strip() == "[]"
    # and quietly: no beta notice per asset for the deliberate single-run backfill policy
    assert "backfill_policy" not in out.stderr, out.stderr[:500]


def test_the_engine_imports_no_dagster() -> None:
    # lake/ is the Dagster-free core (benchmarks and the CLI use it): import every module.
    probe = (
        "import importlib, pkgutil, sys, lake_pipelines.lake as lake, lake_pipelines.config\n"
        "names = [m.name for m in pkgutil.walk_packages(lake.__path__, lake.__name__ + '.')]\n"
        "for name in names: importlib.import_module(name)\n"
        "print(len(names), sorted(m for m in sys.modules if m.startswith('dagster')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    count, found = out.stdout.split(" ", 1)
    assert int(count) > 20  # the walk found the stage subpackages' modules
    assert found.strip() == "[]"


def _materialize(store: ObjectStore, db: Path, instance, **kwargs):
    return dg.materialize(
        build_all_assets(),
        resources=dagster_resources(store, db),
        instance=instance,
        **kwargs,
    )


def _checks(result) -> dict[tuple[str, str], bool]:
    return {
        (e.asset_key.to_user_string(), e.check_name): e.passed
        for e in result.get_asset_check_evaluations()
    }


def test_one_partition_end_to_end_and_rerun(local_store: ObjectStore, tmp_path: Path) -> None:
    days = generate_events(local_store, START, days=2, rows_per_day=300, seed=11)
    db = tmp_path / "catalog.db"
    with dg.instance_for_test() as instance:
        for _ in range(2):  # the second run must give the same lake
            result = _materialize(local_store, db, instance, partition_key="2026-11-02")
            assert result.success
            checks = _checks(result)
            assert all(checks.values())
            assert {
                ("lake/bronze/events", ROW_ACCOUNTING_CHECK),
                ("lake/bronze/events", CONTRACT_CHECK),
                ("lake/silver/events", ROW_ACCOUNTING_CHECK),
            } <= set(checks)
        mats = result.asset_materializations_for_node("lake__bronze__events")
        meta = mats[0].metadata
        assert meta["dagster/partition_row_count"].value == days[1].valid.num_rows
        assert meta["rows_quarantined"].value == days[1].bad_rows
        assert meta["files_quarantined"].value == 1  # the truncated file of the last day
        layers = {
            "silver": (
                result.asset_materializations_for_node("lake__silver__events"),
                SPEC.table_name,
            ),
            "gold": (
                result.asset_materializations_for_node("lake__gold__events_daily_metrics"),
                metrics_table_name(SPEC),
            ),
        }
        for layer, (layer_mats, name) in layers.items():
            layer_meta = layer_mats[0].metadata
            files = sql_catalog(local_store, db).load_table(name).inspect.data_files().to_pylist()
            assert layer_meta["files"].value == len(files) > 0, layer
            assert layer_meta["bytes"].value == sum(f["file_size_in_bytes"] for f in files), layer
            assert layer_meta["rows_quarantined"].value == days[1].bad_rows, layer
    bronze = duckdb_hive(local_store.path(SPEC.bronze_prefix), COLUMNS)
    assert rows(bronze) == rows(days[1].valid)
    catalog = sql_catalog(local_store, db)
    silver = catalog.load_table(SPEC.table_name).scan().to_arrow()
    assert rows(silver, columns=COLUMNS) == rows(days[1].valid)
    gold = catalog.load_table(metrics_table_name(SPEC)).scan().to_arrow()
    assert sum(gold.column("events").to_pylist()) == days[1].valid.num_rows
    assert len(set(gold.column("event_type").to_pylist())) == gold.num_rows
    q = quarantine.read(local_store, SPEC.name, date(2026, 11, 2))
    assert any("decompress" in r for r in q.column("reason").to_pylist())


def test_single_run_backfill_of_a_range(local_store: ObjectStore, tmp_path: Path) -> None:
    days = generate_events(local_store, START, days=3, rows_per_day=400, seed=5)
    with dg.instance_for_test() as instance:
        result = _materialize(
            local_store,
            tmp_path / "c.db",
            instance,
            tags={
                "dagster/asset_partition_range_start": "2026-11-01",
                "dagster/asset_partition_range_end": "2026-11-03",
            },
        )
        assert result.success
        partitions_def = defs.resolve_assets_def(SILVER).partitions_def
        assert partitions_def is not None
        status = instance.get_status_by_partition(
            SILVER, ["2026-11-01", "2026-11-02", "2026-11-03"], partitions_def
        )
        assert status is not None
        assert set(status.values()) == {dg.AssetPartitionStatus.MATERIALIZED}
    silver = sql_catalog(local_store, tmp_path / "c.db").load_table(SPEC.table_name)
    assert rows(silver.scan().to_arrow(), columns=COLUMNS) == sorted(
        [r for d in days for r in rows(d.valid)], key=lambda r: r["event_id"]
    )


def test_contract_check_blocks_downstream(local_store: ObjectStore, tmp_path: Path) -> None:
    header = "event_id,ts,user_id,session_id,event_type,url,price,properties,latencies_ms\n"
    good = [f"e{i},2026-11-04T10:00:00Z,u{i},s{i},click,,,,\n" for i in range(95)]
    bad = [f"b{i},2026-11-04T10:00:00Z,u{i},s{i},warp,,,,\n" for i in range(5)]
    local_store.write_bytes(
        "landing/events/2026-11-04/a.csv", (header + "".join(good + bad)).encode()
    )
    with dg.instance_for_test() as instance:
        result = _materialize(
            local_store,
            tmp_path / "c.db",
            instance,
            partition_key="2026-11-04",
            raise_on_error=False,
        )
        checks = _checks(result)
        assert checks[("lake/bronze/events", CONTRACT_CHECK)] is False  # 5% > 1%
        assert checks[("lake/bronze/events", ROW_ACCOUNTING_CHECK)] is True
        assert not result.asset_materializations_for_node("lake__silver__events")
    assert not sql_catalog(local_store, tmp_path / "c.db").table_exists(SPEC.table_name)


def _evaluation(result, key: dg.AssetKey, check: str):
    return next(
        e
        for e in result.get_asset_check_evaluations()
        if (e.asset_key, e.check_name) == (key, check)
    )


def test_bronze_row_accounting_check_judges_the_day_read_back_by_the_core(
    local_store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    day = generate_events(local_store, START, days=1, rows_per_day=300, seed=13)[0]
    db = tmp_path / "c.db"
    with dg.instance_for_test() as instance:
        ok = _materialize(local_store, db, instance, partition_key="2026-11-01", selection=[BRONZE])
        passed = _evaluation(ok, BRONZE, ROW_ACCOUNTING_CHECK)
        stored = duckdb_hive(local_store.path(SPEC.bronze_prefix), ["event_id"]).num_rows
        assert passed.passed and passed.metadata["rows_in_parquet"].value == stored
        assert passed.metadata["rows_in_quarantine"].value == day.bad_rows
        # the check believes the core's read-back of storage, whatever the ingestion counted
        real = bronze_core.stored_counts

        def one_row_short(*args):
            counts = real(*args)
            return replace(counts, rows_in_parquet=counts.rows_in_parquet - 1)

        monkeypatch.setattr(bronze_core, "stored_counts", one_row_short)
        result = _materialize(
            local_store,
            db,
            instance,
            partition_key="2026-11-01",
            raise_on_error=False,
        )
        failed = _evaluation(result, BRONZE, ROW_ACCOUNTING_CHECK)
        assert not failed.passed and failed.metadata["rows_in_parquet"].value == stored - 1
        assert not result.asset_materializations_for_node("lake__silver__events")  # blocked


def test_silver_asset_takes_lineage_from_bronze_not_the_landing_folder(
    local_store: ObjectStore, tmp_path: Path
) -> None:
    generate_events(local_store, START, days=1, rows_per_day=300, seed=14)
    landing = local_store.list(landing_dir(SPEC, START))
    db = tmp_path / "c.db"
    with dg.instance_for_test() as instance:
        _materialize(local_store, db, instance, partition_key="2026-11-01", selection=[BRONZE])
        shutil.move(local_store.path(landing_dir(SPEC, START)), tmp_path / "elsewhere")
        result = _materialize(
            local_store, db, instance, partition_key="2026-11-01", selection=[SILVER]
        )
        assert _evaluation(result, SILVER, ROW_ACCOUNTING_CHECK).passed
    summary = summary_of(
        sql_catalog(local_store, db).load_table(SPEC.table_name).current_snapshot()
    )
    assert json.loads(summary["lake.source-files"]) == [
        {"path": e.key, "size": e.size, "etag": e.etag} for e in landing
    ]


def _cli(
    args: list[str], lake: Path, home: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return materialize_cli(args, lake, home, extra_env)


def test_cli_materializes_one_partition(tmp_path: Path) -> None:
    """The lake and the catalog come from LAKE_STORE_URL / LAKE_CATALOG_URI (read by the
    resources when the run starts), not from the LAKE_HOME default."""
    lake, unused = tmp_path / "lake", tmp_path / "default-home"
    store = ObjectStore(str(lake))
    days = generate_events(store, START, days=1, rows_per_day=400, seed=2)
    env = {"LAKE_STORE_URL": store.url, "LAKE_CATALOG_URI": f"sqlite:///{lake}/catalog.db"}
    done = _cli(
        ["--select", "group:events", "--partition", "2026-11-01"], unused, tmp_path / "dagster", env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert not unused.exists()
    catalog = sql_catalog(store, lake / "catalog.db")
    silver = catalog.load_table(SPEC.table_name).scan().to_arrow()
    assert rows(silver, columns=COLUMNS) == rows(days[0].valid)


def test_cli_partition_range_is_one_run(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    store = ObjectStore(str(lake))
    days = generate_events(store, START, days=2, rows_per_day=400, seed=4)
    done = _cli(
        ["--select", "lake/bronze/events", "--partition-range", "2026-11-01...2026-11-02"],
        lake,
        tmp_path / "dagster",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("RUN_SUCCESS") == 1
    bronze = duckdb_hive(store.path(SPEC.bronze_prefix), COLUMNS)
    assert rows(bronze) == sorted(
        [r for d in days for r in rows(d.valid)], key=lambda r: r["event_id"]
    )


def test_resources_read_the_environment_when_a_run_builds_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from lake_pipelines.definitions import build_definitions

    monkeypatch.setenv("LAKE_HOME", str(tmp_path))
    monkeypatch.setenv("LAKE_STORE_URL", "s3://bucket/lake")
    monkeypatch.setenv("LAKE_DF_BATCH_SIZE", "4096")
    monkeypatch.delenv("LAKE_CATALOG_URI", raising=False)
    resources = build_definitions().resources
    assert resources is not None
    # nothing is copied into the definitions: unset fields, read when a run starts
    assert resources["object_store"].url is None and resources["datafusion"].batch_size is None
    assert resources["object_store"].get_store().url == "s3://bucket/lake"
    assert resources["datafusion"].session_settings().batch_size == 4096
    assert resources["iceberg"].settings().uri == f"sqlite:///{tmp_path / 'catalog.db'}"


def test_each_resource_has_a_field_per_setting_of_its_section() -> None:
    pairs: list[tuple[type[dg.ConfigurableResource], type[Section]]] = [
        (ObjectStoreResource, StoreSettings),
        (IcebergCatalogResource, CatalogSettings),
        (DataFusionResource, DataFusionSettings),
    ]
    for resource, section in pairs:
        fields = resource.model_fields
        assert list(fields) == list(section.settings()), resource
        for name, spec in section.settings().items():
            assert fields[name].default is None
            assert spec.var in (fields[name].description or ""), (resource, name)


def test_run_config_overrides_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LAKE_S3_MAX_ATTEMPTS", "not a number")  # never read: config wins
    monkeypatch.setenv("LAKE_DF_MEMORY_LIMIT", "1GiB")

    class Seen(TypedDict, total=False):
        store: ObjectStore
        session: SessionSettings

    seen: Seen = {}

    @dg.asset
    def probe(object_store: ObjectStoreResource, datafusion: DataFusionResource) -> None:
        seen["store"] = object_store.get_store()
        seen["session"] = datafusion.session_settings()

    config = {
        "object_store": {"config": {"url": f"file://{tmp_path}", "max_attempts": 2}},
        "datafusion": {"config": {"memory_limit": "2GiB", "target_partitions": 3}},
    }
    resources = {"object_store": ObjectStoreResource(), "datafusion": DataFusionResource()}
    result = dg.materialize([probe], resources=resources, run_config={"resources": config})
    assert result.success
    assert (seen["store"].url, seen["store"].max_attempts) == (f"file://{tmp_path}", 2)
    assert (seen["session"].memory_limit, seen["session"].target_partitions) == (2 << 30, 3)


def test_env_example_lists_every_setting_and_secret() -> None:
    from lake_pipelines.config import SECRETS, variables

    text = (Path(__file__).resolve().parents[1] / ".env.example").read_text()
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, re.MULTILINE))
    assert set(variables()) | set(SECRETS.values()) <= listed


LAYERS = ("bronze", "silver", "gold")


def test_a_range_of_a_dataset_group_is_one_run_and_each_layer_shows_its_kind() -> None:
    """What makes Dagster launch a backfill of a group's range as one run: every asset of the
    group shares the partitions, backfills a range in one run, and reads the same partition
    of its upstream (a lookback mapping would widen the range and split the backfill)."""
    graph = defs.resolve_asset_graph()
    for spec_name in ("events", "orders"):
        keys = [k for k in graph.get_all_asset_keys() if graph.get(k).group_name == spec_name]
        assert {k.path[1] for k in keys} == set(LAYERS)
        partitions = {graph.get(k).partitions_def for k in keys}
        assert len(partitions) == 1
        for key in keys:
            node = graph.get(key)
            assert node.backfill_policy == dg.BackfillPolicy.single_run()
            assert set(LAYERS) & set(node.kinds) == {key.path[1]}  # the layer, at a glance
            for parent in node.parent_keys:
                mapping = node.partition_mappings.get(parent)
                assert mapping is None or mapping == dg.TimeWindowPartitionMapping(), key
