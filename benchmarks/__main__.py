"""``python -m benchmarks``: generate inputs, run the tasks, print tables, write RESULTS.md."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from benchmarks import measure, report, tasks
from benchmarks.config import SCALES, Paths, Scale
from benchmarks.datagen import Inputs
from benchmarks.measure import RunFailed, run
from benchmarks.runner import Engine, run_case

LIBRARIES = ("pyarrow", "duckdb", "polars", "datafusion", "dagster", "pandera", "pandas")


def _log(msg: str) -> None:
    print(msg, flush=True)


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kib = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    except (OSError, StopIteration):
        mem_kib = 0
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": mem_kib / (1 << 20),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def run_profiles(scale: Scale, inputs: Inputs, paths: Paths) -> dict[str, str]:
    """pyinstrument over our conversion of the smaller memory-task CSV and of the NDJSON."""
    paths.profiles.mkdir(parents=True, exist_ok=True)
    jobs = [
        ("csv", "csv_to_parquet", inputs.memory_csv(scale.memory_rows[0])),
        ("ndjson", "ndjson_to_parquet", inputs.ndjson),
    ]
    texts = {}
    for name, op, data in jobs:
        out = paths.out / "profile" / name
        target = paths.profiles / f"{scale.name}-{name}"
        engine = Engine(
            "ours",
            "ours",
            op,
            {
                "inputs": data.files,
                "days": data.days,
                "out": str(out),
                "dataset": "events",
                "partitioned": False,
            },
        )
        _log(f"profiling ours {op} on {data.rows:,} rows → {target}.html")
        try:
            m = run(engine.command(profile=str(target)))
        except RunFailed as exc:
            _log(f"  profile failed: {exc}")
            continue
        title = f"ours {op}, {data.rows:,} rows ({m.work:.1f} s under the profiler)"
        texts[title] = Path(f"{target}.txt").read_text()
    (paths.profiles / f"{scale.name}-index.json").write_text(json.dumps(texts))
    return texts


def snapshot(paths: Paths, code: str) -> dict[str, str]:
    """Pin the code under test: ``lake_pipelines`` as of commit `code`, ``benchmarks`` as is.

    Others commit while a 40-minute run goes on; every child runs from this copy (its working
    directory and ``PYTHONPATH``), so all runs of a report measure one commit. ``worktree``
    measures the working tree as it is at each child's start instead.
    """
    if code == "worktree":
        return {"commit": "working tree", "subject": "(uncommitted state, not pinned)"}
    git = ["git", "-C", str(paths.root)]
    commit = subprocess.run(
        [*git, "rev-parse", code], check=True, capture_output=True, text=True
    ).stdout.strip()
    subject = subprocess.run(
        [*git, "log", "-1", "--format=%s (%cd)", "--date=iso", commit],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    src = paths.bench / "src" / commit[:12]
    if not (src / "lake_pipelines").exists():
        src.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            [*git, "archive", commit, "lake_pipelines"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    shutil.rmtree(src / "benchmarks", ignore_errors=True)
    shutil.copytree(
        paths.root / "benchmarks", src / "benchmarks", ignore=shutil.ignore_patterns("__pycache__")
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(src), env.get("PYTHONPATH")) if p)
    measure.DEFAULT_ENV, measure.DEFAULT_CWD = env, str(src)
    return {"commit": commit, "subject": subject, "path": str(src)}


def _conversion_missed(results: dict[str, Any]) -> bool:
    return any(
        v.met is False and "fastest" in v.target and v.target[:1] in "123"
        for v in report.targets(results)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument(
        "--tasks", default="1,2,3,4,5,6,7,8,9,10", help="comma-separated task numbers"
    )
    parser.add_argument(
        "--engines", help="comma-separated label prefixes: run only those engines of each case"
    )
    parser.add_argument("--reps", type=int, help="recorded rounds (default: the scale's)")
    parser.add_argument("--warmup", type=int, help="warm-up rounds (default: the scale's)")
    parser.add_argument(
        "--profile",
        choices=("auto", "always", "never"),
        default="auto",
        help="profile our conversion (auto: at full scale, when it misses its target)",
    )
    parser.add_argument("--results-md", type=Path, help="where to write the markdown report")
    parser.add_argument("--workdir", type=Path, help="cache and scratch (default .lake/bench)")
    parser.add_argument(
        "--code",
        default="HEAD",
        help="git revision of lake_pipelines to measure (default HEAD), or 'worktree'",
    )
    parser.add_argument(
        "--report-only",
        type=Path,
        metavar="RESULTS_JSON",
        help="rewrite the markdown report from an earlier run's JSON",
    )
    args = parser.parse_args(argv)
    paths = Paths(Path(__file__).resolve().parents[1], args.workdir and args.workdir.resolve())

    if args.report_only:
        return _report_only(args.report_only, args.results_md, paths)

    scale = SCALES[args.scale]
    overrides = {k: getattr(args, k) for k in ("reps", "warmup") if getattr(args, k) is not None}
    scale = dataclasses.replace(scale, **overrides)
    selected = {int(t) for t in args.tasks.split(",") if t.strip()}
    started = datetime.now(UTC)
    load_start = os.getloadavg()[0]
    t0 = time.perf_counter()
    code = snapshot(paths, args.code)
    _log(f"measuring lake_pipelines at {code['commit']} {code['subject']}")
    inputs = Inputs(scale, paths.data(scale), _log)
    cases = tasks.build(scale, inputs, paths, selected)
    if args.engines:
        wanted = tuple(x.strip() for x in args.engines.split(",") if x.strip())
        for case in cases:
            case.engines = [e for e in case.engines if e.label.startswith(wanted)]
    results: dict[str, Any] = {"meta": {}, "cases": []}
    paths.results.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    results_json = paths.results / f"{scale.name}-{stamp}.json"

    def save() -> None:
        results["meta"] = {
            "scale": dataclasses.asdict(scale),
            "tasks": sorted(selected),
            "started": started.strftime("%Y-%m-%d %H:%M UTC"),
            "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "seconds": time.perf_counter() - t0,
            "machine": machine(),
            "versions": {lib: version(lib) for lib in LIBRARIES},
            "inputs": inputs.describe(),
            "argv": sys.argv[1:],
            "load": f"{load_start:.1f} → {os.getloadavg()[0]:.1f}",
            "code": code,
        }
        results_json.write_text(json.dumps(results, indent=1))

    for case in cases:
        results["cases"].append(run_case(case, _log))
        save()
    profiles: dict[str, str] = {}
    auto = args.profile == "auto" and scale.name == "full" and _conversion_missed(results)
    if args.profile == "always" or auto:
        profiles = run_profiles(scale, inputs, paths)
    save()
    target = args.results_md or _default_md(paths, scale.name)
    report.write_results(results, target, profiles, paths.root / "benchmarks" / "ANALYSIS.md")
    if target == paths.results_md:  # every run's numbers next to the report
        shutil.copy(results_json, target.with_suffix(".json"))
    _log(report.print_tables(results))
    _log(f"\nresults: {results_json}\nreport:  {target}")
    return 0


def _report_only(results_json: Path, results_md: Path | None, paths: Paths) -> int:
    """Rewrite the markdown report of an earlier run (its profiles, if any, are reused)."""
    earlier = json.loads(results_json.read_text())
    name = earlier["meta"]["scale"]["name"]
    index = paths.profiles / f"{name}-index.json"
    texts = json.loads(index.read_text()) if index.exists() else {}
    target = results_md or _default_md(paths, name)
    report.write_results(earlier, target, texts, paths.root / "benchmarks" / "ANALYSIS.md")
    _log(report.print_tables(earlier) + f"\nwrote {target}")
    return 0


def _default_md(paths: Paths, scale: str) -> Path:
    return paths.results_md if scale == "full" else paths.bench / f"RESULTS-{scale}.md"


if __name__ == "__main__":
    sys.exit(main())
