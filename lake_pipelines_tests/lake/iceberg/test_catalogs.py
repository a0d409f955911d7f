"""The same Iceberg guarantees on the PostgreSQL catalog as on the SQLite default."""

from __future__ import annotations

import multiprocessing
import uuid
from datetime import date

import pytest
from pyiceberg.catalog import load_catalog

from lake_pipelines.datasets import get_dataset
from lake_pipelines.errors import TableCommitError
from lake_pipelines.lake.bronze import ingest_day
from lake_pipelines.lake.iceberg.replace import overwrite_partition
from lake_pipelines.lake.iceberg.snapshots import day_tag, read_as_of
from lake_pipelines.lake.silver import commit_day, day_filter, ensure_silver_table
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.resources import IcebergCatalogResource
from lake_pipelines.sample_data import generate_events
from lake_pipelines_tests.support import rows

EVENTS = get_dataset("events")
START = date(2026, 11, 1)
COLUMNS = list(EVENTS.schema.names)


def _catalog(store: ObjectStore, uri: str, name: str):
    return IcebergCatalogResource(name=name, uri=uri).load(store)


def _commit(args: tuple[str, str, str, str]) -> int:
    url, uri, name, day = args
    store = ObjectStore(url)
    return commit_day(
        store, _catalog(store, uri, name), EVENTS, date.fromisoformat(day)
    ).rows_committed


def test_postgres_catalog_end_to_end(postgres_url: str, local_store: ObjectStore) -> None:
    name = f"pg_{uuid.uuid4().hex[:6]}"
    catalog = _catalog(local_store, postgres_url, name)
    assert type(catalog).__name__ == "SqlCatalog" and "postgresql" in str(catalog.engine.url)
    days = generate_events(local_store, START, days=3, rows_per_day=200, seed=41, bad_rows=False)
    for d in days:
        ingest_day(local_store, EVENTS, d.day)
    ensure_silver_table(catalog, EVENTS)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:  # three writers of the same table at once
        done = pool.map(
            _commit, [(local_store.url, postgres_url, name, d.day.isoformat()) for d in days]
        )
    assert done == [200, 200, 200]
    commit_day(local_store, catalog, EVENTS, START)  # a re-run
    table = load_catalog(name, type="sql", uri=postgres_url).load_table(EVENTS.table_name)
    expected = sorted([r for d in days for r in rows(d.valid)], key=lambda r: r["event_id"])
    assert rows(table.scan().to_arrow(), columns=COLUMNS) == expected
    assert rows(read_as_of(table, tag=day_tag(START)), columns=COLUMNS)  # tags work too
    stale = catalog.load_table(EVENTS.table_name)
    fresh = catalog.load_table(EVENTS.table_name)
    part = fresh.scan(row_filter=day_filter(EVENTS, START)).to_arrow()
    overwrite_partition(fresh, part, day_filter(EVENTS, START), {"run-id": "winner"})
    with pytest.raises(TableCommitError, match="concurrently"):
        overwrite_partition(stale, part, day_filter(EVENTS, START), {"run-id": "loser"})
    assert catalog.load_table(EVENTS.table_name).scan().count() == 600
