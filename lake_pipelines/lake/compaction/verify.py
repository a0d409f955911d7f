"""Checking written files against the rows read, before they replace anything.

From the footers (every file complete, holding the rows the writer counted into it, adding up
to the rows read) or, with ``verify="content"``, by reading every row back and comparing
`RowChecksum`s.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.parquet as pq

from lake_pipelines.lake.compaction.options import Verify
from lake_pipelines.lake.compaction.plan import CompactionError
from lake_pipelines.lake.compaction.rewrite import parquet_tables
from lake_pipelines.lake.hashing import RowChecksum
from lake_pipelines.lake.parquet.writer import WrittenFile
from lake_pipelines.lake.storage import ObjectStore

FOOTER_READERS = 8


def checksum_files(
    store: ObjectStore, paths: Iterable[str], schema: pa.Schema, partition: str
) -> RowChecksum:
    """Read written files back (independently of the writer) and checksum their rows."""
    total = RowChecksum()
    for path in paths:
        for table in parquet_tables(store, path, schema, partition):
            total.update(table)
    return total


def footer_rows(store: ObjectStore, paths: Sequence[str]) -> list[int]:
    """The row count in each file's Parquet footer (small reads, a few at a time)."""

    def rows(path: str) -> int:
        return pq.read_metadata(path, filesystem=store.arrow_fs).num_rows

    with ThreadPoolExecutor(FOOTER_READERS) as pool:
        return list(pool.map(rows, paths))


def verify_written(
    store: ObjectStore,
    paths: Sequence[str],
    files: Sequence[WrittenFile],
    seen: RowChecksum,
    expected_rows: int | None,
    schema: pa.Schema,
    partition: str,
    verify: Verify = "footers",
    outcome: str = "nothing was changed",
) -> None:
    """Check the written files against the rows read; raise `CompactionError` if they differ.

    ``footers``: every file is complete (its footer reads) and holds the rows the writer
    counted into it, and those add up to the rows read and to `expected_rows` (the inputs'
    footers or manifests). ``content`` also reads every row back and compares checksums.

    Args:
        paths: the written files as filesystem paths in `store`, in the order of `files`.
    """
    counts = footer_rows(store, paths)
    written = f"{sum(counts)} rows in the footers"
    ok = counts == [f.rows for f in files] and sum(counts) == seen.rows
    if ok and verify == "content":
        back = checksum_files(store, paths, schema, partition)
        written, ok = back.value, back == seen
    if not ok or (expected_rows is not None and expected_rows != seen.rows):
        raise CompactionError(
            partition,
            f"rows written ({written}) differ from rows read ({seen.value}, "
            f"{expected_rows} expected); {outcome}",
        )
