"""Where rejected rows and files go, and how they are read back.

Quarantine is Hive-partitioned Parquet with a stable schema, one file per dataset and day:
``quarantine/<dataset>/year=YYYY/month=MM/day=DD/part-00000.parquet``. A re-run of the day
replaces that file, so quarantine never accumulates duplicates; a day written before the
folders were zero-padded (``month=M/day=D``) is still read, and moved by its next re-run.
"""

from __future__ import annotations

import functools
import io
import posixpath
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lake_pipelines.lake import arrow, retries
from lake_pipelines.lake.ingest.readers import Reject
from lake_pipelines.lake.layout import quarantine_keys, quarantine_prefix
from lake_pipelines.lake.period import Unit, as_period
from lake_pipelines.lake.storage import ObjectStore

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("partition", pa.date32(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),  # "row" or "file"
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("line", pa.int64()),  # CSV and NDJSON: physical line in the source file
        pa.field("record", pa.int64()),  # JSON arrays: 1-based element number
        pa.field("column", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("raw", pa.string()),
        pa.field("run_id", pa.string()),
        pa.field("quarantined_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


def to_table(
    dataset: str, day: Unit, rejects: list[Reject], file_rejects: list[Reject], run_id: str
) -> pa.Table:
    now = datetime.now(UTC)
    rows = [("file", r) for r in file_rejects] + [("row", r) for r in rejects]
    columns: dict[str, list[Any]] = {
        "dataset": [dataset] * len(rows),
        "partition": [as_period(day).local.date()] * len(rows),  # a local day or hour: its date
        "kind": [k for k, _ in rows],
        "source_file": [r.source for _, r in rows],
        "line": [r.line for _, r in rows],
        "record": [r.record for _, r in rows],
        "column": [r.column for _, r in rows],
        "reason": [r.reason for _, r in rows],
        "raw": [r.raw for _, r in rows],
        "run_id": [run_id] * len(rows),
        "quarantined_at": [now] * len(rows),
    }
    arrays = [arrow.values(columns[f.name], f.type) for f in QUARANTINE_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=QUARANTINE_SCHEMA)


def write(store: ObjectStore, dataset: str, day: Unit, table: pa.Table) -> str | None:
    """Replace the day's quarantine with `table`; an empty table removes it. Returns the key.

    A file the day has under an earlier layout's key is removed, with its emptied folders.
    """
    key, *legacy = quarantine_keys(dataset, day)
    written = None
    if table.num_rows == 0:
        legacy.append(key)
    else:
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        store.write_bytes(key, buf.getvalue())
        written = key
    store.delete(legacy)
    for old in legacy:
        store.remove_empty_dirs(posixpath.dirname(old), stop=quarantine_prefix(dataset))
    return written


def read(store: ObjectStore, dataset: str, day: Unit) -> pa.Table:
    """The day's quarantine rows (empty when nothing was rejected), from whichever layout's
    key holds them."""
    for key in quarantine_keys(dataset, day):
        if store.exists(key):
            # Through the store's native filesystem, not a Python buffer: pyarrow's scanner
            # may drop its last reference to its input on one of its own threads after this
            # returns, and a Python-owned buffer then needs the GIL, which at interpreter exit
            # aborts the process ("terminate called without an active exception").
            return pq.read_table(
                store.path(key), filesystem=store.arrow_fs, schema=QUARANTINE_SCHEMA
            )
    return arrow.empty(QUARANTINE_SCHEMA)


def counts(store: ObjectStore, dataset: str, day: Unit) -> tuple[int, int]:
    """(rows, files) the day's quarantine holds."""
    # the kind column alone, a row group at a time: a bad day's quarantine holds the raw
    # text of every rejected row, which bronze's stored counts must not read whole
    for key in quarantine_keys(dataset, day):
        if store.exists(key):
            # a whole read again after a transient store error: pyarrow does not retry a
            # failed small ranged read (the footer) whose error body is longer than it
            return retries.call_with_retries(
                functools.partial(_count_kinds, store, key), store.max_attempts
            )
    return 0, 0


def _count_kinds(store: ObjectStore, key: str) -> tuple[int, int]:
    with store.arrow_fs.open_input_file(store.path(key)) as f:
        rows = files = 0
        for batch in pq.ParquetFile(f).iter_batches(columns=["kind"]):
            found = dict(zip(*_value_counts(batch.column(0)), strict=True))
            rows, files = rows + found.get("row", 0), files + found.get("file", 0)
        return rows, files


def _value_counts(column: pa.Array) -> tuple[list[str], list[int]]:
    counted = column.value_counts()
    return counted.field("values").to_pylist(), counted.field("counts").to_pylist()


def rows_quarantined(store: ObjectStore, dataset: str, days: Iterable[Unit]) -> int:
    """Rows of `days` held back in quarantine (so in no table downstream)."""
    return sum(counts(store, dataset, day)[0] for day in days)
