"""Which runs to request for a landing listing: new files by day, consecutive days batched.

Days are the partitions of the dataset's calendar (`lake.period.Calendar`): a landing folder
``2026-11-01`` is the day's key; an hourly dataset's folder ``2026-11-01T05`` is the key
``2026-11-01-05:00`` (Dagster's). Keys of one calendar sort in time order.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass

from lake_pipelines.lake.ingest.readers import LANDING_SUFFIXES
from lake_pipelines.lake.landing.cursor import LOOKBACK_SECONDS, LandingCursor
from lake_pipelines.lake.period import Calendar, follows, partition_key

DAILY = Calendar()

MAX_FILES_PER_RUN = 500


@dataclass(frozen=True)
class LandedFile:
    """One object under a landing prefix, as a listing reports it."""

    key: str  # store-relative
    size: int
    version: str  # ETag, or the local mtime
    arrival: int  # epoch second at which the object became visible

    @property
    def file_id(self) -> str:
        raw = f"{self.key}\0{self.version}\0{self.size}".encode()
        return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class RunBatch:
    """Consecutive days requested in one run, and the ids of the files that triggered it."""

    days: tuple[str, ...]
    file_ids: tuple[str, ...]

    @property
    def run_key(self) -> str:
        digest = hashlib.sha256("\n".join(sorted(self.file_ids)).encode()).hexdigest()[:16]
        span = self.days[0] if len(self.days) == 1 else f"{self.days[0]}...{self.days[-1]}"
        return f"{span}:{digest}"


@dataclass
class LandingPlan:
    batches: list[RunBatch]
    cursor: LandingCursor
    waiting: dict[str, int]  # day whose partition does not exist yet -> files waiting
    incomplete: list[tuple[str, str]]  # (key, reason): looked at again once complete
    skipped: list[tuple[str, str]]  # (key, reason): outside the dataset's calendar, never taken


def day_of(key: str, landing_prefix: str, calendar: Calendar = DAILY) -> str | None:
    """The partition key of the ``YYYY-MM-DD`` (hourly: ``YYYY-MM-DDTHH``) folder right
    under the landing prefix, if the key has one."""
    rest = key[len(landing_prefix) + 1 :] if key.startswith(landing_prefix + "/") else ""
    unit = calendar.of_folder(rest.split("/", 1)[0])
    return None if unit is None else partition_key(unit)


def incomplete_reason(key: str, size: int, landing_prefix: str) -> str | None:
    """Why a file must wait (still being written, a marker, not data), or None if whole."""
    rest = key[len(landing_prefix) + 1 :]
    if any(part.startswith((".", "_")) for part in rest.split("/")):
        return "hidden or temporary name"  # .x.tmp, _tmp/, _temporary/, _SUCCESS
    if not posixpath.basename(key).endswith(LANDING_SUFFIXES):
        return "not a landing file type"  # x.csv.inprogress, x.csv.part, x.csv._COPYING_
    if size == 0:
        return "empty (zero bytes)"
    return None


def plan_runs(
    files: Iterable[LandedFile],
    cursor: LandingCursor,
    *,
    landing_prefix: str,
    first_day: str | None,
    last_day: str | None,
    calendar_ended: bool = False,
    lookback: int = LOOKBACK_SECONDS,
    max_files_per_run: int = MAX_FILES_PER_RUN,
    calendar: Calendar = DAILY,
) -> LandingPlan:
    """Which runs to request for a listing, and the cursor after them.

    Args:
        files: the listing (at least every file arriving at or after ``cursor.floor``).
        first_day / last_day: the first and last daily partition that exist now; files of
            later days wait in the cursor, files of earlier days are skipped for good.
        calendar_ended: `last_day` is the dataset's last day ever (its spec has an
            ``end_date`` that has passed): files of later days are skipped, not kept waiting.
        lookback: seconds before the high-water second a file may still show up.
        max_files_per_run: consecutive days share one run up to this many new files (a day
            is never split: its run reads every file of the day anyway).
        calendar: the dataset's partitions (`DatasetSpec.calendar`): which folders are
            partitions, and which partitions follow each other.
    """
    floor = cursor.floor(lookback)
    seen = dict(cursor.seen)
    deferred = {d: list(ids) for d, ids in cursor.deferred.items()}
    new: dict[str, list[str]] = {}
    incomplete: list[tuple[str, str]] = []
    skipped: list[tuple[str, str]] = []
    high_water = cursor.high_water
    for f in sorted(files, key=lambda f: (f.arrival, f.key)):
        if (floor is not None and f.arrival < floor) or f.file_id in seen:
            continue
        reason = incomplete_reason(f.key, f.size, landing_prefix)
        if reason:
            incomplete.append((f.key, reason))  # not remembered: looked at again next tick
            continue
        seen[f.file_id] = f.arrival
        high_water = max(high_water, f.arrival)
        day = day_of(f.key, landing_prefix, calendar)
        if day is None:
            skipped.append((f.key, f"not in a {calendar.folder_pattern} folder"))
        elif first_day is None or day < first_day:
            skipped.append((f.key, f"{day} is before the dataset's first day {first_day}"))
        elif calendar_ended and last_day is not None and day > last_day:
            skipped.append((f.key, f"{day} is after the dataset's last day {last_day}"))
        elif last_day is None or day > last_day:
            deferred.setdefault(day, []).append(f.file_id)
        else:
            new.setdefault(day, []).append(f.file_id)
    for day in [d for d in deferred if last_day is not None and d <= last_day]:
        new.setdefault(day, []).extend(deferred.pop(day))
    out = LandingCursor(
        high_water=high_water,
        seen={i: a for i, a in seen.items() if a >= high_water - lookback},
        deferred=deferred,
    )
    waiting = {d: len(ids) for d, ids in sorted(deferred.items())}
    return LandingPlan(
        _batches(new, max_files_per_run, calendar), out, waiting, incomplete, skipped
    )


def _batches(new: dict[str, list[str]], max_files: int, calendar: Calendar) -> list[RunBatch]:
    batches: list[RunBatch] = []
    days: list[str] = []
    ids: list[str] = []
    for day in sorted(new):
        after = bool(days) and follows(calendar.of_key(days[-1]), calendar.of_key(day))
        if days and (not after or len(ids) + len(new[day]) > max_files):
            batches.append(RunBatch(tuple(days), tuple(ids)))
            days, ids = [], []
        days.append(day)
        ids.extend(new[day])
    if days:
        batches.append(RunBatch(tuple(days), tuple(ids)))
    return batches
