"""The web UI as a person uses it: webserver and daemon over a real instance, headless Chromium.

Chromium is installed by the project's test setup (`make test-deps`, run by `.ci/run`); the test
is skipped, saying so, only where it is not installed. Screenshots go to test-artifacts/ui/.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from websockets.sync.client import ClientConnection, connect

from lake_pipelines.assets import build_dataset_assets
from lake_pipelines.datasets import get_dataset
from lake_pipelines.lake.landing.cursor import LandingCursor
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.sample_data import generate_events
from lake_pipelines_tests.conftest import dagster_resources

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
BIN = Path(sys.executable).parent
SPEC = get_dataset("events")
DAY = "2026-11-02"
# A range run in the same instance, over a lake the landing sensor does not watch.
RANGE = ["2026-10-27", "2026-10-28", "2026-10-29", "2026-10-30"]
BRONZE = dg.AssetKey(["lake", "bronze", "events"])
LAYERS = [BRONZE, dg.AssetKey(["lake", "silver", "events"])]
LAYERS.append(dg.AssetKey(["lake", "gold", "events_daily_metrics"]))
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--disable-crash-reporter",
    "--disable-breakpad",
    "--window-size=1400,1000",
    "--remote-debugging-port=0",
]


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A process in its own process group; the group (with every child) is stopped at exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield proc
        finally:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
                with suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=20)
                # Code servers and run workers are children of the leader: clear the group.
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def terminate_all(*procs: subprocess.Popen) -> None:
    for proc in procs:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_for_server(base: str, procs: dict[str, tuple[subprocess.Popen, Path]]) -> None:
    deadline = time.monotonic() + 240
    while True:
        try:
            with urllib.request.urlopen(f"{base}/server_info", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        for name, (proc, log) in procs.items():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with {proc.returncode}:\n{tail(log)}")
        if time.monotonic() > deadline:
            pytest.fail(f"webserver did not answer /server_info:\n{tail(procs['webserver'][1])}")
        time.sleep(0.5)


class Browser:
    """Headless Chromium driven over the DevTools protocol: navigate, read the page, screenshot."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.next_id = 0

    def call(self, method: str, **params: Any) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def eval(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def open(self, url: str, expect: list[str], shot: str, timeout: float = 90) -> str:
        """Navigate and wait until the rendered text shows every `expect` string; screenshot."""
        self.call("Page.navigate", url=url)
        return self.open_current(expect, shot, timeout)

    def open_current(self, expect: list[str], shot: str, timeout: float = 90) -> str:
        """Wait until the current page shows every `expect` string; screenshot."""
        url = self.eval("location.href")
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.eval("document.body ? document.body.innerText : ''") or ""
            if all(e in text for e in expect):
                break
            time.sleep(0.5)
        png = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / shot).write_bytes(png)
        missing = [e for e in expect if e not in text]
        assert not missing, f"{url} never showed {missing}; see {ARTIFACTS / shot}:\n{text[:2000]}"
        return text


@contextmanager
def browser(binary: str, profile: Path) -> Iterator[Browser]:
    args = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"]
    with process(args, dict(os.environ), profile.parent / "chromium.log") as proc:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Chromium did not start:\n{tail(profile.parent / 'chromium.log')}")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            page = next(t for t in json.load(resp) if t["type"] == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=30) as ws:
            yield Browser(ws)


# the Metadata section's Plots view (by partition), scrolled to the top of the page's pane
CLICK_PLOTS = """[...document.querySelectorAll("button")].filter(
    b => b.innerText.trim() === "Plots").forEach(b => {b.click(); b.scrollIntoView(true)})"""
ROW_COUNTS = """query RowCounts($key: AssetKeyInput!) {
  assetOrError(assetKey: $key) {
    ... on Asset {
      assetMaterializations {
        partition
        metadataEntries { label ... on IntMetadataEntry { intValue } }
      }
    }
  }
}"""


