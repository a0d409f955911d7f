"""The one compaction run, for either layer: recover, plan, select, then compact or report.

Each layer provides the three steps that differ (`LayerCompactor`): finishing what a crashed run
left behind, planning every partition, and compacting one planned partition. The driver does
the rest the same way for both: a dry run recovers nothing and only reports the plans;
otherwise every selected partition (flagged by the policy, or with any bin under ``force``,
and within ``partitions``) is compacted in partition order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from lake_pipelines.lake import metrics
from lake_pipelines.lake.compaction.options import CompactionOptions
from lake_pipelines.lake.compaction.plan import Layer, PartitionPlan
from lake_pipelines.lake.compaction.report import CompactionReport, PartitionResult, planned_result

# Called with every partition's plan and the ones this run will compact, before any rewrite.
PlanHook = Callable[[list[PartitionPlan], list[PartitionPlan]], None]


class LayerCompactor(Protocol):
    """What one layer (Hive bronze, Iceberg silver) does for the driver."""

    @property
    def dataset(self) -> str: ...

    @property
    def layer(self) -> Layer: ...

    def recover(self) -> list[str]:
        """Finish or undo what an interrupted run left; return the partitions recovered."""
        ...

    def plan(self) -> list[PartitionPlan]:
        """One plan per partition, in partition order."""
        ...

    def compact(self, plan: PartitionPlan, options: CompactionOptions) -> PartitionResult:
        """Rewrite the plan's bins and make the new files visible in place of the old."""
        ...


def selected(plans: list[PartitionPlan], options: CompactionOptions) -> list[PartitionPlan]:
    """The plans this run acts on: flagged ones (any with a bin under ``force``), in scope."""
    return [
        p
        for p in plans
        if (p.bins if options.force else p.flagged) and options.selects(p.partition)
    ]


def compact_layer(
    target: LayerCompactor, options: CompactionOptions, on_plan: PlanHook | None = None
) -> CompactionReport:
    """Recover interrupted runs, plan every partition, compact the selected ones.

    Args:
        target: the layer of one dataset.
        options: mode and tuning of the run.
        on_plan: called with every partition's plan, and those selected, before anything
            is rewritten.
    """
    started = time.perf_counter()
    report = CompactionReport(target.dataset, target.layer, dry_run=options.dry_run)
    if not options.dry_run:
        report.recovered = target.recover()
    report.plans = target.plan()
    chosen = selected(report.plans, options)
    if on_plan is not None:
        on_plan(report.plans, chosen)
    for plan in chosen:
        report.results.append(
            planned_result(plan) if options.dry_run else target.compact(plan, options)
        )
    report.seconds = time.perf_counter() - started
    if not options.dry_run:
        metrics.record_compaction(report)
    return report
