"""Planning the Hive layer: partitions from the listing, file statistics from Parquet footers.

Sizes come from the listing; for the small files, the footers add the row count, the
compressed data size (what a file adds to a merged one) and the minimum of the first sort
column, which lets the rewrite stream files whose key ranges do not overlap. The parsed
footers of up to KEPT_FOOTERS small files are kept on their `FileStat` for the rewrite, which
then decodes those files without parsing their footers again.
"""

from __future__ import annotations

import json
import posixpath
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lake_pipelines.datasets.spec import CompactionPolicy, DatasetSpec
from lake_pipelines.lake.compaction.plan import (
    CompactionError,
    FileStat,
    PartitionPlan,
    plan_partition,
)
from lake_pipelines.lake.storage import FileEntry, ObjectStore

FOOTER_READERS = 8  # footer reads in flight on an object store (latency-bound)
# On local disks a footer read is CPU (pyarrow's parsing, under the GIL): more threads only
# contend (2,000 footers: 0.47 s with two, 0.55 s with eight).
LOCAL_FOOTER_READERS = 2
# Parsed footers kept for the rewrite (~25 KiB each for an 11-column file, ~100 MiB at most):
# the bins of a busy day or two; a dataset with years of small files re-reads the rest.
KEPT_FOOTERS = 4096


def _stat(
    store: ObjectStore,
    entry: FileEntry,
    *,
    footer_below: int,
    sort_key: str | None,
    keep: bool,
    partition: str,
) -> FileStat:
    """The file's size, and for a file under `footer_below` bytes its rows, compressed data
    bytes and `sort_key` min from its footer (and with `keep` the parsed footer itself).

    Raises:
        CompactionError: the file is not readable Parquet (named, with the reader's reason).
    """
    if entry.size >= footer_below:
        return FileStat(entry.key, entry.size, version=entry.version)
    try:
        meta = pq.read_metadata(store.path(entry.key), filesystem=store.arrow_fs)
    except FileNotFoundError:  # gone since listed: the rewrite will find the partition changed
        return FileStat(entry.key, entry.size, version=entry.version)
    except pa.ArrowInvalid as exc:
        raise CompactionError(
            partition, f"{entry.key} is not a readable Parquet file: {exc}"
        ) from exc
    groups = [meta.row_group(i) for i in range(meta.num_row_groups)]
    data = sum(rg.column(c).total_compressed_size for rg in groups for c in range(rg.num_columns))
    return FileStat(
        entry.key,
        entry.size,
        meta.num_rows,
        entry.version,
        data,
        _key_min(groups, sort_key),
        meta if keep else None,
    )


def _key_min(groups: list[pq.RowGroupMetaData], column: str | None) -> Any:
    """The smallest `column` value over the row groups' statistics; None if any lacks them."""
    lows = []
    for rg in groups:
        stats = next(
            (
                rg.column(c).statistics
                for c in range(rg.num_columns)
                if rg.column(c).path_in_schema == column
            ),
            None,
        )
        if stats is None or not stats.has_min_max:
            return None
        lows.append(_stats_min(stats))
    try:
        return min(lows) if lows else None
    except TypeError:
        return None


_EPOCH = datetime(1970, 1, 1)
_PER_SECOND = {"milliseconds": 1_000, "microseconds": 1_000_000}


def _stats_min(stats: pq.Statistics) -> Any:
    """A column chunk's minimum as Python. A ms/us timestamp is decoded here from the stored
    integer: pyarrow's `Statistics.min` makes a time zone object per call (~5 ms; planning
    2,000 small files spent ~2 s on it)."""
    logical = stats.logical_type
    if logical is not None and logical.type == "TIMESTAMP":
        info = json.loads(logical.to_json())
        per_second = _PER_SECOND.get(info.get("timeUnit", ""))
        if per_second is not None and isinstance(stats.min_raw, int):
            seconds, rest = divmod(stats.min_raw, per_second)
            value = _EPOCH + timedelta(seconds=seconds, microseconds=rest * 1_000_000 // per_second)
            return value.replace(tzinfo=UTC) if info.get("isAdjustedToUTC") else value
    return stats.min


def plan_hive(
    store: ObjectStore,
    spec: DatasetSpec,
    policy: CompactionPolicy | None = None,
    with_rows: bool = True,
) -> list[PartitionPlan]:
    """One plan per partition directory of the dataset's bronze layer, in directory order.

    Args:
        with_rows: read the row count and data size of every small file from its Parquet
            footer (one small read per file); health checks that only need sizes turn it off.
    """
    policy = policy or spec.compaction
    prefix = spec.bronze_prefix
    by_dir: dict[str, list[FileEntry]] = defaultdict(list)
    for entry in store.list(prefix, suffixes=(".parquet",)):
        by_dir[posixpath.dirname(entry.key)[len(prefix) + 1 :]].append(entry)
    plans = []
    key = spec.sort_by[0] if spec.sort_by else None
    # Footer reads are small and latency-bound on an object store: a few at a time.
    readers = LOCAL_FOOTER_READERS if store.scheme == "file" else FOOTER_READERS
    kept = 0
    with ThreadPoolExecutor(readers) as pool:
        for partition in sorted(by_dir):
            entries = by_dir[partition]
            small = sum(1 for e in entries if e.size < policy.small_file_bytes)
            keep = with_rows and kept + small <= KEPT_FOOTERS
            kept += small if keep else 0
            stat = partial(
                _stat,
                store,
                footer_below=policy.small_file_bytes if with_rows else 0,
                sort_key=key,
                keep=keep,
                partition=partition,
            )
            stats = list(pool.map(stat, entries))
            plans.append(plan_partition("bronze", partition, stats, policy))
    return plans