def range_run(instance: dg.DagsterInstance, lake: Path) -> dict[dg.AssetKey, dict[str, int]]:
    """Land and materialize `RANGE` in one run (a single-run backfill); the rows of each day
    in bronze and silver, read back from the tables."""
    from lake_pipelines_tests.conftest import sql_catalog
    from lake_pipelines_tests.support import duckdb_query

    store = ObjectStore(str(lake))
    generate_events(store, date.fromisoformat(RANGE[0]), days=len(RANGE), seed=19)
    result = dg.materialize(
        build_dataset_assets(SPEC),
        selection=LAYERS,
        tags={
            "dagster/asset_partition_range_start": RANGE[0],
            "dagster/asset_partition_range_end": RANGE[-1],
        },
        resources=dagster_resources(store, lake / "catalog.db"),
        instance=instance,
    )
    assert result.success
    bronze = duckdb_query(
        "SELECT make_date(year, month, day)::VARCHAR AS day, count(*) AS n FROM read_parquet("
        f"'{store.path(SPEC.bronze_prefix)}/**/*.parquet', hive_partitioning = true, "
        "hive_types = {'year': INTEGER, 'month': INTEGER, 'day': INTEGER}) GROUP BY 1"
    )
    silver = sql_catalog(store, lake / "catalog.db").load_table(SPEC.table_name).scan()
    days = duckdb_query(
        "SELECT strftime(ts AT TIME ZONE 'UTC', '%Y-%m-%d') AS day, count(*) AS n "
        "FROM t GROUP BY 1",
        t=silver.to_arrow(),
    )
    return {
        BRONZE: {r["day"]: r["n"] for r in bronze.to_pylist()},
        LAYERS[1]: {r["day"]: r["n"] for r in days.to_pylist()},
    }


