"""Streaming readers: per-row rejects with exact lines, compression, edge-case files."""

from __future__ import annotations

import bz2
import gzip
import json
from typing import Any

import pandera.pandas as pdr
import pyarrow as pa
import pytest
import zstandard

from lake_pipelines.datasets import DatasetSpec, get_dataset
from lake_pipelines.errors import SourceFileError
from lake_pipelines.lake.ingest.readers import read_file
from lake_pipelines.lake.storage import ObjectStore

SPEC = get_dataset("events")
NO_CONTRACT = pdr.DataFrameSchema({})  # for specs only read here: the readers never consult it
HEADER = "event_id,ts,user_id,session_id,event_type,url,price,properties,latencies_ms\n"


def _read(store: ObjectStore, key: str, data: bytes, block_bytes: int = 1 << 20):
    store.write_bytes(key, data)
    batches = list(read_file(store, key, SPEC, block_bytes=block_bytes))
    table_rows = [r for b in batches for r in b.table.to_pylist()]
    rejects = [r for b in batches for r in b.rejects]
    return table_rows, rejects


def test_csv_rejects_name_file_line_column_and_keep_the_rest(local_store: ObjectStore) -> None:
    body = (
        HEADER
        + 'e1,2026-11-01T10:00:00Z,u1,s1,click,"https://a/x,y",1.5,"{""browser"":""ff""}","[1,2]"\n'
        + 'e2,2026-11-01T11:00:00,u2,s2,purchase,"two\nlines",NA,,\n'  # a value over 2 lines
        + "\n"  # a blank line still counts as a line
        + "e3,notatime,u3,s3,click,,,,\n"
        + "e4,2026-11-01T10:00:00Z,u4,s4,click,x\n"  # too few fields
        + "e5,1762000000000,u5,s5,click,,2,,\n"  # epoch milliseconds
        + "e6,2026-11-01T10:00:00+02:00,u6,s6,click,,abc,{bad,\n"
    )
    good, rejects = _read(local_store, "landing/a.csv", body.encode())
    assert [r["event_id"] for r in good] == ["e1", "e2", "e5"]
    assert good[0]["url"] == "https://a/x,y"
    assert good[0]["properties"] == {"browser": "ff", "country": None, "referrer": None}
    assert good[0]["latencies_ms"] == [1.0, 2.0]
    assert good[1]["url"] == "two\nlines" and good[1]["price"] is None
    assert good[2]["ts"].timestamp() == 1762000000.0
    by_line = {r.line: r for r in rejects}
    assert set(by_line) == {6, 7, 9}
    assert by_line[6].column == "ts" and "notatime" in by_line[6].reason
    assert "expected 9 fields, found 6" in by_line[7].reason
    assert by_line[7].raw.startswith("e4,")
    # a row failing on two columns keeps both reasons
    assert "price='abc'" in by_line[9].reason and "properties='{bad'" in by_line[9].reason
    assert all(r.source == "landing/a.csv" for r in rejects)


def test_nested_csv_cells_with_line_breaks_parse_and_a_smuggled_record_is_rejected(
    local_store: ObjectStore,
) -> None:
    body = (
        HEADER
        + 'n1,2026-11-01T10:00:00Z,u1,s1,click,,,"{\n""browser"":\r\n""ff""}","[1,\n2]"\n'
        # a cell closing its row's JSON object and opening another one
        + 'n2,2026-11-01T10:00:00Z,u2,s2,click,,,,"[1]}\n{""c0"":null,""c1"":[2]"\n'
        + 'n3,2026-11-01T10:00:00Z,u3,s3,click,,,"{""country"":""FR""}",[]\n'
    )
    good, rejects = _read(local_store, "landing/n.csv", body.encode())
    assert [r["event_id"] for r in good] == ["n1", "n3"]
    assert good[0]["properties"]["browser"] == "ff" and good[0]["latencies_ms"] == [1.0, 2.0]
    assert good[1]["properties"]["country"] == "FR" and good[1]["latencies_ms"] == []
    assert [(r.line, r.column) for r in rejects] == [(6, "latencies_ms")]  # n1 spans 2-5


