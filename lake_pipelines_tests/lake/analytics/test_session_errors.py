"""Registering a table that cannot be read as asked is a read error, never a commit error."""

from __future__ import annotations

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import Table

from lake_pipelines.errors import SnapshotNotFoundError, TableCommitError, TableReadError
from lake_pipelines.lake.analytics.session import (
    SessionSettings,
    _path_in,
    make_session,
    metadata_file_of,
    register_iceberg,
    register_iceberg_provider,
)
from lake_pipelines.lake.iceberg.tables import ensure_table
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines_tests.support import sequence_number

SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False)])


@pytest.fixture
def two_snapshots_in_one_commit(local_catalog: SqlCatalog) -> tuple[Table, int, int]:
    """A table whose first snapshot was never current: both landed in one catalog commit."""
    table = ensure_table(local_catalog, "lake.probe", SCHEMA, [])
    with table.transaction() as tx:
        tx.append(pa.table({"id": [1]}, schema=SCHEMA))
        tx.append(pa.table({"id": [2]}, schema=SCHEMA))
    table = local_catalog.load_table("lake.probe")
    first, second = sorted(table.snapshots(), key=sequence_number)
    return table, first.snapshot_id, second.snapshot_id


def test_an_unknown_snapshot_is_snapshot_not_found(
    local_store: ObjectStore, two_snapshots_in_one_commit: tuple[Table, int, int]
) -> None:
    table, _, _ = two_snapshots_in_one_commit
    ctx = make_session(SessionSettings(1))
    for register in (
        lambda: register_iceberg(ctx, "t", table, local_store, snapshot_id=12345),
        lambda: register_iceberg_provider(ctx, "t", table, snapshot_id=12345),
    ):
        with pytest.raises(SnapshotNotFoundError, match=r"table lake\.probe has no snapshot 12345"):
            register()
    assert not ctx.table_exist("t")


def test_a_snapshot_never_current_is_a_read_error_pointing_at_register_iceberg(
    local_store: ObjectStore, two_snapshots_in_one_commit: tuple[Table, int, int]
) -> None:
    table, first, _ = two_snapshots_in_one_commit
    with pytest.raises(TableReadError, match="never the current snapshot") as info:
        metadata_file_of(table, first)
    assert not isinstance(info.value, TableCommitError | SnapshotNotFoundError)
    assert (info.value.table, info.value.snapshot_id) == ("lake.probe", first)
    ctx = make_session(SessionSettings(1))
    assert register_iceberg(ctx, "then", table, local_store, snapshot_id=first) == 1


def test_a_data_file_outside_the_store_is_a_read_error_naming_the_file(
    local_store: ObjectStore,
) -> None:
    uri = "s3://other-bucket/warehouse/lake/probe/data/00000-0.parquet"
    with pytest.raises(TableReadError, match=f"data file {uri} is not on the lake's store") as e:
        _path_in(local_store, uri, "lake.probe")
    assert (e.value.table, e.value.file) == ("lake.probe", uri)
