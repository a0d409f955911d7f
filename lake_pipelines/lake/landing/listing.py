"""Landing listings with arrival times, for the planner."""

from __future__ import annotations

from lake_pipelines.lake.landing.planner import LandedFile
from lake_pipelines.lake.storage import ObjectStore


def list_landed(store: ObjectStore, prefix: str, floor: int | None) -> list[LandedFile]:
    """Files under a store-relative prefix arriving at or after ``floor`` (None: all).

    Hidden and temporary names are listed too: the planner reports them as waiting. The
    arrival second is `FileEntry.arrival` (the object's modification time on S3, GCS and
    Azure; on local disk the later of mtime and ctime).
    """
    out = []
    for entry in store.list(prefix, hidden=True):
        f = LandedFile(entry.key, entry.size, entry.version, int(entry.arrival))
        if floor is None or f.arrival >= floor:
            out.append(f)
    return out
