"""A listing from any store's fsspec client, as the same `FileEntry` rows.

s3fs, gcsfs, adlfs and the local file system each name an object's size, modification time
and version their own way, and some list folder markers as objects; `entries` turns what
``fs.find(detail=True)`` returned into one kind of row, so nothing downstream (the landing
sensor, retention, compaction's planner) asks which store it is on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# Where each fsspec client puts the modification time: s3fs ``LastModified``, adlfs
# ``last_modified``, gcsfs ``mtime`` (a datetime) and ``updated`` (its ISO text).
MTIME_FIELDS = ("LastModified", "last_modified", "mtime", "updated")


@dataclass(frozen=True)
class FileEntry:
    """One object in a listing, the same on every store.

    Attributes:
        key: store-relative key.
        size: bytes.
        mtime: when the object was last written, in seconds since the epoch (UTC). Never
            missing: a listing without it is an error, not 0 (a file that looks 55 years
            old would be taken for abandoned and deleted).
        etag: the object's version as the store names it (S3 and Azure ETag, GCS
            generation); None on local disk.
        ctime: local disk only, the inode's change time (a rename or chmod sets it).
    """

    key: str
    size: int
    mtime: float
    etag: str | None = None
    ctime: float | None = None

    @property
    def arrival(self) -> float:
        """When the object became visible under its key: on object stores the modification
        time, on local disk the later of mtime and ctime (a finished file renamed into place
        keeps its mtime but gets a new ctime)."""
        return max(self.mtime, self.ctime or 0.0)

    @property
    def version(self) -> str:
        """What changes whenever the object's content may have: ETag, else mtime."""
        return self.etag if self.etag else repr(self.mtime)


class NoModificationTime(KeyError):
    """A listed object came without a modification time."""

    def __init__(self, key: str, fields: list[str]) -> None:
        super().__init__(f"no modification time in the listing (fields: {fields})")
        self.key = key


def entries(
    found: dict[str, Any],
    scheme: str,
    key_of: Callable[[str], str],
    prefix: str,
    suffixes: tuple[str, ...] = (),
    hidden: bool = False,
) -> list[FileEntry]:
    """The objects of a listing (`found`: path → fsspec's details) under `prefix`, sorted by
    key: folders and folder markers left out, names below `prefix` that start with ``.`` or
    ``_`` only with `hidden`, only names ending in `suffixes` when given.

    Raises:
        NoModificationTime: an object came without one (never taken as 0: a file that looks
            55 years old would be taken for abandoned and deleted).
    """
    out = []
    root = prefix.strip("/")
    folders = _folders_of(found)
    for path, info in found.items():
        if info.get("type") == "directory" or path.endswith("/") or path in folders:
            continue  # a folder, or a folder's marker object (pyarrow's S3 leaves them)
        key = key_of(path)
        relative = key[len(root) :].strip("/")
        if not hidden and any(part.startswith((".", "_")) for part in relative.split("/")):
            continue
        if suffixes and not key.endswith(suffixes):
            continue
        ctime = info.get("created") if scheme == "file" else None
        out.append(
            FileEntry(
                key,
                int(info.get("size") or 0),
                _mtime(key, info, scheme),
                _etag(info),
                float(ctime) if ctime is not None else None,
            )
        )
    return sorted(out, key=lambda e: e.key)


def _mtime(key: str, info: dict[str, Any], scheme: str) -> float:
    """The modification time in a listing entry, by protocol: ``mtime`` (local),
    ``LastModified`` (s3fs), ``last_modified`` (adlfs), ``updated`` or ``mtime`` (gcsfs)."""
    names = ("mtime",) if scheme == "file" else MTIME_FIELDS
    for name in names:
        value = info.get(name)
        if value is not None and value != "":
            return _epoch(value)
    raise NoModificationTime(key, sorted(info))


def _epoch(value: object) -> float:
    """Seconds since the epoch from a listing's datetime, ISO string or number."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return float(value)  # type: ignore[arg-type]


def _etag(info: dict[str, Any]) -> str | None:
    """The object's version: generation (GCS, a new one per write), else ETag (S3, Azure)."""
    value = info.get("generation") or info.get("ETag") or info.get("etag")
    return str(value).strip('"') if value else None


def _folders_of(found: dict[str, Any]) -> set[str]:
    """Every folder above a listed path: an object named like one is a folder marker (an
    S3 key ending in ``/``, which pyarrow writes to keep a folder it emptied), not data."""
    folders: set[str] = set()
    for path in found:
        parts = path.rstrip("/").split("/")
        folders.update("/".join(parts[:i]) for i in range(1, len(parts)))
    return folders
