"""Prometheus metrics of the data path: counters, histograms and gauges per dataset and layer.

A batch step opens a `step` scope (the Dagster layer does, around each asset and check); the
engine records into it with `inc`, `observe` and `gauge` and the `record_*` translations of its
reports, and the scope is pushed to a Pushgateway when it closes (`pushgateway.push`). Outside a
scope, or when no gateway is set, every call returns at once: no registry, no import of
prometheus_client, no network.

Labels are bounded: ``dataset`` and ``layer`` (the step's), plus a few fixed values (``outcome``,
``stage``). Never a file name, a run id or a day. `METRICS` is the list the README documents.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from lake_pipelines.lake import retries
from lake_pipelines.lake.period import Unit, bounds

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from lake_pipelines.lake.bronze import IngestReport
    from lake_pipelines.lake.compaction.report import CompactionReport
    from lake_pipelines.lake.gold import GoldReport
    from lake_pipelines.lake.silver import SilverReport

log = logging.getLogger(__name__)

Kind = Literal["counter", "histogram", "gauge"]
BASE_LABELS = ("dataset", "layer")
# Seconds: from a small day's partition to a year-long backfill step.
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)


@dataclass(frozen=True)
class MetricDef:
    """One metric: its full name (with ``_total`` for counters), type, extra labels, help."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()


def _defs(*defs: MetricDef) -> dict[str, MetricDef]:
    return {d.name: d for d in defs}


METRICS = _defs(
    MetricDef("lake_rows_read_total", "counter", "rows read from the layer's input"),
    MetricDef("lake_rows_written_total", "counter", "rows written (committed) by the layer"),
    MetricDef("lake_rows_quarantined_total", "counter", "rows sent to quarantine"),
    MetricDef("lake_files_read_total", "counter", "input files read (landed or bronze)"),
    MetricDef("lake_files_written_total", "counter", "data files written"),
    MetricDef("lake_files_rejected_total", "counter", "landed files quarantined whole"),
    MetricDef("lake_bytes_read_total", "counter", "bytes of the input files read"),
    MetricDef("lake_bytes_written_total", "counter", "bytes of the data files written"),
    MetricDef(
        "lake_partitions_total",
        "counter",
        "day partitions processed; outcome changed, or unchanged (inputs as last committed)",
        ("outcome",),
    ),
    MetricDef(
        "lake_iceberg_commits_total",
        "counter",
        "Iceberg commits; outcome committed, conflict (another writer won) or failed",
        ("outcome",),
    ),
    MetricDef(
        "lake_iceberg_commit_retries_total",
        "counter",
        "Iceberg commit attempts retried after a concurrent update",
    ),
    MetricDef(
        "lake_object_store_retries_total",
        "counter",
        "object-store requests retried, by the client that retried them (botocore, boundary)",
        ("client",),
    ),
    MetricDef(
        "lake_compaction_files_total",
        "counter",
        "files of compacted partitions, stage before or after the rewrite",
        ("stage",),
    ),
    MetricDef(
        "lake_compaction_bytes_total",
        "counter",
        "bytes of compacted partitions, stage before or after the rewrite",
        ("stage",),
    ),
    MetricDef(
        "lake_compaction_partitions_total",
        "counter",
        "partitions compaction looked at; outcome compacted or skipped",
        ("outcome",),
    ),
    MetricDef("lake_steps_total", "counter", "steps (asset runs) by outcome", ("outcome",)),
    MetricDef("lake_step_duration_seconds", "histogram", "wall time of a step", ("outcome",)),
    MetricDef("lake_partition_duration_seconds", "histogram", "work time of one day partition"),
    MetricDef("lake_query_duration_seconds", "histogram", "DataFusion time of one gold day"),
    MetricDef(
        "lake_last_success_timestamp_seconds", "gauge", "when a step of the layer last succeeded"
    ),
    MetricDef(
        "lake_latest_partition_timestamp_seconds",
        "gauge",
        "start (UTC) of the newest day partition the layer committed",
    ),
    MetricDef(
        "lake_quarantined_ratio",
        "gauge",
        "worst day's quarantined share (rows or rejected bytes) in the last bronze step",
    ),
    MetricDef("lake_quarantine_threshold_ratio", "gauge", "the dataset's quarantine threshold"),
    MetricDef(
        "lake_compaction_pending_partitions",
        "gauge",
        "partitions the last table-health check flagged for compaction",
    ),
    MetricDef("lake_small_files", "gauge", "small data files at the last table-health check"),
    MetricDef(
        "lake_landing_oldest_waiting_seconds",
        "gauge",
        "age of the oldest landed file the sensor saw not yet requested (0: none)",
    ),
    MetricDef("lake_landing_files_waiting", "gauge", "landed files waiting at the last tick"),
)
# Gauges whose pushed value is the larger of the gateway's and the step's (`pushgateway`).
MAX_GAUGES = frozenset({"lake_latest_partition_timestamp_seconds"})


