"""Compaction of the bronze Hive layer: small Parquet files of a day merged, crash-safely.

For each flagged partition, each bin is rewritten (sorted, with the dataset's Parquet settings)
into hidden temporary files (`hive_bins`); every row read must reach the writer exactly once,
and the files' footers must hold as many rows as were read (``verify="content"`` reads every
row back and compares checksums too). If an input changed meanwhile (the day was re-ingested),
the partition is skipped and the temporaries removed. Otherwise the journaled swap replaces
the inputs by the outputs; `hive_journal` explains why a crash at any point leaves either the
old files or a journal the next run (`recover_hive`) rolls forward.
"""

from __future__ import annotations

import posixpath
import time
from dataclasses import dataclass

from lake_pipelines.datasets.spec import CompactionPolicy, DatasetSpec
from lake_pipelines.lake.compaction.driver import PlanHook, compact_layer
from lake_pipelines.lake.compaction.hive_bins import rewrite_bins
from lake_pipelines.lake.compaction.hive_footers import plan_hive
from lake_pipelines.lake.compaction.hive_journal import (
    JOURNAL_NAME,
    recover_hive,
    roll_forward,
    write_journal,
)
from lake_pipelines.lake.compaction.options import CompactionOptions
from lake_pipelines.lake.compaction.plan import FileStat, Layer, PartitionPlan, UnreadableFile
from lake_pipelines.lake.compaction.report import (
    CompactionReport,
    PartitionResult,
    compacted_result,
    skipped_result,
)
from lake_pipelines.lake.compaction.verify import verify_written
from lake_pipelines.lake.parquet.options import file_schema
from lake_pipelines.lake.storage import ObjectStore

__all__ = ["JOURNAL_NAME", "HiveCompactor", "compact_hive", "compact_hive_partition", "plan_hive"]


def compact_hive(
    store: ObjectStore,
    spec: DatasetSpec,
    *,
    options: CompactionOptions | None = None,
    policy: CompactionPolicy | None = None,
    on_plan: PlanHook | None = None,
) -> CompactionReport:
    """Recover interrupted swaps, plan every partition, compact the flagged ones.

    Args:
        options: mode and tuning (`CompactionOptions`); default: compact what is flagged.
        policy: thresholds; default: the dataset's `DatasetSpec.compaction`.
        on_plan: called with every partition's plan, and those selected, before any rewrite.
    """
    target = HiveCompactor(store, spec, policy or spec.compaction)
    return compact_layer(target, options or CompactionOptions(), on_plan)


@dataclass(frozen=True)
class HiveCompactor:
    """The bronze layer of one dataset, as the driver (`compact_layer`) drives it."""

    store: ObjectStore
    spec: DatasetSpec
    policy: CompactionPolicy

    @property
    def dataset(self) -> str:
        return self.spec.name

    @property
    def layer(self) -> Layer:
        return "bronze"

    def recover(self) -> list[str]:
        return recover_hive(self.store, self.spec)

    def plan(self) -> list[PartitionPlan]:
        return plan_hive(self.store, self.spec, self.policy)

    def compact(self, plan: PartitionPlan, options: CompactionOptions) -> PartitionResult:
        return compact_hive_partition(self.store, self.spec, plan, options, self.policy)


def compact_hive_partition(
    store: ObjectStore,
    spec: DatasetSpec,
    plan: PartitionPlan,
    options: CompactionOptions | None = None,
    policy: CompactionPolicy | None = None,
) -> PartitionResult:
    """Rewrite the plan's bins, verify the rows, then swap through a journal.

    ``options.verify`` says how the written files are checked before the swap
    (`verify_written`): from their footers (default) or by reading every row back.

    Returns a ``skipped`` result, with nothing changed, when an input was replaced or removed
    while the bins were being rewritten (e.g. the day was re-ingested meanwhile).

    Raises:
        CompactionError: the rows written differ from the rows read, or an input that did not
            change since planning cannot be read (`UnreadableFile`); nothing was changed.
    """
    started = time.perf_counter()
    options = options or CompactionOptions()
    policy = policy or spec.compaction
    dir_key = posixpath.join(spec.bronze_prefix, plan.partition)
    schema = file_schema(spec)
    inputs = [f for b in plan.bins for f in b.files]
    try:
        staged, seen = rewrite_bins(store, spec, plan, policy, schema, options)
    except (OSError, UnreadableFile):
        if not _changed(store, dir_key, inputs):
            raise
        staged = None  # an input vanished or was replaced while being read
    try:
        if staged is not None:
            counts = [f.rows for f in inputs]
            expected = None if None in counts else sum(c or 0 for c in counts)
            paths = [f.tmp_path for f in staged]
            verify_written(
                store, paths, staged, seen, expected, schema, plan.partition, options.verify
            )
        # Last look before the swap: a day re-ingested meanwhile wins over the compaction.
        changed = _changed(store, dir_key, inputs)
        if staged is None or changed:
            store.delete([store.key_of(f.tmp_path) for f in staged or []])
            return skipped_result(plan, f"inputs changed meanwhile: {changed[:5]}")
        journal_key = write_journal(store, spec, plan, inputs, staged, seen)
    except BaseException:
        store.delete([store.key_of(f.tmp_path) for f in staged or []])
        raise
    roll_forward(store, journal_key)
    after = store.list(dir_key, suffixes=(".parquet",))
    return compacted_result(plan, staged, seen, started, (len(after), sum(e.size for e in after)))


def _changed(store: ObjectStore, dir_key: str, inputs: list[FileStat]) -> list[str]:
    """Inputs that vanished or were replaced since they were planned."""
    now = {e.key: e for e in store.list(dir_key, suffixes=(".parquet",))}
    return [
        f.path
        for f in inputs
        if f.path not in now or now[f.path].size != f.size or now[f.path].version != f.version
    ]
