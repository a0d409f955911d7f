"""The row checksum compaction and tests rely on."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from lake_pipelines.lake import hashing
from lake_pipelines.lake.hashing import RowChecksum


def test_row_checksum_is_a_multiset_checksum_over_nested_types() -> None:
    schema = pa.schema(
        [
            pa.field("id", pa.string()),
            pa.field("amount", pa.decimal128(12, 2)),
            pa.field("flag", pa.bool_()),
            pa.field("ts", pa.timestamp("us", tz="UTC")),
            pa.field(
                "items",
                pa.list_(pa.struct([pa.field("sku", pa.string()), pa.field("q", pa.int32())])),
            ),
            pa.field("tags", pa.list_(pa.string())),
        ]
    )
    ts = datetime(2026, 1, 1, tzinfo=UTC)
    data: list[dict[str, Any]] = [
        {"id": "a", "amount": Decimal("1.50"), "flag": True, "ts": ts,
         "items": [{"sku": "x", "q": 1}, {"sku": "y", "q": None}], "tags": ["p", "q"]},
        {"id": "b", "amount": None, "flag": None, "ts": None, "items": None, "tags": []},
        {"id": "b", "amount": None, "flag": None, "ts": None, "items": None, "tags": []},
        {"id": None, "amount": Decimal("0"), "flag": False, "ts": ts,
         "items": [None, {"sku": None, "q": 2}], "tags": [None]},
    ]  # fmt: skip
    table = pa.Table.from_pylist(data, schema=schema)

    def checksum(*tables: pa.Table) -> str:
        return _checksum(tables, rows_per_hash=2)

    base = checksum(table)
    shuffled = table.take([3, 1, 0, 2])
    assert checksum(shuffled.slice(0, 1), shuffled.slice(1)) == base  # order, chunking
    assert checksum(table.slice(1)) != base  # a row fewer
    assert checksum(table.slice(0, 3), table.slice(1, 1)) != base  # a duplicate instead of one
    changed = [dict(r) for r in data]
    changed[0]["tags"] = ["q", "p"]  # same elements, other order
    assert checksum(pa.Table.from_pylist(changed, schema=schema)) != base
    changed[0]["tags"], changed[3]["items"] = ["p", "q"], [{"sku": None, "q": 2}, None]
    assert checksum(pa.Table.from_pylist(changed, schema=schema)) != base


def _checksum(tables: tuple[pa.Table, ...], rows_per_hash: int) -> str:
    c = RowChecksum(rows_per_hash=rows_per_hash)
    for t in tables:
        c.update(t)
    return c.value


def test_row_checksum_reads_strings_of_any_length_from_any_offset() -> None:
    words = ["", "a", "abcdefgh", "abcdefghi", "abcdefgh\x00", "x" * 300, "é" * 9, None]
    table = pa.table(
        {
            "s": pa.array(words * 3),
            "b": pa.array([None if w is None else w.encode() for w in words] * 3),
        }
    )

    def checksum(*tables: pa.Table) -> str:
        return _checksum(tables, rows_per_hash=1)

    base = checksum(table)
    assert checksum(*(table.slice(i, 5) for i in range(0, len(table), 5))) == base
    assert checksum(table.cast(pa.schema([("s", pa.large_string()), ("b", pa.binary())]))) == base
    hashes = hashing.row_hashes(table.slice(0, len(words)))
    assert len(set(hashes.tolist())) == len(words)  # every value hashes apart, "" from null
    changed = table.set_column(0, "s", pa.array(["abcdefgj", *words[1:]] + words * 2))
    assert checksum(changed) != base


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string(), pa.binary()])
def test_repetitive_strings_hash_through_their_dictionary_to_the_same_values(kind) -> None:
    """A column with few distinct values is hashed once per value (its dictionary): each
    row gets exactly the hash the byte-by-byte path gives it, nulls and offsets included,
    and a column that turns out mostly distinct after its sample still hashes right."""
    rng = np.random.default_rng(11)
    n = 5 * hashing.DICTIONARY_SAMPLE
    words = ["", "a", "click", "abcdefgh", "abcdefghi", "é" * 9, "x" * 40]
    picked = [None if i % 97 == 0 else words[j] for i, j in enumerate(rng.integers(0, 7, n))]
    if kind == pa.binary():
        picked = [None if w is None else w.encode() for w in picked]
    arr = pa.array(picked, kind)
    assert hashing._repetitive_bytes_hash(arr.slice(3)) is not None  # the dictionary path
    with np.errstate(over="ignore"):
        for part in (arr, arr.slice(3), arr.slice(7, n - 20)):
            direct = hashing._bytes_hash(part)
            fast = hashing._repetitive_bytes_hash(part)
            valid = part.is_valid().to_numpy(zero_copy_only=False)  # nulls: overwritten later
            assert fast is not None and np.array_equal(fast[valid], direct[valid])
            by_value = hashing.value_hashes(part)
            assert np.array_equal(by_value[valid], hashing._mix(direct)[valid])
        # repetitive at first, distinct afterwards: the sample misleads, the result does not
        tail = [f"id-{i}" for i in range(n)]
        mixed = pa.array(picked[: hashing.DICTIONARY_SAMPLE] + tail, pa.string())
        assert hashing._repetitive_bytes_hash(mixed) is None
    table = pa.table({"s": arr, "t": pa.array(range(n))})
    small = RowChecksum(rows_per_hash=1)  # row by row: arrays too short for a dictionary
    for i in range(0, n, 1000):
        small.update(table.slice(i, 1000))
    assert RowChecksum.of(table).value == small.value


@pytest.mark.parametrize("kind", [pa.string(), pa.large_binary()])
def test_an_all_null_string_column_checksums_like_any_other(kind) -> None:
    """A long column with no value at all (a column new in later files, null in every older
    one) has an empty dictionary: it is hashed directly, and its rows count like others."""
    n = 3 * hashing.DICTIONARY_SAMPLE
    with np.errstate(over="ignore"):
        hashes = hashing.value_hashes(pa.nulls(n, kind))
    assert len(hashes) == n and len(set(hashes.tolist())) == 1
    table = pa.table({"id": pa.array(range(n)), "ref": pa.nulls(n, kind)})
    small = RowChecksum(rows_per_hash=1)
    for i in range(0, n, 1000):
        small.update(table.slice(i, 1000))
    assert RowChecksum.of(table).value == small.value