@dataclass
class Scope:
    """One step's metrics: its own registry, so concurrent steps never mix their numbers."""

    dataset: str
    layer: str
    registry: CollectorRegistry
    families: dict[str, Any] = field(default_factory=dict)
    maxima: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    @classmethod
    def new(cls, dataset: str, layer: str) -> Scope:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        scope = cls(dataset, layer, CollectorRegistry(auto_describe=True))
        for d in METRICS.values():
            labels = (*BASE_LABELS, *d.labels)
            if d.kind == "counter":
                name = d.name.removesuffix("_total")
                metric: Any = Counter(name, d.help, labels, registry=scope.registry)
            elif d.kind == "histogram":
                metric = Histogram(
                    d.name, d.help, labels, registry=scope.registry, buckets=DURATION_BUCKETS
                )
            else:
                metric = Gauge(d.name, d.help, labels, registry=scope.registry)
            scope.families[d.name] = metric
        return scope

    def child(self, name: str, labels: dict[str, str]) -> Any:
        base = {"dataset": self.dataset, "layer": self.layer}
        return self.families[name].labels(**base, **labels)


# The step of each thread: the daemon evaluates several sensors at once, in threads; the
# engine records from the thread that runs the step (never from its pools' workers).
_state = threading.local()


def active() -> Scope | None:
    """The calling thread's open step, if any."""
    scope: Scope | None = getattr(_state, "scope", None)
    return scope


def _swap(scope: Scope | None) -> Scope | None:
    previous = active()
    _state.scope = scope
    return previous


def inc(name: str, value: float = 1, **labels: str) -> None:
    """Add `value` to counter `name` of the active step (nothing outside a step)."""
    scope = active()
    if scope is not None and value:
        scope.child(name, labels).inc(value)


def observe(name: str, seconds: float, **labels: str) -> None:
    """Observe `seconds` in histogram `name` of the active step."""
    scope = active()
    if scope is not None:
        scope.child(name, labels).observe(seconds)


def gauge(name: str, value: float, *, keep_max: bool = False, **labels: str) -> None:
    """Set gauge `name` of the active step; `keep_max` keeps the step's largest value."""
    scope = active()
    if scope is None:
        return
    if keep_max:
        key = (name, tuple(sorted(labels.items())))
        value = scope.maxima[key] = max(value, scope.maxima.get(key, value))
    scope.child(name, labels).set(value)


def day_start(day: Unit) -> float:
    return bounds(day)[0].timestamp()


class _CommitRetries(logging.Handler):
    """pyiceberg retries a commit after a concurrent update and says so in one warning; the
    retry loop has no other hook, so the warning is what is counted."""

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith("Commit failed due to a concurrent update"):
            inc("lake_iceberg_commit_retries_total")  # into the emitting thread's step


def _count_commit_retries() -> None:
    """One handler per process (steps of several threads share it)."""
    iceberg_log = logging.getLogger("pyiceberg.table")
    if not any(isinstance(h, _CommitRetries) for h in iceberg_log.handlers):
        iceberg_log.addHandler(_CommitRetries(logging.WARNING))


