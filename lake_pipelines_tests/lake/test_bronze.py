"""Landing → bronze on a local lake, checked with DuckDB and Parquet footers, not our readers."""

from __future__ import annotations

import json
from datetime import date

import pyarrow.parquet as pq
import pytest

from lake_pipelines.datasets import get_dataset
from lake_pipelines.errors import RowAccountingError
from lake_pipelines.lake import bronze as bronze_mod
from lake_pipelines.lake import layout, progress
from lake_pipelines.lake.bronze import ingest_day
from lake_pipelines.lake.ingest import quarantine
from lake_pipelines.lake.layout import bronze_dir, landing_dir
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.sample_data import generate_events
from lake_pipelines_tests.support import duckdb_hive, duckdb_query, rows

SPEC = get_dataset("events")
DAY = date(2026, 11, 3)
COLUMNS = list(SPEC.schema.names)


@pytest.fixture
def landed(local_store: ObjectStore):
    # one day, with bad rows and (being the last day) one truncated file
    return generate_events(local_store, DAY, days=1, rows_per_day=600, seed=7)[0]


def test_bronze_holds_exactly_the_valid_rows(local_store: ObjectStore, landed) -> None:
    report = ingest_day(local_store, SPEC, DAY, run_id="r1")
    got = duckdb_hive(local_store.path(SPEC.bronze_prefix), [*COLUMNS, "year", "month", "day"])
    assert rows(got, columns=COLUMNS) == rows(landed.valid)
    assert set(got.column("day").to_pylist()) == {3}
    assert set(got.column("month").to_pylist()) == {11}
    assert report.rows_read == report.rows_written + report.rows_quarantined
    assert report.rows_written == landed.valid.num_rows
    assert report.rows_quarantined == landed.bad_rows
    assert len(report.file_rejects) == landed.bad_files == 1


def test_quarantine_records_file_line_and_reason(local_store: ObjectStore, landed) -> None:
    ingest_day(local_store, SPEC, DAY, run_id="r1")
    q = quarantine.read(local_store, SPEC.name, DAY).to_pylist()
    by_kind = {k: [r for r in q if r["kind"] == k] for k in ("row", "file")}
    assert len(by_kind["row"]) == landed.bad_rows and len(by_kind["file"]) == 1
    teleport = next(r for r in by_kind["row"] if "teleport" in r["reason"])
    assert teleport["column"] == "event_type" and teleport["source_file"].endswith("batch-00.csv")
    # the generator appends the bad rows after 150 good ones and the header: lines 152 and 153
    assert teleport["line"] == 152
    price = next(r for r in by_kind["row"] if "n/a" in r["reason"])
    assert price["column"] == "price" and price["line"] == 153
    broken = next(r for r in by_kind["row"] if r["source_file"].endswith(".ndjson"))
    assert broken["reason"].startswith("invalid JSON") and broken["line"] == 151
    assert "decompress" in by_kind["file"][0]["reason"]
    assert by_kind["file"][0]["source_file"].endswith("batch-99.csv.gz")
    assert all(r["run_id"] == "r1" for r in q)


def test_rerun_replaces_instead_of_adding(local_store: ObjectStore, landed) -> None:
    first = ingest_day(local_store, SPEC, DAY, run_id="r1")
    keys_first = sorted(f.key for f in first.outputs)
    second = ingest_day(local_store, SPEC, DAY, run_id="r2")
    assert sorted(f.key for f in second.outputs) == keys_first
    got = duckdb_hive(local_store.path(SPEC.bronze_prefix), COLUMNS)
    assert got.num_rows == landed.valid.num_rows
    q = quarantine.read(local_store, SPEC.name, DAY)
    assert q.num_rows == landed.bad_rows + landed.bad_files
    assert set(q.column("run_id").to_pylist()) == {"r2"}


def test_files_of_removed_sources_disappear_on_rerun(local_store: ObjectStore, landed) -> None:
    ingest_day(local_store, SPEC, DAY)
    local_store.delete([landed.files[0]])
    ingest_day(local_store, SPEC, DAY)
    got = duckdb_hive(local_store.path(SPEC.bronze_prefix), ["event_id"])
    removed = landed.valid.slice(0, 150).column("event_id").to_pylist()
    assert got.num_rows == landed.valid.num_rows - 150
    assert not set(removed) & set(got.column("event_id").to_pylist())


def test_report_carries_the_day_as_read_back_from_storage(local_store: ObjectStore, landed) -> None:
    report = ingest_day(local_store, SPEC, DAY)
    parquet = duckdb_query(
        f"SELECT COUNT(*) AS n FROM read_parquet('{local_store.path(bronze_dir(SPEC, DAY))}/*.parquet')"
    )
    q = duckdb_query(
        f"SELECT COUNT(*) AS n FROM read_parquet('{local_store.path(layout.quarantine_key(SPEC.name, DAY))}') "
        "WHERE kind = 'row'"
    )
    assert report.stored.rows_in_parquet == parquet.column("n")[0].as_py() == landed.valid.num_rows
    assert report.stored.rows_in_quarantine == q.column("n")[0].as_py() == landed.bad_rows
    assert report.rows_read == report.stored.rows_in_parquet + report.stored.rows_in_quarantine


