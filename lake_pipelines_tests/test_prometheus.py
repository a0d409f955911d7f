"""Metrics through real servers: the pipeline pushes to Debian's Pushgateway, Prometheus
scrapes it, and what Prometheus answers is checked against the tables."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from lake_pipelines.assets import build_all_assets
from lake_pipelines.datasets import get_dataset
from lake_pipelines.lake import metrics
from lake_pipelines.lake.gold import metrics_table_name
from lake_pipelines.lake.ingest import quarantine
from lake_pipelines.lake.pushgateway import push_scope
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.sample_data import generate_events
from lake_pipelines_tests.conftest import dagster_resources, sql_catalog
from lake_pipelines_tests.emulators import free_port
from lake_pipelines_tests.prometheus import (
    ALERTS,
    ROOT,
    PrometheusStack,
    binary,
    prometheus_stack,
)
from lake_pipelines_tests.support import duckdb_hive

SPEC = get_dataset("events")
START = date(2026, 11, 1)
EVENTS = ["lake/bronze/events", "lake/silver/events", "lake/gold/events_daily_metrics"]


def _run_day(store: ObjectStore, db: Path, instance: dg.DagsterInstance, day: date):
    return dg.materialize(
        build_all_assets(),
        selection=EVENTS,
        resources=dagster_resources(store, db),
        instance=instance,
        partition_key=day.isoformat(),
    )


def _series(name: str, layer: str, step: str = "materialize") -> str:
    return f'{name}{{job="lake_pipelines",dataset="events",layer="{layer}",step="{step}"}}'


def test_two_days_of_the_pipeline_reach_prometheus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ObjectStore(f"file://{tmp_path / 'lake'}")
    db = tmp_path / "catalog.db"
    days = generate_events(store, START, days=2, rows_per_day=300, seed=31)
    started = time.time()
    with prometheus_stack() as stack, dg.instance_for_test() as instance:
        monkeypatch.setenv("LAKE_PROMETHEUS_PUSHGATEWAY", stack.gateway)
        for d in days:  # two runs: the counters must add up across pushes
            assert _run_day(store, db, instance, d.day).success

        bronze_rows = duckdb_hive(store.path(SPEC.bronze_prefix), list(SPEC.schema.names))
        catalog = sql_catalog(store, db)
        silver_rows = catalog.load_table(SPEC.table_name).scan().to_arrow().num_rows
        gold_rows = catalog.load_table(metrics_table_name(SPEC)).scan().to_arrow().num_rows
        quarantined = sum(quarantine.rows_quarantined(store, SPEC.name, [d.day]) for d in days)
        assert bronze_rows.num_rows == silver_rows == sum(d.valid.num_rows for d in days)
        assert quarantined == sum(d.bad_rows for d in days) > 0

        want = {
            _series("lake_rows_written_total", "bronze"): bronze_rows.num_rows,
            _series("lake_rows_written_total", "silver"): silver_rows,
            _series("lake_rows_read_total", "silver"): bronze_rows.num_rows,
            _series("lake_rows_written_total", "gold", "events_daily_metrics"): gold_rows,
            _series("lake_rows_quarantined_total", "bronze"): quarantined,
            _series("lake_files_rejected_total", "bronze"): sum(d.bad_files for d in days),
            'lake_steps_total{dataset="events",layer="silver",outcome="success"}': 2,
            'lake_step_duration_seconds_count{layer="bronze",outcome="success"}': 2,
            'lake_partitions_total{layer="silver",outcome="changed"}': 2,
            'lake_iceberg_commits_total{layer="silver",outcome="committed"}': 2,
            _series("lake_latest_partition_timestamp_seconds", "silver"): metrics.day_start(
                days[-1].day
            ),
        }
        assert stack.values(want) == want
        success = stack.query('lake_last_success_timestamp_seconds{dataset="events",layer="gold"}')
        assert [s["metric"]["step"] for s in success] == ["events_daily_metrics"]
        assert started <= float(success[0]["value"][1]) <= time.time()

        # the shipped rules load and evaluate against these series without an error
        rules = _rules(stack)
        assert {r["name"] for r in rules} >= {
            "LakeDayNotLanded",
            "LakeQuarantineShareHigh",
            "LakeSilverStale",
            "LakeCompactionBehind",
        }
        assert {r["health"] for r in rules} == {"ok"}, rules

        # every query of the Grafana dashboard parses, names real metrics and finds series
        for title, expr in _dashboard_queries():
            names = set(re.findall(r"\blake_[a-z_]+", expr))
            assert names <= KNOWN, (title, names - KNOWN)
            promql = expr.replace("$dataset", "events")
            stack.query(promql)  # parses, else it raises
            # what two clean days give (no compaction, sensor, failure or commit retry yet)
            if not re.search("compaction|landing|failure|retries|small_files", expr):
                assert stack.query_until_found(promql), (title, expr)


DASHBOARD = ROOT / "deploy" / "grafana" / "lake_pipelines.json"
# the metric names and the series each histogram and counter is exposed as
KNOWN = {
    n + suffix
    for n, d in metrics.METRICS.items()
    for suffix in (("_bucket", "_count", "_sum", "") if d.kind == "histogram" else ("",))
}


def _dashboard_queries() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in board["panels"] for t in p["targets"]]


def _rules(stack: PrometheusStack) -> list[dict]:
    deadline = time.monotonic() + 30
    while True:
        with urllib.request.urlopen(f"{stack.prometheus}/api/v1/rules", timeout=10) as r:
            groups = json.load(r)["data"]["groups"]
        rules = [rule for g in groups for rule in g["rules"]]
        if all(r["health"] != "unknown" for r in rules) or time.monotonic() > deadline:
            return rules
        time.sleep(0.5)


def _firing(stack: PrometheusStack, name: str) -> list[dict[str, str]]:
    deadline = time.monotonic() + 30
    while True:
        with urllib.request.urlopen(f"{stack.prometheus}/api/v1/alerts", timeout=10) as r:
            alerts = json.load(r)["data"]["alerts"]
        found = [a["labels"] for a in alerts if a["labels"]["alertname"] == name]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_the_shipped_alerts_fire_on_a_bad_day_and_a_stale_silver(tmp_path: Path) -> None:
    with prometheus_stack() as stack:

        def push(scope: metrics.Scope, _: str) -> None:
            push_scope(stack.gateway, "lake", "materialize", scope)

        # a bronze step whose worst day quarantined 5 % of its rows, threshold 1 %
        with metrics.step(push, "events", "bronze"):
            metrics.gauge("lake_quarantined_ratio", 0.05)
            metrics.gauge("lake_quarantine_threshold_ratio", 0.01)
        # a silver step of another dataset whose last success was a day ago
        scope = metrics.Scope.new("orders", "silver")
        scope.child("lake_last_success_timestamp_seconds", {}).set(time.time() - 86400)
        assert push_scope(stack.gateway, "lake", "materialize", scope)

        quarantine_alerts = _firing(stack, "LakeQuarantineShareHigh")
        stale = _firing(stack, "LakeSilverStale")
    assert [(a["dataset"], a["layer"]) for a in quarantine_alerts] == [("events", "bronze")]
    assert [a["dataset"] for a in stale] == ["orders"]


def test_promtool_accepts_the_shipped_rules() -> None:
    done = subprocess.run(
        [binary("promtool"), "check", "rules", str(ALERTS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 6 rules found" in done.stdout


def test_an_unreachable_gateway_costs_a_warning_not_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ObjectStore(f"file://{tmp_path / 'lake'}")
    (day,) = generate_events(store, START, days=1, rows_per_day=200, seed=32, bad_rows=False)
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("LAKE_PROMETHEUS_PUSHGATEWAY", nobody)
    monkeypatch.setenv("LAKE_PROMETHEUS_TIMEOUT", "2")
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            build_all_assets(),
            selection=EVENTS[:2],
            resources=dagster_resources(store, tmp_path / "catalog.db"),
            instance=instance,
            partition_key=START.isoformat(),
        )
        assert result.success
        warnings = [
            e.user_message
            for e in instance.all_logs(result.run_id)
            if e.level == 30 and "not pushed to the Pushgateway" in e.user_message
        ]
    # one per step (bronze, silver), naming the gateway and the setting
    assert len(warnings) == 2, warnings
    assert all(nobody in w and "LAKE_PROMETHEUS_PUSHGATEWAY" in w for w in warnings)
    catalog = sql_catalog(store, tmp_path / "catalog.db")
    assert catalog.load_table(SPEC.table_name).scan().to_arrow().num_rows == day.valid.num_rows
