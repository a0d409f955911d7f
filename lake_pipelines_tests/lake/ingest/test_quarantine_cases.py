"""One case per kind of bad input: the reason it gets, and that nothing else is lost."""

from __future__ import annotations

import gzip
import itertools
import json
from datetime import date

import pytest

from lake_pipelines.datasets import get_dataset
from lake_pipelines.datasets.spec import UnknownColumns
from lake_pipelines.lake.bronze import ingest_day
from lake_pipelines.lake.ingest import quarantine
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines_tests.support import duckdb_hive

DAY = date(2026, 11, 5)
EVENTS = get_dataset("events")
ORDERS = get_dataset("orders")
HEADER = "event_id,ts,user_id,session_id,event_type,url,price,properties,latencies_ms\n"
GOOD_CSV = HEADER + "".join(
    f"g{i},2026-11-05T0{i}:00:00Z,u{i},s{i},click,https://x/{i},,,\n" for i in range(5)
)


def _row(event_id: str, **overrides: str) -> str:
    cells = {
        "event_id": event_id,
        "ts": "2026-11-05T10:00:00Z",
        "user_id": "u1",
        "session_id": "s1",
        "event_type": "click",
        "url": "",
        "price": "",
        "properties": "",
        "latencies_ms": "",
    }
    cells.update(overrides)
    return ",".join(cells.values()) + "\n"


def _order(order_id: str, **overrides: object) -> dict:
    doc = {
        "order_id": order_id,
        "ordered_at": "2026-11-05T10:00:00Z",
        "customer_id": "c1",
        "status": "paid",
        "currency": "EUR",
        "total": 10.5,
        "items": [{"sku": "a", "quantity": 1, "unit_price": 10.5}],
    }
    doc.update(overrides)
    return doc


# (case, dataset, file name, content, rejected rows, rejected files, reason fragment, column)
ROW_CASES = [
    (
        "too few fields",
        EVENTS,
        "bad.csv",
        HEADER + "b1,2026-11-05T10:00:00Z,u\n",
        1,
        "expected 9 fields, found 3",
        None,
    ),
    (
        "value does not convert",
        EVENTS,
        "bad.csv",
        HEADER + _row("b1", price="12,5".replace(",", ";")),
        1,
        "cannot convert to double",
        "price",
    ),
    (
        "not an allowed value",
        EVENTS,
        "bad.csv",
        HEADER + _row("b1", event_type="warp"),
        1,
        "isin",
        "event_type",
    ),
    ("out of range", EVENTS, "bad.csv", HEADER + _row("b1", price="-3"), 1, "in_range", "price"),
    (
        "required value missing",
        EVENTS,
        "bad.csv",
        HEADER + _row("b1", user_id=""),
        1,
        "user_id is null but required",
        "user_id",
    ),
    (
        "timestamp on another day",
        EVENTS,
        "bad.csv",
        HEADER + _row("b1", ts="2026-11-06T00:00:00Z"),
        1,
        "outside partition 2026-11-05",
        "ts",
    ),
    (
        "unknown CSV column (freeze)",
        EVENTS,
        "bad.csv",
        HEADER.rstrip() + ",extra\n" + _row("b1").rstrip() + ",surprise\n",
        1,
        "unknown column 'extra'",
        "extra",
    ),
    (
        "unknown JSON key (freeze)",
        EVENTS,
        "bad.ndjson",
        '{"event_id":"b1","ts":"2026-11-05T10:00:00Z","user_id":"u","session_id":"s","event_type":"click","extra":1}\n',
        1,
        "freeze",
        "extra",
    ),
    (
        "unknown key inside a CSV cell's struct (freeze)",
        EVENTS,
        "bad.csv",
        HEADER + _row("b1", properties='"{""browser"":""ff"",""zzz"":1}"'),
        1,
        "unknown key 'properties.zzz' (contract mode: freeze)",
        "properties",
    ),
    (
        "unknown key inside an NDJSON struct (freeze)",
        EVENTS,
        "bad.ndjson",
        '{"event_id":"b1","ts":"2026-11-05T10:00:00Z","user_id":"u","session_id":"s",'
        '"event_type":"click","properties":{"browser":"ff","zzz":null}}\n',
        1,
        "unknown key 'properties.zzz' (contract mode: freeze)",
        "properties",
    ),
    (
        "unknown key inside a list of structs (freeze)",
        ORDERS,
        "bad.json",
        json.dumps(
            [_order("o3"), _order("o4", items=[{"sku": "a", "quantity": 1, "coupon": "X"}])]
        ),
        1,
        "unknown key 'items[].coupon'",
        "items",
    ),
    ("broken JSON line", EVENTS, "bad.ndjson", '{"event_id": "b1", \n', 1, "invalid JSON", None),
    (
        "duplicate key in the day",
        ORDERS,
        "bad.json",
        json.dumps([_order("o1"), _order("o1")]),
        1,
        "duplicate",
        "order_id",
    ),
    (
        "numbers as strings are fine",
        ORDERS,
        "ok.json",
        json.dumps([_order("o2", total="10.50")]),
        0,
        "",
        None,
    ),
]


