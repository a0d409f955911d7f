"""The one write we allow: replace partitions (days), any number of them in one snapshot.

`PartitionReplace` takes each day's data files as the day is handed over (written from a
table now, or streamed by a `writer.DataFileWriter` and added) and commits them at the end
as ONE ``overwrite`` snapshot that drops the files
the replaced days held and adds the new ones: readers see the old days or the new days, and
time travel never lands between a delete and an append (pyiceberg's own ``overwrite`` makes
two snapshots, a ``delete`` without the day and an ``append`` with it).

pyiceberg retries the commit on a concurrent update (``commit.retry.*``): a writer of other
days lands, one that wrote the same days in between fails ours with a `TableCommitError`.

The snapshot merges its manifests once ``commit.manifest.min-count-to-merge`` of them pile
up (``commit.manifest-merge.enabled``; pyiceberg 0.12 merges on appends only), so the cost of
a commit follows the table's live files, not the number of commits before it.

pyiceberg internals are used where its own ``overwrite`` uses them: the data file writer
(``_dataframe_to_data_files``), the overwrite snapshot producer and, for the rare file that
holds other days too, the metrics evaluator and row filter of its ``delete``.
"""

from __future__ import annotations

import contextlib
import itertools
import uuid
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.expressions import AlwaysTrue, BooleanExpression
from pyiceberg.expressions.visitors import ROWS_MUST_MATCH, _StrictMetricsEvaluator, bind
from pyiceberg.io.pyarrow import (
    ArrowScan,
    _dataframe_to_data_files,
    _expression_to_complementary_pyarrow,
)
from pyiceberg.manifest import DataFile, ManifestContent, ManifestFile
from pyiceberg.table import FileScanTask, Table, TableProperties, Transaction
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.snapshots import Operation
from pyiceberg.table.update import update_table_metadata
from pyiceberg.table.update.snapshot import _ManifestMergeManager, _OverwriteFiles
from pyiceberg.utils.properties import property_as_bool, property_as_int

from lake_pipelines.errors import TableCommitError
from lake_pipelines.lake import metrics
from lake_pipelines.lake.arrow import fit_to_schema
from lake_pipelines.lake.iceberg.evolution import Evolution, apply_evolution
from lake_pipelines.lake.iceberg.lineage import SUMMARY_PREFIX, any_of, summary_properties
from lake_pipelines.lake.iceberg.snapshots import point_tags, stage_tags


def conform(name: str, target: pa.Schema, data: pa.Table) -> pa.Table:
    """Cast `data` to the table's Arrow schema (names, order, types, nullability)."""
    try:
        return fit_to_schema(data, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, ValueError) as exc:
        raise TableCommitError(name, f"data does not fit the table schema: {exc}") from exc


class _MergingOverwrite(_OverwriteFiles):
    """An overwrite snapshot that merges small manifests as pyiceberg's merge-append does."""

    def _process_manifests(self, manifests: list[ManifestFile]) -> list[ManifestFile]:
        props = self._transaction.table_metadata.properties
        merger = _ManifestMergeManager(
            target_size_bytes=property_as_int(  # type: ignore[arg-type]
                props,
                TableProperties.MANIFEST_TARGET_SIZE_BYTES,
                TableProperties.MANIFEST_TARGET_SIZE_BYTES_DEFAULT,
            ),
            min_count_to_merge=property_as_int(  # type: ignore[arg-type]
                props,
                TableProperties.MANIFEST_MIN_MERGE_COUNT,
                TableProperties.MANIFEST_MIN_MERGE_COUNT_DEFAULT,
            ),
            merge_enabled=property_as_bool(
                props,
                TableProperties.MANIFEST_MERGE_ENABLED,
                TableProperties.MANIFEST_MERGE_ENABLED_DEFAULT,
            ),
            snapshot_producer=self,
        )
        data = [m for m in manifests if m.content == ManifestContent.DATA]
        deletes = [m for m in manifests if m.content == ManifestContent.DELETES]
        return merger.merge_manifests(data) + deletes


