"""A step's metrics to a Prometheus Pushgateway, counters accumulated across pushes.

The Pushgateway keeps the last push of each group and never adds anything up. Each step
therefore pushes to its own group (``job``, ``dataset``, ``layer``, ``step`` = the asset or
sensor name: a bounded set, so concurrent steps of different assets never overwrite each
other) and, before pushing, reads that group back and adds its own counts to the counters and
histograms found there. Counters then grow across runs as Prometheus expects (``increase()``
over a day counts every run of it; a restarted gateway without persistence is a counter reset,
which Prometheus handles). Gauges are the step's (last success, quarantined share), except the
newest partition's timestamp, which keeps the larger value (a backfill of old days must not
move it back).

Two runs of the same asset at once would read the same old counts and one increment would be
lost: the pools (`pool=` on every writing asset, limit 1) keep them apart in the shipped
instance settings.

A failed read or push logs one warning (through `warn`) and never raises: metrics must not fail
a run. Nothing is pushed after a failed read (that would reset the counters).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lake_pipelines.lake.metrics import MAX_GAUGES, METRICS, Scope

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

log = logging.getLogger(__name__)

SampleKey = tuple[str, tuple[tuple[str, str], ...]]
# Labels the gateway adds from the grouping key (or as a default) that are not the metrics' own.
GROUP_ONLY = ("job", "instance", "step")


@dataclass
class _Family:
    name: str  # as prometheus_client names it: a counter without ``_total``
    kind: str
    help: str
    samples: dict[SampleKey, float] = field(default_factory=dict)


def gateway_url(url: str) -> str:
    return url.rstrip("/") if "://" in url else f"http://{url.rstrip('/')}"


def _key(sample_name: str, labels: dict[str, str]) -> SampleKey:
    from prometheus_client.utils import floatToGoString

    kept = {k: v for k, v in labels.items() if k not in GROUP_ONLY}
    if "le" in kept:  # Go and Python print bucket bounds differently (1 vs 1.0)
        kept["le"] = floatToGoString(float(kept["le"]))
    return sample_name, tuple(sorted(kept.items()))


def _families(metrics: Iterable[Metric], wanted: dict[str, str]) -> dict[str, _Family]:
    """Families named in `METRICS`, only samples whose labels include all of `wanted`."""
    known = {
        d.name.removesuffix("_total") if d.kind == "counter" else d.name for d in METRICS.values()
    }
    out: dict[str, _Family] = {}
    for m in metrics:
        if m.name not in known:
            continue
        family = out.setdefault(m.name, _Family(m.name, m.type, m.documentation))
        for s in m.samples:
            if s.name.endswith("_created") or any(s.labels.get(k) != v for k, v in wanted.items()):
                continue
            family.samples[_key(s.name, s.labels)] = s.value
    return out


def read_group(url: str, grouping: dict[str, str], timeout: float) -> dict[str, _Family]:
    """The lake's metrics the gateway holds for exactly this group."""
    import urllib.request  # here: a run without a gateway never needs it (~10 ms)

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{gateway_url(url)}/metrics", timeout=timeout) as response:
        text = response.read().decode()
    return _families(text_string_to_metric_families(text), grouping)


def merge(prior: dict[str, _Family], ours: dict[str, _Family]) -> dict[str, _Family]:
    """Counters and histograms added up; gauges ours (the newest partition: the larger)."""
    merged = {name: _Family(f.name, f.kind, f.help, dict(f.samples)) for name, f in prior.items()}
    for name, family in ours.items():
        target = merged.setdefault(name, _Family(name, family.kind, family.help))
        target.kind, target.help = family.kind, family.help
        for key, value in family.samples.items():
            before = target.samples.get(key)
            if before is None:
                target.samples[key] = value
            elif family.kind in ("counter", "histogram"):
                target.samples[key] = before + value
            elif name in MAX_GAUGES:
                target.samples[key] = max(before, value)
            else:
                target.samples[key] = value
    return merged


class _Merged:
    """A prometheus_client collector over merged families (what is pushed)."""

    def __init__(self, families: dict[str, _Family]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.metrics_core import Metric

        for f in self.families.values():
            if not f.samples:
                continue
            metric = Metric(f.name, f.help, f.kind)
            for (name, labels), value in sorted(f.samples.items()):
                metric.add_sample(name, dict(labels), value)
            yield metric


def push_scope(
    url: str,
    job: str,
    step: str,
    scope: Scope,
    timeout: float = 5.0,
    warn: Callable[[str], Any] = log.warning,
) -> bool:
    """Push `scope` to the gateway at `url` under (job, dataset, layer, step), added to what
    the group holds. Returns whether it was pushed; a failure is one `warn` call."""
    from prometheus_client import push_to_gateway

    grouping = {"dataset": scope.dataset, "layer": scope.layer, "step": step}
    try:
        prior = read_group(url, {"job": job, **grouping}, timeout)
        merged = merge(prior, _families(scope.registry.collect(), {}))
        push_to_gateway(
            gateway_url(url),
            job=job,
            registry=_Merged(merged),
            grouping_key=grouping,
            timeout=timeout,
        )
    except Exception as exc:  # metrics never fail a run, whatever went wrong
        warn(
            f"metrics of {scope.dataset} {scope.layer} ({step}) not pushed to the Pushgateway "
            f"{url} (LAKE_PROMETHEUS_PUSHGATEWAY): {exc}"
        )
        return False
    return True


def pusher(
    url: str, job: str, step: str, timeout: float, warn: Callable[[str], Any] = log.warning
) -> Callable[[Scope, str], None] | None:
    """What `metrics.step` pushes with: None when no gateway is set (nothing recorded)."""
    if not url:
        return None

    def push(scope: Scope, outcome: str) -> None:
        push_scope(url, job, step, scope, timeout, warn)

    return push
