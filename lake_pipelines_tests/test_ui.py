"""The web UI as a person uses it: webserver and daemon over a real instance, headless Chromium.

Chromium is installed by the project's test setup (`make test-deps`, run by `.ci/run`); the test
is skipped, saying so, only where it is not installed. Screenshots go to test-artifacts/ui/.
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import ExitStack
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.scheduler.instigation import SensorInstigatorData

from lake_pipelines.assets import build_dataset_assets
from lake_pipelines.datasets import get_dataset
from lake_pipelines.lake.landing.cursor import LandingCursor
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.sample_data import generate_events
from lake_pipelines_tests.conftest import dagster_resources
from lake_pipelines_tests.ui_browser import (
    ROOT,
    Browser,
    browser,
    chromium_binary,
    free_port,
    graphql,
    process,
    terminate_all,
    wait_for_server,
)

BIN = Path(sys.executable).parent
SPEC = get_dataset("events")
DAY = "2026-11-02"
# A range run in the same instance, over a lake the landing sensor does not watch.
RANGE = ["2026-10-27", "2026-10-28", "2026-10-29", "2026-10-30"]
BRONZE = dg.AssetKey(["lake", "bronze", "events"])
LAYERS = [BRONZE, dg.AssetKey(["lake", "silver", "events"])]
LAYERS.append(dg.AssetKey(["lake", "gold", "events_daily_metrics"]))


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
    data = graphql(base, ROW_COUNTS, key={"path": key.path})
    events = data["assetOrError"]["assetMaterializations"]
    counts: dict[str, int] = {}
    for e in events:  # newest first
        entries = {m["label"]: m.get("intValue") for m in e["metadataEntries"]}
        counts.setdefault(e["partition"], entries["dagster/row_count"])
    return counts


METADATA_ROWS = """JSON.stringify([...document.querySelectorAll("tr")].map(
    tr => [...tr.querySelectorAll("td")].map(td => td.innerText.trim())).filter(r => r.length))"""
LINKS = """JSON.stringify([...document.querySelectorAll("a")].map(a => a.getAttribute("href")))"""


@pytest.mark.e2e
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
    # The shipped settings, except that the run queue launches no sensor's or schedule's run:
    # the landing sensor's run stays queued (visible in the UI); the UI's backfill runs.
    config["concurrency"]["runs"]["tag_concurrency_limits"].extend(
        [{"key": "dagster/sensor_name", "limit": 0}, {"key": "dagster/schedule_name", "limit": 0}]
    )
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

        # A backfill of a range of the whole group from the UI is one run over every asset.
        group_backfill_is_one_run(chrome, base)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(
            filters=dg.RunsFilter(tags={"dagster/sensor_name": "events_landing_sensor"})
        )
        assert [(r.job_name, r.tags.get("dagster/partition"), r.status) for r in runs] == [
            ("events_daily", DAY, dg.DagsterRunStatus.QUEUED)
        ]
        # The sensor's cursor is kept in the instance: a restarted daemon continues from it.
        states = [s for s in instance.all_instigator_state() if s.name == "events_landing_sensor"]
        sensor_data = states[0].instigator_data
        assert isinstance(sensor_data, SensorInstigatorData)
        cursor = LandingCursor.parse(sensor_data.cursor, "events_landing_sensor")
        assert len(cursor.seen) == len(landed.files)
    for proc in (web, daemon):
        assert proc.poll() is not None


GROUP_RANGE = ["2026-11-01", "2026-11-02", "2026-11-03"]
BACKFILLS = """{ partitionBackfillsOrError {
  ... on PartitionBackfills { results { id status partitionNames } } } }"""
BACKFILL_RUNS = """query BackfillRuns($filter: RunsFilter) { runsOrError(filter: $filter) {
  ... on Runs { results { runId status assetSelection { path } tags { key value } } } } }"""
PARTITION_INPUT = "[role=dialog] input[type=text]"
DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def group_backfill_is_one_run(chrome: Browser, base: str) -> None:
    """As the README says: the `events` group → Materialize all… → `[first...last]` in the
    partition box → Launch backfill. The backfill's runs, once it is done, are one run of
    every asset of the group over the range (the range tags of a single-run backfill)."""
    group = {tuple(k.path) for a in build_dataset_assets(SPEC) for k in a.keys}
    chrome.open(
        f"{base}/locations/lake_pipelines/asset-groups/events",
        expect=["events_active_users_7d", "Materialize all…"],
        shot="group-backfill-graph.png",
    )
    chrome.click("Materialize all…")
    chrome.wait_for(
        f"(e => e && !e.disabled && !e.placeholder.startsWith('Loading'))"
        f"(document.querySelector('{PARTITION_INPUT}'))",
        "loaded the partition keys into the dialog",
    )
    text = f"[{GROUP_RANGE[0]}...{GROUP_RANGE[-1]}]"  # the README's syntax, brackets included
    chrome.type_into(PARTITION_INPUT, text)
    chrome.open_current(
        expect=[f"Launch runs to materialize {len(group)} assets", "3 partitions"],
        shot="group-backfill-dialog.png",
    )
    assert chrome.eval(f"document.querySelector('{PARTITION_INPUT}').value") == text
    chrome.click("Launch backfill", within="[role=dialog]")

    deadline = time.monotonic() + 600  # the daemon's tick, a run worker, three days, 5 assets
    while True:
        backfills = graphql(base, BACKFILLS)["partitionBackfillsOrError"]["results"]
        if (backfills and backfills[0]["status"] in DONE) or time.monotonic() > deadline:
            break
        time.sleep(2)
    [backfill] = backfills
    tag = {"key": "dagster/backfill", "value": backfill["id"]}
    runs = graphql(base, BACKFILL_RUNS, filter={"tags": [tag]})["runsOrError"]["results"]
    assert len(runs) == 1, f"the backfill became {len(runs)} runs: {runs}"
    assert backfill["status"] == "COMPLETED_SUCCESS", backfill
    # a lookback partition mapping would have widened the range (no partition list at all)
    assert backfill["partitionNames"] == GROUP_RANGE
    [run] = runs
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert (
        tags["dagster/asset_partition_range_start"],
        tags["dagster/asset_partition_range_end"],
    ) == (
        GROUP_RANGE[0],
        GROUP_RANGE[-1],
    )
    assert {tuple(k["path"]) for k in run["assetSelection"]} == group
    assert run["status"] == "SUCCESS"
    chrome.open(
        f"{base}/runs/{run['runId']}",
        expect=["Success", f"{len(group)} assets", backfill["id"]],
        shot="group-backfill-run.png",
    )
    chrome.open(
        f"{base}/runs/b/{backfill['id']}?tab=runs",
        expect=[f"{GROUP_RANGE[0]}...{GROUP_RANGE[-1]}", run["runId"][:8]],
        shot="group-backfill-runs.png",
    )
