"""Compaction planning: which files of a partition are small, and how they pack into bins.

Shared by both layers. `plan_partition` takes the files of one partition (path, size on disk,
row count from the Parquet footer or the Iceberg manifest) and packs the small ones
first-fit-decreasing into bins of at most the dataset's target file size. A partition is
*flagged* when it holds more small files than the policy allows and at least one bin would
merge two or more of them; healthy partitions are left alone. The plans are reported (dry run)
before anything is rewritten, by `driver.compact_layer`, which `compact_hive` and
`compact_iceberg` run; what was done is reported in `report`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from lake_pipelines.datasets.spec import CompactionPolicy
from lake_pipelines.errors import LakeError

Layer = Literal["bronze", "silver"]
OUTPUT_PREFIX = "compact-"  # name stem of every file compaction writes


class CompactionError(LakeError):
    """Compaction of a partition cannot go on; the partition's visible data is unchanged."""

    def __init__(self, partition: str, reason: str) -> None:
        self.partition = partition
        self.reason = reason
        super().__init__(f"compaction of {partition}: {reason}")


class UnreadableFile(CompactionError):
    """A file of the partition could not be read (gone, replaced or corrupt meanwhile)."""

    def __init__(self, partition: str, path: str, cause: BaseException) -> None:
        self.path = path
        self.cause = cause
        super().__init__(partition, f"{path} cannot be read ({cause}); nothing was changed")


@dataclass(frozen=True)
class FileStat:
    """One data file of a partition: store key (Hive) or URI (Iceberg), bytes on disk, rows.

    ``data_bytes`` is the compressed column data without the footer, when known: what the
    file adds to a merged file (a tiny file is mostly footer). ``version`` (ETag or
    modification time, when the store has one) tells a file replaced under the same name
    from the one that was planned. ``key_min``, when known, is the smallest value of the
    dataset's first sort column in the file (footer statistics): it lets the rewrite stream
    files whose key ranges do not overlap instead of sorting them together. ``footer``, when
    the planner kept it, is the file's parsed Parquet footer (`pyarrow.parquet.FileMetaData`):
    the rewrite decodes the file with it instead of parsing the footer a second time.
    """

    path: str
    size: int
    rows: int | None = None
    version: str | None = None
    data_bytes: int | None = None
    key_min: Any = None
    footer: Any = field(default=None, compare=False, repr=False)

    @property
    def weight(self) -> int:
        """Bytes this file is expected to take in a compacted file."""
        return self.data_bytes if self.data_bytes is not None else self.size


@dataclass(frozen=True)
class Bin:
    """Small files rewritten together into about one file of the target size."""

    files: tuple[FileStat, ...]

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def rows(self) -> int:
        return sum(f.rows or 0 for f in self.files)


@dataclass(frozen=True)
class PartitionPlan:
    """What compaction would do to one partition (nothing, when `bins` is empty)."""

    layer: Layer
    partition: str
    files: tuple[FileStat, ...]
    bins: tuple[Bin, ...]
    small_file_bytes: int
    max_small_files: int

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def small_files(self) -> int:
        return sum(1 for f in self.files if f.size < self.small_file_bytes)

    @property
    def avg_file_bytes(self) -> float:
        return self.bytes / len(self.files) if self.files else 0.0

    @property
    def flagged(self) -> bool:
        """Too many small files, and compaction can reduce them."""
        return self.small_files > self.max_small_files and bool(self.bins)

    @property
    def files_to_rewrite(self) -> int:
        return sum(len(b.files) for b in self.bins)

    def describe(self) -> str:
        """One line for logs and the dry-run report."""
        rewrite = sum(b.bytes for b in self.bins)
        return (
            f"{self.layer} {self.partition}: {len(self.files)} files, {self.small_files} small, "
            f"avg {_human(self.avg_file_bytes)} -> {len(self.bins)} bins rewriting "
            f"{self.files_to_rewrite} files ({_human(rewrite)})"
        )


def plan_partition(
    layer: Layer,
    partition: str,
    files: Iterable[FileStat],
    policy: CompactionPolicy,
    pinned: Collection[str] = (),
) -> PartitionPlan:
    """Pack a partition's small files into bins of at most ``policy.target_file_bytes``.

    First-fit decreasing by `FileStat.weight`: the heaviest small file opens the first bin,
    and each next file goes into the first bin it fits. Bins of a single file are dropped
    (rewriting one file alone gains nothing). Files in bins are listed by path, so the same
    files always give the same bins and the same output names.

    Args:
        layer: ``bronze`` (Hive) or ``silver`` (Iceberg), for reporting.
        partition: the partition's label (Hive directory or Iceberg partition path).
        files: every data file of the partition.
        policy: the dataset's thresholds.
        pinned: paths never to rewrite (e.g. Iceberg files with row-level deletes).
    """
    all_files = tuple(sorted(files, key=lambda f: f.path))
    threshold = policy.small_file_bytes
    small = [f for f in all_files if f.size < threshold and f.path not in pinned]
    small.sort(key=lambda f: (-f.weight, f.path))
    bins: list[list[FileStat]] = []
    room: list[int] = []
    for f in small:
        for i, free in enumerate(room):
            if f.weight <= free:
                bins[i].append(f)
                room[i] -= f.weight
                break
        else:
            bins.append([f])
            room.append(policy.target_file_bytes - f.weight)
    packed = [Bin(tuple(sorted(b, key=lambda f: f.path))) for b in bins if len(b) > 1]
    packed.sort(key=lambda b: b.files[0].path)
    return PartitionPlan(
        layer, partition, all_files, tuple(packed), threshold, policy.max_small_files
    )


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover
