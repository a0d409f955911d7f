"""Iceberg compaction SIGKILLed mid-run changes nothing."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import Table

from lake_pipelines.lake.compaction.iceberg import compact_iceberg
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines_tests.lake.compaction.data import ICE_SPEC, SPEC, TUNING, data_file_rows
from lake_pipelines_tests.support import current_snapshot, rows

# -- Iceberg: killed mid-run --------------------------------------------------------------------

ICE_DRIVER = r"""
import dataclasses, json, os, signal, sys
from pyiceberg.catalog.sql import SqlCatalog
from lake_pipelines.datasets import get_dataset
from lake_pipelines.datasets.spec import CompactionPolicy
from lake_pipelines.lake.parquet import writer as parquet
from lake_pipelines.lake.compaction.iceberg import compact_iceberg
from lake_pipelines.lake.compaction.options import CompactionOptions
from lake_pipelines.lake.storage import ObjectStore

args = json.loads(sys.argv[1])
spec = dataclasses.replace(get_dataset("events"), compaction=CompactionPolicy(**args["policy"]))
store = ObjectStore(args["url"])
catalog = SqlCatalog("lake", uri=args["uri"], warehouse=store.uri("warehouse"),
                     **store.iceberg_properties())


def die(*_a, **_k):
    os.kill(os.getpid(), signal.SIGKILL)


if args["point"] == "write":  # once the first output row group is written
    write_group = parquet.RollingParquetWriter._write_group

    def write_then_die(self, lane, group):
        write_group(self, lane, group)
        lane.sink.flush()
        die()

    parquet.RollingParquetWriter._write_group = write_then_die
else:  # the new table metadata is written, the catalog not yet pointed at it
    real = SqlCatalog._write_metadata

    def write_then_die(metadata, io, metadata_path):
        real(metadata, io, metadata_path)
        die()

    SqlCatalog._write_metadata = staticmethod(write_then_die)
compact_iceberg(store, catalog.load_table(spec.table_name), spec,
                options=CompactionOptions(**args["tuning"]))
"""


@pytest.mark.parametrize("point", ["write", "metadata"])
def test_a_killed_iceberg_compaction_changes_nothing_and_reruns(
    local_store: ObjectStore,
    local_catalog: SqlCatalog,
    tiny_table: tuple[Table, pa.Table],
    tmp_path: Path,
    point: str,
) -> None:
    """SIGKILL while writing the new files, or between writing the new metadata and pointing
    the catalog at it: the table is as before, a re-run compacts, and what the killed run left
    behind is found by orphan cleanup (and only that)."""
    from lake_pipelines.lake.iceberg.maintenance import find_orphans, remove_orphans

    table, original = tiny_table
    before = current_snapshot(table).snapshot_id
    args = {
        "point": point,
        "url": local_store.url,
        "uri": f"sqlite:///{tmp_path / 'catalog.db'}",
        "policy": dataclasses.asdict(ICE_SPEC.compaction),
        "tuning": dataclasses.asdict(TUNING),
    }
    done = subprocess.run(
        [sys.executable, "-c", ICE_DRIVER, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]

    table = local_catalog.load_table(SPEC.table_name)
    assert current_snapshot(table).snapshot_id == before
    assert rows(data_file_rows(table)) == rows(original)
    left = find_orphans(table, local_store, older_than=timedelta(0))
    assert left  # the killed run's files, referenced by nothing
    if point == "metadata":
        assert any(p.endswith(".metadata.json") for p, _ in left)

    report = compact_iceberg(local_store, table, ICE_SPEC, options=TUNING)
    assert [r.status for r in report.results] == ["compacted", "compacted"]
    table = local_catalog.load_table(SPEC.table_name)
    assert rows(data_file_rows(table)) == rows(original)
    removed = remove_orphans(table, local_store, older_than=timedelta(0), dry_run=False)
    assert set(removed.orphans) >= {p for p, _ in left}
    assert find_orphans(table, local_store, older_than=timedelta(0)) == []
    assert rows(table.scan().to_arrow()) == rows(original)  # nothing referenced was removed
