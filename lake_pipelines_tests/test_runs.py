"""A run whose process was killed does not stay STARTED: the reaper fails it with a reason."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import DagsterEventType

from lake_pipelines.runs import reap_dead_runs

DAGSTER = str(Path(sys.executable).with_name("dagster"))


def _start(home: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                DAGSTER,
                "asset",
                "materialize",
                "-m",
                "lake_pipelines_tests.slow_defs",
                "--select",
                "slow",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait_started(instance: dg.DagsterInstance, known: set[str], deadline: float) -> dg.DagsterRun:
    """The new run, once its step has started (its pid event is written before that)."""
    while time.monotonic() < deadline:
        for run in instance.get_runs():
            if run.run_id in known:
                continue
            steps = instance.get_records_for_run(
                run.run_id, of_type=DagsterEventType.STEP_START
            ).records
            if steps:
                return run
        time.sleep(0.5)
    pytest.fail("the run did not start its step in time")


def _reap_with_the_sensor(instance: dg.DagsterInstance) -> list[str]:
    """What the daemon does every minute: evaluate the code location's reaper sensor."""
    from lake_pipelines.definitions import defs
    from lake_pipelines.runs import REAPER_SENSOR

    before = {r.run_id for r in instance.get_runs() if r.status == dg.DagsterRunStatus.FAILURE}
    sensor = defs.resolve_sensor_def(REAPER_SENSOR)
    sensor(dg.build_sensor_context(instance=instance))
    after = {r.run_id for r in instance.get_runs() if r.status == dg.DagsterRunStatus.FAILURE}
    return sorted(after - before)


@pytest.mark.parametrize("reap", [reap_dead_runs, _reap_with_the_sensor], ids=["cli", "daemon"])
def test_a_killed_run_is_failed_by_the_reaper_and_a_live_one_is_not(
    tmp_path: Path, reap: Callable[[dg.DagsterInstance], list[str]]
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    log = tmp_path / "runs.log"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        doomed = _start(home, log)
        victim = _wait_started(instance, set(), time.monotonic() + 120)
        alive = _start(home, log)
        try:
            survivor = _wait_started(instance, {victim.run_id}, time.monotonic() + 120)
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(timeout=30)
            started = instance.get_run_by_id(victim.run_id)
            assert started is not None
            assert started.status == dg.DagsterRunStatus.STARTED

            assert reap(instance) == [victim.run_id]

            dead = instance.get_run_by_id(victim.run_id)
            assert dead is not None
            assert dead.status == dg.DagsterRunStatus.FAILURE
            assert dead.tags.get("dagster/failure_reason") == "UNEXPECTED_TERMINATION"
            failure = instance.get_records_for_run(
                victim.run_id, of_type=DagsterEventType.RUN_FAILURE
            ).records
            event = failure[0].event_log_entry.dagster_event
            assert event is not None and event.message is not None
            assert f"pid {doomed.pid}" in event.message
            live = instance.get_run_by_id(survivor.run_id)
            assert live is not None
            assert live.status == dg.DagsterRunStatus.STARTED  # its process still runs
            assert reap(instance) == []  # nothing left to reap
        finally:
            alive.kill()
            alive.wait(timeout=30)
