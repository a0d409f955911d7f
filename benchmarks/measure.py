"""Run a command as a child process and take its wall time, CPU time and peak RSS from the OS.

Peak RSS and CPU come from the kernel's rusage of exactly that process. A forked child's
``ru_maxrss`` starts at its parent's RSS (Linux folds the pre-exec address space into it), and
the harness itself holds hundreds of MiB after generating data; so the command is started
through GNU ``/usr/bin/time`` (a 2 MiB C program) and its ``%M`` is read. Without it, the
rusage from `os.wait4` is used, and the harness's RSS at the time is recorded alongside.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks.child import RESULT_PREFIX

GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
# Set once by the command line: the environment and directory every child starts with (they
# point children at the snapshot of the code being measured).
DEFAULT_ENV: dict[str, str] | None = None
DEFAULT_CWD: str | None = None


class RunFailed(RuntimeError):
    def __init__(self, command: Sequence[str], code: int, stderr: str) -> None:
        self.command, self.code = list(command), code
        tail = "\n".join(stderr.strip().splitlines()[-25:])
        super().__init__(f"exit {code}: {' '.join(command)[:300]}\n{tail}")


@dataclass
class Measurement:
    """One run: process wall seconds, CPU seconds and peak RSS from the OS, plus what the child
    reported about its own work (``work`` seconds around the task itself, after imports)."""

    wall: float
    cpu: float
    max_rss_mib: float
    work: float | None = None
    work_cpu: float | None = None
    value: Any = None
    processes: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run(
    command: Sequence[str], env: Mapping[str, str] | None = None, cwd: str | None = None
) -> Measurement:
    """Run one command to completion; raise `RunFailed` on a non-zero exit."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile(mode="r") as usage_file,
    ):
        argv = list(command)
        if GNU_TIME:
            argv = [GNU_TIME, "-f", "%M %U %S", "-o", usage_file.name, *argv]
        started = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=err,
            env=dict(env or DEFAULT_ENV or os.environ),
            cwd=cwd or DEFAULT_CWD,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
        timed = usage_file.read().strip().splitlines()
    if proc.returncode != 0:
        raise RunFailed(command, proc.returncode, stderr or stdout)
    m = Measurement(
        wall=wall, cpu=usage.ru_utime + usage.ru_stime, max_rss_mib=usage.ru_maxrss / 1024
    )
    if GNU_TIME and timed:
        kib, user, system = timed[-1].split()
        m.max_rss_mib, m.cpu = int(kib) / 1024, float(user) + float(system)
    else:
        m.extra["harness_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            reported = json.loads(line[len(RESULT_PREFIX) :])
            m.work, m.work_cpu, m.value = reported["seconds"], reported["cpu"], reported["value"]
            m.extra["vmhwm_mib"] = reported.get("vmhwm_mib")
    return m


def run_sequence(
    commands: Sequence[Sequence[str]], env: Mapping[str, str] | None = None, cwd: str | None = None
) -> Measurement:
    """Several processes one after the other, as one measurement: times add, peak RSS is the max."""
    parts = [run(c, env, cwd) for c in commands]
    return Measurement(
        wall=sum(p.wall for p in parts),
        cpu=sum(p.cpu for p in parts),
        max_rss_mib=max(p.max_rss_mib for p in parts),
        processes=len(parts),
    )
