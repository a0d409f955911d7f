"""Planning an Iceberg table: its current data files by partition, sizes and rows from manifests.

Nothing is read but metadata. Files that carry row-level delete files, or were written under an
older partition spec, are pinned: never rewritten.
"""

from __future__ import annotations

from collections import defaultdict

from pyiceberg.table import FileScanTask, Table

from lake_pipelines.datasets.spec import CompactionPolicy
from lake_pipelines.lake.compaction.plan import FileStat, PartitionPlan, plan_partition


def scan_tasks(table: Table) -> dict[str, list[FileScanTask]]:
    """The current snapshot's data files, grouped by partition path (``ts_day=2026-11-03``)."""
    specs, schema = table.specs(), table.schema()
    groups: dict[str, list[FileScanTask]] = defaultdict(list)
    for task in table.scan().plan_files():
        path = specs[task.file.spec_id].partition_to_path(task.file.partition, schema)
        groups[path or "unpartitioned"].append(task)
    return groups


def _stat(task: FileScanTask) -> FileStat:
    f = task.file
    data = sum(f.column_sizes.values()) if f.column_sizes else None
    return FileStat(f.file_path, f.file_size_in_bytes, f.record_count, None, data)


def plan_iceberg(
    table: Table, policy: CompactionPolicy, tasks: dict[str, list[FileScanTask]] | None = None
) -> list[PartitionPlan]:
    """One plan per partition of the table's current snapshot; sizes and rows from manifests.

    Files that carry row-level delete files, or were written under an older partition spec,
    are never rewritten (pinned).
    """
    tasks = scan_tasks(table) if tasks is None else tasks
    current = table.spec().spec_id
    return [
        plan_partition(
            "silver",
            partition,
            [_stat(t) for t in group],
            policy,
            pinned={t.file.file_path for t in group if t.delete_files or t.file.spec_id != current},
        )
        for partition, group in sorted(tasks.items())
    ]
