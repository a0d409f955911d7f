"""Which gold days a silver update made stale, for gold tables that read a window of days.

Day G of a gold table with `lookback_days` L reads silver days G-L..G (`lake.gold` plans the
window and fingerprints every silver file of it). Re-running silver for day D alone (a late
file) therefore changes the inputs of gold days D..D+L, while Dagster only knows that gold
day G depends on silver day G. The gold window sensor asks this module which gold days to
request; it knows nothing of Dagster: a "version" is any number that grows with time (the
instance's event storage ids).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta


def stale_window_days(
    silver: Mapping[date, int], gold: Mapping[date, int], lookback_days: int
) -> list[date]:
    """The gold days last computed before an update of a silver day of their window.

    Args:
        silver: per silver day, the version of its latest update.
        gold: per gold day, the version of its latest computation.
        lookback_days: the days before each gold day its window reads.

    Returns:
        Those gold days, in order. A day gold has never computed is not stale: requesting it
        would compute a day nobody asked for (its own silver day's run computes it).
    """
    window = [timedelta(days=k) for k in range(lookback_days + 1)]
    return [
        day
        for day, computed in sorted(gold.items())
        if any(silver.get(day - back, computed) > computed for back in window)
    ]
