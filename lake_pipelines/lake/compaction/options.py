"""How a compaction run goes: its mode (dry run, force, which partitions, how to verify) and its
tuning (sort memory, row group size, spill directory), in one immutable object.

The thresholds that say which files are small are not here: they belong to the dataset
(`DatasetSpec.compaction`, a `CompactionPolicy`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Literal, get_args

from lake_pipelines.errors import ConfigError
from lake_pipelines.lake.parquet.options import ROW_GROUP_BYTES
from lake_pipelines.lake.progress import ProgressHook

Verify = Literal["footers", "content"]
SORT_MEMORY_BYTES = 64 << 20  # rows buffered (uncompressed Arrow) before a sorted run spills


@dataclass(frozen=True)
class CompactionOptions:
    """One compaction run's mode and tuning; the defaults compact what the policy flags.

    Attributes:
        partitions: only these partitions (Hive ``year=2026/month=11/day=03``, Iceberg
            ``ts_day=2026-11-03``); None: every partition.
        dry_run: plan and report only; nothing is recovered, written, deleted or committed.
        force: compact every partition that has a bin, flagged or not.
        verify: how written files are checked before the swap or commit: ``footers`` (row
            counts) or ``content`` (every row read back and checksummed).
        sort_memory_bytes: rows buffered (uncompressed Arrow) before a sorted run spills.
        row_group_bytes: target size of an output row group.
        spill_dir: where sorted runs spill; None: the OS temporary directory.
        progress: receives a line (rows, MiB, rate) now and then while a partition is
            rewritten; None: silent.

    Raises:
        ConfigError: a mode or size cannot be used (``partitions`` given as one string, an
            unknown ``verify``, a size under one byte).
    """

    partitions: Collection[str] | None = None
    dry_run: bool = False
    force: bool = False
    verify: Verify = "footers"
    sort_memory_bytes: int = SORT_MEMORY_BYTES
    row_group_bytes: int = ROW_GROUP_BYTES
    spill_dir: str | None = None
    progress: ProgressHook | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.partitions, str):  # `in` would match substrings of it
            raise ConfigError(
                "partitions", self.partitions, "give a collection of partitions, not one string"
            )
        if self.partitions is not None:
            object.__setattr__(self, "partitions", frozenset(self.partitions))
        if self.verify not in get_args(Verify):
            raise ConfigError("verify", self.verify, f"must be one of {get_args(Verify)}")
        for setting in ("sort_memory_bytes", "row_group_bytes"):
            value = getattr(self, setting)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(setting, value, "must be a whole number of bytes, at least 1")

    def selects(self, partition: str) -> bool:
        """Whether `partition` is within `partitions`."""
        return self.partitions is None or partition in self.partitions
