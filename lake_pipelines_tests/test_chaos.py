"""A flaky object store: the lake's runs survive injected S3 faults and end where a clean run does.

The project's own fault proxy (`fault_proxy.py`) sits between every client and moto: seeded
500/503 responses with S3 error bodies, connection resets and delays. Three days go through
every layer as in production: a landing-sensor tick, the daily runs (bronze, quarantine,
silver, gold, checks), a late file and a re-run, compaction of both layers, snapshot
maintenance. Everything is then read back fault-free by readers built here and compared with
the same work done without faults.

* at 20 % faults every run succeeds, and the lake equals the fault-free one;
* at 50 % a run either succeeds or fails with the S3 error named; a fault-free re-run then
  converges to the same lake, with no hidden or temporary object left behind.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, cast

import dagster as dg
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from lake_pipelines.assets import build_all_assets
from lake_pipelines.assets.maintenance import (
    CompactionConfig,
    build_bronze_compaction,
    build_silver_compaction,
)
from lake_pipelines.assets.snapshot_maintenance import build_snapshot_maintenance
from lake_pipelines.datasets import ALL_DATASETS, get_dataset
from lake_pipelines.definitions import defs
from lake_pipelines.lake.iceberg.lineage import last_lineage
from lake_pipelines.lake.retries import TRANSIENT_MARKERS
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.sample_data import generate_events
from lake_pipelines_tests.conftest import (
    S3_KEY,
    S3_REGION,
    S3_SECRET,
    FaultProxy,
    S3Server,
    dagster_resources,
    new_s3_lake,
)

SILVER_TABLES = {spec.table_name for spec in ALL_DATASETS}
pytestmark = pytest.mark.chaos  # make test-chaos (slow: the whole lake three times over)
SPEC = get_dataset("events")
START = date(2026, 3, 9)
DAYS = [(START + timedelta(days=i)).isoformat() for i in range(3)]
ROWS_PER_DAY = 300
# Columns that differ between any two runs, faults or not.
VOLATILE = {"run_id", "quarantined_at", "computed_at", "ingested_at"}
LINEAGE_VOLATILE = {"run-id", "committed-at", "seconds", "source-snapshot-id"}
# What a day's lineage says of its inputs whatever runs came before (the landed files).
LINEAGE_OF_INPUTS = ("day", "source-files", "rows")
HEADER = "event_id,ts,user_id,session_id,event_type,url,price,properties,latencies_ms\n"


@dataclass
class Outcome:
    """How the runs of one lake went."""

    failures: list[str]  # the failure message of each failed run
    retries: dict[str, int]  # the runs' `object_store_retries` metadata, summed per client


def _failure(result: dg.ExecuteInProcessResult) -> str:
    events = [e for e in result.all_events if e.is_step_failure or e.is_failure]
    return "\n".join(
        str(e.message) + str(getattr(e.event_specific_data, "error", "")) for e in events
    )


def _work(
    store: ObjectStore, db: Path, instance: dg.DagsterInstance, producer: ObjectStore | None = None
) -> Outcome:
    """Every kind of run the lake sees, in order; a failed run is recorded, not raised. The
    late file is landed through `producer` (default `store`): the faults are the lake's runs'
    to survive, not the uploader's, which lands its files on a network of its own."""
    resources = dagster_resources(store, db)
    failures: list[str] = []
    retries: Counter[str] = Counter()

    def run(assets: list[Any], **kwargs: Any) -> None:
        result = dg.materialize(
            assets, resources=resources, instance=instance, raise_on_error=False, **kwargs
        )
        if not result.success:
            failures.append(_failure(result))
        for event in result.get_asset_materialization_events():
            counts = event.materialization.metadata.get("object_store_retries")
            # the step's retries by client (`layer_metadata`): JSON of str -> int
            retries.update(cast("dict[str, int]", counts.value) if counts is not None else {})

    sensor = defs.resolve_sensor_def(f"{SPEC.name}_landing_sensor")
    context = dg.build_sensor_context(
        definitions=defs, resources={"object_store": resources["object_store"]}
    )
    tick = sensor.evaluate_tick(context)
    requested = sorted(
        r.partition_key or r.tags["dagster/asset_partition_range_start"]
        for r in tick.run_requests or []
    )
    assert requested[0] == DAYS[0], requested
    for day in DAYS:
        run(build_all_assets(), partition_key=day)
    late = f"late-1,{DAYS[0]}T23:00:01Z,u1,s1,click,,,,\n"
    (producer or store).write_bytes(
        f"{SPEC.landing_prefix}/{DAYS[0]}/late.csv", (HEADER + late).encode()
    )
    # the backfill a late file calls for: the whole range, so that the gold days whose
    # window holds the late day are recomputed too (whatever ran before)
    span = {
        "dagster/asset_partition_range_start": DAYS[0],
        "dagster/asset_partition_range_end": DAYS[-1],
    }
    run(build_all_assets(), tags=span)
    ops = [
        "lake__maintenance__events_bronze_compaction",
        "lake__maintenance__events_silver_compaction",
    ]
    run(
        [*build_all_assets(), build_bronze_compaction(SPEC), build_silver_compaction(SPEC)],
        selection=[
            dg.AssetKey(["lake", "maintenance", f"events_{layer}_compaction"])
            for layer in ("bronze", "silver")
        ],
        run_config=dg.RunConfig({op: CompactionConfig(force=True, verify="content") for op in ops}),
    )
    run(
        [build_snapshot_maintenance(SPEC)],
        run_config={
            "ops": {
                "lake__maintenance__events_iceberg_snapshots": {
                    "config": {"expire_older_than_days": 0, "retain_last": 1}
                }
            }
        },
    )
    return Outcome(failures, dict(retries))


