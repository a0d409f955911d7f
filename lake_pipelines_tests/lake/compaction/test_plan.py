"""The planner: bins, footers, read groups."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake_pipelines.datasets.spec import CompactionPolicy
from lake_pipelines.lake.compaction import hive_bins, hive_footers
from lake_pipelines.lake.compaction.plan import FileStat, plan_partition

# -- planner and rewrite units ------------------------------------------------------------------


def test_planner_bins_small_files_and_leaves_healthy_partitions_alone() -> None:
    policy = CompactionPolicy(target_file_bytes=100, small_file_ratio=0.5, max_small_files=3)
    files = [FileStat(f"p/{i}", size) for i, size in enumerate([10, 45, 30, 40, 20, 5, 90, 49])]
    plan = plan_partition("bronze", "p", files, policy)
    assert plan.small_files == 7 and plan.flagged  # 90 is not small
    assert all(b.bytes <= 100 and len(b.files) > 1 for b in plan.bins)
    binned = sorted(f.path for b in plan.bins for f in b.files)
    assert "p/6" not in binned
    assert plan.files_to_rewrite == len(binned) >= 6
    # the same files give the same bins, whatever order they are listed in
    again = plan_partition("bronze", "p", list(reversed(files)), policy)
    assert again.bins == plan.bins
    healthy = plan_partition("bronze", "q", [FileStat("q/0", 10), FileStat("q/1", 20)], policy)
    assert not healthy.flagged and healthy.bins  # two small files: mergeable, not worth a run
    alone = plan_partition("bronze", "r", [FileStat(f"r/{i}", 60) for i in range(5)], policy)
    assert not alone.bins and not alone.flagged  # nothing to merge (pairs exceed the target)
    pinned = plan_partition("silver", "s", files, policy, pinned={"p/0", "p/1"})
    assert not {"p/0", "p/1"} & {f.path for b in pinned.bins for f in b.files}


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("tz", ["UTC", None])
def test_footer_minimum_of_a_timestamp_equals_pyarrows_own(
    tmp_path: Path, unit: str, tz: str | None
) -> None:
    """The planner decodes ms/us timestamp minimums itself (pyarrow's is slow): same values,
    before and after the epoch, with and without a zone."""
    for values in (
        [1_793_491_200_085_199, -1_234_567, 0, 86_399_999_999],  # the minimum before 1970
        [1_793_491_200_085_199, 86_399_999_999, 1_234_567_890_123],  # after it
    ):
        path = tmp_path / "t.parquet"
        pq.write_table(pa.table({"t": pa.array(values, pa.timestamp(unit, tz=tz))}), path)
        stats = pq.read_metadata(path).row_group(0).column(0).statistics
        ours = hive_footers._stats_min(stats)
        assert ours == stats.min and type(ours) is type(stats.min)
        assert (ours.tzinfo is None) == (tz is None)


def test_small_files_are_read_in_runs_and_big_ones_alone() -> None:
    small, big = hive_bins.PARALLEL_READ_BYTES, hive_bins.PARALLEL_READ_BYTES + 1
    budget = hive_bins.GROUP_BYTES
    sizes = [budget // 3] * 4 + [big] + [10, 10] + [big, big] + [small]
    files = [FileStat(f"p/{i}", size) for i, size in enumerate(sizes)]
    groups = hive_bins._read_groups(files)
    assert groups == [[0, 1, 2], [3], [4], [5, 6], [7], [8], [9]]
    assert sorted(i for g in groups for i in g) == list(range(len(files)))  # each file once
