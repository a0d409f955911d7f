"""Bronze → silver for one dataset: each day's Hive partition replaces that day of the Iceberg
table, a range of days in one snapshot (`commit_days`)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan

from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.errors import RowAccountingError, TableCommitError
from lake_pipelines.lake import metrics, retries
from lake_pipelines.lake.iceberg.evolution import plan_evolution
from lake_pipelines.lake.iceberg.lineage import files_by_day, last_lineage, lineage_summary
from lake_pipelines.lake.iceberg.replace import PartitionReplace, conform
from lake_pipelines.lake.iceberg.snapshots import day_tag, point_tags, tag_max_age
from lake_pipelines.lake.iceberg.tables import ensure_table
from lake_pipelines.lake.iceberg.writer import DataFileWriter
from lake_pipelines.lake.layout import day_bounds
from lake_pipelines.lake.parquet.options import ENCODERS, ROW_GROUP_BYTES
from lake_pipelines.lake.period import Unit
from lake_pipelines.lake.progress import PROGRESS_INTERVAL, Progress, ProgressHook
from lake_pipelines.lake.silver_input import (
    READ_BATCH_ROWS,
    SORT_MEMORY_BYTES,
    DayInput,
    day_input,
    sorted_rows,
)
from lake_pipelines.lake.storage import FileEntry, ObjectStore

if TYPE_CHECKING:  # pyiceberg.catalog is slow to import; annotations only
    from pyiceberg.catalog import Catalog
    from pyiceberg.manifest import DataFile
    from pyiceberg.table import Table

# Days per snapshot of a range: bounds a snapshot summary (one lineage entry per day) and
# what a failure in the middle of a long backfill throws away; a month keeps a year at 12.
DAYS_PER_COMMIT = 31
# Hours per snapshot of an hourly dataset's range: a week (a year of hours is 53 snapshots).
HOURS_PER_COMMIT = 24 * 7


def units_per_commit(spec: DatasetSpec) -> int:
    """Partitions per snapshot of a range: `DAYS_PER_COMMIT` days or `HOURS_PER_COMMIT`."""
    return HOURS_PER_COMMIT if spec.granularity == "hourly" else DAYS_PER_COMMIT


@dataclass
class SilverReport:
    dataset: str
    day: Unit
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


def day_filter(spec: DatasetSpec, day: Unit) -> And:
    return span_filter(spec, day, day)


def span_filter(spec: DatasetSpec, first: Unit, last: Unit) -> And:
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
    day: Unit,
    run_id: str = "",
    sources: list[FileEntry] | None = None,
    options: SilverOptions | None = None,
) -> SilverReport:
    """Replace the silver table's `day` with the rows of the bronze partition, in one commit
    (`commit_days` for one day; `sources` name the landed files if given)."""
    by_day = None if sources is None else {day: sources}
    return commit_days(store, catalog, spec, [day], run_id, by_day, options=options)[0]


def commit_days(
    store: ObjectStore,
    catalog: Catalog,
    spec: DatasetSpec,
    days: Iterable[Unit],
    run_id: str = "",
    sources: Mapping[Unit, list[FileEntry]] | None = None,
    days_per_commit: int | None = None,
    options: SilverOptions | None = None,
    progress: ProgressHook | None = None,
) -> list[SilverReport]:
    """Replace each of `days` in the silver table with the rows of its bronze partition:
    one snapshot per `days_per_commit` days (default `units_per_commit`: a month of days, a
    week of hours), holding only the days whose inputs changed. Days are `lake.period` units:
    dates, or the hours (local days) of an hourly (zoned) dataset.

    A day streams from bronze to new data files (`silver_input.sorted_rows` into a
    `DataFileWriter`): memory holds a few row groups and the sort's buffer, whatever the
    day's size. A day whose fingerprint (landed files, bronze files and their footers,
    schema: `silver_input.day_input`, no row read) is the one of its last commit, with the
    rows still there, is not replaced (``unchanged``); its day tag is re-pointed if a crash
    left it behind. `progress` receives a line now and then while a day is written. Each
    replaced day is tagged ``day-<day>`` and its lineage recorded in the snapshot summary
    (`lineage.lineage_summary`). The snapshot summary's source files are those bronze
    recorded in its lineage manifest (the landing folder for a day bronze ingested without
    one), unless `sources` names them.

    Returns:
        One report per day, in day order.

    Raises:
        RowAccountingError: a committed day does not hold exactly the bronze rows.
    """
    ordered = sorted(set(days))  # one calendar: all alike
    step = max(days_per_commit or units_per_commit(spec), 1)
    reports: list[SilverReport] = []
    for i in range(0, len(ordered), step):
        batch = ordered[i : i + step]

        def commit(batch: list[Unit] = batch) -> list[SilverReport]:
            work = _Batch(store, catalog, spec, run_id, options or SilverOptions(), progress)
            return work.commit(batch, sources or {})

        # A store failure pyarrow gave up on (it retries CompleteMultipartUpload's embedded
        # errors only once) fails the attempt before the catalog commit; the batch is then
        # written again from the start, which replaces the same days (idempotent).
        reports.extend(retries.call_with_retries(commit, store.max_attempts))
    metrics.record_silver(reports)
    return reports


@dataclass(frozen=True)
class SilverOptions:
    """Tuning of silver's streaming write; the defaults suit days of tens of millions of rows.

    Attributes:
        sort_memory_bytes: rows the merge of bronze row groups holds (uncompressed Arrow)
            before it spills sorted runs to `spill_dir`.
        row_group_bytes: rows buffered (uncompressed Arrow) per row group of a data file.
        batch_rows: rows read from bronze at a time.
        spill_dir: where sorted runs spill; None: the OS temporary directory.
        progress_seconds: seconds between two progress lines of a day being written.
    """

    sort_memory_bytes: int = SORT_MEMORY_BYTES
    row_group_bytes: int = ROW_GROUP_BYTES
    batch_rows: int = READ_BATCH_ROWS
    spill_dir: str | None = None
    progress_seconds: float = PROGRESS_INTERVAL


@dataclass
class _Day:
    rows: int
    lineage: dict[str, object]
    seconds: float


@dataclass
class _Batch:
    """One snapshot's worth of days (`commit_days`)."""

    store: ObjectStore
    catalog: Catalog
    spec: DatasetSpec
    run_id: str
    options: SilverOptions
    progress: ProgressHook | None

    def span(self, first: Unit, last: Unit) -> And:
        return span_filter(self.spec, first, last)

    def commit(
        self, days: list[Unit], sources: Mapping[Unit, list[FileEntry]]
    ) -> list[SilverReport]:
        spec = self.spec
        table = ensure_silver_table(self.catalog, spec)
        base = table.current_snapshot()
        col = spec.timestamp_column
        held = files_by_day(table, col, days, self.span, base.snapshot_id if base else None)
        last = last_lineage(table, days)
        replace = PartitionReplace(table)
        partitioning: list[tuple[str, str]] = [(p.column, p.transform) for p in spec.partitioning]
        changed: dict[Unit, _Day] = {}
        unchanged: dict[Unit, _Day] = {}
        retag: dict[str, int] = {}
        try:
            for day in days:
                started = time.perf_counter()
                found = day_input(self.store, spec, day, sources.get(day))
                lineage = found.lineage
                # evolve mode: the day's unknown columns join the schema the table must have
                evolution = plan_evolution(
                    replace.metadata, found.wanted, partitioning, spec.schema_changes
                )
                previous = last.get(day)
                if (
                    not evolution
                    and previous is not None
                    and previous[1].get("fingerprint") == lineage["fingerprint"]
                    and held[day].rows == found.rows
                ):
                    # The same landed files, bronze files and schema as the last commit of
                    # this day: the table already holds exactly this.
                    retag[day_tag(day)] = previous[0]
                    seconds = time.perf_counter() - started
                    unchanged[day] = _Day(found.rows, lineage, seconds)
                    continue
                replace.evolve(evolution)
                replace.drop(day_filter(spec, day), held[day].files)
                replace.add(self._write_day(table, replace, day, found))
                changed[day] = _Day(found.rows, lineage, time.perf_counter() - started)
        except BaseException:
            replace.abort()  # the files written so far: no snapshot will name them
            raise
        started = time.perf_counter()
        after = held
        if replace:
            lineages = {d: c.lineage for d, c in changed.items()}
            summary = {"run-id": self.run_id, **lineage_summary(lineages)}
            tags = {day_tag(d): tag_max_age(spec.granularity) for d in changed}
            try:
                snapshot_id = replace.commit(summary, tags)
            except TableCommitError:  # the table is unchanged (any other error: unknown)
                replace.abort()
                raise
            after = {**held, **files_by_day(table, col, changed, self.span, snapshot_id)}
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
        point_tags(table, retag, tag_max_age(spec.granularity))
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

    def _write_day(
        self, table: Table, replace: PartitionReplace, day: Unit, day_input: DayInput
    ) -> list[DataFile]:
        """Stream the day's bronze rows, sorted, into new data files of the table; the rows
        in their footers must be the rows in the bronze footers (checked before any commit)."""
        spec, options = self.spec, self.options
        what = f"silver {spec.name} {day}"
        progress = Progress(what, self.progress, day_input.rows, options.progress_seconds)
        writer = DataFileWriter(
            table, replace.metadata, spec, options.row_group_bytes, encoders=ENCODERS
        )
        with writer:
            rows = sorted_rows(
                self.store,
                spec,
                day_input.files,
                lambda t: conform(replace.name, writer.arrow_schema, t),
                lambda t: progress.add(t.num_rows, t.nbytes),
                options.sort_memory_bytes,
                options.batch_rows,
                options.spill_dir,
            )
            with contextlib.closing(rows):  # on error too: the spill files, the reader
                for chunk in rows:
                    writer.write(chunk)
            files = writer.close()
        written = sum(f.record_count for f in files)
        if not day_input.rows == progress.rows == writer.rows == written:
            replace.add(files)  # removed with the rest by the caller's abort
            raise RowAccountingError(
                f"{spec.table_name} {day} (bronze footers {day_input.rows}, read "
                f"{progress.rows}, sorted {writer.rows})",
                day_input.rows,
                written,
                0,
                dataset=spec.name,
                day=day,
            )
        progress.finish()
        return files
