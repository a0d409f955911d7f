"""``python -m benchmarks.cluster_bench``: a 30-day backfill of `events`, embedded vs the local
Celery cluster with 1 and 2 workers: wall time and peak RSS per process.

The embedded run is `dagster asset materialize --partition-range` in one process; the cluster
runs are `launchPartitionBackfill` through the web UI (as `make test-cluster` does), timed from
the launch to the backfill's completion. Peak RSS is each process's VmHWM, read from /proc just
before the cluster stops (the embedded run's from wait4). Not a test: it prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from lake_pipelines.cluster import Cluster
from lake_pipelines.config import StoreSettings
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.sample_data import generate_events
from lake_pipelines_tests.cluster_support import GraphQL, environment

FIRST = date(2026, 1, 1)


def _peak_rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _group_peaks(leader: int) -> float:
    """The largest peak RSS among the processes of `leader`'s process group."""
    peak = 0.0
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if os.getpgid(int(proc.name)) == leader:
                    peak = max(peak, _peak_rss_mib(int(proc.name)))
            except OSError:
                continue
    return peak


def embedded(root: Path, days: int, rows: int) -> dict[str, object]:
    store = ObjectStore(f"file://{root / 'lake'}")
    generate_events(store, FIRST, days=days, rows_per_day=rows, bad_rows=False)
    home = root / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "LAKE_HOME": str(root / "lake"), "DAGSTER_HOME": str(home)}
    env["LAKE_EXECUTOR"] = "in_process"
    last = date.fromordinal(FIRST.toordinal() + days - 1)
    cmd = [sys.executable, "-m", "dagster", "asset", "materialize", "-m"]
    cmd += ["lake_pipelines.definitions", "--select", "group:events"]
    cmd += ["--partition-range", f"{FIRST}...{last}"]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - start
    if status != 0:
        raise RuntimeError(f"embedded run failed ({status})")
    return {
        "setup": "embedded, 1 process",
        "seconds": seconds,
        "rss": f"{usage.ru_maxrss / 1024:.0f}",
    }


def clustered(root: Path, workers: int, days: int, rows: int) -> dict[str, object]:
    cluster = Cluster(root / "cluster")
    with environment({"LAKE_CELERY_WORKERS": str(workers)}):
        env = cluster.up()
    try:
        ui = GraphQL(env["LAKE_UI_URL"])
        ui.stop_sensors()
        store = StoreSettings.from_env(env).object_store(env)
        generate_events(store, FIRST, days=days, rows_per_day=rows, bad_rows=False)
        start = time.monotonic()
        backfill = ui.launch_backfill(ui.group_keys("events"), FIRST, days)
        state = ui.wait_backfill(backfill, timeout=7200)
        seconds = time.monotonic() - start
        if state["status"] != "COMPLETED_SUCCESS":
            raise RuntimeError(f"backfill ended {state['status']}")
        rss = []
        for k in range(1, workers + 1):
            leader = int((cluster.pids / f"worker-{k}.pid").read_text().split()[0])
            rss.append(f"worker {k}: {_group_peaks(leader):.0f}")
        daemon = int((cluster.pids / "daemon.pid").read_text().split()[0])
        rss.append(f"daemon and run coordinators: {_group_peaks(daemon):.0f}")
        return {"setup": f"Celery, {workers} worker(s)", "seconds": seconds, "rss": "; ".join(rss)}
    finally:
        cluster.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rows-per-day", type=int, default=40_000)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="lake-bench-") as tmp:
        results.append(embedded(Path(tmp) / "embedded", args.days, args.rows_per_day))
        for workers in (1, 2):
            root = Path(tmp) / f"cluster{workers}"
            results.append(clustered(root, workers, args.days, args.rows_per_day))
    one = float(str(results[1]["seconds"]))
    print(f"{args.days} days x {args.rows_per_day:,} events/day, every layer of events\n")
    print("| setup | wall s | vs 1 worker | peak RSS MiB |")
    print("|---|---:|---:|---|")
    for r in results:
        seconds = float(str(r["seconds"]))
        print(f"| {r['setup']} | {seconds:.0f} | {one / seconds:.2f}x | {r['rss']} |")


if __name__ == "__main__":
    main()