@pytest.mark.parametrize(
    "case,spec,name,content,rejected,reason,column", ROW_CASES, ids=[c[0] for c in ROW_CASES]
)
def test_bad_rows_are_quarantined_with_their_reason(
    local_store: ObjectStore, case, spec, name, content, rejected, reason, column
) -> None:
    good_rows = 0
    if spec is EVENTS:
        local_store.write_bytes(f"landing/events/{DAY}/good.csv", GOOD_CSV.encode())
        good_rows = 5
    local_store.write_bytes(f"{spec.landing_prefix}/{DAY}/{name}", content.encode())
    report = ingest_day(local_store, spec, DAY)
    q = quarantine.read(local_store, spec.name, DAY).to_pylist()
    assert len(q) == rejected
    if rejected:
        assert reason in q[0]["reason"], q[0]["reason"]
        assert q[0]["column"] == column
        assert q[0]["source_file"].endswith(name)
        assert q[0]["line"] is not None or q[0]["record"] is not None
    assert report.rows_read == report.rows_written + report.rows_quarantined
    written = duckdb_hive(local_store.path(spec.bronze_prefix), [spec.schema.names[0]])
    assert written.num_rows == report.rows_written >= good_rows


FILE_CASES = [
    ("binary file", "bin.csv", b"\x00\x01\x02\xff\xfe" * 50 + b"\n" + b"\xff" * 10, "UTF-8"),
    ("latin-1 text", "latin.csv", (HEADER + _row("b1", url="caf\xe9")).encode("latin-1"), "UTF-8"),
    ("truncated gzip", "cut.csv.gz", gzip.compress(GOOD_CSV.encode() * 50)[:200], "decompress"),
    ("unclosed JSON array", "arr.json", b'[{"event_id": "b1"}, {"event_id": ', "JSON"),
    ("not an array or NDJSON", "obj.json", b'{"a": 1', "invalid JSON"),
]


