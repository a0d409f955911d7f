"""DataFusion's memory limit: gold queries spill under it, a limit too small to work under is
one clear error, and the default follows the container's or machine's memory."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from lake_pipelines.config import DataFusionSettings
from lake_pipelines.datasets import get_dataset
from lake_pipelines.errors import QueryMemoryError
from lake_pipelines.lake import memory
from lake_pipelines.lake.analytics.event_metrics import (
    DAILY_EVENT_METRICS_SCHEMA,
    DISTINCT_PER_GROUP,
    EVENT_METRICS_ONE_QUERY,
    EVENTS_OF_WINDOW,
    daily_event_metrics,
    spillable_event_metrics,
)
from lake_pipelines.lake.analytics.session import SessionSettings, make_session
from lake_pipelines.lake.bronze import ingest_day
from lake_pipelines.lake.gold import commit_gold_days, gold_tables_for
from lake_pipelines.lake.silver import commit_day
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.sample_data import generate_events
from lake_pipelines_tests.conftest import CgroupTree
from lake_pipelines_tests.support import duckdb_query

EVENTS = get_dataset("events")
DAY = date(2026, 11, 1)
ROWS = 400_000


def _events(n: int) -> pa.Table:
    """`n` events of `DAY` with many distinct users and sessions (the costly distinct counts)."""
    rng = np.random.default_rng(18)
    start = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() * 1e6)
    users = rng.integers(0, n // 2, n)
    return pa.table(
        {
            "ts": pa.array(start + rng.integers(0, 86_400_000_000, n), pa.timestamp("us", "UTC")),
            "event_type": pa.array(np.array(["view", "click", "buy"])[rng.integers(0, 3, n)]),
            "user_id": pa.array([f"u{u:07d}" for u in users]),
            "session_id": pa.array(
                [f"s{u:07d}-{k}" for u, k in zip(users, rng.integers(0, 9, n), strict=True)]
            ),
            # priced like the events dataset: only carts and purchases (about 1 in 6)
            "price": pa.array(np.round(rng.gamma(2.0, 20.0, n), 2), mask=rng.random(n) > 0.17),
        }
    )


def _session(limit: int, spill: Path, data: pa.Table):
    ctx = make_session(SessionSettings(2, 8192, limit, str(spill)))
    ctx.register_record_batches("source", [data.to_batches(max_chunksize=65536)])
    return ctx


def test_daily_metrics_over_more_data_than_the_limit_are_sliced_and_right(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a limit their groups do not fit, the distinct counts would spill (slow, run 30);
    they are computed a slice of users, then of sessions, at a time instead, and are right."""
    data = _events(ROWS)
    limit = 16 << 20  # the day's distinct users and sessions alone take several times this
    ctx = _session(limit, tmp_path / "spill", data)
    rows = EVENTS_OF_WINDOW.format(
        start="TIMESTAMP '2026-11-01T00:00:00Z'", end="TIMESTAMP '2026-11-02T00:00:00Z'"
    )
    sql = DISTINCT_PER_GROUP.format(
        keys="day, event_type", value="session_id", name="distinct_sessions", rows=rows
    )
    analyzed = "\n".join(ctx.sql(f"EXPLAIN ANALYZE {sql}").to_pandas()["plan"])
    assert sum(int(x) for x in re.findall(r"spill_count=(\d+)", analyzed)) > 0
    # the one-query plan cannot work under this limit: the answer below is the spillable plan's
    with pytest.raises(Exception, match="Resources exhausted"):
        ctx.sql(EVENT_METRICS_ONE_QUERY.format(rows=rows)).to_arrow_table()
    ran = _spy_on_queries(monkeypatch)
    got = daily_event_metrics(_session(limit, tmp_path / "spill2", data), DAY)
    copies = [q for q in ran if q.startswith("COPY ")]
    assert len(copies) == 2 and all("PARTITIONED BY (lake_slice)" in q for q in copies)
    # 400k rows x 160 B in a quarter of 16 MiB: 16 slices (fewer if a sample repeats a bound)
    assert 12 <= copies[0].count(" WHEN ") <= 15 and "user_id" in copies[0]
    assert "session_id" in copies[1]
    assert list((tmp_path / "spill2").iterdir()) == []  # the slices' files are gone
    expected = duckdb_query(
        """
        SELECT event_type, COUNT(*) AS events, COUNT(DISTINCT user_id) AS distinct_users,
               COUNT(DISTINCT session_id) AS distinct_sessions, SUM(price) AS revenue,
               quantile_cont(price, 0.5) AS price_p50, quantile_cont(price, 0.95) AS price_p95
        FROM d GROUP BY ALL ORDER BY event_type
        """,
        d=data,
    )
    got = got.sort_by("event_type")
    for column in ("event_type", "events", "distinct_users", "distinct_sessions"):
        assert got.column(column).to_pylist() == expected.column(column).to_pylist()
    for column in ("revenue", "price_p50", "price_p95"):
        assert got.column(column).to_pylist() == pytest.approx(expected.column(column).to_pylist())
    assert got.column("day").to_pylist() == [DAY] * 3


