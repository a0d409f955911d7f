"""Landing → bronze for one dataset and day: stream, validate, write, quarantine, commit.

Nothing becomes visible until the whole day is read and the rows add up: staged Parquet files
are promoted, the quarantine file replaced, files of an older run removed and the day's lineage
manifest (`LandedFile`, the landed files it was made from) replaced only at the end. The
report then carries the day as read back from storage (`stored_counts`), for checks that must
not trust the counters that produced it.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow.parquet as pq

from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.errors import LakeError, RowAccountingError, SourceFileError
from lake_pipelines.lake import logs, metrics
from lake_pipelines.lake.ingest import quarantine
from lake_pipelines.lake.ingest.readers import (
    DEFAULT_BLOCK_BYTES,
    LANDING_SUFFIXES,
    Reject,
    read_file,
)
from lake_pipelines.lake.ingest.validation import UniqueTracker, compile_contract, validate
from lake_pipelines.lake.layout import (
    bronze_dir,
    bronze_dirs,
    bronze_lineage_key,
    bronze_lineage_keys,
    day_bounds,
    landing_dir,
)
from lake_pipelines.lake.parquet.options import ENCODERS, ROW_GROUP_BYTES, TARGET_FILE_BYTES
from lake_pipelines.lake.parquet.writer import RollingParquetWriter, WrittenFile, commit_files
from lake_pipelines.lake.period import Unit
from lake_pipelines.lake.progress import Progress, ProgressHook
from lake_pipelines.lake.storage import TMP_SUFFIX, FileEntry, ObjectStore

LINEAGE_FORMAT = 1
log = logs.logger(__name__)


@dataclass(frozen=True)
class LandedFile:
    """One landed file of a day as bronze took it in, and what became of it.

    The day's list is bronze's lineage manifest (`bronze_lineage_key`), which silver records
    in its snapshot summary: the landing folder may be gone or changed by then.
    """

    path: str
    size: int
    etag: str | None
    version: str  # `FileEntry.version`: the ETag, else the mtime
    rows_read: int = 0
    rows_written: int = 0
    rows_quarantined: int = 0
    quarantined_whole: bool = False  # unreadable: no rows, no bronze file
    outputs: tuple[str, ...] = ()  # bronze files written from it (a compaction may merge them)

    @classmethod
    def of(cls, entry: FileEntry, **outcome: Any) -> LandedFile:
        return cls(entry.key, entry.size, entry.etag, entry.version, **outcome)


@dataclass(frozen=True)
class StoredCounts:
    """A committed day as read back from storage, not from the counters that wrote it."""

    rows_in_parquet: int  # rows in the footers of the day's bronze Parquet files
    rows_in_quarantine: int  # row rejects (kind ``row``) in the day's quarantine file


@dataclass
class IngestReport:
    """What one day's ingestion read, wrote and rejected."""

    dataset: str
    day: Unit
    sources: list[FileEntry] = field(default_factory=list)
    outputs: list[WrittenFile] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    file_rejects: list[Reject] = field(default_factory=list)
    rows_read: int = 0
    rows_written: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    quarantine_key: str | None = None
    lineage: list[LandedFile] = field(default_factory=list)
    # filled by `ingest_day` after the commit (`stored_counts`)
    stored: StoredCounts = field(default_factory=lambda: StoredCounts(0, 0))

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


def _remove_earlier_layouts(store: ObjectStore, spec: DatasetSpec, day: Unit) -> None:
    """Once the day is committed to `bronze_dir`, whatever an earlier layout's folder still
    holds belongs to the old copy (its Parquet files are already gone): the lineage manifest,
    a crashed compaction's journal and temporaries, which a later recovery must not promote
    next to the new copy. Removed, with the emptied folders."""
    for folder in bronze_dirs(spec, day)[1:]:
        store.delete(e.key for e in store.list(folder, hidden=True))
        store.remove_empty_dirs(folder, stop=spec.bronze_prefix)


def write_lineage(
    store: ObjectStore, spec: DatasetSpec, day: Unit, landed: list[LandedFile], run_id: str = ""
) -> str:
    """Replace the day's lineage manifest (staged, then promoted whole). Returns its key."""
    key = bronze_lineage_key(spec, day)
    manifest = {
        "format": LINEAGE_FORMAT,
        "dataset": spec.name,
        "partition": day.isoformat(),
        "run_id": run_id,
        "sources": [asdict(f) for f in landed],
    }
    store.write_bytes(key, json.dumps(manifest, indent=1).encode())
    return key


def read_lineage(store: ObjectStore, spec: DatasetSpec, day: Unit) -> list[LandedFile] | None:
    """The landed files the day's bronze partition was made from, in landing order; None for
    a day ingested before bronze kept a manifest (or never ingested). A day still in an
    earlier layout's folder (`bronze_dirs`) has its manifest there.

    Raises:
        LakeError: the manifest is of a format this code does not know.
    """
    key = next((k for k in bronze_lineage_keys(spec, day) if store.exists(k)), None)
    if key is None:
        return None
    manifest = json.loads(store.read_bytes(key))
    if manifest.get("format") != LINEAGE_FORMAT:
        raise LakeError(
            f"{store.uri(key)}: lineage manifest format {manifest.get('format')!r}, "
            f"expected {LINEAGE_FORMAT}; re-run bronze for {spec.name} {day}"
        )
    return [LandedFile(**{**s, "outputs": tuple(s["outputs"])}) for s in manifest["sources"]]


