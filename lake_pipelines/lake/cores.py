"""How many cores this process may use: its CPU affinity and its container's CPU quota.

`os.cpu_count()` counts the machine's: in a Kubernetes pod limited to 2 CPUs on a 32-core
node it says 32, and DataFusion would plan 32 partitions and a gold window 32 day-workers,
which the quota then throttles. Read when asked (a session is made at the start of a step),
never at import.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

# cgroup v2 ("<quota> <period>", or "max <period>" without a quota), then v1 (quota -1: none).
_CGROUP_V2_CPU = "/sys/fs/cgroup/cpu.max"
_CGROUP_V1_CPU = ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def cpu_quota(v2: str = _CGROUP_V2_CPU, v1: tuple[str, str] = _CGROUP_V1_CPU) -> float | None:
    """CPUs the container's cgroup quota allows (quota / period; 1.5 for a limit of 1500m), or
    None when there is no quota or no cgroup file says."""
    text = _read(v2)
    if text is not None:
        parts = text.split()
        if len(parts) == 2 and parts[0] != "max":
            try:
                quota, period = int(parts[0]), int(parts[1])
            except ValueError:
                return None
            return quota / period if quota > 0 and period > 0 else None
        return None
    quota_text, period_text = _read(v1[0]), _read(v1[1])
    if quota_text is None or period_text is None:
        return None
    try:
        quota, period = int(quota_text), int(period_text)
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


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
