"""Test helpers: independent readers (DuckDB, pyarrow) and row normalisation for comparisons."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot

from lake_pipelines.datasets.spec import DEFAULT_HIVE_PARTITION_COLUMNS, DatasetSpec
from lake_pipelines.lake.analytics.session import SessionSettings, make_session, register_hive
from lake_pipelines.lake.parquet.options import file_schema
from lake_pipelines.lake.storage import ObjectStore


def normalise(value: Any) -> Any:
    """Comparable Python values: timestamps as UTC ISO strings, nested values recursively."""
    if isinstance(value, datetime):
        assert value.tzinfo is not None, "timestamps in the lake are UTC-aware"
        return value.timestamp()
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def rows(table: pa.Table, key: str = "event_id", columns: list[str] | None = None) -> list[dict]:
    """Rows of `table` (selected columns) sorted by `key`, normalised for comparison."""
    if columns is not None:
        table = table.select(columns)
    out = [{k: normalise(v) for k, v in r.items()} for r in table.to_pylist()]
    return sorted(out, key=lambda r: str(r[key]))


def duckdb_query(sql: str, **tables: Any) -> pa.Table:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for name, obj in tables.items():
        con.register(name, obj)
    return con.sql(sql).to_arrow_table()


def duckdb_hive(
    path: str, columns: list[str], levels: tuple[str, ...] = DEFAULT_HIVE_PARTITION_COLUMNS
) -> pa.Table:
    """The Hive-partitioned Parquet under `path`, read by DuckDB (not by our code).

    `levels` are typed as integers: DuckDB reads zero-padded folder values (``month=01``)
    as text unless told (README, "Bronze partition layout")."""
    cols = ", ".join(columns)
    types = ", ".join(f"'{name}': INTEGER" for name in levels)
    return duckdb_query(
        f"SELECT {cols} FROM read_parquet('{path}/**/*.parquet', hive_partitioning = true, "
        f"hive_types = {{{types}}})"
    )


def current_snapshot(table: Table) -> Snapshot:
    """The table's current snapshot, which the test expects it to have."""
    snapshot = table.current_snapshot()
    assert snapshot is not None, f"{table.name()} has no current snapshot"
    return snapshot


def summary_of(snapshot: Snapshot | None) -> Mapping[str, str]:
    """The summary of `snapshot`, which the test expects to exist, as the mapping of strings
    pyiceberg's ``Summary`` is declared to be (its ``__getitem__`` says ``Any | None``: a
    missing key gives None rather than a KeyError)."""
    assert snapshot is not None and snapshot.summary is not None
    return snapshot.summary


def sequence_number(snapshot: Snapshot) -> int:
    """The snapshot's sequence number, which every format-version 2 table's snapshots have."""
    assert snapshot.sequence_number is not None
    return snapshot.sequence_number


class WorkerDied(AssertionError):
    """The ingestion process crashed or hung on an input."""


class IngestWorker:
    """A long-lived `ingest_worker` process: each `ingest` is one request, answered in its own
    process, so a segfault is a failed request (and a fresh worker), not a dead test run."""

    def __init__(self, timeout: float = 120.0) -> None:
        self.timeout = timeout
        self.proc: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "lake_pipelines_tests.ingest_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ingest(self, store: str, day: str, dataset: str = "events", **options: Any) -> dict:
        """Ingest `day` of `dataset`; the report's counts, or raises `WorkerDied`."""
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        assert self.proc.stdin is not None and self.proc.stdout is not None
        request = {"store": store, "day": day, "dataset": dataset, **options}
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        ready, _, _ = select.select([self.proc.stdout], [], [], self.timeout)
        if not ready:
            self.proc.kill()
            self.proc.wait()
            raise WorkerDied(f"ingestion hung for {self.timeout} s on {request}")
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            raise WorkerDied(f"ingestion process died with exit code {code} on {request}")
        return json.loads(line)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


LAKE_VARIABLES = ("LAKE_STORE_URL", "LAKE_CATALOG_URI", "LAKE_WAREHOUSE", "LAKE_CATALOG_TYPE")


def materialize_cli(
    args: list[str],
    lake: Path,
    home: Path,
    extra_env: dict[str, str] | None = None,
    dagster_yaml: str = "telemetry:\n  enabled: false\n",
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """`dagster asset materialize -m lake_pipelines.definitions ARGS` as a user runs it: its own
    process, a lake under `lake` (``LAKE_HOME``) and an instance under `home`."""
    env = {**os.environ, "LAKE_HOME": str(lake), "DAGSTER_HOME": str(home)}
    for var in LAKE_VARIABLES:
        env.pop(var, None)
    env.update(extra_env or {})
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(dagster_yaml)
    command = ["asset", "materialize", "-m", "lake_pipelines.definitions", *args]
    return subprocess.run(
        [sys.executable, "-m", "dagster", *command],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def read_by_every_engine(store: ObjectStore, spec: DatasetSpec) -> dict[str, pa.Table]:
    """The dataset's whole bronze prefix as each engine's Hive reader returns it."""
    root = store.path(spec.bronze_prefix)
    ctx = make_session(SessionSettings(2))
    register_hive(
        ctx, "bronze", store, spec.bronze_prefix, file_schema(spec), spec.hive_partition_columns
    )
    return {
        "duckdb": duckdb_hive(root, ["*"], spec.hive_partition_columns),
        "polars": pl.scan_parquet(f"{root}/**/*.parquet", hive_partitioning=True)
        .collect()
        .to_arrow(),
        "pyarrow": pads.dataset(root, format="parquet", partitioning="hive").to_table(),
        "datafusion": ctx.sql("SELECT * FROM bronze").to_arrow_table(),
    }


def assert_snappy_table_codec(path: str) -> None:
    """What a file written after `write.parquet.compression-codec` was set to snappy on its
    table must show: the table's codec where the events spec names none, the spec's where
    it names one (the silver writer's and silver compaction's tests)."""
    meta = pq.ParquetFile(path).metadata
    group = meta.row_group(0)
    codecs = {
        group.column(i).path_in_schema: group.column(i).compression for i in range(meta.num_columns)
    }
    assert codecs["ts"] == "SNAPPY"
    assert codecs["properties.browser"] == "SNAPPY"
    assert codecs["url"] == "ZSTD"  # the events spec names its codec
