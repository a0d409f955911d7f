"""Bronze → silver for one dataset and day: the day's Hive partition becomes one Iceberg commit."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan

from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.errors import RowAccountingError
from lake_pipelines.lake.arrow import fit_to_schema
from lake_pipelines.lake.bronze import bronze_files, read_lineage
from lake_pipelines.lake.iceberg.evolution import plan_evolution
from lake_pipelines.lake.iceberg.snapshots import DAY_TAG_MAX_AGE, day_tag, point_tag
from lake_pipelines.lake.iceberg.tables import (
    ensure_table,
    files_of,
    overwrite_partition,
    partition_summary,
)
from lake_pipelines.lake.ingest.readers import LANDING_SUFFIXES
from lake_pipelines.lake.layout import day_bounds, landing_dir
from lake_pipelines.lake.parquet.options import file_schema
from lake_pipelines.lake.storage import FileEntry, ObjectStore

if TYPE_CHECKING:  # pyiceberg.catalog is slow to import; annotations only
    from pyiceberg.catalog import Catalog


@dataclass
class SilverReport:
    dataset: str
    day: date
    table: str
    rows_read: int
    rows_committed: int
    snapshot_id: int
    seconds: float
    unchanged: bool = False  # the same inputs were already committed: no new snapshot
    files: int = 0  # data files holding the day after the commit
    bytes: int = 0


def ensure_silver_table(catalog: Catalog, spec: DatasetSpec):  # -> pyiceberg Table
    return ensure_table(
        catalog,
        spec.table_name,
        spec.schema,
        [(p.column, p.transform) for p in spec.partitioning],
        spec.sort_by,
    )


def _fingerprint(spec: DatasetSpec, summary: dict[str, object], schema: pa.Schema) -> str:
    """What a day's commit was made from: sources (path, size, etag), bronze files (key, size,
    content hash), schema."""
    basis = json.dumps(
        [summary["source-files"], summary["bronze-files"], str(schema), spec.partitioning],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(basis.encode()).hexdigest()[:32]


def read_bronze(
    store: ObjectStore, spec: DatasetSpec, keys: list[str], digests: dict[str, str] | None = None
) -> pa.Table:
    """Bronze files as the spec's current schema: columns renamed by a `SchemaChange` since
    the file was written are read under their new name, columns added since read as null.

    In ``evolve`` mode, columns the spec does not know (kept by ingestion) come along too,
    after the spec's columns. `digests`, if given, receives a hash of each file's bytes (bronze
    writes the same bytes for the same rows, so a re-run that changed nothing keeps them).
    """
    target = file_schema(spec)
    renames = {c.column: c.to for c in spec.schema_changes if c.kind == "rename"}
    tables = []
    for key in keys:
        with store.arrow_fs.open_input_file(store.path(key)) as f:
            raw = f.read_buffer()
        if digests is not None:
            digests[key] = hashlib.blake2b(memoryview(raw), digest_size=16).hexdigest()
        table = pq.read_table(pa.BufferReader(raw))
        table = table.rename_columns([renames.get(n, n) for n in table.column_names])
        extras = [n for n in table.column_names if n not in target.names]
        if spec.unknown_columns != "evolve":
            extras = []
        fitted = fit_to_schema(table, target)
        for name in extras:
            fitted = fitted.append_column(table.schema.field(name), table.column(name))
        tables.append(fitted)
    if not tables:
        return target.empty_table()
    return pa.concat_tables(tables, promote_options="permissive")


def source_files(store: ObjectStore, spec: DatasetSpec, day: date) -> list[dict[str, object]]:
    """The day's landed files as the snapshot summary records them (path, size, etag), files
    quarantined whole included: from bronze's lineage manifest. A day bronze ingested before
    it kept one falls back to the landing folder as it is now (what silver recorded then)."""
    landed = read_lineage(store, spec, day)
    if landed is None:
        entries = store.list(landing_dir(spec, day), suffixes=LANDING_SUFFIXES)
        return [{"path": e.key, "size": e.size, "etag": e.etag} for e in entries]
    return [{"path": f.path, "size": f.size, "etag": f.etag} for f in landed]


def day_filter(spec: DatasetSpec, day: date) -> And:
    start, end = day_bounds(day)
    col = spec.timestamp_column
    lo = GreaterThanOrEqual(col, start.isoformat())  # type: ignore[call-arg,arg-type]
    hi = LessThan(col, end.isoformat())  # type: ignore[call-arg,arg-type]
    return And(lo, hi)


def commit_day(
    store: ObjectStore,
    catalog: Catalog,
    spec: DatasetSpec,
    day: date,
    run_id: str = "",
    sources: list[FileEntry] | None = None,
) -> SilverReport:
    """Replace the silver table's `day` with the rows of the bronze partition, in one commit.

    The snapshot summary's ``lake.source-files`` are the landed files bronze recorded for the
    day (`source_files`), unless `sources` names them.

    Raises:
        RowAccountingError: the committed day does not hold exactly the bronze rows.
    """
    started = time.perf_counter()
    table = ensure_silver_table(catalog, spec)
    files = bronze_files(store, spec, day)
    digests: dict[str, str] = {}
    data = read_bronze(store, spec, [f.key for f in files], digests)
    if spec.sort_by:
        data = data.sort_by([(c, "ascending") for c in spec.sort_by])
    flt = day_filter(spec, day)
    summary: dict[str, object] = {
        "run-id": run_id,
        "partition": day.isoformat(),
        "rows": str(data.num_rows),
        "source-files": (
            source_files(store, spec, day)
            if sources is None
            else [{"path": s.key, "size": s.size, "etag": s.etag} for s in sources]
        ),
        # with a hash of the bytes: a bronze file rewritten with the same name and size (a
        # corrected value) must not pass for the one committed before, while a re-run of the
        # same inputs (same bytes, new mtime) still does
        "bronze-files": [[f.key, f.size, digests[f.key]] for f in files],
    }
    # evolve mode: the day's unknown columns join the schema the table must have
    wanted = pa.schema([*spec.schema, *(f for f in data.schema if f.name not in spec.schema.names)])
    evolution = plan_evolution(
        table,
        wanted,
        [(p.column, p.transform) for p in spec.partitioning],
        spec.schema_changes,
    )
    summary["fingerprint"] = _fingerprint(spec, summary, wanted)
    previous = partition_summary(table, day.isoformat())
    if (
        not evolution
        and previous is not None
        and previous[1].get("lake.fingerprint") == summary["fingerprint"]
        and table.scan(row_filter=flt).count() == data.num_rows
    ):
        # The same source files, bronze files and schema as the last commit of this day:
        # the table already holds exactly this; a new snapshot would change nothing. The day
        # tag is re-pointed if a crash or a concurrent retry left it behind.
        point_tag(table, day_tag(day), previous[0], DAY_TAG_MAX_AGE)
        current = table.current_snapshot()
        assert current is not None
        day_files, day_bytes = files_of(table, flt, current.snapshot_id)
        return SilverReport(
            spec.name,
            day,
            spec.table_name,
            data.num_rows,
            data.num_rows,
            current.snapshot_id,
            time.perf_counter() - started,
            unchanged=True,
            files=day_files,
            bytes=day_bytes,
        )
    snapshot_id = overwrite_partition(
        table, data, flt, summary, evolution, tag=(day_tag(day), DAY_TAG_MAX_AGE)
    )
    committed = table.scan(row_filter=flt, snapshot_id=snapshot_id).count()
    if committed != data.num_rows:
        raise RowAccountingError(
            f"{spec.table_name} {day}", data.num_rows, committed, 0, dataset=spec.name, day=day
        )
    day_files, day_bytes = files_of(table, flt, snapshot_id)
    return SilverReport(
        spec.name,
        day,
        spec.table_name,
        data.num_rows,
        committed,
        snapshot_id,
        time.perf_counter() - started,
        files=day_files,
        bytes=day_bytes,
    )
