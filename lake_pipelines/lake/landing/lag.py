"""How far the landing sensor is behind: the files of a tick not yet in bronze, and the oldest."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lake_pipelines.lake.landing.planner import LandedFile, LandingPlan


@dataclass(frozen=True)
class LandingLag:
    files: int  # files requested now, waiting for their day's partition, or incomplete
    oldest_seconds: float  # age of the oldest requested or incomplete file at `now` (0: none)


def landing_lag(files: Iterable[LandedFile], plan: LandingPlan, now: float) -> LandingLag:
    """The tick's listing against its plan. The age is that of the oldest file requested now
    (how long it waited for the sensor) or still incomplete (an upload that never finishes);
    files of a day whose partition does not exist yet wait on purpose and are only counted."""
    requested = {i for b in plan.batches for i in b.file_ids}
    incomplete = {key for key, _ in plan.incomplete}
    arrivals = [f.arrival for f in files if f.file_id in requested or f.key in incomplete]
    count = len(requested) + len(incomplete) + sum(plan.waiting.values())
    return LandingLag(count, max(now - min(arrivals), 0.0) if arrivals else 0.0)
