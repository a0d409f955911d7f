"""Tables, target verdicts and ``RESULTS.md`` from a results record (``results/*.json``)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.cli_task import cli_targets
from benchmarks.report_backfill import year_table, year_targets
from benchmarks.report_bigday import big_day_table, big_day_targets
from benchmarks.schemas import ZSTD_LEVEL

MIB = 1 << 20


@dataclass
class Row:
    """One engine of one case, summarised over its recorded runs (medians; peak RSS is the max)."""

    label: str
    runs: int
    time: float | None
    wall: float | None
    cpu: float | None
    rss: float | None
    rows_per_s: float | None
    mib_per_s: float | None
    files: int | None = None  # Parquet files written
    speed: float | None = None  # fastest time / this time (1.0 = fastest)
    issue: str = ""
    note: str = ""


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarise(case: dict[str, Any]) -> list[Row]:
    rows = []
    for label, slot in case["engines"].items():
        runs = slot["runs"]
        key = "work" if case["timing"] == "work" else "wall"
        t = _median([r[key] if r[key] is not None else r["wall"] for r in runs])
        issue = ""
        if "failed" in slot:
            issue = "failed: " + slot["failed"].splitlines()[0][:120]
        elif slot.get("problems"):
            issue = "; ".join(sorted(set(slot["problems"])))
        n = slot.get("rows") or case["rows"]
        size = slot.get("input_bytes") or case["input_bytes"]
        rows.append(
            Row(
                label=label,
                runs=len(runs),
                time=t,
                wall=_median([r["wall"] for r in runs]),
                cpu=_median([r["cpu"] for r in runs]),
                rss=max((r["max_rss_mib"] for r in runs), default=None),
                rows_per_s=n / t if t and n else None,
                mib_per_s=size / MIB / t if t and size else None,
                files=runs[-1]["extra"].get("files_out") if runs else None,
                issue=issue,
                note=slot.get("note", ""),
            )
        )
    timed = [r.time for r in rows if r.time and not r.issue]
    fastest = min(timed) if timed else None
    for r in rows:
        if fastest and r.time and not r.issue:
            r.speed = fastest / r.time
    return rows


def _f(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _rate(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1e3:
        return f"{value:.0f}"
    return f"{value / 1e6:.2f} M" if value >= 1e6 else f"{value / 1e3:.0f} k"


def case_table(case: dict[str, Any]) -> str:
    """A markdown table of one case."""
    work = case["timing"] == "work"
    head = "| engine | time s | x fastest speed | process wall s | CPU s | peak RSS MiB |"
    head += " x lowest RSS | rows/s | input MiB/s | files out | runs |\n"
    head += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    lines = []
    rows = summarise(case)
    lowest = min((r.rss for r in rows if r.rss), default=None)
    for r in rows:
        speed = (
            "-"
            if r.speed is None
            else ("**1.00** (fastest)" if r.speed >= 0.9999 else f"{r.speed:.2f}x")
        )
        memory = "-" if not (r.rss and lowest) else f"{r.rss / lowest:.2f}x"
        label = r.label + (f" ⚠ {r.issue}" if r.issue else "")
        lines.append(
            f"| {label} | {_f(r.time, '.2f')} | {speed} | {_f(r.wall, '.2f')} | "
            f"{_f(r.cpu, '.1f')} | {_f(r.rss, ',.0f')} | {memory} | {_rate(r.rows_per_s)} | "
            f"{_f(r.mib_per_s, '.1f')} | {'-' if r.files is None else r.files} | {r.runs} |"
        )
    for label, reason in case.get("unavailable", {}).items():
        lines.append(
            f"| {label}: not available ({reason}) | - | - | - | - | - | - | - | - | - | 0 |"
        )
    what = (
        "time = median in-process seconds of the task itself (after imports); process wall "
        "includes interpreter start-up and imports"
        if work
        else "time = median wall seconds of the whole process(es), start-up included"
    )
    notes = [f"{r.label}: {r.note}" for r in summarise(case) if r.note]
    what += (
        "; x fastest speed = fastest time / this time (for the same input, also the ratio of "
        "MiB/s); x lowest RSS = this peak RSS / the lowest of the table"
    )
    tail = f"\n_{what}. Input: {case['rows']:,} rows"
    if case["input_bytes"]:
        tail += f", {case['input_bytes'] / MIB:,.0f} MiB"
    tail += f"; {case['reps']} recorded runs after {case['warmup']} warm-up round(s)._\n"
    if notes:
        tail += "".join(f"\n- {n}" for n in notes) + "\n"
    if case.get("note"):
        tail += f"\n{case['note']}\n"
    return head + "\n".join(lines) + "\n" + tail


# -- targets ------------------------------------------------------------------------------------


@dataclass
class Verdict:
    target: str
    measured: str
    met: bool | None  # None: could not be measured

    @property
    def status(self) -> str:
        return {True: "met", False: "**missed**", None: "not measured"}[self.met]


def _rows_by_label(case: dict[str, Any]) -> dict[str, Row]:
    return {r.label: r for r in summarise(case)}


def _find(results: dict[str, Any], key: str) -> dict[str, Any] | None:
    return next((c for c in results["cases"] if c["key"] == key), None)


def targets(results: dict[str, Any]) -> list[Verdict]:
    out: list[Verdict] = []
    for key in ("1-events", "1-lineitem", "2-hive", "3-ndjson"):
        case = _find(results, key)
        if case is None:
            continue
        rows = summarise(case)
        ours = next((r for r in rows if r.label == "ours"), None)
        valid = [r for r in rows if r.time and not r.issue]
        best = min(valid, key=lambda r: r.time or 0.0) if valid else None
        if ours is None or ours.speed is None or best is None or best.time is None:
            out.append(Verdict(f"{key}: ours ≥ 0.9x fastest", "ours did not run cleanly", None))
            continue
        need = 0.9 / ours.speed
        detail = f"{ours.speed:.2f}x of {best.label} ({ours.time:.2f} s vs {best.time:.2f} s)" + (
            "" if ours.speed >= 0.9 else f"; needs {need:.1f}x faster to reach 0.9x"
        )
        out.append(Verdict(f"{key}: ours ≥ 0.9x fastest", detail, ours.speed >= 0.9))
        if ours.rss is not None:
            out.append(
                Verdict(f"{key}: ours peak RSS < 1 GiB", f"{ours.rss:,.0f} MiB", ours.rss < 1024)
            )
    mem = _find(results, "6-memory")
    if mem is not None:
        rows = summarise(mem)
        if len(rows) == 2 and rows[0].rss and rows[1].rss:
            growth = rows[1].rss / rows[0].rss - 1
            out.append(
                Verdict(
                    "ours peak RSS grows < 20% from small to large input",
                    f"{rows[0].label}: {rows[0].rss:,.0f} MiB → {rows[1].label}: "
                    f"{rows[1].rss:,.0f} MiB ({growth:+.0%})",
                    growth < 0.2,
                )
            )
    comp = _find(results, "4-compaction")
    if comp is not None:
        by_label = _rows_by_label(comp)
        mine = by_label.get("ours")
        if mine is not None and mine.speed is not None:
            s = mine.speed
            out.append(Verdict("compaction: ours ≥ 0.9x best", f"{s:.2f}x of the best", s >= 0.9))
        else:
            why = comp.get("unavailable", {}).get("ours") or (mine.issue if mine else "")
            out.append(
                Verdict("compaction: ours ≥ 0.9x best", f"ours: not available ({why})", None)
            )
    for key in ("5-full", "5-day"):
        case = _find(results, key)
        if case is None:
            continue
        rows = list(_rows_by_label(case).values())
        ours, duck = rows[0], _rows_by_label(case).get("duckdb")
        polars = _rows_by_label(case).get("polars")
        if ours.time and polars and polars.time and not polars.issue:  # issue 23's target
            speed = polars.time / ours.time
            out.append(
                Verdict(
                    f"{key}: daily metrics ≥ 0.9x Polars",
                    f"{speed:.2f}x Polars' speed ({ours.time:.3f} s vs {polars.time:.3f} s)",
                    speed >= 0.9,
                )
            )
        if ours.time and duck and duck.time:
            ratio = ours.time / duck.time
            out.append(
                Verdict(
                    f"{key}: daily metrics within 1.2x DuckDB",
                    f"{ratio:.2f}x DuckDB's time ({ours.time:.3f} s vs {duck.time:.3f} s)",
                    ratio <= 1.2,
                )
            )
    one = _find(results, "7-one")
    if one is not None:
        rows = list(_rows_by_label(one).values())
        bare, dag = rows[0], rows[1]
        if bare.time and dag.time:
            ratio = dag.time / bare.time
            out.append(
                Verdict(
                    "Dagster, one partition ≤ 2x bare `import dagster`",
                    f"{ratio:.1f}x ({dag.time:.2f} s vs {bare.time:.2f} s)",
                    ratio <= 2,
                )
            )
        floor = _rows_by_label(one).get("dagster asset materialize, an asset doing nothing")
        if floor is not None and floor.time and bare.time and dag.time:
            out.append(
                Verdict(
                    "(context) Dagster's floor: an asset doing nothing ≤ 2x bare `import dagster`",
                    f"{floor.time / bare.time:.1f}x ({floor.time:.2f} s); our run is"
                    f" {dag.time / floor.time:.2f}x that floor",
                    floor.time / bare.time <= 2,
                )
            )
    back = _find(results, "7-backfill")
    if back is not None:
        rows = list(_rows_by_label(back).values())
        single, many = rows[0], rows[1]
        if single.time and many.time:
            ratio = many.time / single.time
            out.append(
                Verdict(
                    "single-run backfill ≥ 3x faster than one run per day",
                    f"{ratio:.1f}x ({single.time:.2f} s vs {many.time:.2f} s)",
                    ratio >= 3,
                )
            )
    year = _find(results, "8-year")
    if year is not None:
        out += [Verdict(*t) for t in year_targets(year)]
    big = _find(results, "10-bigday")
    if big is not None:
        out += [Verdict(*t) for t in big_day_targets(big)]
    cli = _find(results, "9-cli")
    if cli is not None:
        wall = {r.label: None if r.issue else r.time for r in summarise(cli)}
        out += [Verdict(*t) for t in cli_targets(wall)]
    return out


def _table(case: dict[str, Any]) -> str:
    """A case's table; task 10 has its own (engines there differ in input and in job)."""
    if case["key"] == "10-bigday":
        notes = "".join(f"\n- {label}: {s['note']}" for label, s in case["engines"].items())
        return big_day_table(case) + f"\n_{case['note']}_\n{notes}\n"
    return case_table(case)


