"""Property-based: arbitrary rows written as CSV and as NDJSON come back identical from Parquet."""

from __future__ import annotations

import io
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Literal

import pandera.pandas as pdr
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.lake.ingest.readers import read_file
from lake_pipelines.lake.parquet.writer import RollingParquetWriter, commit_files
from lake_pipelines.lake.storage import ObjectStore

SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("text", pa.string()),
        pa.field("amount", pa.float64()),
        pa.field("count", pa.int64()),
        pa.field("flag", pa.bool_()),
    ]
)
SPEC = DatasetSpec(
    name="prop",
    schema=SCHEMA,
    timestamp_column="ts",
    start_date="2026-01-01",
    contract=pdr.DataFrameSchema({}),
)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

SURROGATES: tuple[Literal["Cs"]] = ("Cs",)
texts = st.text(
    alphabet=st.characters(blacklist_categories=SURROGATES, blacklist_characters="\x00"),
    max_size=40,
) | st.sampled_from(["a,b", 'say "hi"', "two\nlines", "crlf\r\nend", "NA", "NULL", "", " "])
rows = st.lists(
    st.fixed_dictionaries(
        {
            "ts": st.integers(0, 4_102_444_800_000_000).map(
                lambda us: EPOCH + timedelta(microseconds=us)
            ),
            "text": st.none() | texts,
            "amount": st.none()
            | st.floats(allow_nan=False, width=64)
            | st.sampled_from([0.0, -0.0, 1e308, -1e-308, 5e-324]),
            "count": st.none() | st.integers(-(2**63), 2**63 - 1),
            "flag": st.none() | st.booleans(),
        }
    ),
    max_size=25,
)


def _csv_cell(v: object) -> str:
    if v is None:
        return ""  # unquoted empty: null
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, datetime):
        return v.isoformat(timespec="microseconds")
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, int):
        return str(v)
    return '"' + str(v).replace('"', '""') + '"'  # quoted: never null, even "NA"


def _round_trip(store: ObjectStore, key: str, body: bytes) -> pa.Table:
    store.write_bytes(key, body)
    batches = list(read_file(store, key, SPEC, block_bytes=256))
    assert [r for b in batches for r in b.rejects] == []
    writer = RollingParquetWriter(store, SPEC, "out", key.replace("/", "_"), row_group_bytes=512)
    with writer:
        for b in batches:
            writer.write(b.table)
    commit_files(store, writer.files)
    tables = [pq.read_table(store.path(f.key)) for f in writer.files]
    return pa.concat_tables(tables) if tables else SCHEMA.empty_table()


def _expected(data: list[dict]) -> list[dict]:
    """Rows with an id, keys in the schema's column order."""
    return [{n: ({"id": f"r{i}", **r})[n] for n in SCHEMA.names} for i, r in enumerate(data)]


def _same(got: pa.Table, data: list[dict]) -> None:
    expected = _expected(data)
    # rows are sorted by nothing (the spec has no sort order), so order is kept
    actual = got.to_pylist()
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        for k, v in e.items():
            if isinstance(v, float) and isinstance(a[k], float):
                assert a[k] == v and math.copysign(1, a[k]) == math.copysign(1, v), k
            else:
                assert a[k] == v, (k, a[k], v)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=rows, trailing_break=st.booleans())
def test_csv_round_trip(data: list[dict], trailing_break: bool, tmp_path_factory) -> None:
    """Quoted line breaks anywhere, in blocks of 256 bytes; the file may end without one."""
    store = ObjectStore(str(tmp_path_factory.mktemp("csv")))
    header = ",".join(SCHEMA.names) + "\r\n"
    lines = [",".join(_csv_cell(v) for v in row.values()) for row in _expected(data)]
    body = header + "".join(line + "\r\n" for line in lines)
    if not trailing_break and lines:
        body = body.removesuffix("\r\n")
    _same(_round_trip(store, "in/data.csv", body.encode()), data)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=rows)
def test_ndjson_round_trip(data: list[dict], tmp_path_factory) -> None:
    """JSON has no infinities (RFC 8259): rows holding one are the hostile-input tests' part."""
    assume(all(r["amount"] is None or math.isfinite(r["amount"]) for r in data))
    store = ObjectStore(str(tmp_path_factory.mktemp("ndjson")))
    out = io.StringIO()
    for row in _expected(data):
        doc = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
        out.write(json.dumps(doc, ensure_ascii=False, allow_nan=False) + "\n")
    _same(_round_trip(store, "in/data.ndjson", out.getvalue().encode()), data)