class _Transaction(Transaction):
    """pyiceberg's transaction, deriving its staged metadata once per change.

    pyiceberg 0.12 re-applies the staged updates and deep-copies the whole table metadata on
    every read of `table_metadata`, dozens of times per commit (its snapshot producer reads
    it for each schema, spec and manifest writer): the main reason a commit cost more the
    more snapshots the table kept. The metadata models are frozen: with nothing staged the
    table's own metadata is served, and a derived one is kept for exactly the base metadata
    and update tuple it came from (a retry refreshes both).
    """

    _derived: tuple[TableMetadata, tuple[Any, ...], TableMetadata] | None = None

    @property
    def table_metadata(self) -> TableMetadata:
        base, updates = self._table.metadata, self._updates
        if not updates:
            return base  # what the table itself serves to every reader
        derived = self._derived
        if derived is None or derived[0] is not base or derived[1] is not updates:
            derived = (base, updates, update_table_metadata(base, updates))
            self._derived = derived
        return derived[2]


class PartitionReplace:
    """Replace partitions of `table` (one `replace` call per day), then `commit` once.

    Files written by a `PartitionReplace` that is never committed are orphans for the
    table's orphan cleanup (as with any failed write).
    """

    def __init__(self, table: Table) -> None:
        self.table = table
        self.name = ".".join(table.name())
        self._tx = _Transaction(table)
        current = table.current_snapshot()
        self._base = current.snapshot_id if current is not None else None
        self._uuid = uuid.uuid4()
        self._counter = itertools.count(0)
        self._filters: list[BooleanExpression] = []
        self._deleted: dict[str, DataFile] = {}
        self._partial: dict[str, tuple[DataFile, list[BooleanExpression]]] = {}
        self._added: list[DataFile] = []
        self._evolutions: list[str] = []
        self._metadata = self._tx.table_metadata

    @property
    def metadata(self) -> TableMetadata:
        """The table as this replace will leave it (schema and spec changes staged)."""
        return self._metadata

    def __bool__(self) -> bool:
        return bool(self._filters)

    def evolve(self, evolution: Evolution) -> None:
        """Stage schema/partition changes: the data handed over after them uses them."""
        if evolution:
            apply_evolution(self._tx, evolution)
            self._evolutions.append(evolution.describe())
            self._metadata = self._tx.table_metadata

    def replace(
        self, row_filter: BooleanExpression, data: pa.Table, files: list[DataFile] | None = None
    ) -> None:
        """Replace the rows matching `row_filter` by `data`, whose files are written now
        (`drop` then `add`; a day too big for memory goes through a `DataFileWriter`)."""
        self.drop(row_filter, files)
        self._write(conform(self.name, self.metadata.schema().as_arrow(), data))

    def drop(self, row_filter: BooleanExpression, files: list[DataFile] | None = None) -> None:
        """Remove the rows matching `row_filter` at commit.

        `files` are the table's files that may hold rows of `row_filter` (planned here when
        not given). A file holding only such rows is dropped; one holding others too (a
        coarser partitioning) is rewritten without them at commit.
        """
        if files is None:
            scan = self.table.scan(row_filter=row_filter, snapshot_id=self._base)
            files = [t.file for t in scan.plan_files()] if self._base is not None else []
        strict = _StrictMetricsEvaluator(self.metadata.schema(), row_filter).eval
        for f in files:
            if strict(f) == ROWS_MUST_MATCH:
                self._deleted[f.file_path] = f
            else:
                self._partial.setdefault(f.file_path, (f, []))[1].append(row_filter)
        self._filters.append(row_filter)

    def add(self, data_files: list[DataFile]) -> None:
        """Add data files written for this table (`DataFileWriter`, with `metadata`)."""
        self._added.extend(data_files)

    def _write(self, data: pa.Table) -> None:
        if data.num_rows:
            self._added.extend(
                _dataframe_to_data_files(
                    self.metadata, data, self.table.io, self._uuid, self._counter
                )
            )

    def abort(self) -> None:
        """Delete the data files written for this replace (it will not be committed)."""
        for data_file in self._added:
            with contextlib.suppress(Exception):  # an orphan at worst, for orphan cleanup
                self.table.io.delete(data_file.file_path)
        self._added.clear()

    def _rewrite_partial(self) -> None:
        """Files holding replaced rows and others: keep the others in new files."""
        schema = self.metadata.schema()
        for path, (data_file, filters) in self._partial.items():
            if path in self._deleted:
                continue
            scan = ArrowScan(self.metadata, self.table.io, schema, AlwaysTrue())
            # one data file in memory (at most the target file size, ~4x in Arrow): only a
            # file of a coarser partitioning than the replaced day lands here
            rows = scan.to_table([FileScanTask(data_file)])
            keep = _expression_to_complementary_pyarrow(bind(schema, any_of(filters), True), schema)
            kept = rows.filter(keep)
            if kept.num_rows == rows.num_rows:
                continue  # held none of the replaced rows after all
            self._deleted[path] = data_file
            self._write(kept)

    def commit(
        self,
        summary: Mapping[str, object],
        tags: Mapping[str, int | None] | None = None,
    ) -> int:
        """Commit everything handed over as one snapshot; returns its id.

        `summary` is recorded under ``lake.*`` keys. `tags` (name → max age in ms) point at
        the new snapshot, in the same commit.

        Raises:
            TableCommitError: the commit failed after pyiceberg's retries, or another run
                replaced the same partitions concurrently; the table is unchanged.
        """
        props = summary_properties(summary)
        if self._evolutions:
            props[f"{SUMMARY_PREFIX}evolution"] = "; ".join(self._evolutions)
        tx = self._tx
        try:
            self._rewrite_partial()
            has_parent = tx.table_metadata.snapshot_by_name("main") is not None
            producer = _MergingOverwrite(
                operation=Operation.OVERWRITE if has_parent else Operation.APPEND,
                transaction=tx,
                io=self.table.io,
                snapshot_properties=props,
            )
            producer._isolation_operation = Operation.OVERWRITE
            with producer:
                # scopes conflict detection (and manifest pruning) to the replaced days
                producer.delete_by_predicate(any_of(self._filters))
                for data_file in self._deleted.values():
                    producer.delete_data_file(data_file)
                for data_file in self._added:
                    producer.append_data_file(data_file)
            staged_id = producer.snapshot_id
            for max_age, named in _by_age(tags, staged_id).items():
                stage_tags(tx, named, max_age)
            tx.commit_transaction()
        except CommitFailedException as exc:
            metrics.inc("lake_iceberg_commits_total", outcome="failed")
            raise TableCommitError(self.name, f"commit failed after retries: {exc}") from exc
        except ValidationException as exc:
            metrics.inc("lake_iceberg_commits_total", outcome="conflict")
            raise TableCommitError(
                self.name,
                f"another run wrote the same partition concurrently; nothing written ({exc})",
            ) from exc
        # When the commit had to be retried after a concurrent update, pyiceberg 0.12
        # rebuilds only the snapshot updates and drops every ref update (Transaction.
        # _rebuild_snapshot_updates): the data lands, the tags do not. Re-point them here
        # (the table's metadata is the committed one). The snapshot id is stable across
        # pyiceberg's retries: `staged_id` is what landed.
        metrics.inc("lake_iceberg_commits_total", outcome="committed")
        for max_age, named in _by_age(tags, staged_id).items():
            point_tags(self.table, named, max_age)
        return staged_id


def _by_age(
    tags: Mapping[str, int | None] | None, snapshot_id: int
) -> dict[int | None, dict[str, int]]:
    by_age: dict[int | None, dict[str, int]] = defaultdict(dict)
    for name, max_age in (tags or {}).items():
        by_age[max_age][name] = snapshot_id
    return by_age


def overwrite_partition(
    table: Table,
    data: pa.Table,
    row_filter: BooleanExpression,
    summary: Mapping[str, object],
    evolution: Evolution | None = None,
    tag: tuple[str, int | None] | None = None,
) -> int:
    """Replace the rows matching `row_filter` (one partition) with `data`, in one snapshot.

    With `evolution`, the schema/partition changes are staged in the same transaction: the
    table is evolved and written in one catalog commit, or not at all. `tag` = (name, max
    age in ms) points that tag at the new snapshot. Returns the new snapshot's id.

    Raises:
        TableCommitError: the commit failed after pyiceberg's retries; the table is unchanged.
    """
    replace = PartitionReplace(table)
    if evolution:
        replace.evolve(evolution)
    replace.replace(row_filter, data)
    return replace.commit(summary, {tag[0]: tag[1]} if tag else None)