def targets_table(results: dict[str, Any]) -> str:
    lines = ["| target | measured | verdict |", "|---|---|---|"]
    lines += [f"| {v.target} | {v.measured} | {v.status} |" for v in targets(results)]
    return "\n".join(lines) + "\n"


def print_tables(results: dict[str, Any]) -> str:
    parts = []
    for case in results["cases"]:
        parts.append(f"\n### Task {case['task']}: {case['title']}\n\n{_table(case)}")
        if case["key"] == "8-year":
            parts.append("\n" + year_table(case))

    parts.append("\n### Targets\n\n" + targets_table(results))
    return "".join(parts)


# -- RESULTS.md ---------------------------------------------------------------------------------


def _machine(meta: dict[str, Any]) -> str:
    m = meta["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    return (
        f"- {m['cpu']}, {m['cores']} cores, {m['ram_gib']:.0f} GiB RAM, {m['platform']}\n"
        f"- Python {m['python']}; {versions}\n"
        f"- shared machine: other jobs were running; load average {meta.get('load', '?')} "
        "(1 min, at start → end; 2.0 means both cores busy)\n"
    )


def _code(meta: dict[str, Any]) -> str:
    code = meta.get("code")
    if not code:
        return ""
    return f"\nCode measured: `lake_pipelines` at `{code['commit']}` — {code['subject']}.\n"


