"""Task 10 (one big day through every layer, and the peers): its tables and target verdicts."""

from __future__ import annotations

from typing import Any

RSS_LIMIT_MIB = 1536  # 1.5 GiB for the whole run at the large day
RSS_GROWTH = 0.25  # the large day's peak within 25 % of the small day's
TIME_GROWTH = 11.0  # the large day (10x the rows) within 11x the small day's time
SILVER_VS_BRONZE = 0.5
VS_FASTEST_PEER = 0.8
# The layers whose steps make up "the run's time" (the table-health checks are shown apart).
LAYERS = ("bronze", "silver", "gold", "compaction")
WORK_LAYERS = LAYERS


def _last(slot: dict[str, Any]) -> dict[str, Any] | None:
    return slot["runs"][-1] if slot.get("runs") else None


def _ours(case: dict[str, Any]) -> list[tuple[str, dict[str, Any] | None, dict[str, Any]]]:
    """(label, last run, slot) of our runs, small day first."""
    return [(k, _last(v), v) for k, v in case["engines"].items() if k.startswith("ours ")]


def _layers(run: dict[str, Any] | None) -> dict[str, dict[str, float]]:
    value = run.get("value") if run else None
    return value.get("layers", {}) if isinstance(value, dict) else {}


def _work(layers: dict[str, dict[str, float]]) -> float:
    return sum(layers[x]["seconds"] for x in WORK_LAYERS if x in layers)


def one_line(failure: str) -> str:
    """The line of a failed run's output that says why (its last non-empty line)."""
    lines = [x.strip() for x in failure.strip().splitlines() if x.strip()]
    return lines[-1][:200] if lines else "failed"


def _peers(case: dict[str, Any]) -> dict[str, tuple[float | None, dict[str, Any]]]:
    """Peer label → (in-process seconds of a clean run, or None; its slot)."""
    out = {}
    for label, slot in case["engines"].items():
        if label.startswith("ours "):
            continue
        run = _last(slot)
        ok = run is not None and "failed" not in slot and not slot.get("problems")
        out[label] = ((run["work"] or run["wall"]) if ok and run else None, slot)
    return out


def big_day_table(case: dict[str, Any]) -> str:
    """Per layer of each of our runs, then ours (bronze + silver) against the peers."""
    ours = _ours(case)
    head = "| layer |" + "".join(f" {label}: s | rows/s | peak RSS MiB |" for label, _, _ in ours)
    lines = [head, "|---|" + "---:|---:|---:|" * len(ours)]
    for layer in (*LAYERS, "checks"):
        cells = []
        for _, run, _ in ours:
            x = _layers(run).get(layer)
            cells.append(
                f" {x['seconds']:.1f} | {x['rows_per_s']:,.0f} | {x['peak_rss_mib']:,.0f} |"
                if x
                else " - | - | - |"
            )
        lines.append(f"| {layer} |" + "".join(cells))
    total = []
    for _, run, slot in ours:
        if run is None:
            total.append(f" failed: {one_line(slot.get('failed', ''))} | | |")
            continue
        layers = _layers(run)
        rows = slot.get("rows") or 0
        work = _work(layers)
        total.append(
            f" {work:.1f} (process {run['wall']:.1f}) | {rows / work if work else 0:,.0f} | "
            f"**{run['max_rss_mib']:,.0f}** |"
        )
    lines.append("| whole run (layers; the process with Dagster's start) |" + "".join(total))
    lines += ["", _peer_table(case)]
    return "\n".join(lines) + "\n"


def _peer_table(case: dict[str, Any]) -> str:
    ours = _ours(case)
    lines = [
        "| engine | time s | x fastest | process wall s | peak RSS MiB | rows in Iceberg | "
        "outcome |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    peers = _peers(case)
    times = [t for t, _ in peers.values() if t]
    if ours and ours[-1][1] is not None:
        layers = _layers(ours[-1][1])
        bs = layers["bronze"]["seconds"] + layers["silver"]["seconds"]
        times.append(bs)
        run = ours[-1][1]
        lines.append(
            f"| {ours[-1][0]}, bronze + silver steps | {bs:.1f} | {min(times) / bs:.2f}x | "
            f"{run['wall']:.1f} (whole run) | {run['max_rss_mib']:,.0f} (whole run) | "
            f"{run['value']['rows_silver']:,} | validated, quarantine, lineage, sorted |"
        )
    fastest = min(times) if times else None
    for label, (t, slot) in peers.items():
        peer_run = _last(slot)
        if t is None or peer_run is None:
            why = (
                one_line(slot.get("failed", ""))
                if "failed" in slot
                else "; ".join(slot.get("problems", []))
            )
            lines.append(f"| {label} | - | - | - | - | - | ⚠ {why} |")
            continue
        assert fastest is not None  # t is one of the times
        lines.append(
            f"| {label} | {t:.1f} | {fastest / t:.2f}x | {peer_run['wall']:.1f} | "
            f"{peer_run['max_rss_mib']:,.0f} | {peer_run['extra'].get('rows_out', 0):,} | ok |"
        )
    for label, reason in case.get("unavailable", {}).items():
        lines.append(f"| {label} | - | - | - | - | - | not run: {reason} |")
    return "\n".join(lines)


def big_day_targets(case: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) of task 10."""
    ours = _ours(case)
    if len(ours) < 2 or ours[0][1] is None or ours[1][1] is None:
        return [("big day: both of our runs", "did not run cleanly", None)]
    (small_label, small, _), (large_label, large, _) = ours[0], ours[1]
    assert small is not None and large is not None  # checked above
    rss_s, rss_l = small["max_rss_mib"], large["max_rss_mib"]
    ls, ll = _layers(small), _layers(large)
    work_s, work_l = _work(ls), _work(ll)
    growth = rss_l / rss_s - 1
    silver = ll["silver"]["seconds"] / ll["bronze"]["seconds"]
    out: list[tuple[str, str, bool | None]] = [
        (
            f"big day: peak RSS of the whole run < 1.5 GiB ({large_label})",
            f"{rss_l:,.0f} MiB",
            rss_l < RSS_LIMIT_MIB,
        ),
        (
            f"big day: peak RSS within 25 % from {small_label} to {large_label}",
            f"{rss_s:,.0f} → {rss_l:,.0f} MiB ({growth:+.0%})",
            growth <= RSS_GROWTH,
        ),
        (
            f"big day: {large_label} ≤ 11x the time of {small_label}",
            f"{work_l / work_s:.1f}x ({work_s:.1f} → {work_l:.1f} s of layer steps; whole "
            f"processes {large['wall'] / small['wall']:.1f}x)",
            work_l <= TIME_GROWTH * work_s,
        ),
        (
            f"big day: silver ≤ 0.5x bronze's time ({large_label})",
            f"{silver:.2f}x ({ll['silver']['seconds']:.1f} s vs {ll['bronze']['seconds']:.1f} s)",
            silver <= SILVER_VS_BRONZE,
        ),
    ]
    peers = {k: t for k, (t, _) in _peers(case).items() if t}
    bs = ll["bronze"]["seconds"] + ll["silver"]["seconds"]
    if peers:
        best = min(peers, key=lambda k: peers[k])
        ratio = peers[best] / bs
        out.append(
            (
                "big day: ours (bronze + silver) ≥ 0.8x the fastest peer",
                f"{ratio:.2f}x of {best} ({bs:.1f} s vs {peers[best]:.1f} s)",
                ratio >= VS_FASTEST_PEER,
            )
        )
    else:
        out.append(("big day: ours ≥ 0.8x the fastest peer", "no peer ran cleanly", None))
    return out
