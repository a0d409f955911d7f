"""Sizes, repetitions and paths of a benchmark run; nothing here touches the disk."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

# The day every single-day dataset lands on, and the first day of multi-day ones.
FIRST_DAY = date(2026, 11, 1)
SEED = 20261101


# Not part of the cached inputs' key: task 8 lands its own input, task 10's days are cached
# under names that carry their sizes.
UNCACHED = (
    "name",
    "warmup",
    "reps",
    "orchestration_reps",
    "year_days",
    "year_rows_per_day",
    "big_day_rows",
    "big_day_files",
    "peer_timeout_s",
    "peer_rss_cap_mib",
)


@dataclass(frozen=True)
class Scale:
    """How big the inputs are and how often each engine runs.

    Args:
        name: ``full`` or ``quick`` (or anything given on the command line).
        csv_rows: rows of the single-day events CSV (tasks 1 and 6).
        hive_rows: rows of the multi-day events CSV, one file per day (tasks 2 and 5).
        hive_days: days those rows are spread over.
        ndjson_rows: rows of the single-day events NDJSON (task 3).
        small_files / small_file_rows: the small Parquet files to compact (task 4).
        tpch_sf: TPC-H scale factor of lineitem (task 1, second case); 0 skips it.
        memory_rows: the two sizes of the memory-growth task (task 6).
        tiny_rows_per_day / backfill_days: the Dagster overhead task (task 7); fewer than 2
            backfill days skip the backfill comparison (several Dagster start-ups).
        year_days / year_rows_per_day: the single-run backfill of task 8 (lands its own
            input, so not part of the cached inputs' key).
        warmup / reps: unrecorded and recorded rounds; each round runs every engine once.
        orchestration_reps: recorded rounds of task 7 (each costs several Dagster start-ups).
        big_day_rows: the two sizes of one day of task 10 (growth is measured between them).
        big_day_files: how the day lands: (CSV files, NDJSON files), its rows split evenly.
        peer_timeout_s / peer_rss_cap_mib: a peer of task 10 still running after this long,
            or whose process tree holds more than this much memory, is stopped and recorded
            as failed with that reason (this machine is shared; nothing may swap it out).
    """

    name: str
    csv_rows: int = 5_000_000
    hive_rows: int = 5_000_000
    hive_days: int = 7
    ndjson_rows: int = 2_000_000
    small_files: int = 2_000
    small_file_rows: int = 1_000
    tpch_sf: float = 1.0
    memory_rows: tuple[int, int] = (1_000_000, 5_000_000)
    tiny_rows_per_day: int = 200
    backfill_days: int = 7
    year_days: int = 365
    year_rows_per_day: int = 1_000
    warmup: int = 1
    reps: int = 3
    orchestration_reps: int = 3
    big_day_rows: tuple[int, int] = (2_000_000, 20_000_000)
    big_day_files: tuple[int, int] = (6, 2)
    peer_timeout_s: float = 1200.0
    peer_rss_cap_mib: int = 8192

    def data_key(self) -> str:
        """Name of the cache directory of this scale's inputs (changes when a size changes)."""
        sizes = {k: v for k, v in dataclasses.asdict(self).items() if k not in UNCACHED}
        digest = hashlib.sha256(json.dumps(sizes, sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.name}-{digest}"


FULL = Scale("full")
# Small inputs, one round, no TPC-H and no backfill comparison: about 1.5 minutes on 2 idle
# cores (add them back with e.g. --tasks, or use the full scale).
QUICK = Scale(
    "quick",
    csv_rows=200_000,
    hive_rows=210_000,
    hive_days=7,
    ndjson_rows=100_000,
    small_files=200,
    small_file_rows=500,
    tpch_sf=0,
    memory_rows=(50_000, 200_000),
    tiny_rows_per_day=50,
    backfill_days=0,
    year_days=60,
    big_day_rows=(100_000, 1_000_000),
    peer_timeout_s=900.0,
    warmup=0,
    reps=1,
    orchestration_reps=1,
)
SCALES = {"full": FULL, "quick": QUICK}


@dataclass(frozen=True)
class Paths:
    """Where a run keeps its inputs (cached), outputs (scratch) and results.

    ``workdir`` defaults to ``<repo>/.lake/bench``; point it elsewhere to keep the cache out of
    the way of ``make clean``.
    """

    root: Path
    workdir: Path | None = None

    @property
    def bench(self) -> Path:
        return self.workdir or self.root / ".lake" / "bench"

    def data(self, scale: Scale) -> Path:
        return self.bench / "data" / scale.data_key()

    @property
    def out(self) -> Path:
        return self.bench / "out"

    @property
    def results(self) -> Path:
        return self.bench / "results"

    @property
    def profiles(self) -> Path:
        return self.bench / "profiles"

    @property
    def results_md(self) -> Path:
        return self.root / "benchmarks" / "RESULTS.md"