def test_an_ndjson_record_longer_than_a_parse_piece_still_loads(local_store: ObjectStore) -> None:
    def rec(i: int, url: str = "") -> str:
        return (
            f'{{"event_id":"j{i}","ts":"2026-11-01T10:00:00Z","user_id":"u","session_id":"s",'
            f'"event_type":"click","url":"{url}"}}\n'
        )

    big = "x" * (3 << 20)  # pyarrow's threaded reader cuts the block into 1 MiB pieces
    body = (
        "".join(rec(i) for i in range(50)) + rec(50, big) + "".join(rec(i) for i in range(51, 99))
    )
    good, rejects = _read(local_store, "landing/big.ndjson", body.encode(), 16 << 20)
    assert not rejects
    assert [r["event_id"] for r in good] == [f"j{i}" for i in range(99)]
    assert len(good[50]["url"]) == len(big)


def test_lines_stay_exact_across_blocks(local_store: ObjectStore) -> None:
    rows = [f"e{i},2026-11-01T10:00:00Z,u,s,click,,{i},,\n" for i in range(2000)]
    rows[1500] = "e1500,2026-11-01T10:00:00Z,u,s,click,,oops,,\n"
    good, rejects = _read(local_store, "landing/b.csv", (HEADER + "".join(rows)).encode(), 4096)
    assert len(good) == 1999
    assert [(r.line, r.column) for r in rejects] == [(1502, "price")]


@pytest.mark.parametrize(
    "suffix,compress",
    [
        (".gz", lambda b: gzip.compress(b)),
        (".bz2", bz2.compress),
        (".zst", lambda b: zstandard.ZstdCompressor().compress(b)),
    ],
)
def test_compressed_files_read_like_plain_ones(local_store: ObjectStore, suffix, compress) -> None:
    body = (HEADER + "e1,2026-11-01T10:00:00Z,u,s,click,,1,,\ne2,bad,u,s,click,,,,\n").encode()
    plain = _read(local_store, "landing/p.csv", body)
    packed = _read(local_store, f"landing/p.csv{suffix}", compress(body))
    assert plain[0] == packed[0]
    assert [(r.line, r.reason) for r in plain[1]] == [(r.line, r.reason) for r in packed[1]]


