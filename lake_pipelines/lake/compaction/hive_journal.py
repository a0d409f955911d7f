"""The Hive swap: a journal, then outputs promoted, inputs deleted, journal deleted.

Once a partition's new files are written and verified (as hidden temporaries), a journal,
``_compaction.json``, is written next to the data, listing inputs and outputs, and the swap
runs (`roll_forward`). A crash before the journal leaves the partition as it was (the
temporary files are cleared on the next run); a crash after it is rolled forward by the next
run (`recover_hive`). Either way a re-run converges to the same files with the same rows, since
output names derive from the input names.

Readers skip the journal (``_`` prefix) and the temporaries (``.`` prefix, ``.tmp`` suffix).
During the swap itself a reader listing the directory may see outputs next to inputs (rows
twice), never fewer rows: promotion comes first, and the swap is a few renames and deletes.
"""

from __future__ import annotations

import json
import posixpath
from datetime import UTC, datetime

from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.lake.compaction.plan import (
    OUTPUT_PREFIX,
    CompactionError,
    FileStat,
    PartitionPlan,
)
from lake_pipelines.lake.hashing import RowChecksum
from lake_pipelines.lake.parquet.writer import WrittenFile
from lake_pipelines.lake.storage import TMP_SUFFIX, ObjectStore

JOURNAL_NAME = "_compaction.json"


def recover_hive(store: ObjectStore, spec: DatasetSpec) -> list[str]:
    """Finish every swap a crashed run left behind, and clear its abandoned temporary files.

    Returns the partitions whose journal was rolled forward (or found stale and dropped).
    """
    found = [e.key for e in store.list(spec.bronze_prefix, hidden=True)]
    recovered = []
    for key in sorted(k for k in found if posixpath.basename(k) == JOURNAL_NAME):
        roll_forward(store, key)
        recovered.append(posixpath.dirname(key)[len(spec.bronze_prefix) + 1 :])
    leftovers = [
        key
        for key in found
        if (name := posixpath.basename(key)).startswith(("." + OUTPUT_PREFIX, "." + JOURNAL_NAME))
        and name.endswith(TMP_SUFFIX)
    ]
    store.delete(leftovers)  # promoted ones are already gone; the rest belong to no journal
    return recovered


def roll_forward(store: ObjectStore, journal_key: str) -> None:
    """Promote the journal's outputs that are still temporary, delete its inputs, then it.

    If the day was re-ingested since the journal was written (an input replaced, or every
    output gone), the ingestion is authoritative: the journal's own files are removed instead.
    """
    directory = posixpath.dirname(journal_key)
    # s3fs answers `exists` from its listing cache, which writes through pyarrow never update.
    store.fs.invalidate_cache(store.path(directory))
    journal = json.loads(store.read_bytes(journal_key))
    outputs = journal["outputs"]
    state = [(o, store.exists(o["tmp"]), store.exists(o["key"])) for o in outputs]
    missing = [o["key"] for o, tmp, final in state if not tmp and not final]
    now = {e.key: e for e in store.list(directory, suffixes=(".parquet",))}
    replaced = [
        i["key"]
        for i in journal["inputs"]
        if i["key"] in now
        and (now[i["key"]].size != i["size"] or now[i["key"]].version != i["version"])
    ]
    if replaced or len(missing) == len(outputs):
        store.delete([o["tmp"] for o, tmp, _ in state if tmp])
        store.delete([o["key"] for o, _, final in state if final])
        store.delete([journal_key])
        return
    if missing:
        raise CompactionError(
            journal["partition"],
            f"journal {journal_key} lists outputs that are gone ({', '.join(missing)}); "
            "the partition was changed by something else, inspect it before re-running",
        )
    for o, tmp, _ in state:
        if tmp:
            store.promote(store.path(o["tmp"]), store.path(o["key"]))
    produced = {o["key"] for o in outputs}
    store.delete([i["key"] for i in journal["inputs"] if i["key"] not in produced])
    store.delete([journal_key])


def write_journal(
    store: ObjectStore,
    spec: DatasetSpec,
    plan: PartitionPlan,
    inputs: list[FileStat],
    staged: list[WrittenFile],
    seen: RowChecksum,
) -> str:
    """Write the partition's journal (the point of no return); return its key."""
    key = posixpath.join(spec.bronze_prefix, plan.partition, JOURNAL_NAME)
    journal = {
        "version": 1,
        "dataset": spec.name,
        "partition": plan.partition,
        "created_at": datetime.now(UTC).isoformat(),
        "rows": seen.rows,
        "checksum": seen.value,
        "inputs": [{"key": f.path, "size": f.size, "version": f.version} for f in inputs],
        "outputs": [
            {"key": f.key, "tmp": store.key_of(f.tmp_path), "rows": f.rows, "bytes": f.bytes}
            for f in staged
        ],
    }
    store.write_bytes(key, json.dumps(journal).encode())
    return key
