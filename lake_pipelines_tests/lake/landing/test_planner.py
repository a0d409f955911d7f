"""The landing planner without Dagster: batching and the lookback."""

from __future__ import annotations

from lake_pipelines.datasets import get_dataset
from lake_pipelines.lake.landing.cursor import LandingCursor
from lake_pipelines.lake.landing.planner import LandedFile, plan_runs

SPEC = get_dataset("events")


def test_bursts_are_batched_up_to_the_file_bound() -> None:
    files = [
        LandedFile(f"landing/events/2026-11-{d:02d}/f{i}.csv", 10, "v", 1_000 + d)
        for d in range(1, 6)
        for i in range(2)
    ]
    plan = plan_runs(
        files,
        LandingCursor(),
        landing_prefix=SPEC.landing_prefix,
        first_day="2026-01-01",
        last_day="2026-11-24",
        max_files_per_run=5,
    )
    assert [b.days for b in plan.batches] == [
        ("2026-11-01", "2026-11-02"),
        ("2026-11-03", "2026-11-04"),
        ("2026-11-05",),
    ]
    assert sum(len(b.file_ids) for b in plan.batches) == 10
    # The cursor remembers only what arrived within the lookback of its high-water second.
    pruned = plan_runs(
        [],
        plan.cursor,
        landing_prefix=SPEC.landing_prefix,
        first_day="2026-01-01",
        last_day="2026-11-24",
        lookback=1,
    )
    assert pruned.cursor.high_water == 1_005
    assert sorted(pruned.cursor.seen.values()) == [1_004, 1_004, 1_005, 1_005]


def test_an_upload_stamped_before_the_cursor_is_found_within_the_lookback() -> None:
    # S3 stamps a multipart upload with its start, but lists it only once it is complete.
    seen = LandedFile("landing/events/2026-11-01/a.csv", 10, "v", arrival=2_000)
    cursor = plan_runs(
        [seen],
        LandingCursor(),
        landing_prefix=SPEC.landing_prefix,
        first_day="2026-01-01",
        last_day="2026-11-24",
        lookback=60,
    ).cursor
    assert cursor.floor(60) == 1_940
    slow = LandedFile("landing/events/2026-11-02/big.csv", 10, "v", arrival=1_950)
    too_slow = LandedFile("landing/events/2026-11-03/huge.csv", 10, "v", arrival=1_900)
    plan = plan_runs(
        [seen, slow, too_slow],
        cursor,
        landing_prefix=SPEC.landing_prefix,
        first_day="2026-01-01",
        last_day="2026-11-24",
        lookback=60,
    )
    assert [b.days for b in plan.batches] == [("2026-11-02",)]
    assert plan.cursor.high_water == 2_000
