"""Run a command while sampling the memory of its whole process tree from the parent (task 10).

`measure.run` takes peak RSS from the kernel's rusage of one process; a Dagster run or a peer
may start processes of its own, so here the resident memory of the command and every
descendant is summed every `interval` seconds (psutil) and the largest sum is the peak. The
samples are kept with their wall-clock time, so a run's step events can be matched to them
(peak memory per layer). A run past its time limit or memory cap is stopped, with its tree.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence

import psutil

from benchmarks import measure
from benchmarks.child import RESULT_PREFIX

MIB = 1 << 20


def tree_rss(root: psutil.Process) -> int:
    """Bytes resident in `root` and all its descendants now (processes that just ended count 0)."""
    total = 0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
    return total


def _stop(root: psutil.Process) -> None:
    """Kill the tree this module started (descendants first), then reap what is left."""
    try:
        procs = [*root.children(recursive=True), root]
    except psutil.Error:
        procs = [root]
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            continue
    psutil.wait_procs(procs, timeout=10)


def run_sampled(
    command: Sequence[str],
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    interval: float = 0.2,
    timeout_s: float | None = None,
    rss_cap_mib: float | None = None,
) -> measure.Measurement:
    """Run `command` to completion, sampling its tree's RSS; raise `measure.RunFailed` on a
    non-zero exit, on `timeout_s` or when the tree holds more than `rss_cap_mib`."""
    samples: list[tuple[float, float]] = []
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(command),
            stdout=out,
            stderr=err,
            env=dict(env or measure.DEFAULT_ENV or os.environ),
            cwd=cwd or measure.DEFAULT_CWD,
        )
        root = psutil.Process(proc.pid)
        stopped = ""
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            mib = tree_rss(root) / MIB
            samples.append((time.time(), mib))
            elapsed = time.perf_counter() - started
            if rss_cap_mib is not None and mib > rss_cap_mib:
                stopped = (
                    f"stopped: its processes held {mib:,.0f} MiB, over the "
                    f"{rss_cap_mib:,.0f} MiB cap"
                )
            elif timeout_s is not None and elapsed > timeout_s:
                stopped = f"stopped: still running after {timeout_s:,.0f} s"
            if stopped:
                _stop(root)
                proc.returncode = -9
                break
            time.sleep(interval)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    if stopped:
        raise measure.RunFailed(command, -9, stopped)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise measure.RunFailed(command, code, stderr or stdout)
    peak = max((mib for _, mib in samples), default=0.0)
    m = measure.Measurement(wall=wall, cpu=usage.ru_utime + usage.ru_stime, max_rss_mib=peak)
    m.extra["rss_samples"] = len(samples)
    m.extra["_samples"] = samples  # dropped before the record is saved (see bigday.after)
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            reported = json.loads(line[len(RESULT_PREFIX) :])
            m.work, m.work_cpu, m.value = reported["seconds"], reported["cpu"], reported["value"]
    return m


class OwnPeak:
    """The most bytes this process held resident since `reset`, sampled every 50 ms by a
    daemon thread (the profiling scripts: `gold_profile`, `gold_memory`)."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.bytes = 0
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while True:
            self.bytes = max(self.bytes, self.process.memory_info().rss)
            time.sleep(0.05)

    def reset(self) -> None:
        self.bytes = 0

    def now(self) -> int:
        return int(self.process.memory_info().rss)
