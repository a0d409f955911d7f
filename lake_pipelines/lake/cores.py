"""How many cores this process may use: its CPU affinity and its container's CPU quota.

`os.cpu_count()` counts the machine's: in a Kubernetes pod limited to 2 CPUs on a 32-core
node it says 32, and DataFusion would plan 32 partitions and a gold window 32 day-workers,
which the quota then throttles. The same holds for a systemd unit's `CPUQuota=` on a bare host.
Read when asked (a session is made at the start of a step), never at import.
"""

from __future__ import annotations

import math
import os

from lake_pipelines.lake import cgroups

_V1_MOUNTS = ("cpu,cpuacct", "cpu")


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def cpu_quota(root: str = cgroups.ROOT, own: str = cgroups.OWN) -> float | None:
    """CPUs the cgroup quota of this process allows (quota / period; 1.5 for a limit of 1500m),
    the smallest along its cgroup's path (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` over
    ``cpu.cfs_period_us``), or None when there is no quota or no cgroup file says."""
    found = []
    for folder, v2 in cgroups.own_folders("cpu", _V1_MOUNTS, root, own):
        if v2:
            quota, _, period = (cgroups.read(folder / "cpu.max") or "").partition(" ")
        else:
            quota = cgroups.read(folder / "cpu.cfs_quota_us") or ""
            period = cgroups.read(folder / "cpu.cfs_period_us") or ""
        found.append(_ratio(quota, period))
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