@pytest.mark.parametrize("case,name,content,reason", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_unreadable_files_are_quarantined_whole(
    local_store: ObjectStore, case, name, content, reason
) -> None:
    local_store.write_bytes(f"landing/events/{DAY}/good.csv", GOOD_CSV.encode())
    local_store.write_bytes(f"landing/events/{DAY}/{name}", content)
    report = ingest_day(local_store, EVENTS, DAY)
    q = quarantine.read(local_store, EVENTS.name, DAY).to_pylist()
    files = [r for r in q if r["kind"] == "file"]
    rows_ = [r for r in q if r["kind"] == "row"]
    if files:
        assert len(files) == 1 and files[0]["source_file"].endswith(name)
        assert reason in files[0]["reason"], files[0]["reason"]
    else:  # a broken single-document file may also be judged row by row
        assert rows_ and reason in rows_[0]["reason"]
    assert report.rows_written == 5  # the good file of the day still loads
    written = duckdb_hive(local_store.path(EVENTS.bronze_prefix), ["event_id"])
    assert sorted(written.column("event_id").to_pylist()) == [f"g{i}" for i in range(5)]


def test_discard_value_mode_keeps_the_row(local_store: ObjectStore) -> None:
    from dataclasses import replace

    spec = replace(EVENTS, unknown_columns="discard_value")
    local_store.write_bytes(
        f"landing/events/{DAY}/x.csv",
        (HEADER.rstrip() + ",extra\n" + _row("k1").rstrip() + ",v\n").encode(),
    )
    local_store.write_bytes(
        f"landing/events/{DAY}/y.ndjson",
        b'{"event_id":"k2","ts":"2026-11-05T10:00:00Z","user_id":"u","session_id":"s","event_type":"click","extra":1}\n',
    )
    report = ingest_day(local_store, spec, DAY)
    assert report.rows_quarantined == 0 and report.rows_written == 2
    written = duckdb_hive(local_store.path(EVENTS.bronze_prefix), ["*"])
    assert "extra" not in written.column_names


NESTED_CSV = HEADER + "".join(
    _row(f"c{i}", properties='"{""browser"":""ff""%s}"' % (',""zzz"":1' if i == 1 else ""))
    for i in range(3)
)
NESTED_NDJSON = "".join(
    json.dumps(
        {
            "event_id": f"j{i}",
            "ts": "2026-11-05T10:00:00Z",
            "user_id": "u",
            "session_id": "s",
            "event_type": "click",
            "properties": {"browser": "ch", **({"zzz": {"deep": [1]}} if i == 1 else {})},
        }
    )
    + "\n"
    for i in range(3)
)


@pytest.mark.parametrize(
    "mode,quarantined,reason",
    [
        ("freeze", {"c1", "j1"}, "(contract mode: freeze)"),
        ("evolve", {"c1", "j1"}, "evolve adds columns, not fields inside one"),
        ("discard_value", set(), None),
    ],
)
def test_an_unknown_key_inside_a_struct_follows_the_contract_mode(
    local_store: ObjectStore, mode: UnknownColumns, quarantined: set[str], reason: str | None
) -> None:
    """A key the struct type lacks is never dropped without a word: `freeze` and `evolve`
    (which adds columns, not fields inside one) quarantine the row with the key's path;
    `discard_value` keeps the row without the key."""
    from dataclasses import replace

    spec = replace(EVENTS, unknown_columns=mode)
    local_store.write_bytes(f"landing/events/{DAY}/n.csv", NESTED_CSV.encode())
    local_store.write_bytes(f"landing/events/{DAY}/n.ndjson", NESTED_NDJSON.encode())
    report = ingest_day(local_store, spec, DAY)
    assert report.rows_read == 6 == report.rows_written + report.rows_quarantined
    q = quarantine.read(local_store, spec.name, DAY).to_pylist()
    assert {
        json.loads(r["raw"])["event_id"] if r["raw"].startswith("{") else r["raw"][:2] for r in q
    } == quarantined
    for r in q:
        assert r["column"] == "properties" and "unknown key 'properties.zzz'" in r["reason"]
        assert reason is not None and reason in r["reason"]
    written = duckdb_hive(local_store.path(EVENTS.bronze_prefix), ["event_id", "properties"])
    kept = {r["event_id"]: r["properties"] for r in written.to_pylist()}
    assert set(kept) == {"c0", "c1", "c2", "j0", "j1", "j2"} - quarantined
    assert all(set(p) == {"browser", "country", "referrer"} for p in kept.values())


def test_a_column_of_the_wrong_type_quarantines_the_file_with_one_reason(
    local_store: ObjectStore,
) -> None:
    local_store.write_bytes(f"landing/events/{DAY}/good.csv", GOOD_CSV.encode())
    wrong = HEADER + "".join(_row(f"w{i}", price=f"EUR {i}") for i in range(5000))
    local_store.write_bytes(f"landing/events/{DAY}/wrong.csv", wrong.encode())
    report = ingest_day(local_store, EVENTS, DAY)
    (file_reject,) = report.file_rejects
    assert file_reject.source.endswith("wrong.csv")
    assert "column 'price'" in file_reject.reason and "EUR" in file_reject.reason
    assert report.rows_written == 5 and report.rows_quarantined == 0


def test_uniqueness_spans_the_day_and_forgets_a_file_rejected_whole(
    local_store: ObjectStore,
) -> None:
    """Duplicates across files are rejected; a file rejected whole (after its first batch was
    checked) leaves none of its keys behind, so a later file may carry them."""
    from lake_pipelines.lake.ingest.json_reader import ARRAY_BATCH_RECORDS

    prefix = f"{ORDERS.landing_prefix}/{DAY}"
    local_store.write_bytes(f"{prefix}/a.json", json.dumps([_order("o1"), _order("o2")]).encode())
    many = ",".join(json.dumps(_order(f"b{i}")) for i in range(ARRAY_BATCH_RECORDS + 10))
    local_store.write_bytes(f"{prefix}/b.json", f"[{many}, {{broken".encode())
    later = [_order("b5"), _order("o1"), _order("c1"), _order("b5")]
    local_store.write_bytes(f"{prefix}/c.json", json.dumps(later).encode())

    report = ingest_day(local_store, ORDERS, DAY)

    (file_reject,) = report.file_rejects
    assert file_reject.source.endswith("b.json")
    q = quarantine.read(local_store, ORDERS.name, DAY).to_pylist()
    dupes = sorted(
        (r["source_file"].rsplit("/", 1)[-1], r["record"]) for r in q if r["kind"] == "row"
    )
    assert dupes == [("c.json", 2), ("c.json", 4)]  # o1 (from a.json) and the second b5
    assert all(
        "duplicate" in r["reason"] and r["column"] == "order_id" for r in q if r["kind"] == "row"
    )
    written = duckdb_hive(local_store.path(ORDERS.bronze_prefix), ["order_id"])
    assert sorted(written.column("order_id").to_pylist()) == ["b5", "c1", "o1", "o2"]
    assert report.rows_read == report.rows_written + report.rows_quarantined == 6


@pytest.mark.parametrize("seed", [0, 1])
def test_unique_tracker_agrees_with_a_set_over_many_batches(seed: int) -> None:
    import random

    import pyarrow as pa

    from lake_pipelines.lake.ingest.validation import UniqueTracker

    rng = random.Random(seed)
    tracker = UniqueTracker(["k", "n"])
    seen: dict[str, set] = {"k": set(), "n": set()}
    for batch in range(200):
        size = rng.randint(0, 300)
        keys = [f"id-{rng.randrange(20_000)}" for _ in range(size)]
        nums = [rng.randrange(50_000) for _ in range(size)]
        table = pa.table({"k": pa.array(keys), "n": pa.array(nums, pa.int64())})
        mark = tracker.mark()
        before = {c: set(v) for c, v in seen.items()}
        got = tracker.duplicates(table)
        expected: dict[int, str] = {}
        for col, values in (("k", keys), ("n", nums)):
            for i, v in enumerate(values):
                if v in seen[col]:
                    expected.setdefault(i, col)
                seen[col].add(v)
        assert {i: c for i, (c, _) in got.items()} == expected, batch
        if batch % 7 == 3:  # as if the file of this batch were rejected whole
            tracker.rollback(mark)
            seen = before
        # a few sorted runs, not one per batch: each run at least twice the next newer one
        runs = [len(r) for r in tracker._runs["k"]]
        assert all(a > 2 * b for a, b in itertools.pairwise(runs)), runs


def test_files_rejected_whole_count_towards_the_quarantined_share(
    local_store: ObjectStore,
) -> None:
    """An unreadable file has no rows to count; its bytes still make the day fail the check."""
    local_store.write_bytes(f"landing/events/{DAY}/good.csv", GOOD_CSV.encode())
    report = ingest_day(local_store, EVENTS, DAY)
    assert report.quarantined_share == 0.0
    big = gzip.compress(GOOD_CSV.encode() * 400)
    local_store.write_bytes(f"landing/events/{DAY}/cut.csv.gz", big[: len(big) // 2])
    report = ingest_day(local_store, EVENTS, DAY)
    assert report.rows_quarantined == 0 and len(report.file_rejects) == 1
    landed = len(GOOD_CSV) + len(big) // 2
    assert report.quarantined_share == pytest.approx((len(big) // 2) / landed)
    assert report.quarantined_share > EVENTS.quarantine_threshold
    local_store.delete([f"landing/events/{DAY}/good.csv"])
    assert ingest_day(local_store, EVENTS, DAY).quarantined_share == 1.0


def test_a_rejected_row_claims_no_key(local_store: ObjectStore) -> None:
    """The first o1 breaks the contract; the valid o1 after it is the day's o1."""
    prefix = f"{ORDERS.landing_prefix}/{DAY}"
    docs = [_order("o1", status="lost-in-space"), _order("o2"), _order("o1")]
    local_store.write_bytes(f"{prefix}/a.json", json.dumps(docs).encode())
    local_store.write_bytes(f"{prefix}/b.json", json.dumps([_order("o1")]).encode())
    report = ingest_day(local_store, ORDERS, DAY)
    q = quarantine.read(local_store, ORDERS.name, DAY).to_pylist()
    got = sorted((r["source_file"].rsplit("/", 1)[-1], r["record"], r["column"]) for r in q)
    assert got == [("a.json", 1, "status"), ("b.json", 1, "order_id")]
    written = duckdb_hive(local_store.path(ORDERS.bronze_prefix), ["order_id", "status"])
    assert sorted(written.to_pylist(), key=str) == sorted(
        [{"order_id": "o1", "status": "paid"}, {"order_id": "o2", "status": "paid"}], key=str
    )
    assert report.rows_read == report.rows_written + report.rows_quarantined == 4


def test_raw_is_the_landed_text_of_the_rejected_row(local_store: ObjectStore) -> None:
    """Conversion and contract rejects carry the row as it was landed (CSV records with a
    quoted line break included), not a re-rendering of the parsed values."""
    bad_ts = _row("r1", ts="yesterday-ish").rstrip("\n")
    bad_type = _row("r2", event_type="teleport").rstrip("\n")
    multi = _row("r3", event_type="teleport", url='"https://x/a\nb"').rstrip("\n")
    body = HEADER + "\n".join([bad_ts, _row("ok1").rstrip("\n"), bad_type, multi]) + "\n"
    local_store.write_bytes(f"landing/events/{DAY}/raw.csv", body.encode())
    ndjson_bad = (
        '{"event_id": "r4", "ts": "2026-11-05T10:00:00Z", "user_id": "u",'
        ' "session_id": "s", "event_type": "teleport"}'
    )
    ndjson = '{"event_id": "ok2", "ts": "2026-11-05T11:00:00Z", "user_id": "u", "session_id": "s", "event_type": "click"}'
    local_store.write_bytes(
        f"landing/events/{DAY}/raw.ndjson", f"{ndjson}\n\n{ndjson_bad}\n".encode()
    )
    report = ingest_day(local_store, EVENTS, DAY)
    assert report.rows_written == 2 and report.rows_quarantined == 4
    q = quarantine.read(local_store, EVENTS.name, DAY).to_pylist()
    raw = {(r["source_file"].rsplit("/", 1)[-1], r["line"]): r["raw"] for r in q}
    assert raw == {
        ("raw.csv", 2): bad_ts,
        ("raw.csv", 4): bad_type,
        ("raw.csv", 5): multi,
        ("raw.ndjson", 3): ndjson_bad,
    }


def test_two_json_objects_on_one_line_are_one_rejected_record(local_store: ObjectStore) -> None:
    """NDJSON holds one value per line: a line with two objects is one record, quarantined
    with its line (pyarrow alone would read it as two rows), and a contract reject after it
    keeps its own line."""
    doc = (
        '{"event_id":"%s","ts":"2026-11-05T10:00:00Z","user_id":"u","session_id":"s",'
        '"event_type":"%s"}'
    )
    body = doc % ("j1", "click") + doc % ("j2", "click") + "\n" + doc % ("j3", "teleport") + "\n"
    local_store.write_bytes(f"landing/events/{DAY}/two.ndjson", body.encode())
    report = ingest_day(local_store, EVENTS, DAY)
    assert report.rows_read == 2 and report.rows_written == 0 and report.rows_quarantined == 2
    two, bad_type = quarantine.read(local_store, EVENTS.name, DAY).to_pylist()
    assert two["line"] == 1 and "two values on one line" in two["reason"]
    assert two["raw"] == doc % ("j1", "click") + doc % ("j2", "click")
    assert bad_type["column"] == "event_type" and '"j3"' in bad_type["raw"]
    assert bad_type["line"] == 2
