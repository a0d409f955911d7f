"""The benchmark tasks of issue "Benchmarks that keep us honest", as runnable cases."""

from __future__ import annotations

import os
import shutil
import sys
from datetime import date, timedelta
from pathlib import Path

from benchmarks import measure
from benchmarks.bigday import big_day_case
from benchmarks.cli_task import cli_case
from benchmarks.config import FIRST_DAY, Paths, Scale
from benchmarks.datagen import Input, Inputs
from benchmarks.engines import ours_compaction
from benchmarks.runner import Case, Engine
from benchmarks.schemas import LINEITEM, ZSTD_LEVEL, encode
from lake_pipelines.datasets import events

CONVERTERS = ("ours", "duckdb", "polars", "pyarrow", "datafusion")
MODULES = {
    "ours": "ours",
    "duckdb": "duckdb_engine",
    "polars": "polars_engine",
    "pyarrow": "pyarrow_engine",
    "datafusion": "datafusion_engine",
}


def _lake_rejects_dates() -> bool:
    import pyarrow as pa

    from lake_pipelines.lake.ingest.coerce import convert_column

    return bool(convert_column(pa.array(["1996-03-13"]), pa.timestamp("us", tz="UTC"))[1])


def _rows(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n / 1e3:g}k"


def _conversion(
    task: int,
    key: str,
    title: str,
    op: str,
    data: Input,
    out: Path,
    dataset: str,
    partitioned: bool,
    s: Scale,
) -> Case:
    engines = []
    schema = encode(events.SCHEMA if dataset == "events" else LINEITEM)
    for name in CONVERTERS:
        target = out / key / name
        engines.append(
            Engine(
                label=name,
                module=MODULES[name],
                op=op,
                args={
                    "inputs": data.files,
                    "days": data.days,
                    "out": str(target),
                    "dataset": dataset,
                    "schema": schema,
                    "partitioned": partitioned,
                    "zoned": dataset == "events",
                },
                out=str(target),
                count=str(target / "bronze") if name == "ours" else str(target),
            )
        )
    if dataset == "lineitem" and _lake_rejects_dates():
        engines[0].note = (
            "with a one-line fix of the lake's timestamp parsing applied in-process "
            "(`benchmarks/engines/ours.py: date_only_patch`): without it every row is "
            "quarantined, because `coerce._ZONE` reads the '-13' of '1996-03-13' as a zone offset"
        )
    return Case(
        task, key, title, data.rows, data.bytes, engines, s.warmup, s.reps, expect_rows=data.rows
    )


def conversion_cases(s: Scale, inputs: Inputs, paths: Paths, task: int) -> list[Case]:
    out = paths.out
    if task == 2:
        title = (
            f"CSV → Hive Parquet by day, events {_rows(s.hive_rows)} rows in {s.hive_days} files"
        )
        return [
            _conversion(
                2, "2-hive", title, "csv_to_parquet", inputs.hive_csv, out, "events", True, s
            )
        ]
    if task == 3:
        title = (
            f"NDJSON → Parquet (ZSTD {ZSTD_LEVEL}), events {_rows(s.ndjson_rows)} rows, one file"
        )
        return [
            _conversion(
                3, "3-ndjson", title, "ndjson_to_parquet", inputs.ndjson, out, "events", False, s
            )
        ]
    title = f"CSV → Parquet (ZSTD {ZSTD_LEVEL}), events {_rows(s.csv_rows)} rows, one file"
    cases = [
        _conversion(1, "1-events", title, "csv_to_parquet", inputs.csv, out, "events", False, s)
    ]
    lineitem = inputs.lineitem
    if lineitem is not None:
        title = (
            f"CSV → Parquet (ZSTD {ZSTD_LEVEL}), TPC-H lineitem SF{s.tpch_sf:g} "
            f"({_rows(lineitem.rows)} rows)"
        )
        cases.append(
            _conversion(
                1, "1-lineitem", title, "csv_to_parquet", lineitem, out, "lineitem", False, s
            )
        )
    return cases


