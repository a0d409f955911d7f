"""What a compaction run did: one result per partition, and the run's report with its totals.

Both layers report alike: `planned_result` (dry run), `skipped_result` (left as it was, and
why) and `compacted_result` (the bins replaced), gathered in a `CompactionReport`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from lake_pipelines.lake.compaction.plan import Layer, PartitionPlan

if TYPE_CHECKING:
    from lake_pipelines.lake.hashing import RowChecksum
    from lake_pipelines.lake.parquet.writer import WrittenFile

Status = Literal["compacted", "skipped", "planned"]


@dataclass
class PartitionResult:
    """What compaction did to one partition. File and byte counts cover the whole partition."""

    partition: str
    status: Status
    files_before: int = 0
    files_after: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    files_rewritten: int = 0
    files_written: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    rows: int = 0
    checksum: str = ""
    seconds: float = 0.0
    reason: str = ""
    snapshot_id: int | None = None


@dataclass
class CompactionReport:
    """One compaction run over a dataset's layer: the plans, then what was done."""

    dataset: str
    layer: Layer
    plans: list[PartitionPlan] = field(default_factory=list)
    results: list[PartitionResult] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    seconds: float = 0.0
    dry_run: bool = False

    @property
    def compacted(self) -> list[PartitionResult]:
        return [r for r in self.results if r.status == "compacted"]

    @property
    def skipped(self) -> list[PartitionResult]:
        return [r for r in self.results if r.status == "skipped"]

    def totals(self) -> dict[str, int | float]:
        """Sums over the compacted partitions, plus read throughput in MB/s."""
        done = self.compacted
        read = sum(r.bytes_read for r in done)
        seconds = sum(r.seconds for r in done)
        return {
            "partitions_touched": len(done),
            "files_before": sum(r.files_before for r in done),
            "files_after": sum(r.files_after for r in done),
            "bytes_before": sum(r.bytes_before for r in done),
            "bytes_after": sum(r.bytes_after for r in done),
            "files_rewritten": sum(r.files_rewritten for r in done),
            "files_written": sum(r.files_written for r in done),
            "rows": sum(r.rows for r in done),
            "bytes_read": read,
            "bytes_written": sum(r.bytes_written for r in done),
            "seconds": round(self.seconds, 3),
            "mb_per_second": round(read / (1 << 20) / seconds, 2) if seconds > 0 else 0.0,
        }

    def summary(self) -> dict[str, Any]:
        """`totals`, plus which partitions were compacted (with their checksums), skipped (with
        the reason) and recovered, and how many the plans flag."""
        return {
            **self.totals(),
            "dry_run": self.dry_run,
            "partitions": [r.partition for r in self.compacted],
            "checksums": {r.partition: r.checksum for r in self.compacted},
            "skipped": {r.partition: r.reason for r in self.skipped},
            "recovered": self.recovered,
            "flagged_partitions": sum(1 for p in self.plans if p.flagged),
        }

    def describe_plans(self) -> str:
        """One line per partition with something to merge, as a Markdown list."""
        lines = [f"- {p.describe()}" for p in self.plans if p.bins]
        return "\n".join(lines) or "nothing to compact"


def planned_result(plan: PartitionPlan) -> PartitionResult:
    """The dry-run line of a partition: what compaction would rewrite."""
    return PartitionResult(
        plan.partition,
        "planned",
        files_before=len(plan.files),
        bytes_before=plan.bytes,
        files_rewritten=plan.files_to_rewrite,
        bytes_read=sum(b.bytes for b in plan.bins),
        rows=sum(b.rows for b in plan.bins),
    )


def skipped_result(plan: PartitionPlan, reason: str) -> PartitionResult:
    """A partition left as it was, and why."""
    return PartitionResult(
        plan.partition, "skipped", len(plan.files), bytes_before=plan.bytes, reason=reason
    )


def compacted_result(
    plan: PartitionPlan,
    written: Sequence[WrittenFile],
    seen: RowChecksum,
    started: float,
    after: tuple[int, int] | None = None,
) -> PartitionResult:
    """A partition whose bins were replaced by the `written` files.

    Args:
        seen: the checksum of the rows read (and written).
        started: `time.perf_counter` when the partition's compaction began.
        after: files and bytes in the partition afterwards, when listed; by default the
            plan's, with the rewritten files replaced by the written ones.
    """
    inputs = [f for b in plan.bins for f in b.files]
    read = sum(f.size for f in inputs)
    wrote = sum(f.bytes for f in written)
    files_after, bytes_after = after or (
        len(plan.files) - len(inputs) + len(written),
        plan.bytes - read + wrote,
    )
    return PartitionResult(
        plan.partition,
        "compacted",
        files_before=len(plan.files),
        files_after=files_after,
        bytes_before=plan.bytes,
        bytes_after=bytes_after,
        files_rewritten=len(inputs),
        files_written=len(written),
        bytes_read=read,
        bytes_written=wrote,
        rows=seen.rows,
        checksum=seen.value,
        seconds=time.perf_counter() - started,
    )