def test_stored_counts_see_what_is_stored_not_what_was_counted(
    local_store: ObjectStore, landed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stale file the commit failed to remove shows in the read-back, not in the counters."""
    ingest_day(local_store, SPEC, DAY)
    stale = [k for k in local_store.list(bronze_dir(SPEC, DAY)) if k.key.endswith(".parquet")]
    local_store.delete([landed.files[0]])
    monkeypatch.setattr(ObjectStore, "delete", lambda self, keys: None)
    report = ingest_day(local_store, SPEC, DAY)
    footers = sum(pq.read_metadata(local_store.path(e.key)).num_rows for e in stale)
    assert report.rows_written == landed.valid.num_rows - 150
    assert report.stored.rows_in_parquet == footers == landed.valid.num_rows
    assert report.rows_read != report.stored.rows_in_parquet + report.stored.rows_in_quarantine


def test_lineage_manifest_lists_every_landed_file_and_what_it_became(
    local_store: ObjectStore, landed
) -> None:
    listing = {e.key: e for e in local_store.list(landing_dir(SPEC, DAY))}
    report = ingest_day(local_store, SPEC, DAY, run_id="r1")
    manifest = bronze_mod.read_lineage(local_store, SPEC, DAY)
    assert manifest == report.lineage
    assert [f.path for f in manifest] == sorted(landed.files) == sorted(listing)
    for f in manifest:
        assert (f.size, f.etag, f.version) == (
            listing[f.path].size,
            listing[f.path].etag,
            listing[f.path].version,
        )
    whole = [f for f in manifest if f.quarantined_whole]
    assert [f.path for f in whole] == [r.source for r in report.file_rejects]
    assert all(not f.outputs and not f.rows_written for f in whole)
    loaded = [f for f in manifest if not f.quarantined_whole]
    outputs = [o for f in loaded for o in f.outputs]
    assert sorted(outputs) == sorted(o.key for o in report.outputs)
    for f in loaded:  # each source's rows, from the footers of the files named after it
        footers = sum(pq.read_metadata(local_store.path(o)).num_rows for o in f.outputs)
        assert f.rows_written == footers and f.rows_read == footers + f.rows_quarantined
    assert sum(f.rows_quarantined for f in manifest) == landed.bad_rows
    # hidden from readers: the day's listing and DuckDB see Parquet only
    key = layout.bronze_lineage_key(SPEC, DAY)
    assert local_store.exists(key) and key not in {
        e.key for e in local_store.list(SPEC.bronze_prefix)
    }
    assert json.loads(local_store.read_bytes(key))["run_id"] == "r1"
    # a re-run without one source drops it from the manifest
    local_store.delete([landed.files[0]])
    ingest_day(local_store, SPEC, DAY)
    again = bronze_mod.read_lineage(local_store, SPEC, DAY)
    assert again is not None and [f.path for f in again] == sorted(landed.files[1:])


def test_a_crash_mid_run_leaves_the_previous_partition_untouched(
    local_store: ObjectStore, landed, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest_day(local_store, SPEC, DAY, run_id="good")
    before = rows(duckdb_hive(local_store.path(SPEC.bronze_prefix), COLUMNS))
    calls = {"n": 0}
    real = bronze_mod.validate

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk on fire")
        return real(*args, **kwargs)

    monkeypatch.setattr(bronze_mod, "validate", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        ingest_day(local_store, SPEC, DAY, run_id="crash")
    assert rows(duckdb_hive(local_store.path(SPEC.bronze_prefix), COLUMNS)) == before
    leftovers = local_store.fs.find(local_store.path(bronze_dir(SPEC, DAY)))
    assert not [p for p in leftovers if p.endswith(".tmp")]
    assert set(quarantine.read(local_store, SPEC.name, DAY).column("run_id").to_pylist()) == {
        "good"
    }


def test_row_accounting_mismatch_commits_nothing(
    local_store: ObjectStore, landed, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = bronze_mod.validate

    def leaky(batch, *args, **kwargs):
        checked = real(batch, *args, **kwargs)
        checked.rejects = checked.rejects[1:]  # a row vanishes: must be caught
        return checked

    monkeypatch.setattr(bronze_mod, "validate", leaky)
    with pytest.raises(RowAccountingError, match="nothing was committed"):
        ingest_day(local_store, SPEC, DAY)
    assert local_store.list(SPEC.bronze_prefix) == []
    assert not local_store.exists(layout.quarantine_key(SPEC.name, DAY))


def test_parquet_is_written_on_purpose(local_store: ObjectStore, landed) -> None:
    report = ingest_day(local_store, SPEC, DAY, row_group_bytes=8 << 10)
    metas = {o.key: pq.read_metadata(local_store.path(o.key)) for o in report.outputs}
    key = max(metas, key=lambda k: metas[k].num_row_groups)
    path, meta = local_store.path(key), metas[key]
    assert meta.metadata[b"created_by"].startswith(b"lake_pipelines ")
    assert meta.num_row_groups > 1  # row groups cut by bytes, not one per file
    columns = {
        meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i)
        for i in range(meta.num_columns)
    }
    assert columns["ts"].compression == "ZSTD"
    assert columns["ts"].statistics is not None and columns["ts"].statistics.has_min_max
    assert all(c.has_column_index and c.has_offset_index for c in columns.values())  # page index
    assert "RLE_DICTIONARY" in columns["event_type"].encodings
    assert "RLE_DICTIONARY" in columns["properties.browser"].encodings
    assert "RLE_DICTIONARY" not in columns["event_id"].encodings
    # sorted timestamps as packed deltas, not a dictionary that overflows
    assert "DELTA_BINARY_PACKED" in columns["ts"].encodings
    assert "RLE_DICTIONARY" not in columns["ts"].encodings
    assert columns["url"].compression == "ZSTD"
    assert pq.ParquetFile(path).metadata.row_group(0).sorting_columns
    for i in range(meta.num_row_groups):
        ts = pq.ParquetFile(path).read_row_group(i, columns=["ts"]).column("ts").to_pylist()
        assert ts == sorted(ts)
    # sized by bytes: half the bytes, about half the rows per group
    big = meta.row_group(0).num_rows
    report = ingest_day(local_store, SPEC, DAY, row_group_bytes=4 << 10)
    small = pq.read_metadata(local_store.path(key)).row_group(0).num_rows
    assert 1.7 < big / small < 2.3, (small, big)


def test_hidden_and_temporary_landing_files_are_not_ingested(local_store: ObjectStore) -> None:
    good = "event_id,ts,user_id,session_id,event_type,url,price,properties,latencies_ms\n"
    good += "e1,2026-11-03T10:00:00Z,u1,s1,click,,,,\n"
    for key in (
        f"landing/events/{DAY}/a.csv",
        f"landing/events/{DAY}/_tmp/b.csv",
        f"landing/events/{DAY}/.c.csv",
        f"landing/events/{DAY}/d.csv.inprogress",
    ):
        local_store.write_bytes(key, good.replace("e1", key.rsplit("/", 1)[-1]).encode())
    report = ingest_day(local_store, SPEC, DAY)
    assert [s.key for s in report.sources] == [f"landing/events/{DAY}/a.csv"]
    assert report.rows_written == 1


def test_stale_staging_files_are_cleared_but_young_ones_kept(
    local_store: ObjectStore, landed
) -> None:
    import os
    import time

    ingest_day(local_store, SPEC, DAY)
    directory = local_store.path(bronze_dir(SPEC, DAY))
    old, young = f"{directory}/.part-x.parquet.tmp", f"{directory}/.part-y.parquet.tmp"
    for p in (old, young):
        with open(p, "wb") as f:
            f.write(b"partial")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    ingest_day(local_store, SPEC, DAY)
    assert not os.path.exists(old) and os.path.exists(young)


def test_a_column_encoding_from_the_spec_is_used(local_store: ObjectStore, landed) -> None:
    from dataclasses import replace

    from lake_pipelines.datasets.spec import ColumnCodec
    from lake_pipelines.errors import ConfigError

    codecs = {
        **SPEC.codecs,
        "ts": ColumnCodec(dictionary=True),
        "price": ColumnCodec(encoding="BYTE_STREAM_SPLIT"),
    }
    report = ingest_day(local_store, replace(SPEC, codecs=codecs), DAY)
    meta = pq.read_metadata(local_store.path(report.outputs[0].key)).row_group(0)
    encodings = {
        meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)
    }
    assert "RLE_DICTIONARY" in encodings["ts"] and "DELTA_BINARY_PACKED" not in encodings["ts"]
    assert "BYTE_STREAM_SPLIT" in encodings["price"]
    assert "RLE_DICTIONARY" in encodings["event_type"]  # the others as before
    with pytest.raises(ConfigError, match="either"):
        ColumnCodec(encoding="PLAIN", dictionary=True)
    with pytest.raises(ConfigError, match="dictionary=True instead"):
        ColumnCodec(encoding="RLE_DICTIONARY")


def test_row_groups_are_encoded_into_two_files_at_once_the_same_way_every_run(
    local_store: ObjectStore, landed
) -> None:
    """Two encoders take row groups in turn, each into its own file; a re-run of the same
    input writes the same files, byte for byte, and together they hold every row once."""
    import hashlib

    def run() -> dict[str, str]:
        report = ingest_day(local_store, SPEC, DAY, row_group_bytes=8 << 10)
        return {
            o.key: hashlib.sha256(local_store.read_bytes(o.key)).hexdigest() for o in report.outputs
        }

    first = run()
    per_source: dict[str, list[int]] = {}
    for key in first:
        stem, n = key.rsplit("-", 1)
        per_source.setdefault(stem, []).append(int(n.split(".")[0]))
    assert any(sorted(ns) == list(range(len(ns))) and len(ns) >= 2 for ns in per_source.values())
    assert run() == first
    got = duckdb_hive(local_store.path(SPEC.bronze_prefix), COLUMNS)
    assert rows(got, columns=COLUMNS) == rows(landed.valid)  # every valid row, once


def test_an_evolved_column_that_is_null_in_every_row_loads(local_store: ObjectStore) -> None:
    """In `evolve` mode a new NDJSON key that is null in every row arrives as Arrow type
    `null`; the writer's dictionary sizing leaves such columns alone, and nothing of a
    refused file may stay behind."""
    import json
    from dataclasses import replace

    from lake_pipelines.lake.layout import landing_dir

    spec = replace(SPEC, unknown_columns="evolve")
    lines = [
        json.dumps(
            {
                "event_id": f"e{i}",
                "ts": "2026-11-03T10:00:00Z",
                "user_id": "u",
                "session_id": "s",
                "event_type": "click",
                "coupon": None,
            }
        )
        for i in range(3)
    ]
    local_store.write_bytes(
        f"{landing_dir(spec, DAY)}/a.ndjson", ("\n".join(lines) + "\n").encode()
    )
    report = ingest_day(local_store, spec, DAY)
    assert report.rows_written == 3 and report.rows_quarantined == 0
    got = duckdb_hive(local_store.path(spec.bronze_prefix), ["event_id"])
    assert [r["event_id"] for r in rows(got)] == ["e0", "e1", "e2"]
    names = local_store.fs.find(local_store.path(bronze_dir(spec, DAY)))
    assert not [n for n in names if n.endswith(".tmp")]


def test_an_evolved_column_named_like_a_hive_level_is_quarantined_not_corrupted(
    local_store: ObjectStore,
) -> None:
    """`evolve` keeps unknown columns; one named ``Year`` or ``day`` would have its values
    replaced by the folder's in DuckDB and Polars. Rows holding a value there are quarantined
    with the reason; the others load, and every reader sees the folder levels as integers."""
    from dataclasses import replace

    spec = replace(SPEC, unknown_columns="evolve")
    head = "event_id,ts,user_id,session_id,event_type,Year\n"
    body = "e0,2026-11-03T10:00:00Z,u,s,click,1999\ne1,2026-11-03T11:00:00Z,u,s,click,\n"
    local_store.write_bytes(f"{landing_dir(spec, DAY)}/a.csv", (head + body).encode())
    record = {"event_id": "j0", "ts": "2026-11-03T12:00:00Z", "user_id": "u"}
    lines = [
        json.dumps({**record, "session_id": "s", "event_type": "click", "day": 7}),
        json.dumps({**record, "event_id": "j1", "session_id": "s", "event_type": "click"}),
    ]
    local_store.write_bytes(f"{landing_dir(spec, DAY)}/b.ndjson", "\n".join(lines).encode())
    report = ingest_day(local_store, spec, DAY)
    assert (report.rows_read, report.rows_written, report.rows_quarantined) == (4, 2, 2)
    reasons = quarantine.read(local_store, spec.name, DAY).to_pylist()
    assert sorted(r["column"] for r in reasons) == ["Year", "day"]
    assert all("hive_partition_columns" in r["reason"] for r in reasons)
    got = duckdb_query(
        f"SELECT event_id, year, day FROM read_parquet('{local_store.path(spec.bronze_prefix)}"
        "/**/*.parquet', hive_partitioning = true, union_by_name = true) ORDER BY event_id"
    ).to_pylist()
    assert [(r["event_id"], int(r["year"]), int(r["day"])) for r in got] == [
        ("e1", 2026, 3),
        ("j1", 2026, 3),
    ]


def test_a_long_day_reports_progress(
    local_store: ObjectStore, landed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress, "PROGRESS_INTERVAL", 0.0)  # a line per batch
    lines: list[str] = []
    report = ingest_day(local_store, SPEC, DAY, progress=lines.append)
    assert len(lines) >= 2
    assert all(line.startswith(f"bronze events {DAY}: ") for line in lines)
    assert lines[-1].split(": ")[1].startswith(f"{report.rows_read:,} rows")