def test_a_limit_too_small_to_work_under_is_one_error_naming_the_setting(tmp_path: Path) -> None:
    store = ObjectStore(str(tmp_path / "lake"))
    catalog = SqlCatalog(
        "lake", uri=f"sqlite:///{tmp_path / 'c.db'}", warehouse=store.uri("warehouse")
    )
    generate_events(store, DAY, days=1, rows_per_day=2_000, seed=18, bad_rows=False)
    ingest_day(store, EVENTS, DAY)
    commit_day(store, catalog, EVENTS, DAY)
    gold = gold_tables_for(EVENTS)[0]
    with pytest.raises(QueryMemoryError) as err:
        commit_gold_days(store, catalog, EVENTS, gold, [DAY], SessionSettings(2, 8192, 4096))
    message = str(err.value)
    assert message.startswith("setting LAKE_DF_MEMORY_LIMIT='4,096 bytes': ")
    assert f"gold table lake.{gold.name} for {DAY}" in message
    assert "raise LAKE_DF_MEMORY_LIMIT" in message
    assert "\n" not in message and err.value.__cause__ is None and err.value.__suppress_context__
    assert err.value.setting == "LAKE_DF_MEMORY_LIMIT" and err.value.limit == 4096
    assert (
        not catalog.table_exists(f"lake.{gold.name}")
        or not catalog.load_table(f"lake.{gold.name}").snapshots()
    )  # nothing committed


def test_the_default_limit_is_2_gib_or_a_quarter_of_a_smaller_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(memory, "available_memory", lambda: 24 << 30)
    assert DataFusionSettings.from_env({}).memory_limit == 2 << 30
    assert DataFusionSettings.from_env({"LAKE_DF_MEMORY_LIMIT": "auto"}).memory_limit == 2 << 30
    assert DataFusionSettings.from_env({"LAKE_DF_MEMORY_LIMIT": "50%"}).memory_limit == 12 << 30
    assert DataFusionSettings.from_env({"LAKE_DF_MEMORY_LIMIT": "0"}).memory_limit == 0
    monkeypatch.setattr(memory, "available_memory", lambda: 4 << 30)  # a 4 GiB container
    assert DataFusionSettings.from_env({}).memory_limit == 1 << 30


GIB = 1 << 30
V2_POD = "0::/kubepods/pod1/c1\n"
V2_UNIT = "0::/system.slice/lake.service\n"
V1_UNIT = "9:memory:/system.slice/lake.service\n4:cpu,cpuacct:/\n1:name=systemd:/\n"


@pytest.mark.parametrize(
    ("own", "files", "expected"),
    [
        (V2_POD, {}, None),  # no cgroup files at all
        (V2_POD, {"kubepods/pod1/c1/memory.max": "max"}, None),
        # a pod's limit binds the container below it, the smaller one counts
        (V2_POD, {"kubepods/pod1/memory.max": str(2 * GIB)}, 2 * GIB),
        (
            V2_POD,
            {"kubepods/pod1/memory.max": str(2 * GIB), "kubepods/pod1/c1/memory.max": str(GIB)},
            GIB,
        ),
        # a systemd unit's MemoryHigh= below its MemoryMax=: the kernel throttles above it
        (
            V2_UNIT,
            {
                "system.slice/lake.service/memory.max": str(4 * GIB),
                "system.slice/lake.service/memory.high": str(3 * GIB),
            },
            3 * GIB,
        ),
        ("0::/\n", {"memory.max": str(GIB)}, GIB),  # a container with its own namespace
        (V2_POD, {"kubepods/pod1/c1/memory.max": "garbage"}, None),
        # cgroup v1: the memory controller's mount; a huge number means no limit
        (V1_UNIT, {"memory/system.slice/lake.service/memory.limit_in_bytes": str(GIB)}, GIB),
        (V1_UNIT, {"memory/memory.limit_in_bytes": "9223372036854771712"}, None),
        # a container without its own namespace: the host's path, only the mount root exists
        ("9:memory:/docker/abc\n", {"memory/memory.limit_in_bytes": str(2 * GIB)}, 2 * GIB),
        ("", {"memory.max": str(GIB)}, None),  # no /proc/self/cgroup (not Linux)
    ],
)
def test_the_container_limit_is_the_smallest_along_the_process_cgroup(
    cgroup_tree: CgroupTree, own: str, files: dict[str, str], expected: int | None
) -> None:
    assert memory.container_limit(*cgroup_tree(own, files)) == expected


