"""Bronze → silver for one dataset: each day's Hive partition replaces that day of the Iceberg
table, a range of days in one snapshot (`commit_days`)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan

from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.errors import RowAccountingError
from lake_pipelines.lake import metrics
from lake_pipelines.lake.arrow import fit_to_schema
from lake_pipelines.lake.bronze import bronze_files, read_lineage
from lake_pipelines.lake.iceberg.evolution import plan_evolution
from lake_pipelines.lake.iceberg.lineage import files_by_day, last_lineage, lineage_summary
from lake_pipelines.lake.iceberg.replace import PartitionReplace
from lake_pipelines.lake.iceberg.snapshots import DAY_TAG_MAX_AGE, day_tag, point_tags
from lake_pipelines.lake.iceberg.tables import ensure_table
from lake_pipelines.lake.ingest.readers import LANDING_SUFFIXES
from lake_pipelines.lake.layout import day_bounds, landing_dir
from lake_pipelines.lake.parquet.options import file_schema
from lake_pipelines.lake.storage import FileEntry, ObjectStore

if TYPE_CHECKING:  # pyiceberg.catalog is slow to import; annotations only
    from pyiceberg.catalog import Catalog

# Days per snapshot of a range: bounds a snapshot summary (one lineage entry per day) and
# what a failure in the middle of a long backfill throws away; a month keeps a year at 12.
DAYS_PER_COMMIT = 31


@dataclass
class SilverReport:
    dataset: str
    day: date
    table: str
    rows_read: int
    rows_committed: int
    snapshot_id: int  # the table's current snapshot after the day's commit (or check)
    seconds: float  # the day's own work plus its share of the commit
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
    return span_filter(spec, day, day)


def span_filter(spec: DatasetSpec, first: date, last: date) -> And:
    """The rows of the days `first`..`last` (inclusive)."""
    start, _ = day_bounds(first)
    _, end = day_bounds(last)
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
    """Replace the silver table's `day` with the rows of the bronze partition, in one commit
    (`commit_days` for one day; `sources` name the landed files if given)."""
    return commit_days(
        store, catalog, spec, [day], run_id, None if sources is None else {day: sources}
    )[0]


def commit_days(
    store: ObjectStore,
    catalog: Catalog,
    spec: DatasetSpec,
    days: Iterable[date],
    run_id: str = "",
    sources: Mapping[date, list[FileEntry]] | None = None,
    days_per_commit: int = DAYS_PER_COMMIT,
) -> list[SilverReport]:
    """Replace each of `days` in the silver table with the rows of its bronze partition:
    one snapshot per `days_per_commit` days, holding only the days whose inputs changed.

    A day whose fingerprint (landed files, bronze files and their bytes, schema) is the one
    of its last commit, with the rows still there, is not replaced (``unchanged``); its day
    tag is re-pointed if a crash left it behind. Each replaced day is tagged ``day-<day>``
    and its lineage recorded in the snapshot summary (`lineage.lineage_summary`). The
    snapshot summary's source files are those bronze recorded (`source_files`), unless
    `sources` names them for a day.

    Returns:
        One report per day, in day order.

    Raises:
        RowAccountingError: a committed day does not hold exactly the bronze rows.
    """
    ordered = sorted(set(days))
    reports: list[SilverReport] = []
    for i in range(0, len(ordered), max(days_per_commit, 1)):
        batch = ordered[i : i + max(days_per_commit, 1)]
        reports.extend(_commit_batch(store, catalog, spec, batch, run_id, sources or {}))
    metrics.record_silver(reports)
    return reports


@dataclass
class _Day:
    rows: int
    lineage: dict[str, object]
    seconds: float


def _commit_batch(
    store: ObjectStore,
    catalog: Catalog,
    spec: DatasetSpec,
    days: list[date],
    run_id: str,
    sources: Mapping[date, list[FileEntry]],
) -> list[SilverReport]:
    table = ensure_silver_table(catalog, spec)
    base = table.current_snapshot()
    col = spec.timestamp_column

    def span(first: date, last: date) -> And:
        return span_filter(spec, first, last)

    held = files_by_day(table, col, days, span, base.snapshot_id if base else None)
    last = last_lineage(table, days)
    replace = PartitionReplace(table)
    partitioning: list[tuple[str, str]] = [(p.column, p.transform) for p in spec.partitioning]
    changed: dict[date, _Day] = {}
    unchanged: dict[date, _Day] = {}
    retag: dict[str, int] = {}
    for day in days:
        started = time.perf_counter()
        data, lineage, wanted = _bronze_day(store, spec, day, sources.get(day))
        # evolve mode: the day's unknown columns join the schema the table must have
        evolution = plan_evolution(replace.metadata, wanted, partitioning, spec.schema_changes)
        previous = last.get(day)
        if (
            not evolution
            and previous is not None
            and previous[1].get("fingerprint") == lineage["fingerprint"]
            and held[day].rows == data.num_rows
        ):
            # The same source files, bronze files and schema as the last commit of this day:
            # the table already holds exactly this; replacing it would change nothing.
            retag[day_tag(day)] = previous[0]
            unchanged[day] = _Day(data.num_rows, lineage, time.perf_counter() - started)
            continue
        replace.evolve(evolution)
        replace.replace(day_filter(spec, day), data, held[day].files)
        changed[day] = _Day(data.num_rows, lineage, time.perf_counter() - started)
        del data
    started = time.perf_counter()
    after = held
    if replace:
        summary = {"run-id": run_id, **lineage_summary({d: c.lineage for d, c in changed.items()})}
        snapshot_id = replace.commit(summary, {day_tag(d): DAY_TAG_MAX_AGE for d in changed})
        after = {**held, **files_by_day(table, col, changed, span, snapshot_id)}
        for day, c in changed.items():
            if after[day].rows != c.rows:
                raise RowAccountingError(
                    f"{spec.table_name} {day}",
                    c.rows,
                    after[day].rows,
                    0,
                    dataset=spec.name,
                    day=day,
                )
    # a crash or a concurrent retry may have left the tag of an unchanged day behind
    point_tags(table, retag, DAY_TAG_MAX_AGE)
    commit_share = (time.perf_counter() - started) / max(len(changed), 1)
    current = table.current_snapshot()
    current_id = current.snapshot_id if current is not None else 0
    return [
        SilverReport(
            spec.name,
            day,
            spec.table_name,
            d.rows,
            after[day].rows,
            current_id,
            d.seconds + (commit_share if day in changed else 0.0),
            unchanged=day in unchanged,
            files=len(after[day].files),
            bytes=after[day].bytes,
        )
        for day in days
        for d in [changed.get(day) or unchanged[day]]
    ]


def _bronze_day(
    store: ObjectStore, spec: DatasetSpec, day: date, sources: list[FileEntry] | None
) -> tuple[pa.Table, dict[str, object], pa.Schema]:
    """The day's bronze rows (sorted), its lineage (rows, landed files, bronze files with a
    hash of their bytes, fingerprint) and the schema the table needs for them."""
    files = bronze_files(store, spec, day)
    digests: dict[str, str] = {}
    data = read_bronze(store, spec, [f.key for f in files], digests)
    if spec.sort_by:
        data = data.sort_by([(c, "ascending") for c in spec.sort_by])
    lineage: dict[str, object] = {
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
    wanted = pa.schema([*spec.schema, *(f for f in data.schema if f.name not in spec.schema.names)])
    lineage["fingerprint"] = _fingerprint(spec, lineage, wanted)
    return data, lineage, wanted
