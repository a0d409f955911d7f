"""Task 10: one big day through every layer in one Dagster run, and the peers landing it.

Ours: the day's CSV and NDJSON files are linked into a fresh lake's landing folder and one
``dagster asset materialize`` run of the events partition materializes bronze, silver, every
gold table and both compactions, the way a user starts it. The harness samples the memory of
the run's whole process tree (`sampling`), then reads the run's step events from its Dagster
instance for each layer's wall time and peak memory, and counts the rows in the tables.
Twice: at the scale's small and large day, to show growth.

Peers land the same files into an Iceberg table on local disk: Polars eager and streaming
(the lake's environment), Daft and dlt (``.venv-bench``, `make bench-deps`: daft needs an
older pyarrow than the lake's). Each peer's rows are counted from its table's metadata.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections import defaultdict
from pathlib import Path

from benchmarks import measure
from benchmarks.config import FIRST_DAY, Paths, Scale
from benchmarks.datagen import Input, Inputs
from benchmarks.engines.ours import link_file
from benchmarks.report_bigday import LAYERS
from benchmarks.runner import Case, Engine
from benchmarks.schemas import encode
from lake_pipelines.datasets import events

DAY = FIRST_DAY.isoformat()
COMPACTIONS = ("events_bronze_compaction", "events_silver_compaction")
SELECTION = ",".join(["group:events", *(f"lake/maintenance/{c}" for c in COMPACTIONS)])
OURS_TABLE = "lake/warehouse/lake/events"


def _rows(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n / 1e3:g}k"


def bench_python(root: Path) -> Path | None:
    """The interpreter of the bench environment (daft, dlt), if `make bench-deps` made it."""
    python = Path(os.environ.get("BENCH_PEER_PYTHON") or root / ".venv-bench" / "bin" / "python")
    return python if python.exists() else None


def layer_of(step_key: str) -> str:
    """The layer a step of the run belongs to (its asset key's second part)."""
    if step_key.endswith("_table_health"):
        return "checks"
    parts = step_key.split("__")
    layer = parts[1] if len(parts) > 2 else step_key
    return "compaction" if layer == "maintenance" else layer


def step_windows(home: Path) -> dict[str, tuple[float, float]]:
    """(start, end) wall-clock times of every step of the instance's latest run."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(home))
    try:
        run = instance.get_runs(limit=1)[0]
        starts: dict[str, float] = {}
        windows: dict[str, tuple[float, float]] = {}
        for record in instance.all_logs(run.run_id):
            event = record.dagster_event
            if event is None or not record.step_key:
                continue
            if event.event_type_value == "STEP_START":
                starts[record.step_key] = record.timestamp
            elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
                start = starts.get(record.step_key, record.timestamp)
                windows[record.step_key] = (start, record.timestamp)
        return windows
    finally:
        instance.dispose()


def per_layer(
    windows: dict[str, tuple[float, float]], samples: list[tuple[float, float]], rows: int
) -> dict[str, dict[str, float]]:
    """Seconds, rows/s and peak tree RSS of each layer (its steps run one after another)."""
    seconds: dict[str, float] = defaultdict(float)
    peak: dict[str, float] = defaultdict(float)
    for step, (start, end) in windows.items():
        layer = layer_of(step)
        seconds[layer] += end - start
        inside = [mib for t, mib in samples if start <= t <= end]
        if not inside and samples:  # a step shorter than the sampling interval
            middle = (start + end) / 2
            inside = [min(samples, key=lambda s: abs(s[0] - middle))[1]]
        peak[layer] = max([peak[layer], *inside])
    return {
        layer: {
            "seconds": round(seconds[layer], 2),
            "rows_per_s": round(rows / seconds[layer]) if seconds[layer] else 0,
            "peak_rss_mib": round(peak[layer]),
        }
        for layer in [*LAYERS, "checks"]
        if layer in seconds
    }


def iceberg_rows(table_dir: Path) -> int:
    """Rows of an Iceberg table at its newest metadata file (independent of any catalog)."""
    from pyiceberg.table import StaticTable

    files = sorted(table_dir.glob("metadata/*.metadata.json"), key=lambda p: p.stat().st_mtime)
    if not files:
        return 0
    table = StaticTable.from_metadata(f"file://{files[-1]}")
    return sum(task.file.record_count for task in table.scan().plan_files())


def _bronze_rows(lake: Path) -> tuple[int, int]:
    """(rows in the day's bronze Parquet footers, rows in its quarantine files)."""
    import pyarrow.parquet as pq

    def count(folder: Path) -> int:
        return sum(
            pq.read_metadata(p).num_rows
            for p in folder.rglob("*.parquet")
            if not p.name.startswith((".", "_"))
        )

    return count(lake / "bronze" / "events"), count(lake / "quarantine" / "events")


def _land(engine: Engine) -> None:
    """A fresh Dagster home and lake whose landing folder links the day's files."""
    target = Path(engine.out)
    home, landing = target / "home", target / "lake" / "landing" / "events" / DAY
    home.mkdir(parents=True)
    landing.mkdir(parents=True)
    shutil.copy(Path(__file__).parents[1] / "dagster.yaml", home / "dagster.yaml")
    for f in engine.args["inputs"]:
        link_file(f, str(landing / os.path.basename(f)))


def _ours_after(engine: Engine, m: measure.Measurement) -> None:
    target = Path(engine.out)
    samples = m.extra.pop("_samples", [])
    rows = engine.rows or 0
    bronze, quarantined = _bronze_rows(target / "lake")
    silver = iceberg_rows(target / OURS_TABLE)
    m.value = {
        "layers": per_layer(step_windows(target / "home"), samples, rows),
        "rows_bronze": bronze,
        "rows_quarantined": quarantined,
        "rows_silver": silver,
    }
    m.extra["rows_out"], m.extra["rows_expected"] = silver, rows


def _peer_after(engine: Engine, m: measure.Measurement) -> None:
    m.extra.pop("_samples", None)
    m.extra["rows_out"] = iceberg_rows(Path(engine.count))
    m.extra["rows_expected"] = engine.rows


def _ours(data: Input, target: Path, s: Scale) -> Engine:
    dagster = str(Path(sys.executable).with_name("dagster"))
    lake = target / "lake"
    command = [
        "env",
        f"DAGSTER_HOME={target / 'home'}",
        f"LAKE_HOME={lake}",
        f"LAKE_STORE_URL=file://{lake}",
        f"LAKE_CATALOG_URI=sqlite:///{lake}/catalog.db",
        dagster,
        *("asset", "materialize", "-m", "lake_pipelines.definitions"),
        *("--select", SELECTION, "--partition", DAY),
    ]
    return Engine(
        f"ours {_rows(data.rows)} rows",
        args={"inputs": data.files},
        out=str(target),
        commands=[command],
        rows=data.rows,
        input_bytes=data.bytes,
        sample=True,
        timeout_s=s.peer_timeout_s * 2,
        before=_land,
        after=_ours_after,
        note="`dagster asset materialize --select "
        f"'{SELECTION}' --partition {DAY}`: bronze, silver, 3 gold tables, bronze and "
        "silver compaction (and the table-health checks) in one run, in-process executor",
    )


_DLT = "filesystem source (read_csv_duckdb, read_jsonl) → filesystem destination, iceberg"
PEERS = (
    # label, module, op, environment, what it does
    ("polars, eager", "polars_iceberg", "land_eager", "lake", "read_csv/ndjson → write_iceberg"),
    ("polars, streaming", "polars_iceberg", "land_streaming", "lake", "scan_* → sink_iceberg"),
    ("daft", "daft_iceberg", "land", "bench", "read_csv/read_json → write_iceberg"),
    ("dlt", "dlt_iceberg", "land", "bench", _DLT),
)


def big_day_case(s: Scale, inputs: Inputs, paths: Paths) -> Case:
    small, large = (inputs.big_day(n) for n in s.big_day_rows)
    out = paths.out / "10-bigday"
    engines = [_ours(d, out / f"ours-{_rows(d.rows)}", s) for d in (small, large)]
    bench = bench_python(paths.root)
    unavailable = {}
    csv = [f for f in large.files if f.endswith(".csv")]
    ndjson = [f for f in large.files if f.endswith(".ndjson")]
    for label, module, op, where, what in PEERS:
        if where == "bench" and bench is None:
            unavailable[label] = "no .venv-bench: run `make bench-deps`"
            continue
        target = out / label.replace(", ", "-")
        table = target / (
            "lake/lake/events" if module == "dlt_iceberg" else "warehouse/lake/events"
        )
        engines.append(
            Engine(
                label,
                module,
                op,
                {"csv": csv, "ndjson": ndjson, "out": str(target), "schema": encode(events.SCHEMA)},
                out=str(target),
                count=str(table),
                rows=large.rows,
                input_bytes=large.bytes,
                sample=True,
                timeout_s=s.peer_timeout_s,
                rss_cap_mib=s.peer_rss_cap_mib,
                python=str(bench) if where == "bench" else "",
                after=_peer_after,
                note=f"{what}, {_rows(large.rows)} rows; no validation, quarantine or lineage",
            )
        )
    n_csv, n_json = s.big_day_files
    return Case(
        10,
        "10-bigday",
        f"one day of {_rows(small.rows)} and {_rows(large.rows)} events ({n_csv} CSV + "
        f"{n_json} NDJSON files) through every layer in one Dagster run; peers landing the "
        f"{_rows(large.rows)} day into Iceberg",
        large.rows,
        large.bytes,
        engines,
        warmup=0,
        reps=1,
        timing="wall",
        unavailable=unavailable,
        note="Peak RSS: the whole process tree, sampled every 0.2 s from the harness (psutil).",
    )
