"""Task 9: the `lake-pipelines` command's start-up, as a user meets it on the demo lake.

Whole processes, wall time, side by side with Python's own floor (``python -c pass``) and
DuckDB's (``import duckdb``, then reading the same silver Parquet files the `scan` reads).
Children write bytecode (``PYTHONDONTWRITEBYTECODE`` is dropped) and a warm-up round fills
it, as on a user's machine after the first run.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from benchmarks import measure
from benchmarks.config import Scale
from benchmarks.datagen import Inputs
from benchmarks.runner import Case, Engine

# What the issue asks of each command, in wall seconds.
LIMITS = {
    "lake-pipelines --help": 0.5,
    "lake-pipelines tables": 2.0,
    "lake-pipelines history lake.events": 2.0,
    "lake-pipelines scan lake.events --limit 20": 2.0,
}


def cli_case(s: Scale, inputs: Inputs) -> Case:
    env = {
        k: v
        for k, v in (measure.DEFAULT_ENV or os.environ).items()
        if k != "PYTHONDONTWRITEBYTECODE"
    }
    home, lake = inputs.demo_lake(env)
    env.update(DAGSTER_HOME=str(home), LAKE_HOME=str(lake))
    env.pop("LAKE_STORE_URL", None)
    env.pop("LAKE_CATALOG_URI", None)
    python = sys.executable
    cli = str(Path(python).with_name("lake-pipelines"))
    silver = f"{lake}/warehouse/lake/events/data/*/*.parquet"
    duck_scan = (
        "import duckdb; "
        f"print(duckdb.sql(\"SELECT * FROM read_parquet('{silver}') LIMIT 20\").fetchall())"
    )
    engines = [Engine("python -c pass", commands=[[python, "-c", "pass"]])]
    engines += [Engine(label, commands=[[cli, *label.split()[1:]]]) for label in LIMITS]
    engines += [
        Engine("python -c 'import duckdb'", commands=[[python, "-c", "import duckdb"]]),
        Engine(
            "duckdb: read_parquet(silver files) LIMIT 20",
            commands=[[python, "-c", duck_scan]],
            note="the same Parquet files as the scan, without a catalog or Iceberg metadata",
        ),
    ]
    return Case(
        9,
        "9-cli",
        "`lake-pipelines` on the demo lake (7 days, 2 datasets, 6 Iceberg tables)",
        0,
        0,
        engines,
        warmup=1,
        reps=max(s.reps, 3),
        timing="wall",
        env=env,
        cwd=str(home.parent),
    )


def cli_targets(wall: dict[str, float | None]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) per command of `LIMITS`, against the median wall `wall`."""
    floor = wall.get("python -c pass")
    out: list[tuple[str, str, bool | None]] = []
    for label, limit in LIMITS.items():
        t = wall.get(label)
        if t is None:
            out.append((f"`{label}` < {limit} s", "did not run cleanly", None))
            continue
        extra = f" ({t / floor:.0f}x `python -c pass`)" if floor else ""
        out.append((f"`{label}` < {limit} s", f"{t:.2f} s{extra}", t < limit))
    return out