def compaction_case(s: Scale, inputs: Inputs, paths: Paths) -> Case:
    data = inputs.small_files
    engines, unavailable = [], {}
    reason = ours_compaction.unavailable_reason()
    names = ["duckdb", "pyarrow"]
    if reason is None:
        names.insert(0, "ours")
    else:
        unavailable["ours"] = reason
    for name in names:
        target = paths.out / "4-compaction" / name
        module = "ours_compaction" if name == "ours" else MODULES[name]
        args = {"src": data.files[0], "out": str(target), "day": data.days[0]}
        count = target / "bronze" if name == "ours" else target
        engines.append(Engine(name, module, "compact", args, out=str(target), count=str(count)))
    sorted_target = paths.out / "4-compaction" / "duckdb-sorted"
    engines.append(
        Engine(
            "duckdb, sorted",
            MODULES["duckdb"],
            "compact_sorted",
            {"src": data.files[0], "out": str(sorted_target), "day": data.days[0]},
            out=str(sorted_target),
            count=str(sorted_target),
            note="context: the same copy `ORDER BY ts, user_id`, the order ours writes in",
        )
    )
    if "ours" in names:
        engines[0].note = (
            "`compact_hive(store, spec, force=True)`: plans bins, rewrites them sorted with the "
            "dataset's Parquet settings, checksums the rows read, proves each reached the "
            "writer exactly once and checks the outputs' footers, swaps via a journal"
        )
    return Case(
        4,
        "4-compaction",
        f"compaction of {s.small_files:,} small Parquet files "
        f"({_rows(data.rows)} rows) into large ones",
        data.rows,
        data.bytes,
        engines,
        s.warmup,
        s.reps,
        expect_rows=data.rows,
        unavailable=unavailable,
    )


def _bronze_for_metrics(inputs: Inputs, paths: Paths) -> Input:
    """Our bronze of the multi-day data, written once by our own conversion."""

    def make(target: Path) -> None:
        data = inputs.hive_csv
        engine = Engine(
            "ours",
            "ours",
            "csv_to_parquet",
            {
                "inputs": data.files,
                "days": data.days,
                "out": str(target),
                "dataset": "events",
                "partitioned": True,
            },
        )
        measure.run(engine.command())
        shutil.rmtree(target / "landing", ignore_errors=True)  # links to the cached CSV

    return inputs.metrics_bronze(make)