@dataclass(frozen=True)
class Snapshot:
    """A lake as independent readers see it, without what differs between any two runs."""

    bronze: list[str]
    quarantine: list[str]
    tables: dict[str, list[str]]
    lineage: dict[str, list[str]]
    hidden: list[str]


def _fs(server: S3Server) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        access_key=S3_KEY,
        secret_key=S3_SECRET,
        region=S3_REGION,
        endpoint_override=server.endpoint.removeprefix("http://"),
        scheme="http",
    )


def _volatile(table: str) -> set[str]:
    """Lineage keys that differ between any two lakes. A gold day's fingerprint hashes its
    silver files' paths, which name the bucket and random file names; its rows and file
    count are compared."""
    return LINEAGE_VOLATILE | (set() if table in SILVER_TABLES else {"fingerprint"})


def _plain(rows: list[dict[str, Any]], bucket: str) -> list[str]:
    """Rows as sorted JSON lines, the lake's bucket name replaced (URIs name it)."""
    lines = (json.dumps(r, sort_keys=True, default=str) for r in rows)
    return sorted(line.replace(bucket, "BUCKET") for line in lines)


def _hive_rows(fs: pafs.FileSystem, root: str, bucket: str) -> list[str]:
    try:
        data = ds.dataset(root, format="parquet", partitioning="hive", filesystem=fs).to_table()
    except FileNotFoundError:
        return []
    keep = [c for c in data.column_names if c not in VOLATILE]
    return _plain(data.select(keep).to_pylist(), bucket)


def _read(server: S3Server, store: ObjectStore, db: Path) -> Snapshot:
    """What is in the lake, read straight from moto (not through the proxy)."""
    fs = _fs(server)
    root = f"{store.bucket}/lake"
    keys = [
        i.path
        for i in fs.get_file_info(pafs.FileSelector(root, recursive=True))
        if i.type == pafs.FileType.File
    ]
    hidden = [k for k in keys if any(p.startswith((".", "_")) for p in k.split("/")[2:])]
    hidden = [k for k in hidden if not k.endswith(("_lineage.json", "_SUCCESS"))]
    props = {
        "py-io-impl": "pyiceberg.io.pyarrow.PyArrowFileIO",
        "s3.endpoint": server.endpoint,
        "s3.access-key-id": S3_KEY,
        "s3.secret-access-key": S3_SECRET,
        "s3.region": S3_REGION,
    }
    catalog = SqlCatalog("lake", uri=f"sqlite:///{db}", **props)
    tables: dict[str, list[str]] = {}
    lineage: dict[str, list[str]] = {}
    for namespace in catalog.list_namespaces():
        for ident in catalog.list_tables(namespace):
            table = catalog.load_table(ident)
            name = ".".join(ident)
            data = table.scan().to_arrow()
            keep = [c for c in data.column_names if c not in VOLATILE]
            tables[name] = _plain(data.select(keep).to_pylist(), store.bucket)
            # each day's latest lineage (the snapshot summary that last replaced it)
            days = last_lineage(table, [date.fromisoformat(d) for d in DAYS])
            lineage[name] = _plain(
                [
                    {"day": str(d), **{k: v for k, v in line.items() if k not in _volatile(name)}}
                    for d, (_, line) in days.items()
                ],
                store.bucket,
            )
    return Snapshot(
        bronze=_hive_rows(fs, posixpath.join(root, SPEC.bronze_prefix), store.bucket),
        quarantine=_hive_rows(fs, posixpath.join(root, "quarantine"), store.bucket),
        tables=tables,
        lineage=lineage,
        hidden=sorted(hidden),
    )


