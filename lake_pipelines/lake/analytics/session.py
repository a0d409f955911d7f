"""DataFusion over the lake: a configured session, table registration and our functions.

Two ways to see an Iceberg table:

* `register_iceberg` plans the scan with pyiceberg first (partition and column-statistics
  pruning from the manifests, any snapshot for time travel) and hands DataFusion exactly the
  surviving data files as a dataset; DataFusion then pushes projection and predicates into
  that scan. This is what the gold assets use, and what EXPLAIN proves in the tests.
* `register_iceberg_provider` registers pyiceberg-core's table provider (the whole table at
  its current snapshot, or as of a past one through the metadata log), which also follows
  field-id based schema evolution such as renames.

Hive Parquet is registered as a listing table with its folder levels (``year/month/day`` or a
dataset's own names) as typed int32 columns.
"""

from __future__ import annotations

import functools
import os
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
from datafusion import RuntimeEnvBuilder, SessionConfig, SessionContext, col

from lake_pipelines.datasets.spec import DEFAULT_HIVE_PARTITION_COLUMNS
from lake_pipelines.errors import QueryMemoryError, SnapshotNotFoundError, TableReadError
from lake_pipelines.lake.analytics.functions import EXTRACT_DOMAIN, WEIGHTED_MEDIAN
from lake_pipelines.lake.analytics.sql import EXHAUSTED, memory_exhausted
from lake_pipelines.lake.cores import usable_cores
from lake_pipelines.lake.storage import ObjectStore, split_uri

if TYPE_CHECKING:  # pyiceberg is imported by the functions that take its tables
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.table import Table

# Folder values are cast to this type, so ``month=01`` and ``month=1`` are both 1.
HIVE_PARTITION_TYPE = pa.int32()


@dataclass(frozen=True)
class SessionSettings:
    """How a DataFusion session may use the machine.

    Args:
        target_partitions: parallelism of scans and aggregations (0: `automatic_partitions`).
        batch_size: rows per record batch inside the engine; DataFusion's 8192 made the
            grouped distinct counts a seventh dearer (a call per group and batch).
        memory_limit: bytes the memory pool may hand out before operators spill (0: no limit;
            `DataFusionSettings` defaults it to 2 GiB, less in a container or machine with
            under 8 GiB: see `lake.memory.default_query_memory`).
        spill_dir: directory for spill files (empty: the OS temporary directory).
    """

    target_partitions: int = 0
    batch_size: int = 65536
    memory_limit: int = 0
    spill_dir: str = ""


# The settings each session was made with (`settings_of`): a query may choose its plan by them.
_SETTINGS: weakref.WeakKeyDictionary[SessionContext, SessionSettings] = weakref.WeakKeyDictionary()


def settings_of(ctx: SessionContext) -> SessionSettings:
    """The settings `make_session` made `ctx` with (defaults for a session made elsewhere)."""
    return _SETTINGS.get(ctx, SessionSettings())


def automatic_partitions(cores: int) -> int:
    """Partitions for `cores` when none are set: one per core, but one up to 2 cores.

    Exact distinct counts and percentiles (every gold table has them) aggregate in two phases
    over several partitions, and their partial states do not shrink (the distinct values, the
    values): the final phase hashes every value a second time. That doubled work pays only
    once more than 2 cores share it; on 2 cores one phase was faster and took a third less CPU
    (benchmarks/ANALYSIS.md, run 19).
    """
    return 1 if cores <= 2 else cores


