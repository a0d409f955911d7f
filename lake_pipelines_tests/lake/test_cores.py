"""The cores a process may use: its affinity, within its container's CPU quota."""

from __future__ import annotations

import os

import pytest

from lake_pipelines.lake import cores
from lake_pipelines.lake.analytics.session import SessionSettings, make_session
from lake_pipelines_tests.conftest import CgroupTree

V2_POD = "0::/kubepods/pod1/c1\n"
V1_HOST = "5:cpuacct:/lt\n4:cpu:/lt\n1:name=systemd:/\n"


@pytest.mark.parametrize(
    ("own", "files", "expected"),
    [
        # cgroup v2: the smallest limit along the process's path (a pod's binds its container)
        (V2_POD, {"kubepods/pod1/c1/cpu.max": "max 100000"}, None),
        (V2_POD, {"kubepods/pod1/cpu.max": "300000 100000"}, 3.0),
        (
            V2_POD,
            {"kubepods/pod1/cpu.max": "300000 100000", "kubepods/pod1/c1/cpu.max": "150000 100000"},
            1.5,
        ),
        ("0::/\n", {"cpu.max": "200000 100000"}, 2.0),  # a container's own namespace
        (V2_POD, {"kubepods/pod1/c1/cpu.max": "garbage"}, None),
        # cgroup v1, the cpu controller's mount: a host's child cgroup (a systemd unit's quota)
        (V1_HOST, {"cpu/lt/cpu.cfs_quota_us": "50000", "cpu/lt/cpu.cfs_period_us": "100000"}, 0.5),
        (V1_HOST, {"cpu/lt/cpu.cfs_quota_us": "-1", "cpu/lt/cpu.cfs_period_us": "100000"}, None),
        # a container without its own namespace: the host's path, only the mount root exists
        (
            "4:cpu,cpuacct:/docker/abc\n",
            {"cpu,cpuacct/cpu.cfs_quota_us": "200000", "cpu,cpuacct/cpu.cfs_period_us": "100000"},
            2.0,
        ),
        (V2_POD, {}, None),  # no cgroup file at all
        ("", {"cpu.max": "100000 100000"}, None),  # no /proc/self/cgroup
    ],
)
def test_the_cpu_quota_is_the_smallest_along_the_process_cgroup(
    cgroup_tree: CgroupTree, own: str, files: dict[str, str], expected: float | None
) -> None:
    assert cores.cpu_quota(*cgroup_tree(own, files)) == expected


@pytest.mark.parametrize(
    ("affinity", "quota", "expected"),
    [(32, 2.0, 2), (32, 1.5, 2), (4, 0.5, 1), (2, 16.0, 2), (8, None, 8), (1, None, 1)],
)
def test_usable_cores_are_the_affinity_within_the_quota_rounded_up(
    affinity: int, quota: float | None, expected: int
) -> None:
    assert cores.cores_within(affinity, quota) == expected


def test_usable_cores_on_this_machine_are_at_most_its_cores() -> None:
    assert 1 <= cores.usable_cores() <= (os.cpu_count() or 1)


def test_a_session_plans_for_the_containers_cores_not_the_nodes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pod limited to 3 CPUs on a 32-core node: 3 partitions, not 32."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(32)), raising=False)
    monkeypatch.setattr(cores, "cpu_quota", lambda: 3.0)
    ctx = make_session(SessionSettings())
    shown = ctx.sql("SHOW datafusion.execution.target_partitions").to_arrow_table()
    assert shown.column("value")[0].as_py() == "3"
