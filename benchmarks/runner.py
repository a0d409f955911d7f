"""Run benchmark cases: every engine in its own process, rounds interleaved, outputs verified.

A round runs each engine of a case once; the order rotates from round to round (A B C, B C A,
C A B, ...) so no engine always follows the same neighbour (page-cache state, dirty pages
still being written back). The first ``warmup`` rounds are not recorded.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow.parquet as pq

from benchmarks import measure

Log = Callable[[str], None]


@dataclass
class Engine:
    """One contender of a case: a benchmark child (module + op + args) or raw commands."""

    label: str
    module: str = ""
    op: str = ""
    args: dict[str, Any] = field(default_factory=dict)
    out: str = ""  # emptied before every run
    count: str = ""  # Parquet files under here are counted after every run
    commands: list[list[str]] = field(default_factory=list)
    note: str = ""
    rows: int | None = None  # when this engine's input differs from the case's
    input_bytes: int | None = None
    # Task 10: peak RSS of the whole process tree sampled from here (`sampling`), a run
    # stopped past `timeout_s` or `rss_cap_mib`, and `after` to inspect what the run left
    # (row counts, per-layer times) before the next run clears it.
    sample: bool = False
    timeout_s: float | None = None
    rss_cap_mib: float | None = None
    python: str = ""  # interpreter of a benchmark child (default: the harness's)
    before: Callable[[Engine], None] | None = None
    after: Callable[[Engine, measure.Measurement], None] | None = None

    def command(self, profile: str | None = None) -> list[str]:
        cmd = [self.python or sys.executable, "-m", "benchmarks.child", self.module, self.op]
        cmd.append(json.dumps(self.args))
        return [*cmd, "--profile", profile] if profile else cmd


@dataclass
class Case:
    """One table of the report: several engines doing the same job on the same input."""

    task: int
    key: str
    title: str
    rows: int
    input_bytes: int
    engines: list[Engine]
    warmup: int
    reps: int
    timing: Literal["work", "wall"] = "work"
    expect_rows: int | None = None
    same_value: bool = False  # every engine must return the same value (query results)
    env: dict[str, str] | None = None
    cwd: str | None = None
    note: str = ""
    unavailable: dict[str, str] = field(default_factory=dict)


def parquet_rows(directory: str) -> tuple[int, int]:
    """(rows, files) of the visible Parquet files under a directory."""
    rows = files = 0
    for path in Path(directory).rglob("*.parquet"):
        if path.name.startswith((".", "_")) or "quarantine" in path.parts:
            continue
        rows += pq.read_metadata(path).num_rows
        files += 1
    return rows, files


def _once(case: Case, engine: Engine) -> measure.Measurement:
    if engine.out:
        shutil.rmtree(engine.out, ignore_errors=True)
    if engine.sample:
        from benchmarks.sampling import run_sampled  # psutil: only task 10 needs it

        if engine.before is not None:
            engine.before(engine)
        command = engine.commands[0] if engine.commands else engine.command()
        m = run_sampled(
            command, case.env, case.cwd, timeout_s=engine.timeout_s, rss_cap_mib=engine.rss_cap_mib
        )
        if engine.after is not None:
            engine.after(engine, m)
        return m
    if engine.commands:
        return measure.run_sequence(engine.commands, case.env, case.cwd)
    m = measure.run(engine.command(), case.env, case.cwd)
    if engine.count:
        m.extra["rows_out"], m.extra["files_out"] = parquet_rows(engine.count)
    return m


def _check(case: Case, m: measure.Measurement, reference: list[object]) -> str | None:
    """What is wrong with a run's output, if anything."""
    if case.same_value:
        if not reference:
            reference.append(m.value)
        elif m.value != reference[0]:
            return f"result {m.value} differs from {reference[0]}"
    rows_out = m.extra.get("rows_out")
    expected = m.extra.get("rows_expected")
    if expected is not None and rows_out != expected:
        return f"wrote {rows_out:,} rows, expected {expected:,}"
    if case.expect_rows is not None and rows_out is not None and rows_out != case.expect_rows:
        return f"wrote {rows_out:,} rows, expected {case.expect_rows:,}"
    if isinstance(m.value, dict) and m.value.get("rows_quarantined"):
        return f"quarantined {m.value['rows_quarantined']:,} rows"
    return None


def run_case(case: Case, log: Log) -> dict[str, Any]:
    """Run a case and return its record (every recorded run of every engine)."""
    engines = list(case.engines)
    record: dict[str, Any] = {
        "task": case.task,
        "key": case.key,
        "title": case.title,
        "rows": case.rows,
        "input_bytes": case.input_bytes,
        "timing": case.timing,
        "warmup": case.warmup,
        "reps": case.reps,
        "note": case.note,
        "unavailable": case.unavailable,
        "engines": {
            e.label: {"runs": [], "note": e.note, "rows": e.rows, "input_bytes": e.input_bytes}
            for e in engines
        },
    }
    log(f"\n== task {case.task} [{case.key}] {case.title}")
    for label, reason in case.unavailable.items():
        log(f"   {label}: not available ({reason})")
    started = time.perf_counter()
    reference: list[object] = []
    for r in range(case.warmup + case.reps):
        warm = r < case.warmup
        k = r % len(engines) if engines else 0
        for engine in engines[k:] + engines[:k]:
            slot = record["engines"][engine.label]
            if "failed" in slot:
                continue
            try:
                m = _once(case, engine)
            except measure.RunFailed as exc:
                slot["failed"] = str(exc)
                log(f"   {engine.label:<28} FAILED: {str(exc).splitlines()[0]}")
                log("     " + "\n     ".join(str(exc).splitlines()[1:][-8:]))
                continue
            problem = _check(case, m, reference)
            if problem:
                slot.setdefault("problems", []).append(problem)
            if not warm:
                slot["runs"].append(m.to_json())
            t = m.work if case.timing == "work" and m.work is not None else m.wall
            log(
                f"   {'warm-up' if warm else f'rep {r - case.warmup + 1}'} "
                f"{engine.label:<28} {t:8.2f} s  wall {m.wall:7.2f} s  "
                f"rss {m.max_rss_mib:7.0f} MiB" + (f"  !! {problem}" if problem else "")
            )
        for engine in engines:
            if engine.out:
                shutil.rmtree(engine.out, ignore_errors=True)
    record["seconds"] = round(time.perf_counter() - started, 1)
    return record
