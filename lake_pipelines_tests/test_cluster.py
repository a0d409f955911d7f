"""The distributed profile for real: `lake_pipelines.cluster` starts Redis, PostgreSQL, moto's S3
server, two Celery workers, the daemon and the web UI as separate processes; a 30-day backfill
of every layer of `events` launched through the web UI's GraphQL API spreads over the workers
and leaves the same tables as the embedded single-process run of the same input, also when a
worker process is killed in the middle of a step.

Run by ``make test-cluster`` (marker ``cluster``; ``make test`` leaves these out).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from lake_pipelines.cluster import Cluster
from lake_pipelines.config import CatalogSettings, StoreSettings
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.sample_data import generate_events
from lake_pipelines_tests.cluster_support import (
    GraphQL,
    environment,
    lake_digest,
    open_instance,
    step_executions,
    windows_read_before_written,
    wipe_lake,
)
from lake_pipelines_tests.conftest import sql_catalog
from lake_pipelines_tests.support import materialize_cli

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(3600)]

FIRST, DAYS, ROWS_PER_DAY, SEED = date(2026, 1, 1), 30, 3000, 20


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    run_dir = tmp_path_factory.mktemp("cluster")
    cluster = Cluster(run_dir)
    with environment({"LAKE_CELERY_WORKERS": "2", "LAKE_BACKFILL_DAYS_PER_RUN": "5"}):
        try:
            env = cluster.up()
        except BaseException:
            cluster.down()
            raise
    try:
        assert len(GraphQL(env["LAKE_UI_URL"]).stop_sensors()) >= 3
        yield env
    finally:
        stopped = cluster.down()
        assert {"redis", "postgres", "s3", "worker-1", "worker-2", "daemon", "webserver"} <= set(
            stopped
        )
        assert cluster.running() == []


def cluster_lake(env: dict[str, str]) -> tuple[ObjectStore, Any]:
    store = StoreSettings.from_env(env).object_store(env)
    return store, CatalogSettings.from_env(env).load(store)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same input through the embedded default: one `dagster asset materialize` process."""
    root = tmp_path_factory.mktemp("embedded")
    store = ObjectStore(f"file://{root / 'lake'}")
    generate_events(store, FIRST, days=DAYS, rows_per_day=ROWS_PER_DAY, seed=SEED)
    last = date.fromordinal(FIRST.toordinal() + DAYS - 1)
    done = materialize_cli(
        ["--select", "group:events", "--partition-range", f"{FIRST}...{last}"],
        lake=root / "lake",
        home=root / "home",
        extra_env={"LAKE_EXECUTOR": "in_process"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    catalog = sql_catalog(store, root / "lake" / "catalog.db")
    return lake_digest(store, catalog, FIRST, DAYS)


def backfill(env: dict[str, str]) -> tuple[GraphQL, str]:
    ui = GraphQL(env["LAKE_UI_URL"])
    keys = ui.group_keys("events")
    assert {"/".join(k) for k in keys} >= {"lake/bronze/events", "lake/silver/events"}
    return ui, ui.launch_backfill(keys, FIRST, DAYS)


def land(env: dict[str, str]) -> None:
    store, catalog = cluster_lake(env)
    wipe_lake(store, catalog)
    generate_events(store, FIRST, days=DAYS, rows_per_day=ROWS_PER_DAY, seed=SEED)


def test_a_backfill_spreads_over_the_workers_and_equals_the_embedded_run(
    cluster: dict[str, str], embedded: dict[str, Any]
) -> None:
    land(cluster)
    ui, backfill_id = backfill(cluster)
    state = ui.wait_backfill(backfill_id)
    assert state["status"] == "COMPLETED_SUCCESS", state
    runs = [r["runId"] for r in state["runs"]]
    assert len(runs) >= DAYS // 5  # LAKE_BACKFILL_DAYS_PER_RUN days per run
    assert {r["status"] for r in state["runs"]} == {"SUCCESS"}
    steps = step_executions(open_instance(cluster), runs)
    layers = {s["step"] for s in steps}
    assert {"lake__bronze__events", "lake__silver__events"} <= layers
    assert all(s["worker"] and s["worker"].startswith("lake-w") for s in steps), steps
    assert len({s["worker"] for s in steps}) >= 2, steps
    assert len({s["pid"] for s in steps}) >= 2, steps
    assert len({s["pid"] for s in steps} & {os.getpid()}) == 0
    assert_windows_complete(cluster, runs)
    store, catalog = cluster_lake(cluster)
    assert lake_digest(store, catalog, FIRST, DAYS) == embedded


def assert_windows_complete(cluster: dict[str, str], runs: list[str]) -> None:
    """Runs of different days run at once: no 7-day gold day started before a silver day of its
    window was written (it would have counted a window with holes)."""
    days, late = windows_read_before_written(
        open_instance(cluster),
        runs,
        "lake/gold/events_active_users_7d",
        "lake/silver/events",
        lookback=6,
    )
    assert days >= DAYS
    assert late == []


def _running_step(instance: Any, runs: list[str], step: str) -> dict[str, Any] | None:
    """A start of `step` in `runs` with no success yet."""
    from dagster._core.events import DagsterEventType

    for run_id in runs:
        started = [s for s in step_executions(instance, [run_id]) if s["step"] == step]
        finished = instance.all_logs(run_id, of_type=DagsterEventType.STEP_SUCCESS)
        if started and not any(r.dagster_event.step_key == step for r in finished):
            return started[-1]
    return None


def test_a_worker_killed_mid_step_leaves_the_tables_of_a_clean_run(
    cluster: dict[str, str], embedded: dict[str, Any]
) -> None:
    land(cluster)
    ui, backfill_id = backfill(cluster)
    instance = open_instance(cluster)
    victim = None
    deadline = time.monotonic() + 600
    while victim is None:
        assert time.monotonic() < deadline, "no bronze step started in 10 minutes"
        runs = [r["runId"] for r in ui.backfill(backfill_id)["runs"]]
        victim = _running_step(instance, runs, "lake__bronze__events")
        time.sleep(0.2)
    # the Celery worker process running the step, not the test or the run's coordinator
    assert Path(f"/proc/{victim['pid']}").exists()
    os.kill(victim["pid"], signal.SIGKILL)
    state = ui.wait_backfill(backfill_id)
    assert state["status"] == "COMPLETED_SUCCESS", state
    runs = [r["runId"] for r in state["runs"]]
    roots = {r: instance.get_run_by_id(r).tags.get("dagster/root_run_id", r) for r in runs}
    # run again, in the same run (Celery handed the step to another worker process) or in a
    # retry of it (Dagster's run retries)
    again = [
        s
        for s in step_executions(instance, runs)
        if s["step"] == victim["step"]
        and roots[s["run"]] in (victim["run"], roots.get(victim["run"]))
        and s["pid"] != victim["pid"]
    ]
    assert again, f"step {victim['step']} was not run again after its worker was killed"
    assert_windows_complete(cluster, runs)
    store, catalog = cluster_lake(cluster)
    assert lake_digest(store, catalog, FIRST, DAYS) == embedded
