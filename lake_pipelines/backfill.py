"""Materialize every asset of a code location over a range of days: one run per calendar.

Datasets keep their own calendars (start date, end date, cadence), and Dagster refuses a run
over assets whose partitions differ, so ``dagster asset materialize --select '*'`` works only
while every dataset shares one calendar. This plans one ``dagster asset materialize`` per
group of assets sharing a partitions definition (in practice: per dataset), each over the part
of the range that calendar has, then the unpartitioned maintenance assets once, and runs them
through Dagster's own CLI (so each is an ordinary run in the instance)::

    python -m lake_pipelines.backfill --start 2026-11-01 --end 2026-11-07
    python -m lake_pipelines.backfill --start 2026-11-01 --end 2026-11-07 --dry-run

``make demo`` is this over the demo's week.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from importlib import import_module
from zoneinfo import ZoneInfo

import dagster as dg

DEFAULT_MODULE = "lake_pipelines.definitions"
# Dagster's own notices about its CLI, which a user of this command cannot act on: that
# `dagster asset materialize` has a newer twin (`dg launch`, which runs the same code), and
# that the parser of `--select group:...` passes a beta parameter internally.
QUIET_DAGSTER = (
    "ignore:Function `asset_materialize_command` is superseded:Warning",
    "ignore:Parameter `include_sources` of function `AssetSelection.groups`:Warning",
)


def child_env() -> dict[str, str]:
    """The environment of each step: ours, with Dagster's CLI notices filtered out."""
    env = dict(os.environ)
    env["PYTHONWARNINGS"] = ",".join(filter(None, (env.get("PYTHONWARNINGS"), *QUIET_DAGSTER)))
    return env


@dataclass(frozen=True)
class Step:
    """One ``dagster asset materialize`` of the plan."""

    label: str  # what the step covers, for people
    selection: str  # a `--select` string
    first: str | None = None  # partition keys; None for unpartitioned assets
    last: str | None = None

    def args(self, module: str) -> list[str]:
        cmd = ["dagster", "asset", "materialize", "-m", module, "--select", self.selection]
        if self.first is None:
            return cmd
        if self.first == self.last:
            return [*cmd, "--partition", self.first]
        return [*cmd, "--partition-range", f"{self.first}...{self.last}"]


@dataclass(frozen=True)
class Plan:
    steps: list[Step]
    skipped: list[str]  # groups whose calendar has no partition in the range, and why


def _selection(group: str, keys: list[dg.AssetKey], whole_group: bool) -> str:
    if whole_group:
        return f"group:{group}"
    return ",".join(sorted(k.to_user_string() for k in keys))


def plan_backfill(
    defs: dg.Definitions, start: date, end: date, *, maintenance: bool = True
) -> Plan:
    """The runs that materialize every asset of `defs` for the days `start`..`end`.

    Assets are grouped by (group, partitions definition); a group whose assets all share one
    calendar is selected as ``group:<name>``. Each step covers the keys of its calendar inside
    the range (every hour of those days for an hourly calendar; the local days of a zoned
    one); unpartitioned assets (maintenance) come
    last, once, when `maintenance` is true.
    """
    if end < start:
        raise ValueError(f"--end {end} is before --start {start}")
    graph = defs.resolve_asset_graph()
    groups: dict[tuple[str, object], list[dg.AssetKey]] = defaultdict(list)
    calendars: dict[str, set[object]] = defaultdict(set)
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if not node.is_materializable:
            continue
        group = node.group_name or "default"
        groups[(group, node.partitions_def)].append(key)
        calendars[group].add(node.partitions_def)
    steps: list[Step] = []
    unpartitioned: list[Step] = []
    skipped: list[str] = []
    for (group, partitions), keys in sorted(groups.items(), key=lambda g: g[0][0]):
        selection = _selection(group, keys, whole_group=len(calendars[group]) == 1)
        if partitions is None:
            if maintenance:
                unpartitioned.append(Step(group, selection))
            continue
        if not isinstance(partitions, dg.TimeWindowPartitionsDefinition):
            skipped.append(f"{group}: {partitions} is not a calendar of days")
            continue
        in_range = _keys_in(partitions, _window(partitions, start, end))
        if not in_range:
            skipped.append(f"{group}: no partition of {partitions} in {start}...{end}")
            continue
        steps.append(Step(f"{group} ({partitions})", selection, in_range[0], in_range[-1]))
    return Plan([*steps, *unpartitioned], skipped)


def _window(partitions: dg.TimeWindowPartitionsDefinition, start: date, end: date) -> dg.TimeWindow:
    """The days `start`..`end` in the calendar's zone (a zoned calendar's days are local)."""
    zone = ZoneInfo(partitions.timezone or "UTC")
    return dg.TimeWindow(
        datetime.combine(start, time(), zone),
        datetime.combine(end + timedelta(days=1), time(), zone),
    )


def _keys_in(partitions: dg.TimeWindowPartitionsDefinition, window: dg.TimeWindow) -> list[str]:
    """The partition keys of `window` that exist: from the calendar's first to its last
    partition (Dagster's own window lookup does not stop at either end)."""
    first, last = partitions.get_first_partition_window(), partitions.get_last_partition_window()
    if first is None or last is None:
        return []
    start, end = max(window.start, first.start), min(window.end, last.end)
    if start >= end:
        return []
    return list(partitions.get_partition_keys_in_time_window(dg.TimeWindow(start, end)))


def _definitions(module: str) -> dg.Definitions:
    defs = getattr(import_module(module), "defs", None)
    if not isinstance(defs, dg.Definitions):
        raise SystemExit(f"{module} has no `defs` (a dagster.Definitions) to backfill")
    return defs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lake_pipelines.backfill", description=__doc__)
    parser.add_argument("--start", required=True, type=date.fromisoformat, help="first day")
    parser.add_argument("--end", required=True, type=date.fromisoformat, help="last day")
    parser.add_argument("-m", "--module", default=DEFAULT_MODULE, help="code location module")
    parser.add_argument(
        "--no-maintenance", action="store_true", help="skip the unpartitioned maintenance assets"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args(argv)
    try:
        plan = plan_backfill(
            _definitions(args.module), args.start, args.end, maintenance=not args.no_maintenance
        )
    except ValueError as exc:
        parser.error(str(exc))
    for reason in plan.skipped:
        print(f"skipped {reason}", flush=True)
    for step in plan.steps:
        cmd = step.args(args.module)
        print(f"{step.label}: {' '.join(cmd)}", flush=True)
        if args.dry_run:
            continue
        done = subprocess.run([sys.executable, "-m", *cmd], check=False, env=child_env())
        if done.returncode != 0:
            print(f"failed: {step.label} (exit code {done.returncode})", file=sys.stderr)
            return done.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