def _differ(got: list[str], want: list[str]) -> list[str]:
    """What only one side has, marked ``+`` (got) or ``-`` (want)."""
    return sorted({f"+{x}" for x in set(got) - set(want)} | {f"-{x}" for x in set(want) - set(got)})


def _inputs(lines: list[str]) -> list[str]:
    keep = [{k: v for k, v in json.loads(x).items() if k in LINEAGE_OF_INPUTS} for x in lines]
    return sorted(json.dumps(x, sort_keys=True) for x in keep)


def _assert_same(got: Snapshot, want: Snapshot, whole_lineage: bool = True) -> None:
    """Equal, compared part by part so that a difference names its table and rows. With
    `whole_lineage` False only what silver's lineage says of a day's inputs is compared (a
    lake with other runs behind it has other bronze files, fingerprints and expired gold
    snapshots)."""
    assert _differ(got.bronze, want.bronze) == []
    assert _differ(got.quarantine, want.quarantine) == []
    assert sorted(got.tables) == sorted(want.tables)
    for name in want.tables:
        assert (name, _differ(got.tables[name], want.tables[name])) == (name, [])
        mine, theirs = got.lineage[name], want.lineage[name]
        if not whole_lineage:
            if name not in SILVER_TABLES:
                continue  # which gold snapshots maintenance expired depends on the history
            mine, theirs = _inputs(mine), _inputs(theirs)
        assert (name, _differ(mine, theirs)) == (name, [])


def _lake(
    server: S3Server, proxy: FaultProxy, tmp: Path, name: str, rate: float, bound: int = 2
) -> tuple[ObjectStore, Path, Outcome]:
    store = new_s3_lake(server, via=proxy.endpoint, bucket=name, max_attempts=5)
    # the uploader reaches the bucket directly, past the faults
    producer = dataclasses.replace(store, endpoint_url=server.endpoint)
    generate_events(producer, START, len(DAYS), ROWS_PER_DAY, seed=24, bad_rows=True)
    db = tmp / f"{name}.db"
    proxy.set_rate(rate, bound)
    try:
        with dg.instance_for_test() as instance:
            outcome = _work(store, db, instance, producer)
    finally:
        stats = proxy.stats()
        proxy.set_rate(0.0)
    print(f"{name}: faults {stats}, failures {len(outcome.failures)}, retries {outcome.retries}")
    return store, db, outcome


def _credentials(mp: pytest.MonkeyPatch) -> None:
    """In the environment, as in production (the resources read them there)."""
    mp.setenv("AWS_ACCESS_KEY_ID", S3_KEY)
    mp.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    mp.setenv("AWS_REGION", S3_REGION)
    mp.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="module")
def clean(
    s3_server: S3Server, fault_proxy: FaultProxy, tmp_path_factory: pytest.TempPathFactory
) -> Snapshot:
    with pytest.MonkeyPatch.context() as mp:
        _credentials(mp)
        tmp = tmp_path_factory.mktemp("chaos")
        store, db, outcome = _lake(s3_server, fault_proxy, tmp, "chaos-clean", 0.0)
        assert outcome.failures == []
        return _read(s3_server, store, db)


def test_at_20_percent_faults_every_run_succeeds_and_the_lake_equals_a_clean_one(
    s3_server: S3Server,
    fault_proxy: FaultProxy,
    clean: Snapshot,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _credentials(monkeypatch)
    store, db, outcome = _lake(s3_server, fault_proxy, tmp_path, "chaos-20", 0.2)
    assert outcome.failures == []
    assert outcome.retries["botocore"] > 0  # the runs report their retries
    got = _read(s3_server, store, db)
    _assert_same(got, clean)
    assert got.hidden == []


def test_at_50_percent_faults_runs_fail_cleanly_and_a_clean_rerun_converges(
    s3_server: S3Server,
    fault_proxy: FaultProxy,
    clean: Snapshot,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _credentials(monkeypatch)
    # A request may now fail more often in a row than a client tries: runs may fail.
    store, db, outcome = _lake(s3_server, fault_proxy, tmp_path, "chaos-50", 0.5, bound=8)
    for message in outcome.failures:  # each names the S3 error it gave up on
        assert any(marker in message for marker in TRANSIENT_MARKERS), message
    with dg.instance_for_test() as instance:
        again = _work(store, db, instance)
    assert again.failures == []
    got = _read(s3_server, store, db)
    _assert_same(got, clean, whole_lineage=False)
    assert got.hidden == []
