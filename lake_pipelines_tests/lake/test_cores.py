"""The cores a process may use: its affinity, within its container's CPU quota."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lake_pipelines.lake import cores
from lake_pipelines.lake.analytics.session import SessionSettings, make_session


@pytest.mark.parametrize(
    ("v2", "v1", "expected"),
    [
        ("max 100000", None, None),  # cgroup v2 without a quota
        ("200000 100000", None, 2.0),  # a limit of 2 CPUs
        ("150000 100000", None, 1.5),  # 1500m
        ("200000 100000", ("50000", "100000"), 2.0),  # v2 wins over v1
        (None, ("-1", "100000"), None),  # cgroup v1 without a quota
        (None, ("50000", "100000"), 0.5),
        (None, None, None),  # no cgroup file at all
        ("garbage", None, None),
    ],
)
def test_the_cpu_quota_comes_from_cgroup_v2_then_v1(
    tmp_path: Path, v2: str | None, v1: tuple[str, str] | None, expected: float | None
) -> None:
    v2_path, quota_path, period_path = tmp_path / "cpu.max", tmp_path / "quota", tmp_path / "period"
    if v2 is not None:
        v2_path.write_text(v2 + "\n")
    if v1 is not None:
        quota_path.write_text(v1[0] + "\n")
        period_path.write_text(v1[1] + "\n")
    assert cores.cpu_quota(str(v2_path), (str(quota_path), str(period_path))) == expected


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
