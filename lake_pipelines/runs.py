"""Runs whose process died: marked failed with a reason, their pool slots given back.

A run killed by SIGKILL, the OOM killer or a segfault never writes its failure, so Dagster
shows it STARTED forever, and its concurrency slots (the ``iceberg_*`` pools) block the next
run of the same table. With the daemon, Dagster's code server notices a dead run worker it
started; nothing notices a run that `dagster asset materialize` ran in its own process, or a
worker whose code server died as well. `reap_dead_runs` does, for runs of this host:

* the run's process id comes from its engine events ("Executing steps in process (pid: N)");
* the run is dead when no process with that id runs now, or the one that does started after
  the run did (the id was reused);
* it is then failed (`UNEXPECTED_TERMINATION`) with a message naming the process, and its
  pool slots are freed, so a re-run can start and converges (every write is idempotent).

Run it with ``python -m lake_pipelines.runs`` (`make demo` does, before it materializes); the
``lake_dead_run_reaper`` sensor does it every minute when the daemon runs. Process ids only
mean something on the machine that ran the run: on an instance whose run storage is not the
local SQLite default (PostgreSQL, shared by several machines), nothing is reaped here, and
Dagster's own run monitoring and the ``dagster/max_runtime`` tag are the way.
"""

from __future__ import annotations

import os
import socket
import sys

import dagster as dg
from dagster._core.events import DagsterEventType, JobFailureData, RunFailureReason

REAPER_SENSOR = "lake_dead_run_reaper"


def _process_start(pid: int) -> float | None:
    """When a live process started (epoch seconds), from Linux's /proc; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime"))
    except (FileNotFoundError, ProcessLookupError, StopIteration):
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def _run_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The id of the process that executed the run's steps, from its engine events."""
    records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.ENGINE_EVENT, ascending=False, limit=50
    ).records
    for record in records:
        event = record.event_log_entry.dagster_event
        data = event.engine_event_data if event is not None else None
        if data is not None and "pid" in data.metadata:
            return int(str(data.metadata["pid"].value))
    return None


def is_local(instance: dg.DagsterInstance) -> bool:
    """Whether the instance's runs all ran on this machine (its run storage is local SQLite)."""
    # imported here: SQLAlchemy is slow to import, and the code location loads this module
    from dagster._core.storage.runs import SqliteRunStorage

    return isinstance(instance.run_storage, SqliteRunStorage)


def reap_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Fail every started run of this machine whose process is gone; their ids."""
    if not is_local(instance) or not os.path.isdir("/proc"):
        return []
    reaped = []
    statuses = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=statuses)):
        run = record.dagster_run
        pid = _run_pid(instance, run.run_id)
        if pid is None:
            continue  # not started far enough to tell
        started = _process_start(pid)
        if started is not None and started <= (record.start_time or 0) + 1:
            continue  # the same process is still at work
        current = instance.get_run_by_id(run.run_id)
        if current is None or current.is_finished:
            continue
        message = (
            f"The process that ran this run (pid {pid} on {socket.gethostname()}) died "
            "without finishing it (killed, out of memory, or crashed). Nothing it did not "
            "commit is visible; re-run the same partitions to converge."
        )
        instance.report_engine_event(message, current)
        instance.report_run_failed(
            current,
            message,
            JobFailureData(error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION),
        )
        if instance.event_log_storage.supports_global_concurrency_limits:
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        reaped.append(run.run_id)
    return reaped


def build_reaper_sensor() -> dg.SensorDefinition:
    """With the daemon: reaps dead runs every minute (see the module docstring)."""

    @dg.sensor(
        name=REAPER_SENSOR,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Fails runs whose process died (SIGKILL, out of memory, segfault) without "
            "writing their end, and frees their pool slots, so the next run of the same "
            "tables is not blocked. Local SQLite instances only."
        ),
    )
    def lake_dead_run_reaper(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        reaped = reap_dead_runs(context.instance)
        for run_id in reaped:
            context.log.warning(f"run {run_id} had died without finishing: marked failed")
        return dg.SkipReason(f"{len(reaped)} dead runs marked failed")

    return lake_dead_run_reaper


def main() -> int:
    with dg.DagsterInstance.get() as instance:
        reaped = reap_dead_runs(instance)
    for run_id in reaped:
        print(f"run {run_id}: its process had died; marked failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
