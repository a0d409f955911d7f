"""Fuzzing: hostile lines at random places in otherwise valid files, ingested in a separate process.

Each example lands one NDJSON or CSV file of valid events with hostile lines put in at random
positions (also across read-block boundaries: blocks of 256 bytes and 4 KiB here; `make fuzz`
adds files that straddle pyarrow's 1 MiB block and our 8 MiB read block), ingests the day in
`ingest_worker`, and checks, from what is stored:

* the process answered (no segfault, no hang) and raised nothing;
* rows read = rows in bronze + rows quarantined;
* every valid line is in bronze with exactly the values it was generated with;
* every hostile line is quarantined with its own line number and its text as ``raw``; or, for
  a file that is not UTF-8, the file is quarantined whole, naming its first bad line.

The oracle is the generator: it knows which lines it made hostile, nothing here asks the code
under test. `LAKE_FUZZ_EXAMPLES` sets the budget (`make fuzz` runs 500 per test).
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lake_pipelines.lake.ingest import quarantine
from lake_pipelines.lake.layout import bronze_dir
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines_tests.support import IngestWorker

DAY = date(2026, 11, 5)
EXAMPLES = int(os.environ.get("LAKE_FUZZ_EXAMPLES", "20"))
BIG = os.environ.get("LAKE_FUZZ_BIG") == "1"  # files across the 1 MiB and 8 MiB boundaries
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=False,
)
START = datetime(2026, 11, 5, tzinfo=UTC)
EVENT_TYPES = ("page_view", "click", "add_to_cart", "purchase", "search")

safe_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30
)
events = st.builds(
    lambda us, user, kind, url, price: {
        "ts": (START + timedelta(microseconds=us)).isoformat().replace("+00:00", "Z"),
        "user_id": user,
        "session_id": "s-" + user,
        "event_type": kind,
        "url": url,
        "price": price,
    },
    st.integers(0, 86_400_000_000 - 1),
    safe_text,
    st.sampled_from(EVENT_TYPES),
    st.none() | safe_text,
    st.none() | st.floats(0, 1_000_000, allow_nan=False),
)

DEEP = "[" * 3000 + "]" * 3000
OBJECT = '{"event_id":"h","ts":"2026-11-05T01:00:00Z","user_id":"u","session_id":"s",'
HOSTILE_JSON = [
    b"null",
    b"[null]",
    b"[null, 1]",
    b"42",
    b'"a string"',
    b"true",
    b"[]",
    (OBJECT + '"event_type":"click","price":NaN}').encode(),
    (OBJECT + '"event_type":"click","price":-Infinity}').encode(),
    (OBJECT + '"event_type":"click"}' + OBJECT + '"event_type":"click"}').encode(),
    (OBJECT + '"event_type":"click",}').encode(),
    (OBJECT + '"event_type":"click","event_type":"search"}').encode(),
    (OBJECT + '"event_type":"click","url":"\\ud800"}').encode(),
    (OBJECT + '"event_type":"click","\\udfff":1}').encode(),
    (OBJECT + f'"event_type":"click","x":{DEEP}}}').encode(),
    (OBJECT + '"event_type":"click","price":1e999}').encode(),
    (OBJECT + '"event_type":"click","price":' + "9" * 5000 + "}").encode(),
    b"\xef\xbb\xbf" + (OBJECT + '"event_type":"click"}').encode(),
    (OBJECT + '"event_type":"cl\x01ick"}').encode(),
    (OBJECT + '"event_type":"click"').encode(),  # truncated
    (OBJECT + '"event_type":"teleport"}').encode(),  # valid JSON, breaks the contract
]
no_newline_bytes = st.binary(min_size=1, max_size=200).map(
    lambda b: b"#" + b.replace(b"\n", b" ").replace(b"\r", b" ")
)
hostile_json = (
    st.sampled_from(HOSTILE_JSON)
    | no_newline_bytes
    | st.text(alphabet=st.characters(blacklist_characters="\n\r"), min_size=1, max_size=100).map(
        lambda t: ("~" + t).encode("utf-8", "surrogatepass")
    )
)

CSV_HEADER = b"event_id,ts,user_id,session_id,event_type,url,price,properties,latencies_ms"
HOSTILE_CSV = [
    b"only,three,fields",
    b"x,2026-11-05T01:00:00Z,u,s,click,,not-a-price,,",
    b"x,yesterday,u,s,click,,1.0,,",
    b"x,2026-11-05T01:00:00Z,u,s,teleport,,1.0,,",
    b"x,2026-11-05T01:00:00Z,,s,click,,1.0,,",
    b"x,2026-11-05T01:00:00Z,u,s,click,," + b"9" * 400 + b",,",
    b"x,2026-11-05T01:00:00Z,u,s,click,,1.0,{not json},",
    b"x,2026-11-05T01:00:00Z,u,s,click,,1.0,," + b"[" * 3000,
    b"\x01\x02\x03,\x04,\x05",
    b'x,2026-11-05T01:00:00Z,u,s,click,,1.0,"{""zz"": ' + b"[" * 20_000 + b"]" * 20_000 + b'}",',
]
hostile_csv = st.sampled_from(HOSTILE_CSV) | st.binary(min_size=1, max_size=120).map(
    lambda b: b"#" + bytes(c for c in b if c not in b'\n\r",')
)


def _json_line(i: int, e: dict) -> bytes:
    return json.dumps({"event_id": f"v{i:05d}", **e}, ensure_ascii=False).encode()


def _csv_cell(v: object) -> str:
    if v is None:
        return ""
    return '"' + str(v).replace('"', '""') + '"'


def _csv_line(i: int, e: dict) -> bytes:
    cells = [f"v{i:05d}", e["ts"], e["user_id"], e["session_id"], e["event_type"], e["url"]]
    text = ",".join(_csv_cell(c) for c in cells)
    price = "" if e["price"] is None else repr(e["price"])
    return (text + f",{price},,").encode()


def _layout(valid: list[bytes], hostile: list[bytes], positions: list[int]) -> tuple[list, set]:
    """Lines of the file and the 1-based line numbers of the hostile ones."""
    lines = list(valid)
    hostile_at: set[int] = set()
    for line, pos in sorted(zip(hostile, positions, strict=True), key=lambda x: x[1]):
        at = min(pos, len(lines))
        if at == 0 and line.startswith(b"\xef\xbb\xbf") and lines:
            at = 1  # a byte order mark opening the file is its encoding mark, not hostile
        lines.insert(at, line)
        hostile_at = {n + 1 if n >= at else n for n in hostile_at} | {at}
    return lines, {n + 1 for n in hostile_at}


def _check(
    worker: IngestWorker,
    name: str,
    lines: list[bytes],
    hostile_at: set[int],
    expected: dict[str, dict],
    block_bytes: int | None,
    header: int = 0,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = ObjectStore(tmp)
        store.write_bytes(f"landing/events/{DAY}/{name}", b"\n".join(lines) + b"\n")
        # the worker's options, as IngestWorker.ingest takes them (**options: Any)
        options: dict[str, Any] = {"block_bytes": block_bytes} if block_bytes else {}
        report = worker.ingest(store.url, DAY.isoformat(), **options)
        assert "error" not in report, report.get("trace")
        bronze = {
            r["event_id"]: r
            for f in store.list(bronze_dir_of(), suffixes=(".parquet",))
            for r in pq.read_table(store.path(f.key)).to_pylist()
        }
        rejects = quarantine.read(store, "events", DAY).to_pylist()
        rows = [r for r in rejects if r["kind"] == "row"]
        assert report["rows_read"] == len(bronze) + len(rows)
        not_utf8 = [n for n, line in enumerate(lines, 1) if not _is_utf8(line)]
        if not_utf8:
            (whole,) = [r for r in rejects if r["kind"] == "file"]
            assert whole["line"] == not_utf8[0], (whole, not_utf8)
            assert bronze == {}
            return
        assert set(bronze) == set(expected)
        for event_id, want in expected.items():
            got = bronze[event_id]
            for k, v in want.items():
                if k == "ts":
                    assert got[k] == datetime.fromisoformat(v.replace("Z", "+00:00")), k
                else:
                    assert got[k] == v, (k, got[k], v)
        assert sorted(r["line"] for r in rows) == sorted(n + header for n in hostile_at)
        by_line = {r["line"]: r for r in rows}
        for n in hostile_at:
            text = lines[n - 1 + header].decode("utf-8").rstrip("\r")
            assert by_line[n + header]["raw"] == text[:2000], n


def bronze_dir_of() -> str:
    from lake_pipelines.datasets import get_dataset

    return bronze_dir(get_dataset("events"), DAY)


def _is_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


@FUZZ
@given(
    valid=st.lists(events, min_size=1, max_size=40),
    hostile=st.lists(hostile_json, min_size=1, max_size=8),
    positions=st.lists(st.integers(0, 60), min_size=8, max_size=8),
    block_bytes=st.sampled_from([256, 4096, None]),
)
def test_fuzz_ndjson(ingest_worker, valid, hostile, positions, block_bytes) -> None:
    lines, hostile_at = _layout(
        [_json_line(i, e) for i, e in enumerate(valid)], hostile, positions[: len(hostile)]
    )
    expected = {f"v{i:05d}": e for i, e in enumerate(valid)}
    _check(ingest_worker, "fuzz.ndjson", lines, hostile_at, expected, block_bytes)


@FUZZ
@given(
    valid=st.lists(events, min_size=1, max_size=40),
    hostile=st.lists(hostile_csv, min_size=1, max_size=8),
    positions=st.lists(st.integers(0, 60), min_size=8, max_size=8),
    block_bytes=st.sampled_from([256, 4096, None]),
)
def test_fuzz_csv(ingest_worker, valid, hostile, positions, block_bytes) -> None:
    body, hostile_at = _layout(
        [_csv_line(i, e) for i, e in enumerate(valid)], hostile, positions[: len(hostile)]
    )
    expected = {f"v{i:05d}": {k: v for k, v in e.items()} for i, e in enumerate(valid)}
    _check(
        ingest_worker,
        "fuzz.csv",
        [CSV_HEADER, *body],
        hostile_at,
        expected,
        block_bytes,
        header=1,
    )


def _fixed_lines(n: int) -> list[bytes]:
    """`n` valid events, each line exactly 255 bytes plus its break: line k starts at k * 256."""
    out = []
    for k in range(n):
        doc = {
            "event_id": f"v{k:05d}",
            "ts": "2026-11-05T12:00:00Z",
            "user_id": "u",
            "session_id": "s",
            "event_type": "click",
            "url": "",
        }
        pad = 255 - len(json.dumps(doc, separators=(",", ":")))
        doc["url"] = "x" * pad
        line = json.dumps(doc, separators=(",", ":")).encode()
        assert len(line) == 255
        out.append(line)
    return out


PYARROW_BLOCK_LINE = (1 << 20) // 256  # the line that starts pyarrow's second 1 MiB block
READ_BLOCK_LINE = (8 << 20) // 256  # the line that starts our second 8 MiB read block
BOUNDARIES = [PYARROW_BLOCK_LINE, *([READ_BLOCK_LINE] if BIG else [])]
FIXED = _fixed_lines(max(BOUNDARIES) + 64)


@settings(FUZZ, max_examples=max(EXAMPLES // 5, 3))
@given(
    hostile=st.lists(hostile_json, min_size=1, max_size=4),
    boundary=st.sampled_from(BOUNDARIES),
    offsets=st.lists(st.integers(-2, 2), min_size=4, max_size=4),
)
def test_fuzz_ndjson_across_block_boundaries(ingest_worker, hostile, boundary, offsets) -> None:
    """Hostile lines at the first line of pyarrow's internal block (1 MiB) and of the reader's
    8 MiB block, or a line or two either side, where pyarrow's crash depended on the place."""
    positions = [boundary + d for d in offsets[: len(hostile)]]
    lines, hostile_at = _layout(FIXED, hostile, positions)
    expected = {f"v{k:05d}": {"event_type": "click"} for k in range(len(FIXED))}
    _check(ingest_worker, "big.ndjson", lines, hostile_at, expected, None)
