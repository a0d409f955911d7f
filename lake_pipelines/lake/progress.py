"""Progress of long work (rows and bytes done, rate), reported through a callback.

The engine knows nothing of Dagster: a layer takes a `ProgressHook` (any ``str -> None``) and
the asset passes ``context.log.info``, so a user watching a run in the UI sees a day of many
millions of rows moving. A line is emitted at most once per `interval` seconds; short work
emits nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

ProgressHook = Callable[[str], None]
PROGRESS_INTERVAL = 30.0  # seconds between two lines of the same work


class Progress:
    """Counts rows and bytes of one piece of work (``what``) and reports them now and then.

    Args:
        what: names the work in every line, e.g. ``silver events 2026-11-01``.
        hook: where lines go; None: nowhere (counting still works).
        total_rows: when known, lines also say how far along the work is.
        interval: seconds between two lines (default: `PROGRESS_INTERVAL`).
        clock: seconds, monotonic (tests pass their own).
    """

    def __init__(
        self,
        what: str,
        hook: ProgressHook | None = None,
        total_rows: int | None = None,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what, self.hook, self.total_rows = what, hook, total_rows
        self.interval = PROGRESS_INTERVAL if interval is None else interval
        self.clock = clock
        self.rows = 0
        self.bytes = 0
        self.started = clock()
        self._next = self.started + self.interval
        self.lines = 0  # lines emitted so far

    def add(self, rows: int, nbytes: int = 0) -> None:
        """Count `rows` (and `nbytes`) more done; emit a line if the interval has passed."""
        self.rows += rows
        self.bytes += nbytes
        if self.hook is not None:
            now = self.clock()
            if now >= self._next:
                self._next = now + self.interval
                self.lines += 1
                self.hook(self.line(now))

    def finish(self) -> None:
        """A last line with the totals, if the work was long enough to report progress."""
        if self.hook is not None and self.lines:
            self.lines += 1
            self.hook(self.line())

    def line(self, now: float | None = None) -> str:
        """The progress so far, as one line."""
        elapsed = max((self.clock() if now is None else now) - self.started, 1e-9)
        done = f"{self.rows:,} rows"
        if self.total_rows:
            done = f"{self.rows:,} of {self.total_rows:,} rows ({self.rows / self.total_rows:.0%})"
        return (
            f"{self.what}: {done}, {self.bytes / (1 << 20):,.0f} MiB in {elapsed:,.0f} s "
            f"({self.rows / elapsed:,.0f} rows/s, {self.bytes / (1 << 20) / elapsed:,.1f} MiB/s)"
        )
