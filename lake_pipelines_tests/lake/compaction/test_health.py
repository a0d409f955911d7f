"""Table health and the report's summary, as the maintenance checks and assets show them."""

from __future__ import annotations

from lake_pipelines.datasets.spec import CompactionPolicy
from lake_pipelines.lake.compaction.health import TableHealth
from lake_pipelines.lake.compaction.plan import FileStat, plan_partition
from lake_pipelines.lake.compaction.report import CompactionReport, PartitionResult

POLICY = CompactionPolicy(target_file_bytes=100, small_file_ratio=0.5, max_small_files=2)


def _plans():
    sizes = {"a": [10] * 3, "b": [90, 95], "c": [10] * 5}
    return [
        plan_partition(
            "bronze", p, [FileStat(f"{p}/{i}", s) for i, s in enumerate(sizes[p])], POLICY
        )
        for p in sorted(sizes)
    ]


def test_table_health_counts_small_files_and_names_the_flagged_partitions() -> None:
    health = TableHealth(tuple(_plans()), POLICY)
    assert not health.healthy and [p.partition for p in health.flagged] == ["a", "c"]
    assert health.summary() == {
        "partitions": 3,
        "flagged_partitions": 2,
        "flagged": ["a", "c"],
        "files": 10,
        "small_files": 8,
        "max_small_files_in_a_partition": 5,
        "avg_file_bytes": round((30 + 185 + 50) / 10, 1),
        "small_file_bytes": 50,
        "max_small_files": 2,
    }
    assert [p.partition for p in health.worst(2)] == ["c", "a"]
    assert health.describe() == "2 of 3 partitions hold more than 2 files under 0.0 MiB"
    assert TableHealth((), POLICY).healthy and TableHealth((), POLICY).summary()["files"] == 0


def test_the_report_summary_names_compacted_skipped_and_recovered_partitions() -> None:
    report = CompactionReport("events", "bronze", plans=_plans(), recovered=["c"])
    report.results = [
        PartitionResult("a", "compacted", 3, 1, 30, 25, 3, 1, 30, 25, 9, "9:abc", 0.5),
        PartitionResult("c", "skipped", 5, bytes_before=50, reason="inputs changed"),
    ]
    summary = report.summary()
    assert summary["partitions_touched"] == 1 and summary["rows"] == 9
    assert summary["partitions"] == ["a"] and summary["checksums"] == {"a": "9:abc"}
    assert summary["skipped"] == {"c": "inputs changed"} and summary["recovered"] == ["c"]
    assert summary["flagged_partitions"] == 2 and summary["dry_run"] is False
    assert report.describe_plans().splitlines()[0].startswith("- bronze a: 3 files, 3 small")
    assert CompactionReport("events", "silver").describe_plans() == "nothing to compact"