def graphql_row_counts(base: str, key: dg.AssetKey) -> dict[str, int]:
    """`dagster/row_count` of the latest materialization of each partition, as the UI gets it."""
    body = json.dumps({"query": ROW_COUNTS, "variables": {"key": {"path": key.path}}}).encode()
    request = urllib.request.Request(
        f"{base}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as resp:
        events = json.load(resp)["data"]["assetOrError"]["assetMaterializations"]
    counts: dict[str, int] = {}
    for e in events:  # newest first
        entries = {m["label"]: m.get("intValue") for m in e["metadataEntries"]}
        counts.setdefault(e["partition"], entries["dagster/row_count"])
    return counts


METADATA_ROWS = """JSON.stringify([...document.querySelectorAll("tr")].map(
    tr => [...tr.querySelectorAll("td")].map(td => td.innerText.trim())).filter(r => r.length))"""
LINKS = """JSON.stringify([...document.querySelectorAll("a")].map(a => a.getAttribute("href")))"""


def test_web_ui_shows_assets_materializations_and_sensor_runs(tmp_path: Path) -> None:
    binary = chromium_binary()
    if binary is None:
        pytest.skip(
            "Chromium is not installed on this machine: `make test-deps` (run by .ci/run) installs "
            "Debian's chromium where apt-get and root or passwordless sudo are available"
        )
    lake, home = tmp_path / "lake", tmp_path / "dagster"
    store = ObjectStore(str(lake))
    (landed,) = generate_events(store, date.fromisoformat(DAY), days=1, rows_per_day=300, seed=9)
    home.mkdir()
    config = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    # The shipped settings, except that the run queue launches nothing: the landing sensor's
    # run stays queued (visible in the UI) and no run worker outlives the test.
    config["concurrency"]["runs"]["max_concurrent_runs"] = 0
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    # Create the instance's SQLite storage once, before the webserver, the daemon and this
    # test open it at the same moment: each would stamp the schema, and on a loaded machine
    # two of them can race ("alembic_version has more than one head").
    with dg.DagsterInstance.from_config(str(home)):
        pass
    env = {**os.environ, "DAGSTER_HOME": str(home), "LAKE_HOME": str(lake)}
    for var in ("LAKE_STORE_URL", "LAKE_CATALOG_URI", "LAKE_WAREHOUSE", "LAKE_CATALOG_TYPE"):
        env.pop(var, None)
    port = str(free_port())
    base = f"http://127.0.0.1:{port}"
    workspace = str(ROOT / "workspace.yaml")
    webserver = [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", port, "-w", workspace]

    with ExitStack() as stack:
        web_log, daemon_log = tmp_path / "webserver.log", tmp_path / "daemon.log"
        web = stack.enter_context(process(webserver, env, web_log))
        daemon = stack.enter_context(
            process([str(BIN / "dagster-daemon"), "run", "-w", workspace], env, daemon_log)
        )
        stack.callback(terminate_all, web, daemon)  # both shut down at once, then are awaited
        # A range run, then one materialized partition in that instance (the latest), made
        # while the servers start.
        with dg.DagsterInstance.from_config(str(home)) as instance:
            per_day = range_run(instance, tmp_path / "other-lake")
            result = dg.materialize(
                build_dataset_assets(SPEC),
                selection=LAYERS,
                partition_key=DAY,
                resources=dagster_resources(store, lake / "catalog.db"),
                instance=instance,
            )
            assert result.success
            event = instance.get_latest_materialization_event(BRONZE)
            assert event is not None and event.asset_materialization is not None
            meta = event.asset_materialization.metadata
        wait_for_server(base, {"webserver": (web, web_log), "daemon": (daemon, daemon_log)})

        # Through the UI's own API: each day of the range run has its own row count, the
        # rows of that day in the tables (and the single-day run's day its own).
        per_day[BRONZE][DAY] = per_day[LAYERS[1]][DAY] = landed.valid.num_rows
        for key in LAYERS[:2]:
            assert graphql_row_counts(base, key) == per_day[key], key

        chrome = stack.enter_context(browser(binary, tmp_path / "chromium-profile"))
        chrome.open(
            f"{base}/locations/lake_pipelines/asset-groups/events",
            expect=["events_daily_metrics", "ago", "Passed"],  # loaded: latest events, checks
            shot="asset-graph.png",
        )
        links = json.loads(chrome.eval(LINKS))
        for key in LAYERS:  # every layer is a node of the graph, linked to its page
            assert any(h and h.startswith(f"/assets/{key.to_user_string()}?") for h in links), key

        text = chrome.open(
            f"{base}/assets/{BRONZE.to_user_string()}",
            expect=["Latest materialization", DAY, "rows_quarantined"],
            shot="asset-page-bronze.png",
        )
        assert "lake" in text and "bronze" in text
        shown = {r[0]: r[-1].replace(",", "") for r in json.loads(chrome.eval(METADATA_ROWS))}
        for label in ("rows_read", "rows_written", "rows_quarantined", "files_quarantined"):
            assert shown.get(label) == str(meta[label].value), (label, shown)
        assert meta["rows_written"].value == landed.valid.num_rows
        assert meta["rows_quarantined"].value == landed.bad_rows

        # The per-partition plots of the asset's metadata, one point per day.
        chrome.open(
            f"{base}/assets/{BRONZE.to_user_string()}",
            expect=["Metadata", "Plots"],
            shot="asset-overview-bronze.png",
        )
        # a taller window for this screenshot, so that it holds a dozen plots
        chrome.call(
            "Emulation.setDeviceMetricsOverride",
            width=1400,
            height=2200,
            deviceScaleFactor=1,
            mobile=False,
        )
        chrome.eval(CLICK_PLOTS)
        chrome.open_current(
            expect=["rows_quarantined", "quarantined_share", "bytes_written", "Partitions"],
            shot="asset-plots-bronze.png",
        )
        chrome.call("Emulation.clearDeviceMetricsOverride")

        # The daemon ticks the landing sensor, which requests the landed day: queued, by it.
        text = chrome.open(
            f"{base}/runs",
            expect=["events_landing_sensor", f"partition: {DAY}", "Queued"],
            shot="runs.png",
            timeout=180,
        )
        assert f"lake/landed_files: {len(landed.files)}" in text

    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(
            filters=dg.RunsFilter(tags={"dagster/sensor_name": "events_landing_sensor"})
        )
        assert [(r.job_name, r.tags.get("dagster/partition"), r.status) for r in runs] == [
            ("events_daily", DAY, dg.DagsterRunStatus.QUEUED)
        ]
        # The sensor's cursor is kept in the instance: a restarted daemon continues from it.
        states = [s for s in instance.all_instigator_state() if s.name == "events_landing_sensor"]
        cursor = LandingCursor.parse(states[0].instigator_data.cursor, "events_landing_sensor")
        assert len(cursor.seen) == len(landed.files)
    for proc in (web, daemon):
        assert proc.poll() is not None
