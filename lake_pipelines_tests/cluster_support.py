"""Helpers of the cluster tests: the web UI's GraphQL API, the run history, table digests."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterator, Mapping
from datetime import date, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from lake_pipelines.datasets import events
from lake_pipelines.lake.analytics.queries import gold_identifier, gold_tables_for
from lake_pipelines.lake.ingest import quarantine
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines_tests.support import normalise

REPO = {"repositoryName": "__repository__", "repositoryLocationName": "lake_pipelines"}
DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


class ServerError(AssertionError):
    """The web UI answered with an HTTP error; `body` holds the server's own messages."""

    def __init__(self, code: int, body: str) -> None:
        super().__init__(f"web UI answered HTTP {code}: {body}")
        self.body = body


class GraphQL:
    """The web UI's GraphQL endpoint, as the UI and scripts call it."""

    def __init__(self, url: str) -> None:
        self.url = f"{url}/graphql"

    def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables}).encode()
        request = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as exc:
            # a resolver that raised answers 500 with the server's messages in the body
            raise ServerError(exc.code, exc.read().decode(errors="replace")[:4000]) from None
        assert "errors" not in answer, answer["errors"]
        return answer["data"]

    def stop_sensors(self) -> list[str]:
        """Stop every sensor, so that only the runs a test launches touch the lake."""
        data = self(
            "query($r: RepositorySelector!) { sensorsOrError(repositorySelector: $r) {"
            " ... on Sensors { results { id name } } } }",
            r=REPO,
        )
        names = []
        for sensor in data["sensorsOrError"]["results"]:
            stopped = self._stop_sensor(sensor["id"])
            assert stopped["instigationState"]["status"] == "STOPPED", stopped
            names.append(sensor["name"])
        return names

    def _stop_sensor(self, sensor_id: str, attempts: int = 5) -> dict[str, Any]:
        """Stop one sensor. Dagster reads a sensor's stored state and inserts one when there is
        none; the daemon's first tick does the same, so on a fresh instance the two inserts
        can collide ("already present in storage"); the next try finds the daemon's row.
        Test setup, not the behaviour under test: any server error is tried again a few
        times, and each one is printed (pytest shows it if the test fails)."""
        for attempt in range(attempts):
            try:
                return self(
                    "mutation($id: String) { stopSensor(id: $id) { __typename"
                    " ... on StopSensorMutationResult { instigationState { status } } } }",
                    id=sensor_id,
                )["stopSensor"]
            except ServerError as exc:
                print(f"stopping sensor {sensor_id}, attempt {attempt + 1}: {exc}")
                if attempt == attempts - 1:
                    raise
                time.sleep(2)
        raise AssertionError("unreachable")

    def group_keys(self, group: str) -> list[list[str]]:
        data = self(
            "query($g: AssetGroupSelector) { assetNodes(group: $g) { assetKey { path } } }",
            g={"groupName": group, **REPO},
        )
        return [node["assetKey"]["path"] for node in data["assetNodes"]]

    def launch_backfill(self, keys: list[list[str]], first: date, days: int) -> str:
        partitions = [(first + timedelta(days=i)).isoformat() for i in range(days)]
        data = self(
            "mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p)"
            " { __typename ... on LaunchBackfillSuccess { backfillId }"
            " ... on PythonError { message } ... on InvalidSubsetError { message } } }",
            p={"assetSelection": [{"path": k} for k in keys], "partitionNames": partitions},
        )["launchPartitionBackfill"]
        assert data["__typename"] == "LaunchBackfillSuccess", data
        return str(data["backfillId"])

    def backfill(self, backfill_id: str) -> dict[str, Any]:
        return self(
            "query($id: String!) { partitionBackfillOrError(backfillId: $id) {"
            " ... on PartitionBackfill { status runs(limit: 1000) { runId status } } } }",
            id=backfill_id,
        )["partitionBackfillOrError"]

    def wait_backfill(self, backfill_id: str, timeout: float = 1500) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (state := self.backfill(backfill_id))["status"] not in DONE:
            assert time.monotonic() < deadline, f"backfill {backfill_id} still {state}"
            time.sleep(3)
        return state


@contextlib.contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def open_instance(env: Mapping[str, str]) -> Any:
    """The cluster's Dagster instance (PostgreSQL), as its daemon sees it."""
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    with environment(env):
        return dg.DagsterInstance.from_ref(InstanceRef.from_dir(env["DAGSTER_HOME"]))