def metrics_cases(s: Scale, inputs: Inputs, paths: Paths) -> list[Case]:
    bronze = _bronze_for_metrics(inputs, paths)
    first = date.fromisoformat(bronze.days[0])
    mid = first + timedelta(days=len(bronze.days) // 2)
    ranges = {
        "5-full": (f"all {len(bronze.days)} days", first, first + timedelta(days=len(bronze.days))),
        "5-day": (f"one day ({mid}), pruned", mid, mid + timedelta(days=1)),
    }
    cases = []
    for key, (what, lo, hi) in ranges.items():
        args = {
            "bronze": bronze.files[0],
            "start": f"{lo.isoformat()}T00:00:00+00:00",
            "end": f"{hi.isoformat()}T00:00:00+00:00",
        }
        engines = [
            Engine("ours (DataFusion resource)", "ours_metrics", "daily_metrics", args),
            Engine("duckdb", "duckdb_engine", "daily_metrics", args),
            Engine("polars", "polars_engine", "daily_metrics", args),
        ]
        cases.append(
            Case(
                5,
                key,
                f"daily metrics over bronze Parquet ({_rows(bronze.rows)} rows), {what}",
                bronze.rows,
                bronze.bytes,
                engines,
                s.warmup,
                s.reps,
                same_value=True,
            )
        )
    return cases


def memory_case(s: Scale, inputs: Inputs, paths: Paths) -> Case:
    engines = []
    small, large = s.memory_rows
    for n in (small, large):
        data = inputs.memory_csv(n)
        target = paths.out / "6-memory" / _rows(n)
        engines.append(
            Engine(
                f"ours {_rows(n)} rows",
                "ours",
                "csv_to_parquet",
                {
                    "inputs": data.files,
                    "days": data.days,
                    "out": str(target),
                    "dataset": "events",
                    "partitioned": False,
                },
                out=str(target),
                count=str(target / "bronze"),
            )
        )
        engines[-1].rows, engines[-1].input_bytes = data.rows, data.bytes
    big = inputs.memory_csv(large)
    # Peak RSS hardly varies from run to run: two rounds, no warm-up, keep the run short.
    return Case(
        6,
        "6-memory",
        f"memory growth of our CSV → Parquet, {_rows(small)} vs {_rows(large)} rows",
        big.rows,
        big.bytes,
        engines,
        warmup=0,
        reps=min(s.reps, 2),
    )


def orchestration_cases(s: Scale, inputs: Inputs, paths: Paths) -> list[Case]:
    home, lake, days = inputs.dagster_home()
    python = sys.executable
    dagster = str(Path(python).with_name("dagster"))
    # Bytecode is written and reused (a warm-up round fills it), as on a user's machine after
    # the first run: compiling Dagster from source in every process would double the floor.
    env = dict(
        {
            k: v
            for k, v in (measure.DEFAULT_ENV or os.environ).items()
            if k != "PYTHONDONTWRITEBYTECODE"
        },
        DAGSTER_HOME=str(home),
        LAKE_HOME=str(lake),
        LAKE_STORE_URL=f"file://{lake}",
        LAKE_CATALOG_URI=f"sqlite:///{lake}/catalog.db",
    )
    base = [
        dagster,
        "asset",
        "materialize",
        "-m",
        "lake_pipelines.definitions",
        "--select",
        "lake/bronze/events",
    ]
    floor = [dagster, "asset", "materialize", "-m", "benchmarks.dagster_floor", "--select", "floor"]
    one = days[len(days) // 2]
    bare_ingest = (
        "from datetime import date; from lake_pipelines.lake.storage import ObjectStore; "
        "from lake_pipelines.lake.bronze import ingest_day; "
        "from lake_pipelines.datasets.events import SPEC; "
        f"ingest_day(ObjectStore({str(lake)!r}), SPEC, date.fromisoformat({one!r}))"
    )
    reps = s.orchestration_reps
    rows = s.tiny_rows_per_day
    overhead = Case(
        7,
        "7-one",
        f"orchestration: one tiny partition ({rows} rows) of lake/bronze/events",
        rows,
        0,
        [
            Engine("python -c 'import dagster'", commands=[[python, "-c", "import dagster"]]),
            Engine("dagster asset materialize", commands=[[*base, "--partition", one]]),
            Engine(
                "dagster asset materialize, an asset doing nothing",
                commands=[[*floor, "--partition", one]],
                note="Dagster's floor: the CLI, instance, run and event log of any code location"
                " (`benchmarks/dagster_floor.py`, in-process executor)",
            ),
            Engine(
                "ingest_day, no Dagster",
                commands=[[python, "-c", bare_ingest]],
                note="informational: our code alone, in a fresh process",
            ),
        ],
        warmup=s.warmup,
        reps=reps,
        timing="wall",
        env=env,
        cwd=str(home.parent),
    )
    if s.backfill_days < 2:
        return [overhead]
    n = len(days)
    backfill = Case(
        7,
        "7-backfill",
        f"orchestration: {n}-day backfill of lake/bronze/events",
        rows * n,
        0,
        [
            Engine(
                f"one run, --partition-range ({n} days)",
                commands=[[*base, "--partition-range", f"{days[0]}...{days[-1]}"]],
            ),
            Engine(f"{n} runs, one per day", commands=[[*base, "--partition", d] for d in days]),
        ],
        warmup=0,
        reps=reps,
        timing="wall",
        env=env,
        cwd=str(home.parent),
    )
    return [overhead, backfill]


def year_backfill_case(s: Scale, paths: Paths) -> Case:
    """A year (quick: two months) of a small dataset backfilled in one run: bronze, silver,
    gold, and the same silver committed a day at a time."""
    args = {
        "out": str(paths.out / "8-year"),
        "days": s.year_days,
        "rows_per_day": s.year_rows_per_day,
        "first_day": (FIRST_DAY - timedelta(days=s.year_days)).isoformat(),
    }
    rows = s.year_days * s.year_rows_per_day
    engine = Engine(
        "ours",
        "ours_backfill",
        "year_backfill",
        args,
        note="bronze day by day, silver `commit_days` over the range, every gold table "
        "`commit_gold_days`; then silver again one day per commit, on a second table",
    )
    return Case(
        8,
        "8-year",
        f"single-run backfill of {s.year_days} days of {s.year_rows_per_day:,} rows: "
        "bronze → silver → gold",
        rows,
        0,
        [engine],
        warmup=0,
        reps=1,
    )


def build(s: Scale, inputs: Inputs, paths: Paths, tasks: set[int]) -> list[Case]:
    """Every case of the selected tasks (generating their inputs when missing)."""
    cases: list[Case] = []
    for t in (1, 2, 3):
        if t in tasks:
            cases.extend(conversion_cases(s, inputs, paths, t))
    if 4 in tasks:
        cases.append(compaction_case(s, inputs, paths))
    if 5 in tasks:
        cases.extend(metrics_cases(s, inputs, paths))
    if 6 in tasks:
        cases.append(memory_case(s, inputs, paths))
    if 7 in tasks:
        cases.extend(orchestration_cases(s, inputs, paths))
    if 8 in tasks:
        cases.append(year_backfill_case(s, paths))
    if 9 in tasks:
        cases.append(cli_case(s, inputs))
    if 10 in tasks:
        cases.append(big_day_case(s, inputs, paths))
    return cases


__all__ = ["FIRST_DAY", "build"]