def bronze_files(store: ObjectStore, spec: DatasetSpec, day: Unit) -> list[FileEntry]:
    """The day's bronze Parquet files, sorted by key, in every folder the day may be in: the
    current one and an earlier layout's (``month=1/day=5``) until a re-run moves the day."""
    found = [e for d in bronze_dirs(spec, day) for e in store.list(d, suffixes=(".parquet",))]
    return sorted(found, key=lambda e: e.key)


def stored_counts(store: ObjectStore, spec: DatasetSpec, day: Unit) -> StoredCounts:
    """The day read back: rows in its Parquet footers, row rejects in its quarantine file."""
    rows = sum(
        pq.read_metadata(store.path(f.key), filesystem=store.arrow_fs).num_rows
        for f in bronze_files(store, spec, day)
    )
    return StoredCounts(rows, quarantine.counts(store, spec.name, day)[0])


def ingest_day(
    store: ObjectStore,
    spec: DatasetSpec,
    day: Unit,
    run_id: str = "",
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    row_group_bytes: int = ROW_GROUP_BYTES,
    target_file_bytes: int = TARGET_FILE_BYTES,
    progress: ProgressHook | None = None,
) -> IngestReport:
    """Convert every landed file of `day` into the day's bronze partition.

    A file that cannot be read at all is quarantined whole (kind ``file``) and the other files
    still load. The day is committed only if rows read = rows written + rows quarantined.
    The report lists every landed file in `IngestReport.lineage` (as the day's manifest does)
    and carries the committed day as read back from storage in `IngestReport.stored`.
    `progress` receives a line (rows, landed MiB, rate) now and then on a long day.

    Raises:
        RowAccountingError: the counts do not add up; nothing was committed.
    """
    started = time.perf_counter()
    report = IngestReport(spec.name, day)
    out_dir = bronze_dir(spec, day)
    start, end = day_bounds(day)
    for folder in bronze_dirs(spec, day):
        _remove_stale_staging(store, folder)
    report.sources = store.list(landing_dir(spec, day), suffixes=LANDING_SUFFIXES)
    staged: list[WrittenFile] = []
    unique_columns = compile_contract(spec).unique
    unique = UniqueTracker(unique_columns) if unique_columns else None
    meter = Progress(f"bronze {spec.name} {day}", progress)
    clean_listed, unlisted = 0, [0, 0, 0]  # unlisted clean files: count, rows, bytes
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
                    meter.add(batch.rows_read, batch.table.nbytes)
                    checked = validate(batch, spec, start, end, src.key, unique)
                    rejects.extend(checked.rejects)
                    writer.write(checked.table)
                files = writer.close()
            except SourceFileError as exc:
                writer.abort()
                if unique and mark is not None:
                    unique.rollback(mark)
                report.file_rejects.append(Reject(src.key, exc.line, None, exc.reason, None))
                report.lineage.append(LandedFile.of(src, quarantined_whole=True))
                logs.rejected_file(log, spec.name, day, store.uri(src.key), src, exc.reason)
                continue
            except BaseException:
                writer.abort()
                raise
            if rejects or clean_listed < logs.CLEAN_FILES_LISTED:
                clean_listed += not rejects
                logs.landed_file(
                    log,
                    spec.name,
                    day,
                    store.uri(src.key),
                    src,
                    read,
                    sum(f.rows for f in files),
                    rejects,
                )
            else:
                unlisted = [unlisted[0] + 1, unlisted[1] + read, unlisted[2] + src.size]
            staged.extend(files)
            report.rows_read += read
            report.rows_written += sum(f.rows for f in files)
            report.rejects.extend(rejects)
            report.bytes_read += src.size
            report.lineage.append(
                LandedFile.of(
                    src,
                    rows_read=read,
                    rows_written=sum(f.rows for f in files),
                    rows_quarantined=len(rejects),
                    outputs=tuple(f.key for f in files),
                )
            )
        logs.unlisted_files(log, spec.name, day, *unlisted)
        written_total = sum(f.rows for f in staged)
        if report.rows_read != written_total + report.rows_quarantined:
            raise RowAccountingError(
                f"{spec.name} {day}",
                report.rows_read,
                written_total,
                report.rows_quarantined,
                dataset=spec.name,
                day=day,
            )
    except BaseException:
        for f in staged:
            store.discard(f.tmp_path)  # never raises: the first error is the one reported
        raise

    # Commit: new files in, quarantine replaced, files no longer produced removed (those of
    # an earlier layout's folder too), and last the lineage, so a manifest never names
    # sources whose rows are not in place yet.
    old = {e.key for e in bronze_files(store, spec, day)}
    commit_files(store, staged)
    table = quarantine.to_table(spec.name, day, report.rejects, report.file_rejects, run_id)
    report.quarantine_key = quarantine.write(store, spec.name, day, table)
    store.delete(sorted(old - {f.key for f in staged}))
    write_lineage(store, spec, day, report.lineage, run_id)
    _remove_earlier_layouts(store, spec, day)
    report.outputs = staged
    report.stored = stored_counts(store, spec, day)
    report.seconds = time.perf_counter() - started
    metrics.record_ingest(report, spec.quarantine_threshold)
    meter.finish()
    return report
