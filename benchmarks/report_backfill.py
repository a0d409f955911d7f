"""Task 8 (a year backfilled in one run): its per-layer table and target verdicts."""

from __future__ import annotations

from typing import Any

METADATA_MAX_FILES = 51  # write.metadata.previous-versions-max + the current one
METADATA_MAX_BYTES = 1 << 20  # one metadata.json: a year's snapshots and tags stay well under


def _value(case: dict[str, Any]) -> dict[str, Any] | None:
    runs = case["engines"].get("ours", {}).get("runs", [])
    value = runs[-1].get("value") if runs else None
    return value if isinstance(value, dict) else None


def year_table(case: dict[str, Any]) -> str:
    """Per-layer seconds, the silver commits' cost over the year, metadata on disk."""
    v = _value(case)
    if v is None:
        return "\n_no result_\n"
    lines = [
        "| layer / measure | value |",
        "|---|---:|",
        f"| bronze, {v['days']} days, {v['rows']:,} rows | {v['bronze_s']:.1f} s |",
        f"| silver, one run ({v['silver_commits']} snapshots) | {v['silver_s']:.1f} s |",
        f"| gold, every table ({v['gold_rows']:,} rows) | {v['gold_s']:.1f} s |",
        "| silver per day, first commit → last commit | "
        f"{v['silver_first_commit_per_day_s'] * 1e3:.0f} → "
        f"{v['silver_last_commit_per_day_s'] * 1e3:.0f} ms |",
        f"| silver one day per commit ({v['daily_commits']} commits), first month → last "
        f"month | {v['daily_first_month_s'] * 1e3:.0f} → {v['daily_last_month_s'] * 1e3:.0f}"
        " ms per commit |",
    ]
    for label, key in (("range", "silver_metadata"), ("daily", "daily_metadata")):
        m = v[key]
        lines.append(
            f"| silver metadata after the {label} run | metadata.json "
            f"{m['metadata_json_bytes'] / 1024:.0f} KiB, {m['metadata_json_files']} "
            f"metadata.json, {m['metadata_files']} files / {m['metadata_bytes'] / 2**20:.1f} MiB"
            f" in metadata/, {m['snapshots']} snapshots, {m['manifests']} manifests |"
        )
    return "\n".join(lines) + "\n"


def year_targets(case: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) of task 8."""
    v = _value(case)
    if v is None:
        return [("year backfill", "did not run cleanly", None)]
    ratio = v["silver_s"] / v["bronze_s"] if v["bronze_s"] else float("inf")
    growth = v["daily_last_month_s"] / v["daily_first_month_s"]
    range_growth = v["silver_last_commit_per_day_s"] / v["silver_first_commit_per_day_s"]
    worst = max(
        v["silver_metadata"]["metadata_json_files"], v["daily_metadata"]["metadata_json_files"]
    )
    biggest = max(
        v["silver_metadata"]["metadata_json_bytes"], v["daily_metadata"]["metadata_json_bytes"]
    )
    return [
        (
            "year backfill: silver ≤ 2x bronze",
            f"{ratio:.2f}x ({v['silver_s']:.1f} s vs {v['bronze_s']:.1f} s)",
            ratio <= 2,
        ),
        (
            "year backfill: last month's per-day cost ≤ 1.5x the first's",
            f"{range_growth:.2f}x ({v['silver_first_commit_per_day_s'] * 1e3:.0f} → "
            f"{v['silver_last_commit_per_day_s'] * 1e3:.0f} ms per day, first → last commit)",
            range_growth <= 1.5,
        ),
        (
            "(context) one day per commit for the year, no snapshot expiry: last month ≤ 1.5x "
            "the first",
            f"{growth:.2f}x ({v['daily_first_month_s'] * 1e3:.0f} → "
            f"{v['daily_last_month_s'] * 1e3:.0f} ms per commit; {v['daily_commits']} snapshots "
            "kept, where the weekly expiry keeps ~40)",
            growth <= 1.5,
        ),
        (
            "year backfill: metadata bounded",
            f"≤ {worst} metadata.json files, the largest {biggest / 1024:.0f} KiB",
            worst <= METADATA_MAX_FILES and biggest <= METADATA_MAX_BYTES,
        ),
    ]
