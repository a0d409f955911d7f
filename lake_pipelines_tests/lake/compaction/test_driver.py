"""The options object and the one driver both layers run through."""

from __future__ import annotations

import dataclasses

import pytest

from lake_pipelines.datasets.spec import CompactionPolicy
from lake_pipelines.errors import ConfigError
from lake_pipelines.lake.compaction.driver import compact_layer
from lake_pipelines.lake.compaction.options import CompactionOptions
from lake_pipelines.lake.compaction.plan import FileStat, Layer, PartitionPlan, plan_partition
from lake_pipelines.lake.compaction.report import PartitionResult

POLICY = CompactionPolicy(target_file_bytes=100, small_file_ratio=0.5, max_small_files=2)


@pytest.mark.parametrize(
    ("change", "setting"),
    [
        ({"partitions": "year=2026/month=11/day=03"}, "partitions"),  # one string, not a set
        ({"verify": "everything"}, "verify"),
        ({"sort_memory_bytes": 0}, "sort_memory_bytes"),
        ({"row_group_bytes": -1}, "row_group_bytes"),
        ({"row_group_bytes": 1.5}, "row_group_bytes"),
    ],
)
def test_options_refuse_what_cannot_be_used(change: dict, setting: str) -> None:
    with pytest.raises(ConfigError, match=f"setting {setting}=") as raised:
        CompactionOptions(**change)
    assert raised.value.setting == setting


def test_options_are_immutable_and_select_partitions() -> None:
    options = CompactionOptions(partitions=["a", "b"], verify="content")
    assert options.selects("a") and not options.selects("c") and not options.selects("a/b")
    assert CompactionOptions().selects("anything")
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.dry_run = True  # type: ignore[misc]
    assert dataclasses.replace(options, dry_run=True).partitions == {"a", "b"}


class FakeLayer:
    """Three partitions: ``flagged`` (5 small files), ``mergeable`` (2), ``healthy`` (none)."""

    dataset = "events"
    layer: Layer = "bronze"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def recover(self) -> list[str]:
        self.calls.append("recover")
        return ["flagged"]

    def plan(self) -> list[PartitionPlan]:
        self.calls.append("plan")
        sizes = {"flagged": [10] * 5, "healthy": [90, 95], "mergeable": [10, 20]}
        return [
            plan_partition(
                "bronze", p, [FileStat(f"{p}/{i}", s) for i, s in enumerate(sizes[p])], POLICY
            )
            for p in sorted(sizes)
        ]

    def compact(self, plan: PartitionPlan, options: CompactionOptions) -> PartitionResult:
        self.calls.append(f"compact {plan.partition}")
        return PartitionResult(plan.partition, "compacted", len(plan.files))


def test_the_driver_recovers_plans_and_compacts_what_is_selected() -> None:
    layer, seen = FakeLayer(), []
    report = compact_layer(
        layer,
        CompactionOptions(),
        on_plan=lambda plans, chosen: seen.append((len(plans), [p.partition for p in chosen])),
    )
    assert layer.calls == ["recover", "plan", "compact flagged"]
    assert seen == [(3, ["flagged"])] and report.recovered == ["flagged"] and len(report.plans) == 3
    assert (report.dataset, report.layer, report.dry_run) == ("events", "bronze", False)
    assert [r.partition for r in report.compacted] == ["flagged"]

    layer = FakeLayer()
    forced = compact_layer(layer, CompactionOptions(force=True))
    assert layer.calls == ["recover", "plan", "compact flagged", "compact mergeable"]
    assert [r.partition for r in forced.results] == ["flagged", "mergeable"]

    layer = FakeLayer()
    scoped = compact_layer(layer, CompactionOptions(force=True, partitions={"mergeable"}))
    assert [r.partition for r in scoped.results] == ["mergeable"]


def test_a_dry_run_recovers_nothing_and_only_reports_the_plans() -> None:
    layer = FakeLayer()
    report = compact_layer(layer, CompactionOptions(dry_run=True, force=True))
    assert layer.calls == ["plan"]  # no recovery, no rewrite
    assert report.dry_run and report.recovered == []
    assert [(r.partition, r.status, r.files_rewritten) for r in report.results] == [
        ("flagged", "planned", 5),
        ("mergeable", "planned", 2),
    ]
