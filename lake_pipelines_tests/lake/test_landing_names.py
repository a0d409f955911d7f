"""Landed file names and links: any name a store allows is read, a link leading out is
quarantined as a file; a day never fails on a name.

Rows are read back by DuckDB from the bronze folder, not by lake_pipelines' readers.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest

from lake_pipelines.datasets import get_dataset
from lake_pipelines.lake import layout
from lake_pipelines.lake.bronze import bronze_files, ingest_day, read_lineage
from lake_pipelines.lake.ingest import quarantine
from lake_pipelines.lake.landing.listing import list_landed
from lake_pipelines.lake.storage import ObjectStore, split_uri
from lake_pipelines_tests.conftest import S3Server
from lake_pipelines_tests.support import duckdb_query

SPEC = get_dataset("events")
DAY = date(2026, 3, 9)
HEADER = "event_id,ts,user_id,session_id,event_type,url,price,properties,latencies_ms\n"
# Every one a valid object key and a valid local file name.
NAMES = [
    "a b.csv",
    "q?x=1.csv",
    "h#frag.csv",
    "p%20q%2F.csv",
    "ünïcødé-日本.csv",
    "-leading-dash.csv",
    "--.csv",
    "new\nline.csv",
    "tab\there.csv",
    "quote'\"s.csv",
    "semi;colon&amp.csv",
]


def _land(store: ObjectStore, names: list[str], s3: S3Server | None = None) -> dict[str, str]:
    """One row per file, its event id naming the file; {event_id: name}. On S3 the files are
    put by boto3, as a producer would."""
    ids = {}
    for i, name in enumerate(names):
        event_id = f"name-{i}"
        body = (HEADER + f"{event_id},{DAY}T01:00:00Z,u1,s1,click,,,,\n").encode()
        key = f"{SPEC.landing_prefix}/{DAY}/{name}"
        if s3 is None:
            store.write_bytes(key, body)
        else:
            bucket, prefix = store.root.split("/", 1)
            s3.client().put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=body)
        ids[event_id] = name
    return ids


def _bronze_ids(store: ObjectStore) -> set[str]:
    if store.scheme == "file":
        folder = store.path(layout.bronze_dir(SPEC, DAY)).replace("'", "''")
        table = duckdb_query(f"SELECT event_id FROM read_parquet('{folder}/*.parquet')")
    else:
        import pyarrow.dataset as ds

        paths = [store.path(e.key) for e in bronze_files(store, SPEC, DAY)]
        table = ds.dataset(paths, format="parquet", filesystem=store.arrow_fs).to_table()
    return set(table.column("event_id").to_pylist())


@pytest.fixture
def odd_store(tmp_path: Path) -> ObjectStore:
    """A local lake whose own path holds ``#``, ``?``, ``%`` and a space."""
    root = tmp_path / "my lake #1 ?v=2 %41"
    return ObjectStore(f"file://{root}")


def test_local_root_with_hash_and_question_mark_is_a_path(odd_store: ObjectStore) -> None:
    assert odd_store.root.endswith("my lake #1 ?v=2 %41")
    key = f"{SPEC.landing_prefix}/{DAY}/h#frag?x.csv"
    assert odd_store.key_of(odd_store.path(key)) == key
    assert odd_store.key_of(odd_store.uri(key)) == key
    assert split_uri("s3://bucket/a?b#c") == ("s3", "bucket/a?b#c")
    assert split_uri("/plain/a#b") == ("", "/plain/a#b")


@pytest.mark.parametrize("where", ["local", "s3"])
def test_every_name_a_store_allows_is_read(
    where: str, odd_store: ObjectStore, request: pytest.FixtureRequest
) -> None:
    store = odd_store if where == "local" else request.getfixturevalue("s3_store")
    # moto's server answers 404 to any key holding a newline (S3 itself takes it)
    names = NAMES if where == "local" else [n for n in NAMES if "\n" not in n]
    ids = _land(store, names, None if where == "local" else request.getfixturevalue("s3_server"))
    listed = list_landed(store, SPEC.landing_prefix, None)  # what the sensor sees
    assert sorted(f.key.rsplit("/", 1)[1] for f in listed) == sorted(names)

    report = ingest_day(store, SPEC, DAY)

    assert report.file_rejects == []
    assert report.rows_read == report.rows_written == len(names)
    assert _bronze_ids(store) == set(ids)
    lineage = read_lineage(store, SPEC, DAY)
    assert lineage is not None
    assert sorted(f.path.rsplit("/", 1)[1] for f in lineage) == sorted(names)


def test_links_are_followed_inside_the_landing_folder_only(odd_store: ObjectStore) -> None:
    ids = _land(odd_store, ["real.csv"])
    folder = Path(odd_store.path(f"{SPEC.landing_prefix}/{DAY}"))
    outside = Path(odd_store.root).parent / "secret.csv"
    outside.write_text(HEADER + f"secret,{DAY}T01:00:00Z,u1,s1,click,,,,\n")
    os.symlink(folder / "real.csv", folder / "inside-link.csv")
    os.symlink(outside, folder / "outside-link.csv")
    os.symlink("/nonexistent/gone.csv", folder / "dangling.csv")
    other_day = folder.parent / "2026-03-10"
    other_day.mkdir()
    os.symlink(folder / "real.csv", other_day / "from-another-day.csv")  # inside the root

    report = ingest_day(odd_store, SPEC, DAY)

    assert _bronze_ids(odd_store) == set(ids)  # the inside link read the same row again
    assert report.rows_read == report.rows_written == 2
    rejected = {r.source.rsplit("/", 1)[1]: r.reason for r in report.file_rejects}
    assert sorted(rejected) == ["dangling.csv", "outside-link.csv"]
    assert (
        "outside" in rejected["outside-link.csv"] and str(outside) in rejected["outside-link.csv"]
    )
    assert "/nonexistent/gone.csv" in rejected["dangling.csv"]
    stored = quarantine.read(odd_store, SPEC.name, DAY).to_pylist()
    assert sorted((r["kind"], r["source_file"].rsplit("/", 1)[1]) for r in stored) == [
        ("file", "dangling.csv"),
        ("file", "outside-link.csv"),
    ]
    assert "secret" not in _bronze_ids(odd_store)
    assert ingest_day(odd_store, SPEC, DAY + (date(2026, 3, 10) - DAY)).rows_read == 1


def test_a_file_gone_between_listing_and_reading_is_quarantined(
    local_store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _land(local_store, ["stays.csv", "goes.csv"])
    real_list = ObjectStore.list

    def list_then_delete(self: ObjectStore, prefix: str, *args, **kwargs):
        found = real_list(self, prefix, *args, **kwargs)
        if prefix.startswith(SPEC.landing_prefix):
            Path(self.path(f"{SPEC.landing_prefix}/{DAY}/goes.csv")).unlink(missing_ok=True)
        return found

    monkeypatch.setattr(ObjectStore, "list", list_then_delete)
    report = ingest_day(local_store, SPEC, DAY)
    assert report.rows_written == 1
    assert [r.source.rsplit("/", 1)[1] for r in report.file_rejects] == ["goes.csv"]
    assert "cannot be opened" in report.file_rejects[0].reason
