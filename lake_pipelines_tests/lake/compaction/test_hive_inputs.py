"""Hive compaction: inputs read with the planner's footers, and inputs that break meanwhile."""

from __future__ import annotations

import os
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake_pipelines.lake.compaction import hive as compaction_hive
from lake_pipelines.lake.compaction.hive import compact_hive, plan_hive
from lake_pipelines.lake.compaction.plan import CompactionError, FileStat, PartitionPlan
from lake_pipelines.lake.compaction.rewrite import read_small_files
from lake_pipelines.lake.layout import bronze_dir
from lake_pipelines.lake.parquet.options import file_schema, writer_options
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines_tests.lake.compaction.data import (
    DAY,
    ORDER,
    SPEC,
    TUNING,
    events,
    hive_rows,
    land_tiny_files,
    visible,
)
from lake_pipelines_tests.support import rows

SCHEMA = file_schema(SPEC)


def _victim(store: ObjectStore) -> tuple[FileStat, PartitionPlan]:
    land_tiny_files(store, DAY, 10, 3, seed=4)
    (plan,) = plan_hive(store, SPEC)
    return plan.bins[0].files[0], plan


def test_the_rewrite_reads_with_the_planned_footers(local_store: ObjectStore) -> None:
    """The planner keeps each small file's parsed footer; the files read with them give the
    same rows as read on their own (pyarrow, each footer parsed again)."""
    land_tiny_files(local_store, DAY, 10, 3, seed=4)
    (plan,) = plan_hive(local_store, SPEC)
    files = list(plan.bins[0].files)
    assert all(f.footer is not None and f.footer.num_rows == f.rows for f in files)

    table, counts = read_small_files(local_store, files, SCHEMA, plan.partition)

    alone = [pq.read_table(local_store.path(f.path)) for f in files]
    assert counts == [t.num_rows for t in alone] == [3] * len(files)
    assert rows(table) == rows(pa.concat_tables(alone))
    assert all(c.num_chunks == 1 for c in table.columns)  # one chunk per column


def test_a_planned_footer_is_not_used_for_a_file_replaced_meanwhile(
    local_store: ObjectStore,
) -> None:
    """A file replaced after planning (the day re-ingested) is decoded with its own footer:
    its new rows, never the new bytes read through the old footer."""
    victim, plan = _victim(local_store)
    replacement = events(np.random.default_rng(9), DAY, 5, 900).sort_by(ORDER)
    pq.write_table(replacement, local_store.path(victim.path), **writer_options(SPEC))

    table, counts = read_small_files(local_store, [victim], SCHEMA, plan.partition)

    assert counts == [5]
    assert rows(table) == rows(replacement)


def test_an_input_corrupted_after_planning_skips_the_partition(local_store: ObjectStore) -> None:
    victim, plan = _victim(local_store)
    before = visible(local_store, DAY)
    with open(local_store.path(victim.path), "wb") as f:  # a half-written replacement
        f.write(b"PAR1 not parquet")

    result = compaction_hive.compact_hive_partition(local_store, SPEC, plan, TUNING)

    assert result.status == "skipped" and victim.path in result.reason
    assert visible(local_store, DAY) == before  # no output, no temporary file


def test_an_unreadable_input_that_did_not_change_is_named(local_store: ObjectStore) -> None:
    """Pages damaged in place (same size, same modification time): the run stops with the
    file's name and changes nothing, instead of a reader's stack trace."""
    victim, plan = _victim(local_store)
    path = local_store.path(victim.path)
    before, original = visible(local_store, DAY), rows(hive_rows(local_store))
    stat = os.stat(path)
    with open(path, "r+b") as f:  # the column data, between the magic and the footer
        f.seek(4)
        f.write(b"\xff" * (victim.size - victim.footer.serialized_size - 16))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    with pytest.raises(CompactionError, match=re.escape(f"{victim.path} cannot be read")) as caught:
        compaction_hive.compact_hive_partition(local_store, SPEC, plan, TUNING)

    assert "nothing was changed" in str(caught.value)
    assert visible(local_store, DAY) == before
    os.remove(path)  # the rest of the day is untouched
    assert len(rows(hive_rows(local_store))) == len(original) - 3


def test_an_input_that_is_not_parquet_at_planning_is_named(local_store: ObjectStore) -> None:
    land_tiny_files(local_store, DAY, 10, 3, seed=4)
    before = visible(local_store, DAY)
    broken = f"{local_store.path(bronze_dir(SPEC, DAY))}/part-broken.parquet"
    with open(broken, "wb") as f:
        f.write(b"not parquet at all")

    with pytest.raises(
        CompactionError, match=re.escape("part-broken.parquet is not a readable Parquet")
    ):
        compact_hive(local_store, SPEC, options=TUNING)

    assert visible(local_store, DAY) == sorted([*before, "part-broken.parquet"])