def test_truncated_gzip_is_a_file_error(local_store: ObjectStore) -> None:
    data = gzip.compress((HEADER + "e1,2026-11-01T10:00:00Z,u,s,click,,1,,\n" * 200).encode())
    local_store.write_bytes("landing/t.csv.gz", data[: len(data) // 2])
    with pytest.raises(SourceFileError, match=r"landing/t\.csv\.gz.*decompress"):
        list(read_file(local_store, "landing/t.csv.gz", SPEC))


def test_non_utf8_csv_names_the_line(local_store: ObjectStore) -> None:
    body = HEADER.encode() + b"e1,2026-11-01T10:00:00Z,u,s,click,,1,,\ne2,2026,\xff\xfe,s,c,,,,\n"
    local_store.write_bytes("landing/x.csv", body)
    with pytest.raises(SourceFileError) as info:
        list(read_file(local_store, "landing/x.csv", SPEC))
    assert info.value.line == 3 and "UTF-8" in str(info.value)


@pytest.mark.parametrize("body", [b"", HEADER.encode(), b"\xef\xbb\xbf" + HEADER.encode()])
def test_empty_and_header_only_files_yield_nothing(local_store: ObjectStore, body: bytes) -> None:
    assert _read(local_store, "landing/e.csv", body) == ([], [])


def test_bom_is_stripped_from_the_header(local_store: ObjectStore) -> None:
    body = b"\xef\xbb\xbf" + (HEADER + "e1,2026-11-01T10:00:00Z,u,s,click,,1,,\n").encode()
    good, rejects = _read(local_store, "landing/bom.csv", body)
    assert [r["event_id"] for r in good] == ["e1"] and rejects == []


def test_ndjson_rejects_broken_and_unconvertible_records(local_store: ObjectStore) -> None:
    body = (
        b'{"event_id":"n1","ts":"2026-11-01T10:00:00Z","user_id":"u","session_id":"s",'
        b'"event_type":"click","properties":{"browser":"x"},"latencies_ms":[1.5]}\n'
        b"\n"
        b'{"event_id":"n2","ts":"not a time"}\n'
        b"{broken\n"
        b'{"event_id":"n3","ts":"2026-11-01T10:00:00Z","surprise":1}\n'
        b'{"event_id":"n4","ts":"2026-11-01T12:00:00Z","user_id":"u","session_id":"s",'
        b'"event_type":"click"}\n'
    )
    good, rejects = _read(local_store, "landing/n.ndjson", body)
    assert [r["event_id"] for r in good] == ["n1", "n4"]
    assert good[0]["properties"]["browser"] == "x" and good[0]["latencies_ms"] == [1.5]
    assert good[1]["properties"] is None  # missing keys are nulls
    by_line = {r.line: r.reason for r in rejects}
    assert set(by_line) == {3, 4, 5}
    assert "not a time" in by_line[3]
    assert by_line[4].startswith("invalid JSON")
    assert "freeze" in by_line[5]


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_headerless_csv_with_other_delimiters(local_store: ObjectStore, delimiter: str) -> None:
    from dataclasses import replace

    from lake_pipelines.datasets.spec import CsvDialect

    spec = replace(SPEC, csv=CsvDialect(delimiter=delimiter, header=False, null_values=("", "-")))
    cells = ["e1", "2026-11-01T10:00:00Z", "u1", "s1", "click", f'"a{delimiter}b"', "-", "", ""]
    local_store.write_bytes("landing/h.csv", (delimiter.join(cells) + "\r\n").encode())
    batches = list(read_file(local_store, "landing/h.csv", spec))
    (row,) = [r for b in batches for r in b.table.to_pylist()]
    assert row["event_id"] == "e1" and row["url"] == f"a{delimiter}b" and row["price"] is None


@pytest.mark.parametrize(
    "text,expected",
    [
        ("1996-03-13", "1996-03-13T00:00:00+00:00"),  # date only: midnight UTC
        ("2026-11-01 10:00:00", "2026-11-01T10:00:00+00:00"),  # naive: UTC
        ("2026-11-01T10:00:00-02:00", "2026-11-01T12:00:00+00:00"),
        ("2026-11-01T10:00:00.5+0130", "2026-11-01T08:30:00.500000+00:00"),
        ("1762000000000", "2025-11-01T12:26:40+00:00"),  # epoch milliseconds
    ],
)
def test_timestamp_forms(text: str, expected: str) -> None:
    import pyarrow as pa

    from lake_pipelines.lake.ingest.coerce import convert_column

    out, bad = convert_column(
        pa.array([text, "2026-11-01T00:00:00Z"]), pa.timestamp("us", tz="UTC")
    )
    assert bad == {} and out[0].as_py().isoformat() == expected


@pytest.mark.parametrize(
    "texts,expected",
    [
        (["1996-03-13", None, "1996-03-14"], ["1996-03-13T00:00:00+00:00", None, "1996-03-14T00:00:00+00:00"]),
        (["2026-11-01 10:00:00", "2026-11-01T11:00:00"], ["2026-11-01T10:00:00+00:00", "2026-11-01T11:00:00+00:00"]),
        (["2026-11-01T10:00:00Z", "2026-11-01T10:00:00+01:00"], ["2026-11-01T10:00:00+00:00", "2026-11-01T09:00:00+00:00"]),
        # the first value picks the one-kernel attempt; the others still convert right
        (["2026-11-01T10:00:00Z", "2026-11-01", "1762000000000"], ["2026-11-01T10:00:00+00:00", "2026-11-01T00:00:00+00:00", "2025-11-01T12:26:40+00:00"]),
        (["2026-11-01", "2026-11-01T10:00:00-02:00", " 2026-11-01T10:00:00 "], ["2026-11-01T00:00:00+00:00", "2026-11-01T12:00:00+00:00", "2026-11-01T10:00:00+00:00"]),
        (["1762000000000", "2026-11-01"], ["2025-11-01T12:26:40+00:00", "2026-11-01T00:00:00+00:00"]),
    ],
)  # fmt: skip
def test_timestamp_columns_of_one_form_or_mixed(texts: list, expected: list) -> None:
    import pyarrow as pa

    from lake_pipelines.lake.ingest.coerce import convert_column

    out, bad = convert_column(pa.array(texts, pa.string()), pa.timestamp("us", tz="UTC"))
    assert bad == {}
    assert [v.isoformat() if v is not None else None for v in out.to_pylist()] == expected


def test_non_utf8_ndjson_is_a_file_error_naming_the_line(local_store: ObjectStore) -> None:
    good = b'{"event_id":"n1","ts":"2026-11-01T10:00:00Z","user_id":"u","session_id":"s","event_type":"click"}\n'
    body = good * 3 + '{"event_id":"caf\xe9"}\n'.encode("latin-1") + good
    local_store.write_bytes("landing/l.ndjson", body)
    with pytest.raises(SourceFileError) as info:
        list(read_file(local_store, "landing/l.ndjson", SPEC))
    assert info.value.line == 4 and "UTF-8" in str(info.value)


@pytest.mark.parametrize("block_bytes", [64, 257, 4096])
def test_json_arrays_read_the_same_in_any_block_size(
    local_store: ObjectStore, block_bytes: int
) -> None:
    """A block may end anywhere inside an element, a string of it included."""
    orders = get_dataset("orders")
    docs = [
        {
            "order_id": f"o{i}",
            "ordered_at": "2026-11-05T10:00:00Z",
            "customer_id": f"customer with a long name {i} " * (i % 5),
            "status": "paid",
            "currency": "EUR",
            "total": i + 0.5,
            "items": [
                {"sku": f"sku-{i}-{j}", "quantity": j, "unit_price": 1.25} for j in range(i % 4)
            ],
        }
        for i in range(200)
    ]
    local_store.write_bytes("landing/a.json", json.dumps(docs, indent=1).encode())
    whole = list(read_file(local_store, "landing/a.json", orders, block_bytes=1 << 20))
    pieces = list(read_file(local_store, "landing/a.json", orders, block_bytes=block_bytes))
    rows = [r for b in pieces for r in b.table.to_pylist()]
    assert rows == [r for b in whole for r in b.table.to_pylist()]
    assert [r["order_id"] for r in rows] == [d["order_id"] for d in docs]
    assert not [r for b in pieces for r in b.rejects]


def test_a_broken_json_array_element_is_a_file_error(local_store: ObjectStore) -> None:
    orders = get_dataset("orders")
    body = b'[{"order_id": "o1"}, {"order_id": "o2", "status": "paid' + b" " * 5000 + b"]"
    local_store.write_bytes("landing/b.json", body)
    with pytest.raises(SourceFileError, match=r"landing/b\.json.*record 2"):
        list(read_file(local_store, "landing/b.json", orders, block_bytes=256))


def test_a_csv_record_our_scan_cannot_place_still_loads_and_rejects_cleanly(
    local_store: ObjectStore,
) -> None:
    """A stray quote inside an unquoted value: our record scan and pyarrow disagree. Rows
    still load, rejects keep their column, reason and a rendering of the row; only the line
    (unknown) is left out rather than guessed."""
    body = (
        HEADER
        + 'e1,2026-11-01T10:00:00Z,u1,s1,click,5" screen,1.5,,\n'
        + "e2,2026-11-01T10:00:00Z,u2,s2,click,x,abc,,\n"
        + 'e3,2026-11-01T10:00:00Z,u3,s3,click,10" tv,1.5,,\n'
        + "e4,2026-11-01T10:00:00Z,u4,s4,click,x,zzz,,\n"
    )
    good, rejects = _read(local_store, "landing/q.csv", body.encode())
    assert [r["event_id"] for r in good] == ["e1", "e3"]
    assert [r.column for r in rejects] == ["price", "price"]
    assert sorted(("e2" in r.raw, "e4" in r.raw) for r in rejects) == [(False, True), (True, False)]
    assert all(r.line in (None, 3, 5) for r in rejects)


def _typed_spec() -> DatasetSpec:
    """A dataset with integer, float and date columns (the ones the CSV reader parses)."""
    from dataclasses import replace

    import pyarrow as pa

    schema = pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False),
            pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("amount", pa.float64()),
            pa.field("due", pa.date32()),
        ]
    )
    return replace(SPEC, name="typed", schema=schema, codecs={}, sort_by=(), contract=NO_CONTRACT)


