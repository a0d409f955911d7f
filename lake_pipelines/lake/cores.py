"""How many cores this process may use: its CPU affinity and its container's CPU quota.

`os.cpu_count()` counts the machine's: in a Kubernetes pod limited to 2 CPUs on a 32-core
node it says 32, and DataFusion would plan 32 partitions and a gold window 32 day-workers,
which the quota then throttles. The same holds for a systemd unit's `CPUQuota=` on a bare host.
Read when asked (a session is made at the start of a step), never at import.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

# The cgroup file system and this process's place in it (``/proc/self/cgroup``: ``0::<path>``
# under cgroup v2, ``<n>:cpu,cpuacct:<path>`` under v1).
_CGROUP_ROOT = "/sys/fs/cgroup"
_OWN_CGROUP = "/proc/self/cgroup"
_V1_MOUNTS = ("cpu,cpuacct", "cpu")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def _up_from(top: Path, path: str) -> list[Path]:
    """`top`/`path` and each folder above it up to `top`: a parent's limit binds its children.
    In a container without its own cgroup namespace the path is the host's and only `top`
    (the container's own cgroup, mounted there) exists: the others are skipped unread."""
    here = top / path.strip("/")
    return [here, *[p for p in here.parents if p.is_relative_to(top)]]


def cpu_quota(root: str = _CGROUP_ROOT, own: str = _OWN_CGROUP) -> float | None:
    """CPUs the cgroup quota of this process allows (quota / period; 1.5 for a limit of 1500m),
    the smallest along its cgroup's path (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` over
    ``cpu.cfs_period_us``), or None when there is no quota or no cgroup file says."""
    found = []
    for line in (_read(Path(own)) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if not controllers:  # v2: one unified hierarchy
            for folder in _up_from(Path(root), path):
                quota, _, period = (_read(folder / "cpu.max") or "").partition(" ")
                found.append(_ratio(quota, period))
        elif "cpu" in controllers.split(","):
            for folder in (f for m in _V1_MOUNTS for f in _up_from(Path(root) / m, path)):
                quota = _read(folder / "cpu.cfs_quota_us") or ""
                found.append(_ratio(quota, _read(folder / "cpu.cfs_period_us") or ""))
    quotas = [q for q in found if q is not None]
    return min(quotas) if quotas else None


def usable_cores() -> int:
    """The cores this process may run on: those its affinity allows, at most its container's
    CPU quota rounded up (a 1.5-CPU limit: 2), at least 1."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not offered on this platform
        affinity = os.cpu_count() or 1
    return cores_within(affinity, cpu_quota())


def cores_within(affinity: int, quota: float | None) -> int:
    """`affinity` cores, at most `quota` rounded up, at least 1."""
    cores = affinity if quota is None else min(affinity, math.ceil(quota))
    return max(1, cores)
