"""Iceberg errors by type: a lost creation race is no error, a lookup miss is no commit error."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError, TableAlreadyExistsError
from pyiceberg.table import Table

from lake_pipelines.errors import SnapshotNotFoundError, TableCommitError, TableReadError
from lake_pipelines.lake.iceberg.snapshots import read_as_of, resolve_snapshot
from lake_pipelines.lake.iceberg.tables import ensure_table
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines_tests.conftest import sql_catalog

SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("v", pa.string())])
NAME = "lake.probe"


def _create(catalog: SqlCatalog, partitioning: list[tuple[str, str]] | None = None) -> Table:
    return ensure_table(catalog, NAME, SCHEMA, partitioning or [("id", "identity")], ("id",))


def test_a_run_that_loses_the_creation_race_gets_the_winners_table(
    local_store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs on one SQLite catalog: both see no table, the other run creates it first, and
    this run's create commit fails (pyiceberg: CommitFailedException). The table is returned."""
    db = tmp_path / "catalog.db"
    winner, loser = sql_catalog(local_store, db), sql_catalog(local_store, db)
    load = loser.load_table
    created: list[Table] = []

    def load_while_the_winner_creates(identifier: str) -> Table:
        if not created:
            created.append(_create(winner))
            raise NoSuchTableError(identifier)  # what the loser saw just before
        return load(identifier)

    monkeypatch.setattr(loser, "load_table", load_while_the_winner_creates)
    table = _create(loser)
    assert table.metadata.table_uuid == created[0].metadata.table_uuid
    assert len(loser.list_tables("lake")) == 1


def test_table_already_exists_from_the_catalog_returns_the_table(
    local_catalog: SqlCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other outcome of the race: the catalog refuses the row (SQL) or the staged create
    (REST) with TableAlreadyExistsError."""
    existing = _create(local_catalog)
    load = local_catalog.load_table
    calls = []

    def first_missing(identifier: str):
        calls.append(identifier)
        if len(calls) == 1:
            raise NoSuchTableError(identifier)
        return load(identifier)

    def already_exists(*args, **kwargs):
        raise TableAlreadyExistsError(f"Table {NAME} already exists")

    monkeypatch.setattr(local_catalog, "load_table", first_missing)
    monkeypatch.setattr(local_catalog, "create_table_transaction", already_exists)
    assert _create(local_catalog).metadata.table_uuid == existing.metadata.table_uuid


def test_a_failed_create_commit_without_a_table_is_a_commit_error(
    local_catalog: SqlCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    def conflict(*args, **kwargs):
        raise CommitFailedException("conflict")

    monkeypatch.setattr(local_catalog, "create_table_transaction", conflict)
    with pytest.raises(TableCommitError, match="cannot create: conflict") as info:
        _create(local_catalog)
    assert info.value.table == NAME
    assert not local_catalog.table_exists(NAME)


def test_a_spec_the_catalog_refuses_is_a_commit_error_naming_the_table(
    local_catalog: SqlCatalog,
) -> None:
    with pytest.raises(TableCommitError, match=r"table lake\.probe: cannot create") as info:
        _create(local_catalog, [("missing", "day")])
    assert info.value.table == NAME
    assert not local_catalog.table_exists(NAME)


def test_snapshot_lookups_raise_snapshot_not_found_with_what_was_asked(
    local_catalog: SqlCatalog,
) -> None:
    table = _create(local_catalog)
    with pytest.raises(SnapshotNotFoundError, match=r"table lake\.probe has no snapshot 42") as a:
        read_as_of(table, snapshot_id=42)
    assert (a.value.table, a.value.snapshot_id) == (NAME, 42)
    with pytest.raises(SnapshotNotFoundError, match=r"no tag or branch 'x' \(known: none\)") as b:
        resolve_snapshot(table, tag="x")
    assert (b.value.tag, b.value.known) == ("x", [])
    with pytest.raises(TableReadError, match="give one of") as c:
        resolve_snapshot(table, snapshot_id=1, tag="x")
    assert not isinstance(c.value, SnapshotNotFoundError)
