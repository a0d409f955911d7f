"""How much memory this process may use: its container's limit, else the machine's RAM.

Read when asked (a session's settings are resolved at the start of a run), never at import.
"""

from __future__ import annotations

import os
from pathlib import Path

from lake_pipelines.lake import cgroups

# v1 reports a huge number when there is no limit.
_NO_LIMIT = 1 << 60


def machine_memory() -> int:
    """Bytes of physical memory of the machine (0 if the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def _bytes(text: str | None) -> int | None:
    try:
        value = int(text or "")  # v2 says "max" for none
    except ValueError:
        return None
    return value if 0 < value < _NO_LIMIT else None


def container_limit(root: str = cgroups.ROOT, own: str = cgroups.OWN) -> int | None:
    """The memory limit of this process's cgroup in bytes, the smallest along its cgroup's
    path (a pod's limit binds its containers, a systemd unit's `MemoryMax=` its processes):
    v2 ``memory.max``, and ``memory.high``, above which the kernel throttles and reclaims;
    v1 ``memory.limit_in_bytes``. None when there is none, or no cgroup file says."""
    found = []
    for folder, v2 in cgroups.own_folders("memory", ("memory",), root, own):
        names = ("memory.max", "memory.high") if v2 else ("memory.limit_in_bytes",)
        found += [_bytes(cgroups.read(folder / name)) for name in names]
    limits = [b for b in found if b is not None]
    return min(limits) if limits else None


def available_memory() -> int:
    """The memory this process may use: the smaller of the container's limit and the RAM."""
    ram = machine_memory()
    limit = container_limit()
    if limit is None:
        return ram
    return min(limit, ram) if ram else limit


def share_of_memory(percent: float) -> int:
    """`percent` % of `available_memory`, in bytes."""
    return int(available_memory() * percent / 100)


DEFAULT_QUERY_MEMORY = 2 << 30
DEFAULT_QUERY_SHARE = 25.0


def default_query_memory() -> int:
    """The default memory limit of a DataFusion session: 2 GiB, or a quarter of the memory
    available when that is less (a 4 GiB container gets 1 GiB).

    Why not a share of a big machine: a run's process holds its other layers and libraries
    too (~0.6 GiB after a big day's bronze and silver), several runs or Celery workers share
    a machine, and gold's queries spill what does not fit (their distinct counts are GROUP
    BYs that spill, `lake.analytics.queries`). Why not less: a week of 5M events already
    spills under 1 GiB, and spilling made the daily metrics 2-3x slower (3.4 s unlimited or
    at 2 GiB, 7.4 s at 1 GiB, 9.4 s at 512 MiB; benchmarks/RESULTS.md, run 22).
    """
    return min(DEFAULT_QUERY_MEMORY, share_of_memory(DEFAULT_QUERY_SHARE))


def _status(field: str) -> int:
    """A ``kB`` field of /proc/self/status in bytes (0 when the OS has no such file)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) << 10
    except (OSError, ValueError, IndexError):
        pass
    return 0


def resident_bytes() -> int:
    """Bytes resident in this process now (Linux; 0 elsewhere)."""
    return _status("VmRSS")


def peak_resident_bytes() -> int:
    """The most bytes this process held resident since it started or since the last
    `reset_peak_resident` (Linux; 0 elsewhere)."""
    return _status("VmHWM")


def reset_peak_resident() -> bool:
    """Start `peak_resident_bytes` again from what is resident now (Linux ``clear_refs``),
    so a step running in a shared process can report its own peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _malloc_trim() -> bool:
    """glibc's ``malloc_trim(0)``: hand the free pages of every arena back to the OS."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, macOS): nothing to trim
        return False
    return bool(libc.malloc_trim(0))


def release_memory() -> None:
    """Give the memory a finished step freed back to the OS.

    In the embedded deployment every step of a run shares one process. The allocators keep
    what a step freed for reuse: pyarrow's pool its pages (mimalloc, pyarrow's default, in
    the heap of the thread that freed them; jemalloc, the lake's choice on Linux, until its
    background thread returns them about a second later), glibc its arenas (the Python
    objects, DataFusion's and pyiceberg's buffers). The next step, whose buffers are of
    other sizes, then adds its own peak on top, so a run's memory grew with every layer
    (benchmarks/ANALYSIS.md, run 23). Cheap: a few milliseconds.
    """
    import pyarrow as pa  # a step that ran has imported it already

    pa.default_memory_pool().release_unused()
    _malloc_trim()
