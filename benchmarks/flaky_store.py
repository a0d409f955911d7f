"""``python -m benchmarks.flaky_store``: what the S3 retry settings cost, with and without faults.

One workload, timed end to end: land `--days` days of sample events on moto's S3 server
(started here, on loopback), then bronze and silver for each day through the lake's own
functions (no Dagster). Each configuration runs `--reps` times on a fresh bucket; the median
wall time is reported with the spread, after one untimed warm-up run. Configurations:

* ``direct, 1 attempt``: straight to moto, ``LAKE_S3_MAX_ATTEMPTS=1`` (no retries at all);
* ``direct, 5 attempts``: straight to moto, the default: the cost of the retry settings on
  the fault-free path;
* ``proxy 0 %``: through the tests' fault proxy with no faults (the proxy's own cost);
* ``proxy 20 %``: through the proxy with 20 % of requests failing (500, 503, resets) and 5 %
  delayed by 0.2 s, none more than twice in a row.

Faults only in the timed part; the landing files are written before.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import date, timedelta
from pathlib import Path

import boto3

from lake_pipelines.datasets import get_dataset
from lake_pipelines.lake.bronze import ingest_day
from lake_pipelines.lake.silver import commit_days
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.sample_data import generate_events

KEY, SECRET, REGION = "bench", "bench-secret", "us-east-1"
START = date(2026, 3, 2)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(args: list[str], probe: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(probe, timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{args[2]} did not start")


def _set_rate(proxy: str, rate: float) -> None:
    request = urllib.request.Request(f"{proxy}/__faults__?rate={rate}", method="PUT")
    urllib.request.urlopen(request, timeout=10).close()


def _faults(proxy: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{proxy}/__faults__", timeout=10) as response:
        stats: dict[str, int] = json.loads(response.read())
    return stats


def _run_once(moto: str, endpoint: str, attempts: int, days: int, rows: int, tmp: Path) -> float:
    from pyiceberg.catalog.sql import SqlCatalog

    bucket = f"bench-{uuid.uuid4().hex[:10]}"
    client = boto3.client(
        "s3",
        endpoint_url=moto,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        region_name=REGION,
    )
    client.create_bucket(Bucket=bucket)

    def store_at(url: str) -> ObjectStore:
        return ObjectStore(
            f"s3://{bucket}/lake",
            endpoint_url=url,
            region=REGION,
            access_key_id=KEY,
            secret_access_key=SECRET,
            allow_http=True,
            addressing_style="path",
            max_attempts=attempts,
        )

    generate_events(store_at(moto), START, days, rows, seed=5, bad_rows=False)
    store = store_at(endpoint)
    spec = get_dataset("events")
    catalog = SqlCatalog(
        "bench",
        uri=f"sqlite:///{tmp / (bucket + '.db')}",
        warehouse=store.uri("warehouse"),
        **store.iceberg_properties(),
    )
    started = time.perf_counter()
    for d in range(days):
        day = START + timedelta(days=d)
        ingest_day(store, spec, day)
        commit_days(store, catalog, spec, [day])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--rows", type=int, default=20_000, help="rows per day")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    moto_port, proxy_port = _port(), _port()
    moto = f"http://127.0.0.1:{moto_port}"
    proxy = f"http://127.0.0.1:{proxy_port}"
    servers = [
        _serve(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)],
            f"{moto}/moto-api/",
        )
    ]
    try:
        command = [sys.executable, "-m", "lake_pipelines_tests.fault_proxy", moto]
        command += ["--port", str(proxy_port), "--seed", "5"]
        servers.append(_serve(command, f"{proxy}/__faults__"))
        configs = [
            ("direct, 1 attempt", moto, 1, 0.0),
            ("direct, 5 attempts", moto, 5, 0.0),
            ("proxy 0 %, 5 attempts", proxy, 5, 0.0),
            ("proxy 20 %, 5 attempts", proxy, 5, 0.2),
        ]
        print(f"{args.days} days x {args.rows:,} rows, bronze + silver per day, {args.reps} reps")
        print("| configuration | median s | min s | max s | faults injected |")
        print("|---|---:|---:|---:|---:|")
        with tempfile.TemporaryDirectory() as tmp:
            _run_once(moto, moto, 5, 1, args.rows, Path(tmp))  # warm-up: imports, caches
            for name, endpoint, attempts, rate in configs:
                times, faults = [], 0
                for _ in range(args.reps):
                    _set_rate(proxy, 0.0)
                    _set_rate(proxy, rate)
                    times.append(
                        _run_once(moto, endpoint, attempts, args.days, args.rows, Path(tmp))
                    )
                    stats = _faults(proxy)
                    faults += sum(stats.get(k, 0) for k in ("500", "503", "reset"))
                print(
                    f"| {name} | {statistics.median(times):.2f} | {min(times):.2f} | "
                    f"{max(times):.2f} | {faults // args.reps} per run |"
                )
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