def _sizes(meta: dict[str, Any]) -> str:
    lines = ["| input | rows | size | generated in |", "|---|---:|---:|---:|"]
    for name, d in meta["inputs"].items():
        size = f"{d['bytes'] / MIB:,.0f} MiB" if d.get("bytes") else "-"
        if "count" in d:
            size += f" in {d['count']:,} files"
        lines.append(f"| {name} | {d['rows']:,} | {size} | {d.get('seconds_to_generate', '-')} s |")
    return "\n".join(lines) + "\n"


def results_markdown(results: dict[str, Any], profiles: dict[str, str], analysis: str) -> str:
    meta = results["meta"]
    scale = meta["scale"]
    banner = ""
    if scale["name"] != "full":
        banner = (
            f"\n> **These numbers are from the `{scale['name']}` scale**, not the default full "
            "scale the targets are stated for; small inputs exaggerate fixed costs.\n"
        )
    sizes = ", ".join(f"{k}={v}" for k, v in scale.items() if k not in ("name",))
    out = [
        "# Benchmark results\n\n",
        "_Generated by `python -m benchmarks` (`make bench`); do not edit by hand — the analysis "
        "section comes from `benchmarks/ANALYSIS.md`._\n",
        banner,
        f"\nRun: {meta['started']} → {meta['finished']} ({meta['seconds'] / 60:.0f} min), "
        f"scale `{scale['name']}` ({sizes}); command: "
        f"`python -m benchmarks {' '.join(meta.get('argv', []))}`.\n",
        _code(meta),
        "\n## Machine\n\n" + _machine(meta),
        "\n## Inputs\n\n" + _sizes(meta),
        "\n## Targets\n\n" + targets_table(results),
    ]
    if analysis:
        out.append("\n" + analysis.strip() + "\n")
    out.append("\n## Every number\n")
    for case in results["cases"]:
        out.append(f"\n### Task {case['task']}: {case['title']}\n\n{_table(case)}")
        if case["key"] == "8-year":
            out.append("\n" + year_table(case))

    if profiles:
        out.append("\n## Profiles of our conversion (pyinstrument)\n")
        for name, text in profiles.items():
            lines = text.splitlines()
            body = "\n".join(lines[:90]) + ("\n..." if len(lines) > 90 else "")
            out.append(f"\n<details><summary>{name}</summary>\n\n```\n{body}\n```\n</details>\n")
    out.append(HOW_TO.replace("__LEVEL__", str(ZSTD_LEVEL)))
    return "".join(out)


