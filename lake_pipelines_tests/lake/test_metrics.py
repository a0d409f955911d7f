"""lake/metrics.py and lake/pushgateway.py without servers: names, labels, merging, no cost."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from datetime import date

from lake_pipelines.lake import metrics
from lake_pipelines.lake.pushgateway import _families, merge, pusher

# Label values that stay a handful whatever the data: never a file, a run or a day.
BOUNDED = {"outcome", "stage", "client"}  # a few fixed values each, never a file or a run


def test_metric_names_and_labels_follow_prometheus_conventions() -> None:
    for name, d in metrics.METRICS.items():
        assert name.startswith("lake_"), name
        assert set(d.labels) <= BOUNDED, name
        if d.kind == "counter":
            assert name.endswith("_total"), name
        elif d.kind == "histogram":
            assert name.endswith("_seconds"), name
        else:
            assert not name.endswith("_total"), name


def _scope(rows: int, seconds: float, latest: date, share: float) -> metrics.Scope:
    pushed: list[metrics.Scope] = []
    with metrics.step(lambda s, _: pushed.append(s), "events", "bronze"):
        metrics.inc("lake_rows_written_total", rows)
        metrics.observe("lake_partition_duration_seconds", seconds)
        metrics.gauge(
            "lake_latest_partition_timestamp_seconds", metrics.day_start(latest), keep_max=True
        )
        metrics.gauge("lake_quarantined_ratio", share, keep_max=True)
        metrics.gauge("lake_quarantined_ratio", share / 2, keep_max=True)  # the worst day stays
    return pushed[0]


def _sample(families: dict, family: str, sample: str, **labels: str) -> float:
    want = {"dataset": "events", "layer": "bronze", **labels}
    return next(
        v
        for (name, got), v in families[family].samples.items()
        if name == sample and dict(got) == want
    )


def test_a_push_adds_its_counts_to_what_the_gateway_holds() -> None:
    first = _families(_scope(100, 0.2, date(2026, 11, 2), 0.03).registry.collect(), {})
    second = _families(_scope(50, 20.0, date(2026, 10, 1), 0.01).registry.collect(), {})
    merged = merge(first, second)
    assert _sample(merged, "lake_rows_written", "lake_rows_written_total") == 150
    duration = "lake_partition_duration_seconds"
    assert _sample(merged, duration, f"{duration}_count") == 2
    assert _sample(merged, duration, f"{duration}_sum") == 20.2
    assert _sample(merged, duration, f"{duration}_bucket", le="0.25") == 1
    assert _sample(merged, duration, f"{duration}_bucket", le="+Inf") == 2
    assert _sample(merged, "lake_steps", "lake_steps_total", outcome="success") == 2
    # gauges: the latest step's value, except the newest partition, which never goes back
    assert _sample(merged, "lake_quarantined_ratio", "lake_quarantined_ratio") == 0.01
    latest = "lake_latest_partition_timestamp_seconds"
    assert _sample(merged, latest, latest) == metrics.day_start(date(2026, 11, 2))
    assert not any(name.endswith("_created") for f in merged.values() for name, _ in f.samples)


def test_a_failed_step_counts_as_a_failure_and_sets_no_last_success() -> None:
    pushed: list[tuple[metrics.Scope, str]] = []
    try:
        with metrics.step(lambda s, o: pushed.append((s, o)), "events", "silver"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    ((scope, outcome),) = pushed
    families = _families(scope.registry.collect(), {})
    assert outcome == "failure"
    assert _sample(families, "lake_steps", "lake_steps_total", layer="silver", outcome="failure")
    assert not families["lake_last_success_timestamp_seconds"].samples
    assert metrics.active() is None  # the step's scope is gone with it


def test_without_a_gateway_nothing_is_recorded_and_prometheus_client_never_imported(
    tmp_path,
) -> None:
    assert pusher("", "lake_pipelines", "materialize", 5.0) is None
    probe = (
        "import sys\n"
        "from datetime import date\n"
        "from lake_pipelines.datasets import get_dataset\n"
        "from lake_pipelines.lake import metrics\n"
        "from lake_pipelines.lake.bronze import ingest_day\n"
        "from lake_pipelines.lake.storage import ObjectStore\n"
        "from lake_pipelines.sample_data import generate_events\n"
        f"store = ObjectStore('file://{tmp_path}')\n"
        "generate_events(store, date(2026, 11, 1), days=1, rows_per_day=50)\n"
        "with metrics.step(None, 'events', 'bronze') as scope:\n"
        "    report = ingest_day(store, get_dataset('events'), date(2026, 11, 1))\n"
        "print(scope, report.rows_written, 'prometheus_client' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.split() == ["None", "50", "False"]


def test_steps_of_concurrent_threads_keep_their_own_numbers_and_commit_retries() -> None:
    # the daemon evaluates sensors in threads; each tick is a step of its own dataset
    pushed: dict[str, metrics.Scope] = {}
    both_open = threading.Barrier(2)

    def tick(dataset: str, rows: int) -> None:
        def push(scope: metrics.Scope, _: str) -> None:
            pushed.setdefault(dataset, scope)

        with metrics.step(push, dataset, "silver"):
            both_open.wait(timeout=60)
            metrics.inc("lake_rows_written_total", rows)
            # what pyiceberg logs when it retries a commit after a concurrent update
            logging.getLogger("pyiceberg.table").warning(
                "Commit failed due to a concurrent update, retrying (%s/%s) in %s ms", 1, 10, 100
            )
            both_open.wait(timeout=60)

    threads = [threading.Thread(target=tick, args=a) for a in (("events", 5), ("orders", 7))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for dataset, rows in (("events", 5), ("orders", 7)):
        families = _families(pushed[dataset].registry.collect(), {})
        labels = {"dataset": dataset, "layer": "silver"}
        written = families["lake_rows_written"].samples
        assert written == {("lake_rows_written_total", tuple(sorted(labels.items()))): rows}
        retries = families["lake_iceberg_commit_retries"].samples
        assert list(retries.values()) == [1]


def test_a_step_counts_the_object_store_retries_made_while_it_ran() -> None:
    from lake_pipelines.lake import retries

    retries.count_retry("botocore", 5)  # before the step: not its own
    pushed: list[tuple[metrics.Scope, str]] = []
    with metrics.step(lambda s, o: pushed.append((s, o)), "events", "bronze"):
        retries.count_retry("botocore", 2)
        retries.count_retry("boundary")
    ((scope, _),) = pushed
    families = _families(scope.registry.collect(), {})
    family, sample = "lake_object_store_retries", "lake_object_store_retries_total"
    assert _sample(families, family, sample, client="botocore") == 2
    assert _sample(families, family, sample, client="boundary") == 1