def step_executions(instance: Any, run_ids: list[str]) -> list[dict[str, Any]]:
    """Every step start of `run_ids`: run, step, the process (pid) and the Celery worker."""
    from dagster._core.events import DagsterEventType

    found = []
    for run_id in run_ids:
        worker = {}
        for record in instance.all_logs(run_id):
            event = record.dagster_event
            if event is None:
                continue
            if event.event_type == DagsterEventType.ENGINE_EVENT and event.step_key:
                name = event.engine_event_data.metadata.get("Celery worker")
                if name is not None:
                    worker[event.step_key] = name.value
            if event.event_type == DagsterEventType.STEP_START:
                found.append(
                    {"run": run_id, "step": event.step_key, "pid": event.pid, "worker": worker}
                )
    for step in found:  # the engine event precedes its step's start; keep only the name
        step["worker"] = step["worker"].get(step["step"])
    return found


def windows_read_before_written(
    instance: Any, run_ids: list[str], reader: str, written: str, lookback: int
) -> tuple[int, list[str]]:
    """The days of asset `reader` (keys `/`-joined) materialized by `run_ids`, and those whose
    step started before one of the days D-`lookback`..D of asset `written` it reads had been
    materialized (a line each)."""
    from dagster._core.events import DagsterEventType

    reader_step = reader.replace("/", "__")
    starts: dict[str, float] = {}  # run -> start of its `reader` step
    days_of_run: dict[str, list[date]] = defaultdict(list)
    written_at: dict[date, float] = {}  # day -> first materialization of `written`
    for run_id in run_ids:
        for record in instance.all_logs(run_id):
            event = record.dagster_event
            if event is None:
                continue
            if event.event_type == DagsterEventType.STEP_START and event.step_key == reader_step:
                starts.setdefault(run_id, record.timestamp)
            if event.event_type != DagsterEventType.ASSET_MATERIALIZATION:
                continue
            key, day = "/".join(event.asset_key.path), date.fromisoformat(event.partition)
            if key == reader:
                days_of_run[run_id].append(day)
            elif key == written:
                written_at[day] = min(written_at.get(day, record.timestamp), record.timestamp)
    late = []
    for run_id, start in starts.items():
        for day in days_of_run[run_id]:
            for back in range(lookback + 1):
                source = date.fromordinal(day.toordinal() - back)
                if source in written_at and written_at[source] > start:
                    late.append(f"{reader} {day} (run {run_id[:8]}) started before {source}")
    return sum(len(days) for days in days_of_run.values()), late


def _digest(table: pa.Table, day_of: pa.Array, days: set[date]) -> dict[str, tuple[int, str]]:
    """Per day of `days`: (rows, SHA-256 of the day's rows in a canonical order)."""
    by_day: dict[str, list[str]] = defaultdict(list)
    for day, row in zip(day_of.to_pylist(), table.to_pylist(), strict=True):
        if day in days:
            by_day[str(day)].append(json.dumps(normalise(row), sort_keys=True, default=str))
    return {
        day: (len(rows), hashlib.sha256("\n".join(sorted(rows)).encode()).hexdigest())
        for day, rows in sorted(by_day.items())
    }


def lake_digest(store: ObjectStore, catalog: Any, first: date, days: int) -> dict[str, Any]:
    """Rows per day and checksums of every layer of `events`: bronze Parquet (data columns),
    quarantine counts, the silver table and each gold table. Days outside the range are left
    out: a backfill of every layer also computes the days after it whose rolling windows
    (`events_active_users_7d`) read days of the range."""
    spec = events.SPEC
    names = spec.schema.names
    bronze = ds.dataset(
        store.path(spec.bronze_prefix), filesystem=store.arrow_fs, format="parquet"
    ).to_table(columns=names)
    day_list = [first + timedelta(days=i) for i in range(days)]
    in_range = set(day_list)
    out: dict[str, Any] = {"bronze": _digest(bronze, pc.cast(bronze["ts"], pa.date32()), in_range)}
    out["quarantine"] = {d.isoformat(): quarantine.counts(store, spec.name, d) for d in day_list}
    silver = catalog.load_table(spec.table_name).scan().to_arrow()
    out[spec.table_name] = _digest(silver, pc.cast(silver["ts"], pa.date32()), in_range)
    for gold in gold_tables_for(spec):
        name = gold_identifier(spec, gold)
        table = catalog.load_table(name).scan().to_arrow()
        out[name] = _digest(table, table["day"], in_range)
    return out


def wipe_lake(store: ObjectStore, catalog: Any) -> None:
    """Drop every table of the catalog and delete every object of the lake: a fresh lake."""
    for namespace in catalog.list_namespaces():
        for identifier in catalog.list_tables(namespace):
            catalog.drop_table(identifier)
    if store.fs.exists(store.path("")):
        store.fs.rm(store.path(""), recursive=True)
