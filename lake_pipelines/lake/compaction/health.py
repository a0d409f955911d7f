"""Table health: how many small files a layer holds, and where, from its compaction plans.

The health checks report it; a partition is unhealthy when its plan is flagged (more small
files than the policy allows, and some of them can be merged).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lake_pipelines.datasets.spec import CompactionPolicy
from lake_pipelines.lake.compaction.plan import PartitionPlan

FLAGGED_LISTED = 100  # partitions named in a summary, at most


@dataclass(frozen=True)
class TableHealth:
    """The small-file health of one layer of a dataset."""

    plans: tuple[PartitionPlan, ...]
    policy: CompactionPolicy

    @property
    def flagged(self) -> list[PartitionPlan]:
        return [p for p in self.plans if p.flagged]

    @property
    def healthy(self) -> bool:
        return not self.flagged

    def describe(self) -> str:
        return (
            f"{len(self.flagged)} of {len(self.plans)} partitions hold more than "
            f"{self.policy.max_small_files} files under "
            f"{self.policy.small_file_bytes / (1 << 20):.1f} MiB"
        )

    def summary(self) -> dict[str, Any]:
        """Counts over every partition, and the thresholds they were judged by."""
        plans, flagged = self.plans, self.flagged
        files = sum(len(p.files) for p in plans)
        nbytes = sum(p.bytes for p in plans)
        return {
            "partitions": len(plans),
            "flagged_partitions": len(flagged),
            "flagged": [p.partition for p in flagged][:FLAGGED_LISTED],
            "files": files,
            "small_files": sum(p.small_files for p in plans),
            "max_small_files_in_a_partition": max((p.small_files for p in plans), default=0),
            "avg_file_bytes": round(nbytes / files, 1) if files else 0.0,
            "small_file_bytes": self.policy.small_file_bytes,
            "max_small_files": self.policy.max_small_files,
        }

    def worst(self, n: int) -> list[PartitionPlan]:
        """The `n` partitions with the most small files (ties by partition)."""
        return sorted(self.plans, key=lambda p: (-p.small_files, p.partition))[:n]