@contextmanager
def step(
    push: Callable[[Scope, str], None] | None, dataset: str, layer: str
) -> Iterator[Scope | None]:
    """The metrics of one step of `dataset`'s `layer`, handed to `push` with the step's
    outcome (``success`` or ``failure``) when it ends. `push` None (no gateway): nothing is
    recorded and nothing imported. The step's own exception always propagates."""
    if push is None:
        yield None
        return
    scope = Scope.new(dataset, layer)
    _count_commit_retries()
    retries_before = retries.retry_counts()
    previous = _swap(scope)
    outcome = "failure"
    try:
        yield scope
        outcome = "success"
    finally:
        # the process's retries during the step (pyarrow's own are not reported by pyarrow)
        for client, count in retries.retry_counts().items():
            if count > retries_before.get(client, 0):
                inc(
                    "lake_object_store_retries_total",
                    count - retries_before.get(client, 0),
                    client=client,
                )
        inc("lake_steps_total", outcome=outcome)
        observe("lake_step_duration_seconds", time.perf_counter() - scope.started, outcome=outcome)
        if outcome == "success":
            gauge("lake_last_success_timestamp_seconds", time.time())
        _swap(previous)
        push(scope, outcome)


# -- reports → metrics ------------------------------------------------------------------------


def _committed_day(day: Unit, seconds: float, unchanged: bool) -> None:
    inc("lake_partitions_total", outcome="unchanged" if unchanged else "changed")
    observe("lake_partition_duration_seconds", seconds)
    gauge("lake_latest_partition_timestamp_seconds", day_start(day), keep_max=True)


def record_ingest(report: IngestReport, threshold: float) -> None:
    """One bronze day: rows, files and bytes in and out, its quarantined share."""
    inc("lake_rows_read_total", report.rows_read)
    inc("lake_rows_written_total", report.rows_written)
    inc("lake_rows_quarantined_total", report.rows_quarantined)
    inc("lake_files_read_total", len(report.sources))
    inc("lake_files_written_total", len(report.outputs))
    inc("lake_files_rejected_total", len(report.file_rejects))
    inc("lake_bytes_read_total", report.bytes_read)
    inc("lake_bytes_written_total", report.bytes_written)
    gauge("lake_quarantined_ratio", report.quarantined_share, keep_max=True)
    gauge("lake_quarantine_threshold_ratio", threshold)
    _committed_day(report.day, report.seconds, unchanged=False)


def record_silver(reports: Sequence[SilverReport]) -> None:
    """Silver days: rows read from bronze, rows committed (counted once per changed day)."""
    for r in reports:
        if not r.unchanged:
            inc("lake_rows_read_total", r.rows_read)
            inc("lake_rows_written_total", r.rows_committed)
        _committed_day(r.day, r.seconds, r.unchanged)


def record_gold(reports: Sequence[GoldReport]) -> None:
    """Gold days: rows written and the DataFusion time of each recomputed day."""
    for r in reports:
        if not r.unchanged:
            inc("lake_rows_written_total", r.rows)
            inc("lake_files_read_total", r.source_files)
            observe("lake_query_duration_seconds", r.seconds)
        _committed_day(r.day, r.seconds, r.unchanged)


def record_compaction(report: CompactionReport) -> None:
    """Files and bytes before/after per compacted partition, partitions skipped."""
    for r in report.compacted:
        inc("lake_compaction_files_total", r.files_before, stage="before")
        inc("lake_compaction_files_total", r.files_after, stage="after")
        inc("lake_compaction_bytes_total", r.bytes_before, stage="before")
        inc("lake_compaction_bytes_total", r.bytes_after, stage="after")
        inc("lake_bytes_read_total", r.bytes_read)
        inc("lake_bytes_written_total", r.bytes_written)
    inc("lake_compaction_partitions_total", len(report.compacted), outcome="compacted")
    inc("lake_compaction_partitions_total", len(report.skipped), outcome="skipped")


def record_landing(files_waiting: int, oldest_seconds: float) -> None:
    """A landing sensor tick: files not yet ingested and the age of the oldest."""
    gauge("lake_landing_files_waiting", files_waiting)
    gauge("lake_landing_oldest_waiting_seconds", oldest_seconds)


def record_health(flagged: int, small_files: int) -> None:
    """A table-health check: partitions flagged for compaction, small files in the table."""
    gauge("lake_compaction_pending_partitions", flagged)
    gauge("lake_small_files", small_files)
