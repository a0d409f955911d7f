"""The rolling writer: failures leave nothing behind."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest

from lake_pipelines.datasets import get_dataset
from lake_pipelines.lake.ingest.readers import read_file
from lake_pipelines.lake.parquet.writer import RollingParquetWriter, _Lane
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.sample_data import generate_events

EVENTS = get_dataset("events")


@pytest.mark.parametrize("encoders", [1, 2])
def test_an_encoder_failure_surfaces_in_the_caller_and_abort_leaves_nothing(
    local_store: ObjectStore, monkeypatch: pytest.MonkeyPatch, encoders: int
) -> None:
    day = date(2026, 11, 1)
    generate_events(local_store, day, days=1, rows_per_day=3000, seed=3, bad_rows=False)
    key = local_store.list(f"landing/events/{day}")[0].key
    table = pa.concat_tables([b.table for b in read_file(local_store, key, EVENTS)])
    writer = RollingParquetWriter(
        local_store, EVENTS, "out", "x", row_group_bytes=1 << 14, encoders=encoders
    )
    real = writer._write_group
    calls = []

    def flaky(lane: _Lane, group: pa.Table) -> None:  # runs on an encoder thread
        calls.append(group.num_rows)
        if len(calls) == 3:
            raise OSError("disk full")
        real(lane, group)

    monkeypatch.setattr(writer, "_write_group", flaky)
    with pytest.raises(OSError, match="disk full"):
        for i in range(0, table.num_rows, 100):
            writer.write(table.slice(i, 100))
        writer.close()
    written = [f.tmp_path for f in writer.files]
    assert written  # the first groups were written before the failure
    writer.abort()
    assert not any(local_store.arrow_fs.get_file_info(p).is_file for p in written)
    assert local_store.fs.find(local_store.path("out")) == []  # nothing, hidden or not


def test_a_writer_that_fails_to_open_its_file_leaves_nothing_behind(
    local_store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The staged file exists from the moment the output stream opens; if the Parquet
    writer then fails, `abort` still removes it."""
    import pyarrow.parquet as pq

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("no writer today")

    monkeypatch.setattr(pq, "ParquetWriter", refuse)
    writer = RollingParquetWriter(local_store, EVENTS, "out", "x")
    table = pa.table({"event_id": ["e1"]}).cast(pa.schema([pa.field("event_id", pa.string())]))
    with pytest.raises(OSError, match="no writer today"):
        writer.write(table)
        writer.close()
    writer.abort()
    assert local_store.fs.find(local_store.path("out")) == []
