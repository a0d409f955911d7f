"""Benchmark inputs, generated once per scale and cached under ``.lake/bench/data/<scale>-<hash>/``.

Every item is written under a temporary name and recorded in ``manifest.json`` only when whole,
so an interrupted generation resumes where it stopped and a finished one costs nothing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from benchmarks import events_data
from benchmarks.config import FIRST_DAY, SEED, Scale
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.sample_data import generate_events


@dataclass(frozen=True)
class Input:
    """A generated input: its files (with the day each belongs to), rows and bytes."""

    files: list[str]
    days: list[str]
    rows: int
    bytes: int

    @property
    def mib(self) -> float:
        return self.bytes / (1 << 20)


def _days(n: int) -> list[date]:
    return [FIRST_DAY + timedelta(days=i) for i in range(n)]


def _split(rows: int, parts: int) -> list[int]:
    base, rest = divmod(rows, parts)
    return [base + (1 if i < rest else 0) for i in range(parts)]


def _count_lines(path: Path) -> int:
    n = 0
    with open(path, "rb") as f:
        while block := f.read(64 << 20):
            n += int(np.count_nonzero(np.frombuffer(block, dtype=np.uint8) == 10))
    return n


class Inputs:
    """The inputs of one scale; each property generates its item on first use."""

    def __init__(self, scale: Scale, root: Path, log: Callable[[str], None] = print) -> None:
        self.scale, self.root, self.log = scale, root, log
        root.mkdir(parents=True, exist_ok=True)
        self._manifest_path = root / "manifest.json"
        self._manifest: dict[str, Any] = (
            json.loads(self._manifest_path.read_text()) if self._manifest_path.exists() else {}
        )

    def _item(self, name: str, make: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
        if name in self._manifest:
            return self._manifest[name]
        target = self.root / name
        shutil.rmtree(target, ignore_errors=True)
        self.log(f"generating {name} ...")
        started = time.perf_counter()
        entry = make(target)
        entry["seconds_to_generate"] = round(time.perf_counter() - started, 1)
        self._manifest[name] = entry
        self._manifest_path.write_text(json.dumps(self._manifest, indent=1))
        self.log(f"  {name}: {entry['rows']:,} rows, {entry['bytes'] / 2**20:,.0f} MiB")
        return entry

    def _input(self, name: str, make: Callable[[Path], dict[str, Any]]) -> Input:
        e = self._item(name, make)
        return Input(e["files"], e["days"], e["rows"], e["bytes"])

    def _events_files(self, target: Path, rows: list[int], fmt: str) -> dict[str, Any]:
        files, days = [], []
        for day, n in zip(_days(len(rows)), rows, strict=True):
            path = target / day.isoformat() / f"events.{fmt}"
            writer = events_data.write_csv if fmt == "csv" else events_data.write_ndjson
            writer(path, SEED, day, n)
            files.append(str(path))
            days.append(day.isoformat())
        size = sum(Path(f).stat().st_size for f in files)
        return {"files": files, "days": days, "rows": sum(rows), "bytes": size}

    # -- the items ----------------------------------------------------------------------

    @property
    def csv(self) -> Input:
        """One day, one CSV file (tasks 1 and 6)."""
        rows = self.scale.csv_rows
        return self._input("csv", lambda t: self._events_files(t, [rows], "csv"))

    @property
    def hive_csv(self) -> Input:
        """Several days, one CSV file each (tasks 2 and 5)."""
        rows = _split(self.scale.hive_rows, self.scale.hive_days)
        return self._input("hive_csv", lambda t: self._events_files(t, rows, "csv"))

    @property
    def ndjson(self) -> Input:
        """One day, one NDJSON file (task 3)."""
        rows = self.scale.ndjson_rows
        return self._input("ndjson", lambda t: self._events_files(t, [rows], "ndjson"))

    def memory_csv(self, rows: int) -> Input:
        """One day, one CSV file of `rows` rows (task 6); the task-1 file when sizes agree."""
        if rows == self.scale.csv_rows:
            return self.csv
        return self._input(f"memory_{rows}", lambda t: self._events_files(t, [rows], "csv"))

    def big_day(self, rows: int) -> Input:
        """One day of `rows` events landed as the scale's `big_day_files` (CSV, NDJSON) files,
        the rows split evenly in time order (task 10)."""
        n_csv, n_json = self.scale.big_day_files
        total = n_csv + n_json

        def make(target: Path) -> dict[str, Any]:
            files = []
            for i in range(total):
                fmt = "csv" if i < n_csv else "ndjson"
                path = target / FIRST_DAY.isoformat() / f"events-{i:02d}.{fmt}"
                writer = events_data.write_csv if fmt == "csv" else events_data.write_ndjson
                writer(path, SEED, FIRST_DAY, rows, part=(i, total))
                files.append(str(path))
            size = sum(Path(f).stat().st_size for f in files)
            return {
                "files": files,
                "days": [FIRST_DAY.isoformat()] * total,
                "rows": rows,
                "bytes": size,
                "count": total,
            }

        return self._input(f"big_day_{rows}_{n_csv}csv_{n_json}ndjson", make)

    @property
    def small_files(self) -> Input:
        """Many small Parquet files in one bronze day directory (task 4)."""
        s = self.scale

        def make(target: Path) -> dict[str, Any]:
            events_data.write_small_parquet(
                target, SEED, FIRST_DAY, s.small_files, s.small_file_rows
            )
            files = sorted(target.glob("*.parquet"))
            size = sum(f.stat().st_size for f in files)
            return {
                "files": [str(target)],
                "days": [FIRST_DAY.isoformat()],
                "rows": s.small_files * s.small_file_rows,
                "bytes": size,
                "count": len(files),
            }

        return self._input("small_files", make)

    @property
    def lineitem(self) -> Input | None:
        """TPC-H lineitem as CSV from `tpchgen-cli` (task 1, second case); None if skipped."""
        if not self.scale.tpch_sf:
            return None

        def make(target: Path) -> dict[str, Any]:
            target.mkdir(parents=True)
            cli = Path(sys.executable).with_name("tpchgen-cli")
            subprocess.run(
                [
                    str(cli),
                    "csv",
                    "-s",
                    str(self.scale.tpch_sf),
                    "-T",
                    "lineitem",
                    "-o",
                    str(target),
                    "--no-progress",
                    "-q",
                ],
                check=True,
            )
            path = target / "lineitem.csv"
            rows = _count_lines(path) - 1
            return {"files": [str(path)], "days": [], "rows": rows, "bytes": path.stat().st_size}

        return self._input("lineitem", make)

    def metrics_bronze(self, make: Callable[[Path], None]) -> Input:
        """The multi-day data as our bronze Hive Parquet (task 5), written by `make`."""

        def build(target: Path) -> dict[str, Any]:
            make(target)
            bronze = target / "bronze" / "events"
            files = sorted(bronze.rglob("*.parquet"))
            rows = sum(pq.read_metadata(f).num_rows for f in files)
            size = sum(f.stat().st_size for f in files)
            if rows != self.hive_csv.rows:  # e.g. landed files quarantined: no input to measure
                expected = self.hive_csv.rows
                raise RuntimeError(f"bronze for task 5 holds {rows:,} of {expected:,} rows")
            return {"files": [str(bronze)], "days": self.hive_csv.days, "rows": rows, "bytes": size}

        return self._input("metrics_bronze", build)

    def dagster_home(self) -> tuple[Path, Path, list[str]]:
        """(DAGSTER_HOME, lake directory, days) with a few tiny landed days (task 7)."""
        s = self.scale

        def make(target: Path) -> dict[str, Any]:
            lake = target / "lake"
            home = target / "home"
            home.mkdir(parents=True)
            shutil.copy(Path(__file__).parents[1] / "dagster.yaml", home / "dagster.yaml")
            days = generate_events(
                ObjectStore(str(lake)),
                FIRST_DAY,
                days=max(s.backfill_days, 1),
                rows_per_day=s.tiny_rows_per_day,
                seed=SEED,
                bad_rows=False,
            )
            size = sum(p.stat().st_size for p in (lake / "landing").rglob("*") if p.is_file())
            return {
                "files": [str(home), str(lake)],
                "days": [d.day.isoformat() for d in days],
                "rows": s.tiny_rows_per_day * max(s.backfill_days, 1),
                "bytes": size,
            }

        e = self._item("dagster", make)
        return Path(e["files"][0]), Path(e["files"][1]), e["days"]

    def demo_lake(self, env: dict[str, str]) -> tuple[Path, Path]:
        """(DAGSTER_HOME, lake directory) of what `make demo` builds: its 7 days of sample
        data through every layer by ``python -m lake_pipelines.backfill`` (task 9)."""

        def make(target: Path) -> dict[str, Any]:
            lake, home = target / "lake", target / "home"
            home.mkdir(parents=True)
            shutil.copy(Path(__file__).parents[1] / "dagster.yaml", home / "dagster.yaml")
            run_env = {**env, "DAGSTER_HOME": str(home), "LAKE_HOME": str(lake)}
            first, last = "2026-11-01", "2026-11-07"
            for module, args in (
                ("lake_pipelines.sample_data", ["--store", str(lake), "--start", first]),
                ("lake_pipelines.backfill", ["--start", first, "--end", last]),
            ):
                cmd = [sys.executable, "-m", module, *args]
                subprocess.run(cmd, env=run_env, cwd=target, check=True, capture_output=True)
            files = [p for p in (lake / "warehouse").rglob("*.parquet")]
            return {
                "files": [str(home), str(lake)],
                "days": [first, last],
                "rows": sum(pq.read_metadata(p).num_rows for p in files),
                "bytes": sum(p.stat().st_size for p in files),
            }

        e = self._item("demo", make)
        return Path(e["files"][0]), Path(e["files"][1])

    def describe(self) -> dict[str, Any]:
        return {
            k: {x: v[x] for x in ("rows", "bytes", "seconds_to_generate") if x in v}
            | ({"count": v["count"]} if "count" in v else {})
            for k, v in self._manifest.items()
        }
