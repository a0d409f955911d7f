"""Iceberg tables from dataset specs: created once, with the properties that keep commits
cheap as a table ages (the one write we allow is in `replace.py`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import pyarrow as pa
from pyiceberg.exceptions import (
    CommitFailedException,
    NoSuchNamespaceError,
    NoSuchTableError,
    TableAlreadyExistsError,
)
from pyiceberg.table import Table
from pyiceberg.transforms import IdentityTransform

from lake_pipelines.errors import TableCommitError, TableNotFoundError
from lake_pipelines.lake.iceberg.lineage import SUMMARY_PREFIX as SUMMARY_PREFIX
from lake_pipelines.lake.iceberg.transforms import TRANSFORMS

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

# What keeps a commit's cost independent of the table's age: old metadata.json files are
# pruned by each commit instead of piling up, and manifests are merged once this many pile up
# (our overwrite honours the merge properties, see replace.py). Tables created before a key
# was added get it on their next load (`ensure_table`), unless they set it themselves.
MAINTAINED_PROPERTIES = {
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "50",
    "commit.manifest-merge.enabled": "true",
    "commit.manifest.min-count-to-merge": "50",
}
DEFAULT_PROPERTIES = {
    "format-version": "2",
    "write.parquet.compression-codec": "zstd",
    **MAINTAINED_PROPERTIES,
    # not Hive Parquet's ZSTD(1): see `parquet.options.DEFAULT_LEVEL`
    "write.parquet.compression-level": "3",
    "write.target-file-size-bytes": str(256 << 20),
    "commit.retry.num-retries": "10",
    "commit.retry.min-wait-ms": "100",
    "commit.retry.max-wait-ms": "10000",
}


def ensure_table(
    catalog: Catalog,
    identifier: str,
    schema: pa.Schema,
    partitioning: list[tuple[str, str]],
    sort_by: tuple[str, ...] = (),
    properties: Mapping[str, str] | None = None,
) -> Table:
    """Load the table, creating it (and its namespace) in one transaction if it is missing.

    Args:
        identifier: ``namespace.name``.
        schema: Arrow schema; nested struct and list types become Iceberg nested types.
        partitioning: ``(column, transform)`` pairs, e.g. ``[("ts", "day")]``.
        sort_by: columns of the table's sort order, ascending.

    Returns:
        The table; when another run creates it at the same time, the one that run created.
        A table missing any of `MAINTAINED_PROPERTIES` gets them (one commit, once).

    Raises:
        TableCommitError: the table could not be created (and no one else created it).
    """
    try:
        return _maintained(catalog.load_table(identifier))
    except NoSuchTableError:
        pass
    namespace = identifier.rsplit(".", 1)[0]
    catalog.create_namespace_if_not_exists(namespace)
    props = {**DEFAULT_PROPERTIES, **(properties or {})}
    try:
        with catalog.create_table_transaction(identifier, schema=schema, properties=props) as txn:
            if partitioning:
                with txn.update_spec() as spec:
                    for column, transform in partitioning:
                        spec.add_field(column, TRANSFORMS[transform](), f"{column}_{transform}")
            if sort_by:
                with txn.update_sort_order() as order:
                    for column in sort_by:
                        order.asc(column, IdentityTransform())
    except TableAlreadyExistsError:
        pass  # created concurrently by another run (SQL catalog, or a REST catalog's staging)
    except CommitFailedException as exc:
        # A creation race lost before the catalog's own check fails the create requirement
        # (SQL catalog: AssertCreate; REST: 409 Conflict), which pyiceberg raises as
        # CommitFailedException, like any other conflict: the table being there now tells
        # the two apart.
        if not catalog.table_exists(identifier):
            raise TableCommitError(identifier, f"cannot create: {exc}") from exc
    except Exception as exc:
        raise TableCommitError(identifier, f"cannot create: {exc}") from exc
    return catalog.load_table(identifier)


def _maintained(table: Table) -> Table:
    """`table` with the `MAINTAINED_PROPERTIES` it lacks set (a table created before them)."""
    missing = {k: v for k, v in MAINTAINED_PROPERTIES.items() if k not in table.properties}
    if not missing:
        return table
    try:
        with table.transaction() as tx:
            tx.set_properties(missing)
    except CommitFailedException:
        pass  # another run set them at the same time: the next load has them
    return table.refresh()


def table_names(catalog: Catalog) -> list[str]:
    """Every table of the catalog as ``namespace.table``, sorted."""
    return sorted(
        ".".join(ident) for ns in catalog.list_namespaces() for ident in catalog.list_tables(ns)
    )


def load_table(catalog: Catalog, name: str) -> Table:
    """The table `name` (``namespace.table``).

    Raises:
        TableNotFoundError: there is no such table, or the name has no namespace; the message
            lists the tables there are.
    """
    parts = name.split(".")
    if len(parts) > 1 and all(parts):
        try:
            return catalog.load_table(name)
        except (NoSuchTableError, NoSuchNamespaceError):
            pass
    raise TableNotFoundError(name, table_names(catalog))
