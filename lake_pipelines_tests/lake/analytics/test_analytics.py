"""DataFusion over the lake: spilling, pushdown proven by EXPLAIN, UDF/UDAF, gold vs DuckDB."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from lake_pipelines.datasets import get_dataset
from lake_pipelines.errors import LakeError
from lake_pipelines.lake.analytics.session import (
    SessionSettings,
    make_session,
    register_hive,
    register_iceberg,
    register_iceberg_provider,
)
from lake_pipelines.lake.analytics.sql import percentile_sql
from lake_pipelines.lake.bronze import ingest_day
from lake_pipelines.lake.gold import commit_gold_days, gold_identifier, gold_tables_for
from lake_pipelines.lake.parquet.options import file_schema
from lake_pipelines.lake.silver import commit_day, day_filter
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.sample_data import generate_events, generate_orders
from lake_pipelines_tests.support import duckdb_hive, duckdb_query

EVENTS = get_dataset("events")
ORDERS = get_dataset("orders")
START = date(2026, 11, 1)
DAYS = 3


def _plan(ctx, sql: str) -> str:
    return "\n".join(ctx.sql(f"EXPLAIN {sql}").to_pandas()["plan"])


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory):
    """Three days of events and orders in bronze and silver, built once for the module."""
    root = tmp_path_factory.mktemp("analytics")
    store = ObjectStore(str(root / "lake"))
    catalog = SqlCatalog("lake", uri=f"sqlite:///{root / 'c.db'}", warehouse=store.uri("warehouse"))
    generate_events(store, START, days=DAYS, rows_per_day=500, seed=21, bad_rows=False)
    generate_orders(store, START, days=DAYS, rows_per_day=200, seed=22, bad_rows=False)
    for spec in (EVENTS, ORDERS):
        for i in range(DAYS):
            day = date(2026, 11, 1 + i)
            ingest_day(store, spec, day)
            commit_day(store, catalog, spec, day)
    return store, catalog, root


def test_aggregation_under_a_small_memory_limit_spills_and_is_right(tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    ctx = make_session(SessionSettings(2, 8192, 16 << 20, str(spill)))
    rng = np.random.default_rng(3)
    n = 1_500_000
    data = pa.table({"k": rng.integers(0, 700_000, n), "v": rng.integers(0, 1000, n)})
    ctx.register_record_batches("t", [data.to_batches(max_chunksize=65536)])
    sql = "SELECT k, COUNT(*) AS c, SUM(v) AS s FROM t GROUP BY k ORDER BY k"
    analyzed = "\n".join(ctx.sql(f"EXPLAIN ANALYZE {sql}").to_pandas()["plan"])
    spills = [int(x) for x in re.findall(r"spill_count=(\d+)", analyzed)]
    assert sum(spills) > 0, "expected the sort/aggregation to spill under a 16 MiB limit"
    got = ctx.sql(sql).to_arrow_table()
    expected = duckdb_query(
        "SELECT k, COUNT(*) AS c, SUM(v) AS s FROM data GROUP BY k ORDER BY k", data=data
    )
    assert got.column("k").to_pylist() == expected.column("k").to_pylist()
    assert got.column("c").to_pylist() == expected.column("c").to_pylist()
    assert got.column("s").to_pylist() == [int(x) for x in expected.column("s").to_pylist()]


def test_hive_day_filter_prunes_partitions_and_pushes_down(lake) -> None:
    store, _, _ = lake
    ctx = make_session(SessionSettings(2))
    register_hive(ctx, "bronze", store, EVENTS.bronze_prefix, file_schema(EVENTS))
    sql = "SELECT user_id, price FROM bronze WHERE year = 2026 AND month = 11 AND day = 2 AND price > 10"
    plan = _plan(ctx, sql)
    scan = next(line for line in plan.splitlines() if "DataSourceExec" in line)
    files = re.findall(r"[^\s\[,]+\.parquet", scan)
    assert files and all("/day=02/" in f for f in files)  # other days never opened
    assert "projection=[user_id, price]" in scan  # only the needed columns
    assert "predicate=price@" in scan and "pruning_predicate=" in scan
    n = ctx.sql(sql.replace("user_id, price", "COUNT(*) AS n")).to_pylist()[0]["n"]
    bronze = duckdb_hive(store.path(EVENTS.bronze_prefix), ["price", "day"])
    expected = duckdb_query("SELECT COUNT(*) AS n FROM b WHERE day = 2 AND price > 10", b=bronze)
    assert n == expected.to_pylist()[0]["n"]


def test_iceberg_day_filter_prunes_files_and_pushes_down(lake) -> None:
    store, catalog, _ = lake
    table = catalog.load_table(EVENTS.table_name)
    all_files = len(list(table.scan().plan_files()))
    ctx = make_session(SessionSettings(2))
    kept = register_iceberg(ctx, "silver", table, store, day_filter(EVENTS, date(2026, 11, 2)))
    assert 0 < kept < all_files
    plan = _plan(ctx, "SELECT user_id, price FROM silver WHERE price > 10")
    # DataFusion's own Parquet scans (not a pyarrow dataset): the kept files only, two columns
    # read, the filter pushed into the scan and its row-group statistics
    scans = [line for line in plan.splitlines() if "DataSourceExec" in line]
    assert sum(line.count(".parquet") for line in scans) == kept
    for scan in scans:
        assert "file_type=parquet" in scan and "projection=[user_id, price]" in scan
        assert re.search(r"predicate=price@\d+ > 10", scan) and "price_max@0 > 10" in scan


def test_time_travel_registration_reads_the_old_snapshot(lake, tmp_path: Path) -> None:
    store, catalog, _ = lake
    table = catalog.load_table(ORDERS.table_name)
    before = table.current_snapshot().snapshot_id
    count_before = table.scan().count()
    # replace day 1 with nothing, then read both versions through DataFusion
    commit_day_empty = table.overwrite(
        table.scan(limit=0).to_arrow(), overwrite_filter=day_filter(ORDERS, START)
    )
    assert commit_day_empty is None
    table = catalog.load_table(ORDERS.table_name)
    ctx = make_session(SessionSettings(2))
    register_iceberg(ctx, "now", table, store)
    register_iceberg(ctx, "then", table, store, snapshot_id=before)
    register_iceberg_provider(ctx, "provider", table)
    register_iceberg_provider(ctx, "provider_then", table, snapshot_id=before)
    then = ctx.sql("SELECT COUNT(*) AS n FROM then").to_pylist()[0]["n"]
    q = "SELECT * FROM {} ORDER BY order_id"
    assert ctx.sql(q.format("provider_then")).to_arrow_table().to_pylist() == (
        ctx.sql(q.format("then")).to_arrow_table().to_pylist()
    )
    with pytest.raises(LakeError, match="no snapshot 12345"):
        register_iceberg_provider(ctx, "nothing", table, snapshot_id=12345)
    with pytest.raises(LakeError, match="no snapshot 12345"):  # not an empty table
        register_iceberg(ctx, "then", table, store, snapshot_id=12345)
    assert ctx.sql("SELECT COUNT(*) AS n FROM then").to_pylist()[0]["n"] == then  # kept
    now = ctx.sql("SELECT COUNT(*) AS n FROM now").to_pylist()[0]["n"]
    provider = ctx.sql("SELECT COUNT(*) AS n FROM provider").to_pylist()[0]["n"]
    assert then == count_before
    assert (
        now
        == provider
        == count_before
        - table.scan(snapshot_id=before, row_filter=day_filter(ORDERS, START)).count()
    )
    # restore the day for the other tests of the module
    commit_day(store, catalog, ORDERS, START)


@pytest.mark.parametrize(
    "url,domain",
    [
        ("https://shop.example.com/p/1", "shop.example.com"),
        ("HTTP://WWW.Example.ORG:8080/x?y=1", "example.org"),
        ("ftp://user:pw@files.example.net/a", "files.example.net"),
        ("https://example.com", "example.com"),
        ("not a url", None),
        ("", None),
        (None, None),
    ],
)
def test_extract_domain_udf(url, domain) -> None:
    ctx = make_session(SessionSettings(1))
    ctx.register_record_batches("u", [[pa.record_batch({"url": pa.array([url], pa.string())})]])
    assert ctx.sql("SELECT extract_domain(url) AS d FROM u").to_pylist()[0]["d"] == domain


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float | None:
    keep = weights > 0
    values, weights = values[keep], weights[keep]
    if not len(values):
        return None
    expanded = np.repeat(values, weights.astype(int))  # integer weights: plain repetition
    return float(np.sort(expanded)[(len(expanded) - 1) // 2])  # the lower median


def test_weighted_median_udaf_matches_a_reference() -> None:
    rng = np.random.default_rng(9)
    n = 20_000
    data = pa.table(
        {
            "g": rng.integers(0, 7, n),
            "v": np.round(rng.gamma(2, 10, n), 2),
            "w": rng.integers(0, 5, n).astype(float),
        }
    )
    ctx = make_session(SessionSettings(4))  # several partitions: exercises state/merge
    ctx.register_record_batches("t", [data.to_batches(max_chunksize=1000)])
    got = {
        r["g"]: r["m"]
        for r in ctx.sql("SELECT g, weighted_median(v, w) AS m FROM t GROUP BY g").to_pylist()
    }
    g, v, w = (data.column(c).to_numpy() for c in ("g", "v", "w"))
    expected = {int(k): _weighted_median(v[g == k], w[g == k]) for k in np.unique(g)}
    assert got == expected


@pytest.fixture(scope="module")
def gold(lake):
    store, catalog, _ = lake
    settings = SessionSettings(2)
    # two days past the data: their windows hold silver rows, the days themselves none
    days = [date(2026, 11, 1 + i) for i in range(DAYS + 2)]
    for spec in (EVENTS, ORDERS):
        for table in gold_tables_for(spec):  # the range in one run: one session per day
            commit_gold_days(store, catalog, spec, table, days, settings)
            assert len(catalog.load_table(gold_identifier(spec, table)).snapshots()) == 1
    return {
        g.name: catalog.load_table(gold_identifier(spec, g)).scan().to_arrow()
        for spec in (EVENTS, ORDERS)
        for g in gold_tables_for(spec)
    }


def _bronze(lake, spec):
    store, _, _ = lake
    return duckdb_hive(store.path(spec.bronze_prefix), list(spec.schema.names))


def _keyed(table: pa.Table, keys: list[str]) -> dict:
    out = {}
    for row in table.to_pylist():
        k = tuple(str(row.pop(c)) for c in keys)
        out[k] = {c: (round(float(v), 6) if isinstance(v, float) else v) for c, v in row.items()}
    return out


def test_gold_daily_metrics_match_duckdb(lake, gold) -> None:
    expected = duckdb_query(
        """
        SELECT CAST(ts AS DATE) AS day, event_type, COUNT(*) AS events,
               COUNT(DISTINCT user_id) AS distinct_users,
               COUNT(DISTINCT session_id) AS distinct_sessions, SUM(price) AS revenue,
               quantile_cont(price, 0.5) AS price_p50, quantile_cont(price, 0.95) AS price_p95
        FROM b GROUP BY ALL
        """,
        b=_bronze(lake, EVENTS),
    )
    got = gold["events_daily_metrics"]
    assert _keyed(got, ["day", "event_type"]) == _keyed(expected, ["day", "event_type"])


def test_gold_top_domains_match_duckdb(lake, gold) -> None:
    expected = duckdb_query(
        """
        SELECT day, domain, events, distinct_users, rank FROM (
          SELECT CAST(ts AS DATE) AS day,
                 regexp_replace(lower(regexp_extract(url, '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?([^:/?#]+)', 1)), '^www\\.', '') AS domain,
                 COUNT(*) AS events, COUNT(DISTINCT user_id) AS distinct_users,
                 ROW_NUMBER() OVER (PARTITION BY CAST(ts AS DATE) ORDER BY COUNT(*) DESC, domain) AS rank
          FROM b WHERE url IS NOT NULL GROUP BY 1, 2)
        WHERE rank <= 10
        """,
        b=_bronze(lake, EVENTS),
    )
    assert _keyed(gold["events_top_domains"], ["day", "rank"]) == _keyed(expected, ["day", "rank"])


def test_gold_active_users_match_duckdb(lake, gold) -> None:
    expected = duckdb_query(
        """
        SELECT d.day,
               (SELECT COUNT(DISTINCT user_id) FROM b WHERE CAST(ts AS DATE) BETWEEN d.day - 6 AND d.day) AS active_users_7d,
               (SELECT COUNT(DISTINCT user_id) FROM b WHERE CAST(ts AS DATE) = d.day) AS active_users_1d,
               (SELECT COUNT(DISTINCT CAST(ts AS DATE)) FROM b WHERE CAST(ts AS DATE) BETWEEN d.day - 6 AND d.day) AS days_with_data
        FROM (SELECT DISTINCT CAST(ts AS DATE) AS day FROM b) d
        """,
        b=_bronze(lake, EVENTS),
    )
    got = gold["events_active_users_7d"]
    assert _keyed(got, ["day"]) == _keyed(expected, ["day"])  # no rows for the days after
    assert max(got.column("day").to_pylist()) == date(2026, 11, DAYS)
    assert max(got.column("days_with_data").to_pylist()) == DAYS  # it really read past days


def test_gold_orders_daily_sales_match_duckdb(lake, gold) -> None:
    expected = duckdb_query(
        """
        WITH items AS (
          SELECT CAST(ordered_at AS DATE) AS day, currency, i.quantity AS q, i.unit_price AS p
          FROM b, UNNEST(items) AS t(i)
        ), ranked AS (
          SELECT day, currency, p,
                 SUM(q) OVER (PARTITION BY day, currency ORDER BY p ROWS UNBOUNDED PRECEDING) AS cum,
                 SUM(q) OVER (PARTITION BY day, currency) AS total
          FROM items WHERE q > 0
        ), medians AS (
          SELECT day, currency, MIN(p) AS median_unit_price FROM ranked
          WHERE cum >= total / 2.0 GROUP BY ALL
        ), sums AS (
          SELECT day, currency, SUM(q) AS items_sold FROM items GROUP BY ALL
        ), orders AS (
          SELECT CAST(ordered_at AS DATE) AS day, currency, COUNT(*) AS orders,
                 SUM(total) AS revenue FROM b GROUP BY ALL
        )
        SELECT o.day, o.currency, o.orders, s.items_sold, o.revenue, m.median_unit_price
        FROM orders o JOIN sums s USING (day, currency) JOIN medians m USING (day, currency)
        """,
        b=_bronze(lake, ORDERS),
    )
    got = gold["orders_daily_sales"]
    assert got.num_rows == DAYS * 3
    assert _keyed(got, ["day", "currency"]) == _keyed(expected, ["day", "currency"])


def test_percentile_sql_is_exact() -> None:
    rng = np.random.default_rng(4)
    values = np.round(rng.gamma(2, 20, 20_000), 2)
    groups = rng.integers(0, 9, len(values))
    prices = np.where(rng.random(len(values)) < 0.1, np.nan, values)
    nulls = rng.random(len(values)) < 0.05
    data = pa.table({"g": groups, "p": pa.array(prices, mask=nulls)})
    ctx = make_session(SessionSettings(4))
    ctx.register_record_batches("t", [data.to_batches(max_chunksize=1000)])
    for q in (0.0, 0.5, 0.95, 1.0):
        got = ctx.sql(f"SELECT g, {percentile_sql('p', q)} AS q FROM t GROUP BY g").to_pylist()
        assert len(got) == 9
        for row in got:
            mine = prices[(groups == row["g"]) & ~np.isnan(prices) & ~nulls]
            assert row["q"] == float(np.quantile(mine, q))  # exact, not approximately
    empty = ctx.sql(f"SELECT {percentile_sql('p', 0.5)} AS q FROM t WHERE p > 1e9")
    assert empty.to_pylist() == [{"q": None}]
    ctx.register_record_batches("s", [pa.table({"p": [42.5]}).to_batches()])
    assert ctx.sql(f"SELECT {percentile_sql('p', 0.95)} AS q FROM s").to_pylist() == [{"q": 42.5}]


def test_active_users_window_is_exactly_the_seven_days_ending_with_the_day() -> None:
    """u_old (day D-7) and u_next (D+1) are outside; u_edge (first instant of D-6) is in."""
    from datetime import UTC, datetime, timedelta

    import dagster as dg

    from lake_pipelines.assets import build_all_assets
    from lake_pipelines.lake.analytics.queries import active_users_7d

    day = date(2026, 11, 10)

    def at(d: date, hour: int = 0) -> datetime:
        return datetime(d.year, d.month, d.day, hour, tzinfo=UTC)

    events = [
        ("u_old", at(day - timedelta(days=7), 23)),
        ("u_edge", at(day - timedelta(days=6))),
        ("u_mid", at(day - timedelta(days=3), 12)),
        ("u_day", at(day, 8)),
        ("u_mid", at(day, 9)),
        ("u_next", at(day + timedelta(days=1))),
    ]
    ctx = make_session(SessionSettings(2))
    ctx.register_record_batches(
        "source",
        [
            pa.table(
                {
                    "user_id": [u for u, _ in events],
                    "ts": pa.array([t for _, t in events], pa.timestamp("us", "UTC")),
                }
            ).to_batches()
        ],
    )
    (row,) = active_users_7d(ctx, day).to_pylist()
    assert row == {
        "day": day,
        "active_users_7d": 3,  # u_edge, u_mid, u_day
        "active_users_1d": 2,  # u_day, u_mid
        "days_with_data": 3,
    }
    # Dagster maps it to the same silver day: the window is ours, so a backfill of a range
    # of the group stays that range (one run), see test_definitions
    (asset,) = [
        a
        for a in build_all_assets()
        if a.key == dg.AssetKey(["lake", "gold", "events_active_users_7d"])
    ]
    mapping = asset.get_partition_mapping(dg.AssetKey(["lake", "silver", "events"]))
    assert not isinstance(mapping, dg.TimeWindowPartitionMapping) or (
        mapping.start_offset,
        mapping.end_offset,
    ) == (0, 0)


@pytest.mark.parametrize("folder", ["plain", "a b%c#d", "x[1]", "q?z", "{w}*"])
def test_registered_files_read_whole_whatever_their_folder_is_called(
    tmp_path: Path, folder: str
) -> None:
    """DataFusion reads `?`, `[` or `*` in a path as a glob (and a glob matching nothing as no
    rows): every file registered is read, whatever the lake's folder is called."""
    import pyarrow.parquet as pq

    from lake_pipelines.lake.analytics.session import register_files

    root = tmp_path / folder
    schema = pa.schema([pa.field("n", pa.int64()), pa.field("tag", pa.string())])
    uris = []
    for i in range(3):
        path = root / "data" / f"day={i}" / f"part-{i}.parquet"
        path.parent.mkdir(parents=True)
        pq.write_table(pa.table({"n": [i * 10 + j for j in range(4)]}), path)  # no `tag` yet
        uris.append(f"file://{path}")
    ctx = make_session(SessionSettings(2))
    register_files(ctx, "t", ObjectStore(str(root)), uris, schema, "lake.t")
    got = ctx.sql("SELECT n, tag FROM t ORDER BY n").to_arrow_table()
    assert got.column("n").to_pylist() == [i * 10 + j for i in range(3) for j in range(4)]
    assert got.column("tag").null_count == 12
    register_files(ctx, "none", ObjectStore(str(root)), [], schema, "lake.t")
    assert ctx.sql("SELECT COUNT(*) AS c FROM none").to_pylist() == [{"c": 0}]


