"""Progress lines: at most one per interval, none for short work, totals at the end."""

from __future__ import annotations

from lake_pipelines.lake.progress import Progress


def test_progress_reports_once_per_interval_and_finishes_with_the_totals() -> None:
    now = [100.0]
    lines: list[str] = []
    progress = Progress("silver events 2026-11-05", lines.append, 4_000, 30.0, lambda: now[0])
    progress.add(1_000, 1 << 20)
    assert lines == []  # not yet 30 s
    now[0] = 130.0
    progress.add(1_000, 1 << 20)
    now[0] = 140.0
    progress.add(1_000, 1 << 20)  # within the next interval: no line
    assert lines == [
        "silver events 2026-11-05: 2,000 of 4,000 rows (50%), 2 MiB in 30 s (67 rows/s, 0.1 MiB/s)"
    ]
    now[0] = 160.0
    progress.add(1_000, 1 << 20)
    progress.finish()
    assert len(lines) == 3 and lines[-1].startswith("silver events 2026-11-05: 4,000 of 4,000")


def test_short_work_says_nothing() -> None:
    lines: list[str] = []
    progress = Progress("gold", lines.append, clock=lambda: 0.0)
    progress.add(10)
    progress.finish()
    assert lines == [] and progress.rows == 10