def make_session(settings: SessionSettings, stores: tuple[ObjectStore, ...] = ()) -> SessionContext:
    """A `SessionContext` with the settings applied, our UDFs registered, stores reachable."""
    partitions = settings.target_partitions or automatic_partitions(usable_cores())
    options = {"datafusion.execution.parquet.pushdown_filters": "true"}
    if settings.memory_limit:
        # Each sort keeps this much back for merging its spill files; DataFusion's 10 MB
        # default alone would exhaust a small pool instead of spilling.
        reserve = max(settings.memory_limit // 16, 256 << 10)
        options["datafusion.execution.sort_spill_reservation_bytes"] = str(reserve)
    config = (
        SessionConfig(options)
        .with_target_partitions(partitions)
        .with_batch_size(settings.batch_size)
        .with_parquet_pruning(True)
        .with_information_schema(True)
    )
    runtime = RuntimeEnvBuilder()
    if settings.memory_limit:
        runtime = runtime.with_fair_spill_pool(settings.memory_limit)
    if settings.spill_dir:
        os.makedirs(settings.spill_dir, exist_ok=True)
        runtime = runtime.with_disk_manager_specified(settings.spill_dir)
    ctx = SessionContext(config, runtime)
    for store in stores:
        registration = store.datafusion_store()
        if registration is not None:
            url, obj = registration
            scheme, host = url.split("://", 1)
            ctx.register_object_store(f"{scheme}://", obj, host)
    ctx.register_udf(EXTRACT_DOMAIN)
    ctx.register_udaf(WEIGHTED_MEDIAN)
    _SETTINGS[ctx] = settings
    return ctx


@contextmanager
def memory_errors(settings: SessionSettings, what: str) -> Iterator[None]:
    """Turn DataFusion's "Resources exhausted" (a query over `settings.memory_limit` that could
    not spill) into one `QueryMemoryError` naming `what` and the setting; others pass."""
    try:
        yield
    except Exception as exc:
        if not memory_exhausted(exc):
            raise
        detail = str(exc).rsplit(f"{EXHAUSTED}: ", 1)[-1].splitlines()[0][:200]
        raise QueryMemoryError(what, settings.memory_limit, detail) from None


def _replace(ctx: SessionContext, name: str) -> None:
    if ctx.table_exist(name):
        ctx.deregister_table(name)


def register_hive(
    ctx: SessionContext,
    name: str,
    store: ObjectStore,
    prefix: str,
    schema: pa.Schema,
    partition_columns: Sequence[str] = DEFAULT_HIVE_PARTITION_COLUMNS,
) -> None:
    """Hive-partitioned Parquet under `prefix` as a table with int32 partition columns.

    The folder values are listed as text and cast in a view: DataFusion 53 turns equality
    filters on integer partition columns into a listing prefix written without padding
    (``month = 1 AND day = 5`` lists ``month=1/day=5/``), which misses ``month=01/day=05``
    and silently returns no rows. A filter on the cast is no such prefix, yet still prunes
    folders: only the files of matching days are opened.

    Args:
        partition_columns: the folder levels, for bronze the dataset's
            `DatasetSpec.hive_partition_columns` (``year/month/day`` by default).

    Raises:
        TableReadError: the folder's path has a character DataFusion reads as a glob.
    """
    _replace(ctx, name)
    location = store.uri(prefix) + "/"
    if store.scheme == "file":
        location = store.path(prefix) + "/"
    if GLOB_CHARACTERS & set(location):
        # DataFusion would take them for a glob and list nothing: no rows, no error
        raise TableReadError(name, f"cannot list {location}: its path has one of `*?[]{{}}`")
    listed = ctx.read_parquet(
        location,
        table_partition_cols=[(c, pa.string()) for c in partition_columns],
        file_extension=".parquet",
        schema=schema,
    )
    levels = [col(c).cast(HIVE_PARTITION_TYPE).alias(c) for c in partition_columns]
    ctx.register_view(name, listed.select(*(col(c) for c in schema.names), *levels))


def register_iceberg(
    ctx: SessionContext,
    name: str,
    table: Table,
    store: ObjectStore,
    row_filter: BooleanExpression | None = None,
    snapshot_id: int | None = None,
) -> int:
    """Register the data files of `table` that can hold rows matching `row_filter`.

    pyiceberg prunes by partition and column statistics (at `snapshot_id` for time travel);
    DataFusion gets the remaining files with the table's schema and pushes projection and
    filters into their scan. Returns the number of files registered.

    Raises:
        SnapshotNotFoundError: `table` has no snapshot `snapshot_id`.
        TableReadError: a planned file lies outside `store`, or carries delete files
            (our writers never make them; another engine may have).
    """
    table_name = ".".join(table.name())
    snapshot = None
    if snapshot_id is not None:  # an unknown id must not read as an empty table
        snapshot = table.snapshot_by_id(snapshot_id)
        if snapshot is None:
            raise SnapshotNotFoundError(table_name, snapshot_id=snapshot_id)
    from pyiceberg.expressions import AlwaysTrue  # pyiceberg: only once a table is registered

    scan = table.scan(row_filter=row_filter or AlwaysTrue(), snapshot_id=snapshot_id)
    schema = (
        table.schemas()[snapshot.schema_id]
        if snapshot is not None and snapshot.schema_id is not None
        else table.schema()
    ).as_arrow()
    tasks = list(scan.plan_files())
    for task in tasks:
        if task.delete_files:
            raise TableReadError(
                table_name,
                f"data file {task.file.file_path} has delete files; read the table with "
                "register_iceberg_provider",
                snapshot_id=snapshot_id,
                file=task.file.file_path,
            )
    register_files(ctx, name, store, [t.file.file_path for t in tasks], schema, table_name)
    return len(tasks)


# Characters DataFusion reads as a glob in a path (`register_files`, `register_hive`).
GLOB_CHARACTERS = frozenset("*?[]{}")


def register_files(
    ctx: SessionContext,
    name: str,
    store: ObjectStore,
    uris: list[str],
    schema: pa.Schema,
    table_name: str,
) -> None:
    """Register data files of Iceberg table `table_name` that the caller planned itself
    (e.g. one plan for a range of days, a subset of it per day) as one table.

    On local disk and S3, DataFusion reads them with its own Parquet reader, under the
    session's memory pool (run 23: a pyarrow dataset, read outside the pool, took twice the
    memory for the same query): a scan per file with the table's schema (a column the file
    lacks reads as nulls), the scans unioned. Through a pyarrow dataset on the store's own
    filesystem instead: GCS and Azure, whose DataFusion stores cannot be pointed at an
    emulator or a custom endpoint, and S3 with ``LAKE_S3_ADDRESSING_STYLE=virtual``, which
    DataFusion's S3 store (53) cannot be told to use.

    Raises:
        TableReadError: a file lies outside `store`.
    """
    _replace(ctx, name)
    paths = [_path_in(store, uri, table_name) for uri in uris]
    if not reads_natively(store, paths):
        import pyarrow.dataset as ds  # imports pandas: only when a table is registered

        dataset = ds.dataset(paths, schema=schema, format="parquet", filesystem=store.arrow_fs)
        ctx.register_dataset(name, dataset)
        return
    if not paths:
        ctx.register_view(name, ctx.from_arrow(schema.empty_table()))
        return
    locations = paths if store.scheme == "file" else [f"s3://{p}" for p in paths]
    scans = [ctx.read_parquet(location, schema=schema) for location in locations]
    ctx.register_view(name, functools.reduce(lambda a, b: a.union(b), scans))


def reads_natively(store: ObjectStore, paths: Sequence[str]) -> bool:
    """Whether `register_files` has DataFusion read `paths` on `store` with its own Parquet
    reader (else through a pyarrow dataset; see there). A path with one of `*?[]{}` never:
    DataFusion takes it for a glob, and a glob that matches nothing reads as no rows."""
    if any(GLOB_CHARACTERS & set(p) for p in paths):
        return False
    return store.scheme == "file" or (store.scheme == "s3" and store.addressing_style != "virtual")


def _path_in(store: ObjectStore, uri: str, table_name: str) -> str:
    scheme, path = split_uri(uri)
    if scheme in ("", "file"):
        return path
    if store.scheme not in (scheme, "s3" if scheme == "s3a" else scheme):
        raise TableReadError(
            table_name, f"data file {uri} is not on the lake's store {store.uri()}", file=uri
        )
    return path


def register_iceberg_provider(
    ctx: SessionContext, name: str, table: Table, snapshot_id: int | None = None
) -> None:
    """Register pyiceberg-core's provider: the whole table at its current snapshot, or as of
    `snapshot_id` (time travel).

    The provider reads the snapshot a metadata file calls current, so a past snapshot is
    registered from the table's metadata log: the first metadata file written once that
    snapshot was committed and still naming it current.

    Raises:
        SnapshotNotFoundError: `table` has no snapshot `snapshot_id`.
        TableReadError: no metadata file of the log has `snapshot_id` as its current snapshot
            (it was an intermediate snapshot of a commit, or its metadata file was removed);
            read it with `register_iceberg(..., snapshot_id=...)`, which plans any snapshot.
    """
    if snapshot_id is None or snapshot_id == table.metadata.current_snapshot_id:
        _replace(ctx, name)
        ctx.register_table(name, table)
        return
    from pyiceberg_core.datafusion import IcebergDataFusionTable  # native: only for time travel

    location = metadata_file_of(table, snapshot_id)  # may raise: keep `name` as it was
    _replace(ctx, name)
    provider = IcebergDataFusionTable(
        identifier=table.name(), metadata_location=location, file_io_properties=table.io.properties
    )
    ctx.register_table(name, provider)


def metadata_file_of(table: Table, snapshot_id: int) -> str:
    """The first metadata file of `table`'s log whose current snapshot is `snapshot_id`."""
    from pyiceberg.serializers import FromInputFile  # pyiceberg: only once a table is read

    table_name = ".".join(table.name())
    snapshot = table.snapshot_by_id(snapshot_id)
    if snapshot is None:
        raise SnapshotNotFoundError(table_name, snapshot_id=snapshot_id)
    # A metadata file names the snapshot current only if written at or after its commit.
    for entry in sorted(table.metadata.metadata_log, key=lambda e: e.timestamp_ms):
        if entry.timestamp_ms < snapshot.timestamp_ms:
            continue
        try:
            meta = FromInputFile.table_metadata(table.io.new_input(entry.metadata_file))
        except FileNotFoundError:
            continue  # removed by metadata retention (any other error is no answer)
        if meta.current_snapshot_id == snapshot_id:
            return entry.metadata_file
    raise TableReadError(
        table_name,
        f"snapshot {snapshot_id} was never the current snapshot of a metadata file still on "
        "record (an intermediate snapshot of a commit, or retained metadata was removed); "
        "register it with register_iceberg(..., snapshot_id=...)",
        snapshot_id=snapshot_id,
    )
