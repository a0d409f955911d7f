"""Snapshot expiry that really frees storage, and orphan-file removal, on pyiceberg's public API.

pyiceberg's own ``expire_snapshots`` only rewrites metadata: the data files, manifests and
manifest lists of expired snapshots stay on the store forever. Here a file is deleted only
when no snapshot that is still alive (after the expiry commit) can reach it.
"""

from __future__ import annotations

import posixpath
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pyiceberg.manifest import ManifestEntryStatus
from pyiceberg.table import Table
from pyiceberg.table.refs import SnapshotRefType
from pyiceberg.table.snapshots import Snapshot

from lake_pipelines.lake.storage import FileEntry, ObjectStore, split_uri

DEFAULT_ORPHAN_SAFETY = timedelta(days=3)


@dataclass
class ExpiryReport:
    table: str
    snapshots_expired: list[int] = field(default_factory=list)
    tags_removed: list[str] = field(default_factory=list)
    files_deleted: list[str] = field(default_factory=list)
    bytes_deleted: int = 0
    seconds: float = 0.0
    dry_run: bool = False


@dataclass
class OrphanReport:
    table: str
    orphans: list[str] = field(default_factory=list)
    bytes: int = 0
    deleted: bool = False
    seconds: float = 0.0


def reachable_files(table: Table, snapshots: list[Snapshot] | None = None) -> set[str]:
    """Every file that `snapshots` (default: all of the table's) need: lists, manifests, data."""
    io = table.io
    files: set[str] = set()
    seen_manifests: set[str] = set()
    for snap in table.snapshots() if snapshots is None else snapshots:
        files.add(snap.manifest_list)
        for manifest in snap.manifests(io):
            files.add(manifest.manifest_path)
            if manifest.manifest_path in seen_manifests:
                continue
            seen_manifests.add(manifest.manifest_path)
            for entry in manifest.fetch_manifest_entry(io, discard_deleted=False):
                if entry.status != ManifestEntryStatus.DELETED:
                    files.add(entry.data_file.file_path)
    return files


def expire_snapshots(
    table: Table,
    store: ObjectStore,
    older_than: timedelta | None = None,
    retain_last: int = 1,
    now: datetime | None = None,
    dry_run: bool = False,
) -> ExpiryReport:
    """Expire snapshots older than `older_than` beyond the newest `retain_last`, and delete
    the files only they reached.

    Branch heads are never expired. Tags past their ``max-ref-age-ms`` are removed first
    (pyiceberg keeps tagged snapshots forever otherwise); tags without an age limit protect
    their snapshot.

    Args:
        older_than: expire only snapshots older than this (None: age does not matter).
        retain_last: keep at least this many of the newest snapshots (at least 1).
        dry_run: report what would be expired, removed and deleted; change nothing.
    """
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    now_ms = int(now.timestamp() * 1000)
    report = ExpiryReport(".".join(table.name()), dry_run=dry_run)
    by_id = {s.snapshot_id: s for s in table.snapshots()}

    stale_tags = [
        name
        for name, ref in table.metadata.refs.items()
        if ref.snapshot_ref_type == SnapshotRefType.TAG
        and ref.max_ref_age_ms is not None
        and ref.snapshot_id in by_id
        and now_ms - by_id[ref.snapshot_id].timestamp_ms > ref.max_ref_age_ms
    ]
    if stale_tags and not dry_run:
        manage = table.manage_snapshots()
        for name in stale_tags:
            manage = manage.remove_tag(name)
        manage.commit()
    report.tags_removed = stale_tags

    before = reachable_files(table)
    refs = table.metadata.refs.items()
    protected = {ref.snapshot_id for name, ref in refs if name not in stale_tags}
    newest = sorted(table.snapshots(), key=lambda s: s.timestamp_ms, reverse=True)
    keep = {s.snapshot_id for s in newest[: max(retain_last, 1)]}
    cutoff = now_ms - int(older_than.total_seconds() * 1000) if older_than else None
    expire = [
        s.snapshot_id
        for s in newest
        if s.snapshot_id not in keep
        and s.snapshot_id not in protected
        and (cutoff is None or s.timestamp_ms < cutoff)
    ]
    if expire:
        report.snapshots_expired = expire
        if dry_run:
            after = reachable_files(table, [s for s in newest if s.snapshot_id not in expire])
        else:
            table.maintenance.expire_snapshots().by_ids(expire).commit()
            table = table.refresh()
            after = reachable_files(table)
        gone = sorted(before - after)
        present = {store.path(e.key): e.size for e in _listing(table, store)}
        report.bytes_deleted = sum(present.get(_normal(p), 0) for p in gone)
        if not dry_run:
            store.delete(store.key_of(_normal(p)) for p in gone if _normal(p) in present)
        report.files_deleted = gone
    report.seconds = time.perf_counter() - started
    return report


def find_orphans(
    table: Table,
    store: ObjectStore,
    older_than: timedelta = DEFAULT_ORPHAN_SAFETY,
    now: datetime | None = None,
) -> list[tuple[str, int]]:
    """Files under the table's location that no metadata references, older than `older_than`.

    The safety window protects files that a running writer has uploaded but not committed yet.
    """
    now = now or datetime.now(UTC)
    referenced = {_normal(p) for p in reachable_files(table)}
    referenced.add(_normal(table.metadata_location))
    referenced.update(_normal(e.metadata_file) for e in table.metadata.metadata_log)
    for stats in table.metadata.statistics:
        referenced.add(_normal(stats.statistics_path))
    cutoff = (now - older_than).timestamp()
    orphans = [
        (store.path(e.key), e.size)
        for e in _listing(table, store)
        if store.path(e.key) not in referenced and e.mtime < cutoff
    ]
    return sorted(orphans)


def remove_orphans(
    table: Table,
    store: ObjectStore,
    older_than: timedelta = DEFAULT_ORPHAN_SAFETY,
    dry_run: bool = True,
    now: datetime | None = None,
) -> OrphanReport:
    """List (``dry_run``) or delete the table's orphan files."""
    started = time.perf_counter()
    found = find_orphans(table, store, older_than, now)
    report = OrphanReport(".".join(table.name()), [p for p, _ in found], sum(s for _, s in found))
    if not dry_run:
        store.delete(store.key_of(path) for path, _ in found)
        report.deleted = True
    report.seconds = time.perf_counter() - started
    return report


def _normal(path: str) -> str:
    """A path as the filesystems see it: no scheme, no ``//`` doubling."""
    return posixpath.normpath(split_uri(path)[1])


def _listing(table: Table, store: ObjectStore) -> list[FileEntry]:
    """Every object under the table's location, hidden names included."""
    return store.list(store.key_of(_normal(table.location())), hidden=True)