@pytest.mark.parametrize("block_bytes", [64, 1 << 20])
def test_typed_csv_columns_convert_like_text_and_bad_values_are_rows(
    local_store: ObjectStore, block_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Numbers and dates are parsed by the CSV reader when a whole block converts, and by
    our casts otherwise: the same values come out either way (spaces around a number or a
    date allowed), and a bad value is a reject naming its line, not a lost block."""
    from lake_pipelines.lake.ingest import csv_reader

    spec = _typed_spec()
    cast: list[str] = []  # the types our own casts converted (the text path)
    real = csv_reader.convert_column

    def convert_column(a: pa.Array, t: pa.DataType, *rest: Any) -> tuple[pa.Array, dict[int, str]]:
        cast.append(str(t))
        return real(a, t, *rest)

    monkeypatch.setattr(csv_reader, "convert_column", convert_column)
    clean = "id,ts,amount,due\n1,2026-11-01T00:00:00Z, 2.5 ,1996-03-13\n2,2026-11-01T00:00:01Z,,\n"
    bad = clean + "3,2026-11-01T00:00:02Z,1e3, 1996-02-29\n4,2026-11-01T00:00:03Z,x,1996-02-30\n"
    out = {}
    for name, body in (("clean", clean), ("bad", bad)):
        key = f"landing/{name}.csv"
        local_store.write_bytes(key, body.encode())
        batches = list(read_file(local_store, key, spec, block_bytes=block_bytes))
        out[name] = (
            [r for b in batches for r in b.table.to_pylist()],
            [(r.line, r.column) for b in batches for r in b.rejects],
            list(cast),
        )
        cast.clear()
    rows, rejects, cast = out["clean"]
    assert [(r["id"], r["amount"], str(r["due"])) for r in rows] == [
        (1, 2.5, "1996-03-13"),
        (2, None, "None"),
    ]
    assert rejects == []
    assert "double" not in cast and "date32[day]" not in cast  # the reader parsed them
    rows, rejects, cast = out["bad"]
    assert [(r["id"], r["amount"], str(r["due"])) for r in rows] == [
        (1, 2.5, "1996-03-13"),
        (2, None, "None"),
        (3, 1000.0, "1996-02-29"),
    ]
    assert rejects == [(5, "amount")]  # one reject per row, naming its first bad column
    assert "double" in cast and "date32[day]" in cast  # the bad block went the text way


def test_nested_cells_blank_in_any_unicode_whitespace_are_missing_values(
    local_store: ObjectStore,
) -> None:
    """A nested cell holding only whitespace is a missing value, whatever the whitespace (a
    no-break space, an ideographic space), as an empty cell is."""
    body = (
        HEADER
        + "e1,2026-11-01T10:00:00Z,u1,s1,click,,1.5,\u00a0,[1]\n"
        + "e2,2026-11-01T10:00:00Z,u1,s1,click,,1.5,{},\u3000\n"
        + "e3,2026-11-01T10:00:00Z,u1,s1,click,,1.5,\x1f,[]\n"
    )
    rows, rejects = _read(local_store, "landing/blank.csv", body.encode())
    assert rejects == []
    assert [(r["event_id"], r["properties"], r["latencies_ms"]) for r in rows] == [
        ("e1", None, [1.0]),
        ("e2", {"browser": None, "country": None, "referrer": None}, None),
        ("e3", None, []),
    ]


def test_a_column_type_the_csv_reader_cannot_parse_goes_the_text_way(
    local_store: ObjectStore,
) -> None:
    """float16 is a float the CSV reader does not convert to: the text path does."""
    from dataclasses import replace

    import pyarrow as pa

    schema = pa.schema(
        [pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False), pa.field("h", pa.float16())]
    )
    spec = replace(SPEC, name="half", schema=schema, codecs={}, sort_by=(), contract=NO_CONTRACT)
    local_store.write_bytes("landing/h.csv", b"ts,h\n2026-11-01T00:00:00Z,1.5\n")
    batches = list(read_file(local_store, "landing/h.csv", spec))
    assert [r["h"] for b in batches for r in b.table.to_pylist()] == [1.5]


def _dialect_spec(encoding: str):
    from dataclasses import replace

    from lake_pipelines.datasets.spec import CsvDialect

    return replace(SPEC, csv=CsvDialect(encoding=encoding))


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252", "utf-16"])
def test_csv_in_another_encoding_is_read_as_text_not_rejected(
    local_store: ObjectStore, encoding: str
) -> None:
    """The dialect's encoding is honoured: the values come out as the same Unicode text,
    across block boundaries (tiny blocks split characters and records)."""
    users = ["Zoë", "Øre", "café", "naïve"]
    body = HEADER + "".join(
        f"e{i},2026-11-01T10:00:0{i}Z,{u},s{i},click,,,,\n" for i, u in enumerate(users)
    )
    key = f"landing/{encoding}.csv"
    local_store.write_bytes(key, body.encode(encoding))
    spec = _dialect_spec(encoding)
    batches = list(read_file(local_store, key, spec, block_bytes=7))
    rows = [r for b in batches for r in b.table.to_pylist()]
    assert [r["user_id"] for r in rows] == users
    assert not [r for b in batches for r in b.rejects]


def test_bytes_invalid_in_the_encoding_name_the_file_and_line(local_store: ObjectStore) -> None:
    body = HEADER.encode("cp1252") + b"e1,2026-11-01T10:00:00Z,u1,s1,click,,,,\n"
    body += b"e2,2026-11-01T10:00:00Z,u\x81,s2,click,,,,\n"  # 0x81 is unassigned in cp1252
    key = "landing/bad-cp1252.csv"
    local_store.write_bytes(key, body)
    with pytest.raises(SourceFileError) as caught:
        list(read_file(local_store, key, _dialect_spec("cp1252")))
    assert caught.value.path == key and caught.value.line == 3
    assert "not valid cp1252 text" in str(caught.value)


def test_an_unknown_encoding_is_a_configuration_error() -> None:
    from lake_pipelines.errors import ConfigError

    with pytest.raises(ConfigError, match=r"CsvDialect\.encoding.*no-such-charset"):
        _dialect_spec("no-such-charset")
    with pytest.raises(ConfigError, match="not a text encoding"):
        _dialect_spec("base64")


@pytest.mark.parametrize("block_bytes", [7, 1000, 2001, 1 << 20])
@pytest.mark.parametrize("codec,bom", [("utf-16-be", b"\xfe\xff"), ("utf-16-le", b"\xff\xfe")])
def test_an_invalid_character_far_into_a_utf16_file_names_its_own_line(
    local_store: ObjectStore, codec: str, bom: bytes, block_bytes: int
) -> None:
    """The line is counted in the file's byte order (set by its BOM, in the first block only)
    whatever block the bad character falls in, odd block sizes included."""
    rows = [f"e{i},2026-11-01T10:00:00Z,u{i},s{i},click,,,,\n" for i in range(39)]
    good = [(HEADER if i == 0 else rows[i - 1]).encode(codec) for i in range(40)]
    bad = rows[29].replace("u29", "u\ud800").encode(codec, "surrogatepass")
    body = bom + b"".join(good[:30]) + bad + b"".join(good[31:])  # line 31: a lone surrogate
    key = f"landing/{codec}-{block_bytes}.csv"
    local_store.write_bytes(key, body)
    with pytest.raises(SourceFileError) as caught:
        list(read_file(local_store, key, _dialect_spec("utf-16"), block_bytes=block_bytes))
    assert caught.value.line == 31, str(caught.value)


def test_a_column_of_the_wrong_type_is_a_file_error_naming_the_column(
    local_store: ObjectStore,
) -> None:
    body = HEADER + "".join(f"w{i},2026-11-01T10:00:00Z,u,s,click,,EUR {i},,\n" for i in range(400))
    with pytest.raises(SourceFileError, match=r"landing/w\.csv: column 'price': most values") as e:
        _read(local_store, "landing/w.csv", body.encode())
    assert (e.value.path, e.value.column, e.value.line) == ("landing/w.csv", "price", None)
    assert e.value.reason.startswith("column 'price': ")  # what the quarantine records
