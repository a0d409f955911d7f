"""`expire` and `orphans`: snapshot expiry and orphan files, each with a dry run."""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import TYPE_CHECKING

from lake_pipelines.lake.iceberg.maintenance import expire_snapshots, remove_orphans
from lake_pipelines.lake.iceberg.tables import load_table

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

    from lake_pipelines.lake.storage import ObjectStore


def expire(catalog: Catalog, store: ObjectStore, args: argparse.Namespace) -> str:
    """Expire snapshots (or, with ``--dry-run``, list what would go) and report."""
    rep = expire_snapshots(
        load_table(catalog, args.table),
        store,
        timedelta(days=args.older_than_days),
        args.retain_last,
        dry_run=args.dry_run,
    )
    if args.dry_run:
        lines = [f"snapshot {sid}" for sid in rep.snapshots_expired]
        lines += [f"tag {tag}" for tag in rep.tags_removed]
        lines += rep.files_deleted
        lines.append(
            f"{rep.table}: would expire {len(rep.snapshots_expired)} snapshots, remove "
            f"{len(rep.tags_removed)} tags, delete {len(rep.files_deleted)} files "
            f"({rep.bytes_deleted} bytes) (dry run; nothing changed)"
        )
        return "\n".join(lines)
    return (
        f"{rep.table}: expired {len(rep.snapshots_expired)} snapshots, removed "
        f"{len(rep.tags_removed)} tags, deleted {len(rep.files_deleted)} files "
        f"({rep.bytes_deleted} bytes)"
    )


def orphans(catalog: Catalog, store: ObjectStore, args: argparse.Namespace) -> str:
    """List (or, with ``--delete``, delete) files no snapshot references, and report."""
    found = remove_orphans(
        load_table(catalog, args.table),
        store,
        timedelta(days=args.older_than_days),
        dry_run=not args.delete,
    )
    verb = "deleted" if found.deleted else "would delete (dry run; add --delete)"
    return "\n".join(
        [
            *found.orphans,
            f"{found.table}: {verb} {len(found.orphans)} orphan files ({found.bytes} bytes)",
        ]
    )
