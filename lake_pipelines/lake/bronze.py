"""Landing → bronze for one dataset and day: stream, validate, write, quarantine, commit.

Nothing becomes visible until the whole day is read and the rows add up: staged Parquet files
are promoted, the quarantine file replaced and files of an older run removed only at the end.
"""

from __future__ import annotations

import hashlib
import posixpath
import time
from dataclasses import dataclass, field
from datetime import date

from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.errors import RowAccountingError, SourceFileError
from lake_pipelines.lake.ingest import quarantine
from lake_pipelines.lake.ingest.readers import (
    DEFAULT_BLOCK_BYTES,
    LANDING_SUFFIXES,
    Reject,
    read_file,
)
from lake_pipelines.lake.ingest.validation import UniqueTracker, validate
from lake_pipelines.lake.layout import bronze_dir, day_bounds, landing_dir
from lake_pipelines.lake.parquet.options import ROW_GROUP_BYTES, TARGET_FILE_BYTES
from lake_pipelines.lake.parquet.writer import RollingParquetWriter, WrittenFile, commit_files
from lake_pipelines.lake.storage import TMP_SUFFIX, FileEntry, ObjectStore

# Row groups encoded at once (a file each): Parquet encoding is the single busiest step of a
# conversion, and pyarrow encodes a row group on one core.
ENCODERS = 2


@dataclass
class IngestReport:
    """What one day's ingestion read, wrote and rejected."""

    dataset: str
    day: date
    sources: list[FileEntry] = field(default_factory=list)
    outputs: list[WrittenFile] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    file_rejects: list[Reject] = field(default_factory=list)
    rows_read: int = 0
    rows_written: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    quarantine_key: str | None = None

    @property
    def rows_quarantined(self) -> int:
        return len(self.rejects)

    @property
    def bytes_written(self) -> int:
        return sum(f.bytes for f in self.outputs)

    @property
    def bytes_in_rejected_files(self) -> int:
        rejected = {r.source for r in self.file_rejects}
        return sum(s.size for s in self.sources if s.key in rejected)

    @property
    def quarantined_share(self) -> float:
        """The larger of the share of rows quarantined and the share of the landed bytes in
        files rejected whole (an unreadable file has no rows to count, yet its data is
        missing from the day: a day whose every file is unreadable has a share of 1)."""
        rows = self.rows_quarantined / self.rows_read if self.rows_read else 0.0
        landed = sum(s.size for s in self.sources)
        files = self.bytes_in_rejected_files / landed if landed else 0.0
        return max(rows, files)


def _stem(source_key: str) -> str:
    """Deterministic output name of a source file: the same file always lands in the same place."""
    return "part-" + hashlib.sha256(source_key.encode()).hexdigest()[:12]


def _remove_stale_staging(store: ObjectStore, prefix: str, older_than: float = 3600.0) -> None:
    """Temporary files of a crashed run are invisible but take space; clear old ones first.

    Only files older than `older_than` seconds go: a younger one may belong to a run that is
    still writing.
    """
    now = time.time()
    store.delete(
        e.key
        for e in store.list(prefix, hidden=True)
        if posixpath.basename(e.key).startswith(".")
        and e.key.endswith(TMP_SUFFIX)
        and now - e.mtime > older_than
    )


def ingest_day(
    store: ObjectStore,
    spec: DatasetSpec,
    day: date,
    run_id: str = "",
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    row_group_bytes: int = ROW_GROUP_BYTES,
    target_file_bytes: int = TARGET_FILE_BYTES,
) -> IngestReport:
    """Convert every landed file of `day` into the day's bronze partition.

    A file that cannot be read at all is quarantined whole (kind ``file``) and the other files
    still load. The day is committed only if rows read = rows written + rows quarantined.

    Raises:
        RowAccountingError: the counts do not add up; nothing was committed.
    """
    started = time.perf_counter()
    report = IngestReport(spec.name, day)
    out_dir = bronze_dir(spec, day)
    start, end = day_bounds(day)
    _remove_stale_staging(store, out_dir)
    report.sources = store.list(landing_dir(spec, day), suffixes=LANDING_SUFFIXES)
    staged: list[WrittenFile] = []
    unique = UniqueTracker(spec.unique_columns) if spec.unique_columns else None
    try:
        for src in report.sources:
            writer = RollingParquetWriter(
                store,
                spec,
                out_dir,
                _stem(src.key),
                row_group_bytes,
                target_file_bytes,
                encoders=ENCODERS,
            )
            read = 0
            rejects: list[Reject] = []
            mark = unique.mark() if unique else None
            try:
                for batch in read_file(store, src.key, spec, block_bytes):
                    # Counted as the reader hands rows over, before anything can lose them.
                    read += batch.rows_read
                    checked = validate(batch, spec, start, end, src.key, unique)
                    rejects.extend(checked.rejects)
                    writer.write(checked.table)
                files = writer.close()
            except SourceFileError as exc:
                writer.abort()
                if unique and mark is not None:
                    unique.rollback(mark)
                report.file_rejects.append(Reject(src.key, exc.line, None, exc.reason, None))
                continue
            except BaseException:
                writer.abort()
                raise
            staged.extend(files)
            report.rows_read += read
            report.rows_written += sum(f.rows for f in files)
            report.rejects.extend(rejects)
            report.bytes_read += src.size
        written_total = sum(f.rows for f in staged)
        if report.rows_read != written_total + report.rows_quarantined:
            raise RowAccountingError(
                f"{spec.name} {day}", report.rows_read, written_total, report.rows_quarantined
            )
    except BaseException:
        for f in staged:
            store.delete([store.key_of(f.tmp_path)])
        raise

    # Commit: new files in, quarantine replaced, files no longer produced removed.
    old = {e.key for e in store.list(out_dir, suffixes=(".parquet",))}
    commit_files(store, staged)
    table = quarantine.to_table(spec.name, day, report.rejects, report.file_rejects, run_id)
    report.quarantine_key = quarantine.write(store, spec.name, day, table)
    store.delete(sorted(old - {f.key for f in staged}))
    report.outputs = staged
    report.seconds = time.perf_counter() - started
    return report