HOW_TO = """
## How the numbers are taken, and how to reproduce them

```bash
make bench          # full scale (≈ 30 min on 2 cores; inputs cached under .lake/bench/data)
make bench-quick    # small sizes, ≈ 2 min, numbers go to .lake/bench/RESULTS-quick.md
make bench BENCH_ARGS="--workdir /tmp/lake_bench"   # cache outside the repo (make clean)
uv run --frozen python -m benchmarks --scale full --tasks 1,3 --reps 5   # a subset
uv run --frozen python -m benchmarks --profile always   # also profile our conversion
```

- Every engine run is its own process (`python -m benchmarks.child <engine> <op> <args>`),
  started through GNU `/usr/bin/time`: CPU time (user + system) and peak RSS (`ru_maxrss`,
  the same as the process's own `VmHWM`, which the child reports too) are the kernel's numbers
  for that process alone. (Taking `ru_maxrss` from `os.wait4` directly would not do: a forked
  child's `ru_maxrss` starts at the harness's own RSS.) Wall time is taken by the harness.
  The child also reports the seconds of the task itself, measured after its imports:
  that is the "time" column for tasks 1-6 (imports of pandera/pandas/dagster would otherwise
  swamp the short queries of task 5); task 7 is about start-up, so there "time" is the wall
  time of the whole process(es).
- Every single run (not only the medians shown here) is in `RESULTS.json` next to this file.
- Rounds are interleaved (every engine once per round, the order rotating A B C → B C A → ...),
  after a warm-up round that is not recorded; medians over the recorded rounds.
- Every output is checked: the Parquet row count must equal the input's, our runs must
  quarantine nothing, and the daily-metrics engines must agree (rows, events, distinct users
  and sessions). A failed or wrong engine is marked ⚠ and left out of the ratios.
- The code measured is pinned: `lake_pipelines` as of `--code` (default `HEAD`) is extracted
  with `git archive` into the work directory and every child runs from that copy, so commits
  landing during a run do not mix into it (`--code worktree` measures uncommitted code).
- Inputs are generated by `benchmarks/events_data.py` (vectorised, seeded, same schema and
  conventions as `lake_pipelines.sample_data`) and by `tpchgen-cli` (TPC-H lineitem).
- Same job for every engine: explicit schema, nested `properties` / `latencies_ms` parsed from
  their JSON text (CSV) into struct / list, ZSTD level __LEVEL__ (the lake's default; 3 until
  run 33). Ours additionally validates every
  batch (pandera contract, non-null and day-range rules), sorts by `(ts, user_id)` within each
  row group, writes per-column codecs, page indexes and sorting metadata, stages files under
  hidden names and commits them after the row accounting; those are part of what we measure.
- Ours, tasks 1 and 3: `lake.bronze.ingest_day` over a landing directory holding the one file
  (so the output is bronze's Hive day partition, one Parquet file); task 2: `ingest_day` once
  per day. lineitem has no days: `read_file` → `validate` → `RollingParquetWriter` →
  `commit_files`, the functions `ingest_day` is made of.
"""


def write_results(
    results: dict[str, Any], path: Path, profiles: dict[str, str], analysis_path: Path
) -> None:
    analysis = analysis_path.read_text() if analysis_path.exists() else ""
    path.write_text(results_markdown(results, profiles, analysis))