def test_a_hive_folder_datafusion_would_read_as_a_glob_is_an_error(tmp_path: Path) -> None:
    from lake_pipelines.errors import TableReadError
    from lake_pipelines.lake.analytics.session import register_hive

    store = ObjectStore(str(tmp_path / "x[1]"))
    with pytest.raises(TableReadError, match=r"has one of"):
        register_hive(make_session(SessionSettings(1)), "b", store, "bronze/events", pa.schema([]))


def test_datafusion_reads_silver_itself_where_its_store_reaches_it() -> None:
    """Its own reader on local disk and S3; a pyarrow dataset for GCS and Azure (no custom
    endpoint in DataFusion's stores), S3 addressed virtually (DataFusion 53 cannot be told)
    and any path DataFusion would take for a glob."""
    from lake_pipelines.lake.analytics.session import reads_natively

    key = "lake/warehouse/lake/events/data/ts_day=2026-11-01/00000-0-a.parquet"
    s3 = {
        style: ObjectStore(
            "s3://bucket/lake", endpoint_url="https://s3.example:9000", addressing_style=style
        )
        for style in ("auto", "path", "virtual")
    }
    assert reads_natively(ObjectStore("/tmp/lake"), [f"/tmp/{key}"])
    assert reads_natively(s3["auto"], [f"bucket/{key}"])
    assert reads_natively(s3["path"], [f"bucket/{key}"])
    assert not reads_natively(s3["virtual"], [f"bucket/{key}"])
    assert not reads_natively(ObjectStore("/tmp/x[1]/lake"), [f"/tmp/x[1]/{key}"])
    assert not reads_natively(s3["path"], [f"bucket/{key}", "bucket/a?b.parquet"])
    gcs = ObjectStore("gs://bucket/lake", gcs_endpoint_url="http://127.0.0.1:9023")
    assert not reads_natively(gcs, [f"bucket/{key}"])
