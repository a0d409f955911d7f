"""The lakes of `test_store_end_to_end.py`: one per store, each taken through every step.

`build_lake` runs three days through every layer as Dagster runs, a re-run of a day beside a
live writer's temporary file, compaction of both layers, snapshot expiry and orphan cleanup
beside a fresh uncommitted file, recording what each step left in `Lake.seen` (read back with
pyarrow's own filesystem for the store and pyiceberg scans, never lake_pipelines' readers).
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
from pyiceberg.catalog.sql import SqlCatalog

from lake_pipelines.assets import build_all_assets
from lake_pipelines.assets.maintenance import build_bronze_compaction, build_silver_compaction
from lake_pipelines.assets.snapshot_maintenance import build_snapshot_maintenance
from lake_pipelines.datasets import events
from lake_pipelines.definitions import defs
from lake_pipelines.lake.gold import metrics_table_name
from lake_pipelines.lake.iceberg.maintenance import remove_orphans
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.sample_data import SampleDay
from lake_pipelines_tests.conftest import (
    S3_KEY,
    S3_REGION,
    S3_SECRET,
    S3Server,
    dagster_resources,
    new_s3_lake,
    sql_catalog,
)
from lake_pipelines_tests.emulators import (
    AZURITE_ACCOUNT,
    AZURITE_KEY,
    AzuriteServer,
    GcsServer,
    new_azure_lake,
    new_gcs_lake,
)
from lake_pipelines_tests.lake.compaction.data import events as tiny_events

STORES = ["file", "s3", "gs", "az"]
START = date(2026, 3, 2)
DAYS = 3
ROWS_PER_DAY = 300
SEED = 7
SPEC = events.SPEC
SENSOR = defs.resolve_sensor_def("events_landing_sensor")
# Everything but run_id and quarantined_at, which differ from run to run.
QUARANTINE_COMPARED = ["dataset", "partition", "kind", "source_file", "line", "column", "reason"]
METRIC_COLUMNS = ["day", "event_type", "events", "distinct_users", "distinct_sessions", "revenue"]


@dataclass
class Lake:
    """One materialized lake, independent ways to look at it, and what each step saw."""

    kind: str
    store: ObjectStore
    catalog_db: Path
    samples: list[SampleDay]
    fs: pafs.FileSystem  # pyarrow's own filesystem for the store, built here
    root: str  # the lake's root as `fs` sees it
    seen: dict[str, Any] = field(default_factory=dict)

    def dataset(self, prefix: str) -> ds.Dataset:
        return ds.dataset(
            posixpath.join(self.root, prefix),
            format="parquet",
            partitioning="hive",
            filesystem=self.fs,
        )

    def catalog(self) -> SqlCatalog:
        return sql_catalog(self.store, self.catalog_db)

    def keys(self, prefix: str = "") -> list[str]:
        """Every object under `prefix`, hidden ones too, listed by pyarrow."""
        base = posixpath.join(self.root, prefix).rstrip("/")
        infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
        return sorted(i.path[len(self.root) + 1 :] for i in infos if i.type == pafs.FileType.File)


# -- the stores, each with an independent pyarrow filesystem ------------------------------


def _file_lake(tmp: Path, *_: Any) -> tuple[ObjectStore, pafs.FileSystem, str]:
    return ObjectStore(f"file://{tmp / 'lake'}"), pafs.LocalFileSystem(), str(tmp / "lake")


def _s3_lake(_: Path, s3: S3Server, *__: Any) -> tuple[ObjectStore, pafs.FileSystem, str]:
    store = new_s3_lake(s3)
    fs = pafs.S3FileSystem(
        access_key=S3_KEY,
        secret_key=S3_SECRET,
        region=S3_REGION,
        endpoint_override=s3.endpoint.removeprefix("http://"),
        scheme="http",
    )
    return store, fs, store.root


def _gs_lake(_: Path, __: S3Server, gcs: GcsServer, *___: Any) -> tuple[ObjectStore, Any, str]:
    store = new_gcs_lake(gcs)
    fs = pafs.GcsFileSystem(
        anonymous=True, endpoint_override=gcs.endpoint.removeprefix("http://"), scheme="http"
    )
    return store, fs, store.root


def _az_lake(
    _: Path, __: S3Server, ___: GcsServer, az: AzuriteServer
) -> tuple[ObjectStore, Any, str]:
    store = new_azure_lake(az)
    authority = az.endpoint.removeprefix("http://")
    fs = pafs.AzureFileSystem(
        account_name=AZURITE_ACCOUNT,
        account_key=AZURITE_KEY,
        blob_storage_authority=authority,
        blob_storage_scheme="http",
        dfs_storage_authority=authority,  # Azurite has no dfs endpoint; the probe fails over
        dfs_storage_scheme="http",
    )
    return store, fs, store.root


MAKERS: dict[str, Callable[..., tuple[ObjectStore, Any, str]]] = {
    "file": _file_lake,
    "s3": _s3_lake,
    "gs": _gs_lake,
    "az": _az_lake,
}


# -- the steps every lake goes through ------------------------------------------------------


def _run(
    store: ObjectStore, db: Path, assets: list, instance: dg.DagsterInstance, **kw: Any
) -> dg.ExecuteInProcessResult:
    result = dg.materialize(assets, resources=dagster_resources(store, db), instance=instance, **kw)
    assert result.success
    failed = [c.check_name for c in result.get_asset_check_evaluations() if not c.passed]
    assert failed == []
    return result


def checksum(table: pa.Table, columns: list[str], order: list[str]) -> str:
    rows = table.select(columns).sort_by([(c, "ascending") for c in order]).to_pylist()
    return f"{len(rows)}:" + hashlib.sha256(repr(rows).encode()).hexdigest()[:16]


def _state(lake: Lake) -> dict[str, Any]:
    """What the lake holds, read independently: row checksums per layer, gold metrics."""
    columns = SPEC.schema.names
    catalog = lake.catalog()
    gold = catalog.load_table(metrics_table_name(SPEC)).scan().to_arrow()
    return {
        "bronze": checksum(lake.dataset(SPEC.bronze_prefix).to_table(), columns, ["event_id"]),
        "quarantine": checksum(
            lake.dataset("quarantine/events").to_table(),
            QUARANTINE_COMPARED,
            ["partition", "source_file", "line", "kind", "reason"],
        ),
        "silver": checksum(
            catalog.load_table(SPEC.table_name).scan().to_arrow(), columns, ["event_id"]
        ),
        "gold": checksum(gold, METRIC_COLUMNS[:-1], ["day", "event_type"]),
        "revenue": [
            None if v is None else round(v, 6)
            for v in gold.sort_by([("day", "ascending"), ("event_type", "ascending")])
            .column("revenue")
            .to_pylist()
        ],
    }


def _fresh_file(lake: Lake, key: str) -> str:
    """An uncommitted file as a running writer leaves it: uploaded just now."""
    lake.store.write_bytes(key, b"not committed yet")
    return key


def build_lake(lake: Lake) -> None:
    store, db = lake.store, lake.catalog_db
    daily = build_all_assets()
    with dg.instance_for_test() as instance:
        for d in range(DAYS):
            _run(store, db, daily, instance, partition_key=(START + timedelta(days=d)).isoformat())
        lake.seen["first"] = _state(lake)
        lake.seen["bronze_keys"] = lake.keys(SPEC.bronze_prefix)

        # A re-run of the second day, while another writer's temporary file sits in bronze.
        day2 = START + timedelta(days=1)
        tmp = _fresh_file(
            lake, f"{SPEC.bronze_prefix}/year=2026/month=03/day=03/.part-x.parquet.abcd.tmp"
        )
        _run(store, db, daily, instance, partition_key=day2.isoformat())
        lake.seen["rerun"] = _state(lake)
        lake.seen["fresh_tmp_kept"] = store.exists(tmp)
        store.delete([tmp])
        lake.seen["bronze_keys_rerun"] = lake.keys(SPEC.bronze_prefix)

        # Compaction of both layers (forced: the days are small), after a few tiny appends
        # to silver's first day (one data file a day otherwise, nothing to merge).
        table = lake.catalog().load_table(SPEC.table_name)
        extra = tiny_events(np.random.default_rng(SEED), START, 20, offset=900_000)
        for i in range(4):
            table.append(extra.slice(5 * i, 5).cast(table.schema().as_arrow()))
        lake.seen["before_compaction"] = _state(lake)
        lake.seen["silver_files_before"] = len(table.inspect.data_files())
        compaction = [build_bronze_compaction(SPEC), build_silver_compaction(SPEC)]
        config = {"force": True, "verify": "content"}
        result = _run(
            store,
            db,
            compaction,
            instance,
            run_config={"ops": {a.op.name: {"config": config} for a in compaction}},
        )
        lake.seen["compaction"] = {
            a.op.name: result.asset_materializations_for_node(a.op.name)[0]
            .metadata["checksums"]
            .value
            for a in compaction
        }
        lake.seen["compacted"] = _state(lake)
        lake.seen["bronze_files_compacted"] = len(lake.keys(SPEC.bronze_prefix))
        table = lake.catalog().load_table(SPEC.table_name)
        lake.seen["silver_files_after"] = len(table.inspect.data_files())

        # Expiry and orphan cleanup, beside an uncommitted file of a running writer.
        fresh = _fresh_file(
            lake, store.key_of(table.location()) + "/data/fresh-uncommitted.parquet"
        )
        lake.seen["snapshots_before"] = len(table.snapshots())
        maintenance = [build_snapshot_maintenance(SPEC)]
        keep = {"expire_older_than_days": 0.0, "retain_last": 1, "orphan_older_than_days": 3.0}
        _run(
            store,
            db,
            maintenance,
            instance,
            run_config={"ops": {maintenance[0].op.name: {"config": keep}}},
        )
        table = lake.catalog().load_table(SPEC.table_name)
        lake.seen["snapshots_after"] = len(table.snapshots())
        # Tags (per-day lineage) protect their snapshots; all others but the newest expire.
        refs = {r.snapshot_id for r in table.metadata.refs.values()}
        lake.seen["snapshots_protected"] = len(refs)
        lake.seen["fresh_orphan_kept"] = store.exists(fresh)
        lake.seen["maintained"] = _state(lake)
        # Four days later the same file is an orphan like any other.
        later = remove_orphans(
            table,
            store,
            timedelta(days=3),
            dry_run=False,
            now=datetime.now(UTC) + timedelta(days=4),
        )
        lake.seen["late_orphans"] = [store.key_of(p) for p in later.orphans]
        lake.seen["fresh_orphan_gone"] = not store.exists(fresh)


@dataclass
class Lakes:
    """The four lakes, each built on first use (a failing store fails only its own tests)."""

    make: Callable[[str], Lake]
    built: dict[str, Lake | BaseException] = field(default_factory=dict)

    def get(self, kind: str) -> Lake:
        if kind not in self.built:
            try:
                self.built[kind] = self.make(kind)
            except Exception as exc:  # built once: its other tests fail with the same error
                self.built[kind] = exc
        found = self.built[kind]
        if isinstance(found, BaseException):
            raise found
        return found


def generated_rows(lake: Lake) -> pa.Table:
    return pa.concat_tables(s.valid for s in lake.samples)


def expected_metrics(generated: pa.Table) -> pa.Table:
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
    names = ["event_id_count", "user_id_count_distinct", "session_id_count_distinct", "price_sum"]
    return agg.select(["day", "event_type", *names]).rename_columns(METRIC_COLUMNS)
