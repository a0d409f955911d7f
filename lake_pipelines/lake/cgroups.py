"""The cgroups this process runs in: its own and every one above it, where limits bind it.

A Kubernetes pod's limit sits on the pod's cgroup, a parent of the container's; a systemd
unit's `CPUQuota=`/`MemoryMax=` on the unit's cgroup, far below the file system's root. Reading
only ``/sys/fs/cgroup/<file>`` misses both on a host (the root cgroup has no limit files), so
each limit is read along the process's own path (``/proc/self/cgroup``: ``0::<path>`` under
cgroup v2, ``<n>:<controllers>:<path>`` under v1) and the smallest one counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

ROOT = "/sys/fs/cgroup"
OWN = "/proc/self/cgroup"


def read(path: Path) -> str | None:
    """A cgroup file's text, stripped; None when it is not there or cannot be read."""
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _up_from(top: Path, path: str) -> list[Path]:
    """`top`/`path` and each folder above it up to `top`: a parent's limit binds its children.
    In a container without its own cgroup namespace the path is the host's and only `top`
    (the container's own cgroup, mounted there) exists: the others are skipped unread."""
    here = top / path.strip("/")
    return [here, *[p for p in here.parents if p.is_relative_to(top)]]


def own_folders(
    controller: str, v1_mounts: tuple[str, ...], root: str = ROOT, own: str = OWN
) -> Iterator[tuple[Path, bool]]:
    """The folders of this process's cgroup and of those above it that hold `controller`'s
    files, each with whether it is cgroup v2 (one hierarchy) or v1 (`controller` mounted at
    one of `v1_mounts` under `root`, e.g. ``cpu,cpuacct``). Nothing when
    ``/proc/self/cgroup`` cannot be read (not Linux)."""
    for line in (read(Path(own)) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if not controllers:
            for folder in _up_from(Path(root), path):
                yield folder, True
        elif controller in controllers.split(","):
            for mount in v1_mounts:
                for folder in _up_from(Path(root) / mount, path):
                    yield folder, False
