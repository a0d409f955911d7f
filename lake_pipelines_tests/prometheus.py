"""Debian's real Prometheus and Pushgateway on loopback ports, for the metrics tests.

`.ci/install-prometheus` (run by `make test-deps`) installs them. Prometheus scrapes the
gateway every second (``honor_labels``: the pushed job and grouping labels are kept) and loads
the shipped alert rules, so the rules are also evaluated against real series.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lake_pipelines_tests.emulators import free_port, stop_process

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"


def binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing: run .ci/install-prometheus (make test-deps)")
    return found


@dataclass(frozen=True)
class PrometheusStack:
    gateway: str  # http://127.0.0.1:<port> of the Pushgateway
    prometheus: str  # http://127.0.0.1:<port> of Prometheus

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result vector (Prometheus' HTTP API)."""
        url = f"{self.prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def query_until_found(self, promql: str, deadline_s: float = 30) -> list[dict[str, Any]]:
        """`query`, asked again until it finds a series or `deadline_s` passed: a range
        function such as ``increase`` needs two scrapes of a series before it answers."""
        deadline = time.monotonic() + deadline_s
        while True:
            found = self.query(promql)
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.5)

    def values(self, want: dict[str, float], deadline_s: float = 90) -> dict[str, float]:
        """Each query's single value, read until all equal `want` (scrapes are asynchronous)
        or `deadline_s` passed; a query without exactly one series gives NaN."""
        deadline = time.monotonic() + deadline_s
        while True:
            seen = {}
            for promql in want:
                result = self.query(promql)
                seen[promql] = float(result[0]["value"][1]) if len(result) == 1 else float("nan")
            if seen == want or time.monotonic() > deadline:
                return seen
            time.sleep(0.5)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except (urllib.error.URLError, ConnectionError):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{what} did not start ({url})")
            time.sleep(0.2)


@contextmanager
def prometheus_stack() -> Iterator[PrometheusStack]:
    """A Pushgateway and a Prometheus scraping it, both stopped on exit.

    Their files live in a directory of their own, not under pytest's temporary directories,
    which a concurrent pytest session may prune while the servers still write there."""
    with (
        tempfile.TemporaryDirectory(prefix="lake-prometheus-") as tmp,
        _servers(Path(tmp)) as stack,
    ):
        yield stack


@contextmanager
def _servers(workdir: Path) -> Iterator[PrometheusStack]:
    gw_port, prom_port = free_port(), free_port()
    gateway = f"http://127.0.0.1:{gw_port}"
    gw = subprocess.Popen(
        [
            binary("prometheus-pushgateway"),
            f"--web.listen-address=127.0.0.1:{gw_port}",
            # in memory only: Debian's build persists to /var/lib/prometheus by default
            "--persistence.file=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "pushgateway.log").open("wb"),
    )
    procs = [gw]
    try:
        _wait_ready(f"{gateway}/-/ready", gw, "prometheus-pushgateway")
        config = workdir / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files: ['{ALERTS}']\n"
            "scrape_configs:\n  - job_name: pushgateway\n    honor_labels: true\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{gw_port}']\n"
        )
        prom = subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(workdir / "prometheus.log").open("wb"),
        )
        procs.append(prom)
        prometheus = f"http://127.0.0.1:{prom_port}"
        _wait_ready(f"{prometheus}/-/ready", prom, "prometheus")
        yield PrometheusStack(gateway, prometheus)
    finally:
        for proc in reversed(procs):
            stop_process(proc, timeout=20)