def test_available_memory_is_the_container_limit_within_the_machines_ram(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert memory.machine_memory() > 0
    monkeypatch.setattr(memory, "machine_memory", lambda: 64 * GIB)
    monkeypatch.setattr(memory, "container_limit", lambda: 3 * GIB)
    assert memory.available_memory() == 3 * GIB
    monkeypatch.setattr(memory, "container_limit", lambda: None)
    assert memory.available_memory() == 64 * GIB


def test_the_one_query_plan_and_the_spillable_plan_give_the_same_numbers(tmp_path: Path) -> None:
    """Without a limit the daily metrics are one query; the spillable plan, which the
    function falls back to under a tight limit, answers the same, to the last digit but
    the sum's."""
    data = _events(60_000)
    ctx = _session(0, tmp_path / "spill", data)
    rows = EVENTS_OF_WINDOW.format(
        start="TIMESTAMP '2026-11-01T00:00:00Z'", end="TIMESTAMP '2026-11-02T00:00:00Z'"
    )
    names = DAILY_EVENT_METRICS_SCHEMA.names
    one = daily_event_metrics(ctx, DAY).sort_by("event_type")
    spilled = spillable_event_metrics(ctx, rows).select(names).sort_by("event_type")
    for column in names:
        if column == "revenue":
            assert one.column(column).to_pylist() == pytest.approx(
                spilled.column(column).to_pylist()
            )
        else:
            assert one.column(column).to_pylist() == spilled.column(column).to_pylist(), column


def _spy_on_queries(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The SQL text of every query DataFusion is asked for from here on, in order."""
    from datafusion import DataFrame, SessionContext

    ran: list[str] = []
    real = SessionContext.sql

    def spy(self: SessionContext, sql: str, *args: Any, **kwargs: Any) -> DataFrame:
        ran.append(sql)
        return real(self, sql, *args, **kwargs)

    monkeypatch.setattr(SessionContext, "sql", spy)
    return ran


def test_a_window_too_big_for_the_limit_skips_the_one_query_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DataFusion does not hold the one-query plan's distinct sets to the limit (a 20M-row
    day took 6.5 GiB under 2 GiB), so a window with more rows than the limit allows at
    `ONE_QUERY_BYTES_PER_ROW` never starts it; a small one still does."""
    data = _events(60_000)
    ran = _spy_on_queries(monkeypatch)
    big = daily_event_metrics(_session(16 << 20, tmp_path / "a", data), DAY)  # 60k x 400 > 16M
    assert not [q for q in ran if "COUNT(DISTINCT" in q]
    ran.clear()
    small = daily_event_metrics(_session(64 << 20, tmp_path / "b", data), DAY)
    assert [q for q in ran if "COUNT(DISTINCT" in q]
    big, small = big.sort_by("event_type"), small.sort_by("event_type")
    assert big.drop_columns(["revenue"]).equals(small.drop_columns(["revenue"]))
    assert big.column("revenue").to_pylist() == pytest.approx(small.column("revenue").to_pylist())


def test_days_run_at_once_share_the_limit_when_choosing_the_one_query_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two days at once each get half the limit: a day that fits the one-query plan alone
    (30k rows x 400 B < 16 MiB) is too big for it beside another day, and spills instead."""
    from lake_pipelines.lake.analytics.event_metrics import event_metrics

    day1 = _events(30_000)
    shifted = pa.array(
        [t + timedelta(days=1) for t in day1.column("ts").to_pylist()], pa.timestamp("us", "UTC")
    )
    data = pa.concat_tables([day1, day1.set_column(0, "ts", shifted)])
    ran = _spy_on_queries(monkeypatch)
    both = event_metrics(_session(16 << 20, tmp_path / "a", data), DAY, DAY + timedelta(2), 2)
    assert not [q for q in ran if "COUNT(DISTINCT" in q]
    ran.clear()
    alone = daily_event_metrics(_session(16 << 20, tmp_path / "b", data), DAY)
    assert [q for q in ran if "COUNT(DISTINCT" in q]
    first = both.filter(pa.compute.equal(both.column("day"), DAY)).sort_by("event_type")
    alone = alone.sort_by("event_type")
    assert first.drop_columns(["revenue"]).equals(alone.drop_columns(["revenue"]))
    assert both.num_rows == 2 * alone.num_rows
