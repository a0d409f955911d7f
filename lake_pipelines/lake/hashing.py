"""64-bit hashes computed from the Arrow buffers, and an order-independent row checksum.

`value_hashes` gives one hash per value of an array (the ingestion's day-wide uniqueness check
uses it). `RowChecksum` keeps the count and the sum (mod 2**64) of one 64-bit hash per row;
rows in any order give the same value, and a lost, doubled or changed row changes it (up to
hash collisions); compaction proves with it that it rewrote exactly the rows it read.
Fixed-width values are hashed from their bytes, strings and binaries 8 bytes at a time, lists
and structs through their children; only other types fall back to pandas.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

READ_BATCH_ROWS = 64 * 1024
_MASK = (1 << 64) - 1
_NULL = np.uint64(0x9E3779B97F4A7C15)
_PRIME = np.uint64(0x100000001B3)
_WORD = np.uint64(0xC2B2AE3D27D4EB4F)
_ONES = np.uint64(_MASK)
_TAIL = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [_MASK], dtype=np.uint64)
_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads every input bit over the whole hash."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _fixed_hash(arr: pa.Array) -> np.ndarray:
    """The value bits of a fixed-width array (ints, floats, temporals, decimals), per value."""
    width = arr.type.bit_width // 8
    words = max(width // 8, 1)
    dtype = _UINT[min(width, 8)]
    count = (arr.offset + len(arr)) * (width // np.dtype(dtype).itemsize)
    data = np.frombuffer(arr.buffers()[1], dtype=dtype, count=count)
    data = data.reshape(-1, words)[arr.offset :] if words > 1 else data[arr.offset :]
    if words == 1:
        return data.astype(np.uint64)
    h = np.zeros(len(arr), dtype=np.uint64)
    for w in range(words):  # decimal128/256: little-endian 64-bit words
        h = _mix(h ^ data[:, w])
    return h


def value_offsets(arr: pa.Array) -> np.ndarray:
    """The n + 1 offsets of a (large) string or binary array into its values buffer,
    zero-copy (int32 or int64, as stored)."""
    large = pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type)
    width = np.dtype(np.int64 if large else np.int32)
    return np.frombuffer(arr.buffers()[1], width, len(arr) + 1, arr.offset * width.itemsize)


def _bytes_hash(arr: pa.Array) -> np.ndarray:
    """Per value, its length and its bytes, read 8 at a time from wherever the value starts.

    Vectorised over the values: step k hashes bytes 8k..8k+7 of every value that long, so the
    cost follows the data size (about one pass per 8 bytes), with no Python object per value.
    """
    offsets = value_offsets(arr).astype(np.int64)
    pos, left = offsets[:-1], np.diff(offsets)
    data = arr.buffers()[2]
    padded = np.zeros((0 if data is None else data.size) + 8, dtype=np.uint8)
    padded[: len(padded) - 8] = np.frombuffer(data, dtype=np.uint8) if data is not None else 0
    # The 8 bytes starting at every byte offset (unaligned loads); the padding ends the last.
    words = np.ndarray((len(padded) - 7,), dtype=np.uint64, buffer=padded, strides=(1,))
    h = left.astype(np.uint64) * _WORD
    active: np.ndarray | None = None  # rows still being hashed (None: all rows)
    last = len(words) - 1
    while len(pos):
        shortest = int(left.min())
        more: np.ndarray | None = None  # which rows still have bytes (None: all)
        if shortest <= 0:
            more = left > 0
            if more.mean() < 0.5:  # most values are done: carry on with the others only
                rows = np.flatnonzero(more) if active is None else active[more]
                active, pos, left, more = rows, pos[more], left[more], None
                if not len(pos):
                    break
                shortest = int(left.min())
        if shortest >= 8:  # a whole word of every value: no mask, no position past the end
            w = words[pos]
        else:
            w = words[np.minimum(pos, last)] & _TAIL[np.clip(left, 0, 8)]
        x = (h if active is None else h[active]) ^ w
        x *= _WORD
        x ^= x >> np.uint64(29)
        if more is not None:
            x = np.where(more, x, h if active is None else h[active])
        if active is None:
            h = x
        else:
            h[active] = x
        pos = pos + 8
        left = left - 8
    return h


# A string column whose first DICTIONARY_SAMPLE values hold at most 1 in DICTIONARY_SHARE
# distinct ones (event types, country codes, hosts) is hashed through its dictionary: Arrow's
# hash table finds the distinct values (~20 ns a value), only they are hashed byte by byte,
# and the rows take their hash by index. Mostly distinct columns (ids) would pay for the
# dictionary and save nothing, so they are hashed directly.
DICTIONARY_SAMPLE = 4096
DICTIONARY_SHARE = 8


def _repetitive_bytes_hash(arr: pa.Array) -> np.ndarray | None:
    """`_bytes_hash(arr)`, computed once per distinct value; None when `arr` is not
    repetitive enough for that to pay (or too short to tell)."""
    if len(arr) < 2 * DICTIONARY_SAMPLE:
        return None
    sample = pc.count_distinct(arr.slice(0, DICTIONARY_SAMPLE), mode="all").as_py()
    if sample * DICTIONARY_SHARE > DICTIONARY_SAMPLE:
        return None
    encoded = pc.dictionary_encode(arr)
    if not len(encoded.dictionary) or len(encoded.dictionary) * DICTIONARY_SHARE > len(arr):
        return None  # all null, or the sample was not typical: hash directly after all
    indices = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)
    return _bytes_hash(encoded.dictionary)[indices]


def value_hashes(arr: pa.Array) -> np.ndarray:
    """A uint64 hash per value, nested types included (struct fields, list elements in order).

    Computed from the Arrow buffers with numpy: fixed-width values by their bits, strings and
    binaries by their bytes. Other types (maps, unions, ...) go through pandas' hash_array.
    """
    n = len(arr)
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.dictionary_decode()
        t = arr.type
    if pa.types.is_string_view(t) or pa.types.is_binary_view(t):
        arr = arr.cast(pa.large_binary())
        t = arr.type
    elif pa.types.is_fixed_size_binary(t):
        arr = arr.cast(pa.binary())
        t = arr.type
    elif pa.types.is_map(t):  # a list of key/value structs
        arr = arr.cast(pa.list_(pa.struct([t.key_field, t.item_field])))
        t = arr.type
    if pa.types.is_struct(t):
        h = np.zeros(n, dtype=np.uint64)
        for child in arr.flatten():
            h = h * _PRIME + value_hashes(child)
    elif pa.types.is_list(t) or pa.types.is_large_list(t):
        values = arr.flatten()
        parents = pc.list_parent_indices(arr).to_numpy().astype(np.int64)
        offsets = arr.offsets.to_numpy().astype(np.int64)
        starts = offsets[:-1] - offsets[0]
        position = np.arange(len(values), dtype=np.int64) - starts[parents]
        element = _mix(value_hashes(values) + position.astype(np.uint64) * _PRIME)
        # Elements come grouped by list: sum each list's run (np.add.at is far slower).
        counts = np.bincount(parents, minlength=n)
        nonempty = counts > 0
        h = np.zeros(n, dtype=np.uint64)
        if len(element):
            firsts = (np.cumsum(counts) - counts)[nonempty]
            h[nonempty] = np.add.reduceat(element, firsts)
        lengths = pc.list_value_length(arr).fill_null(0).to_numpy().astype(np.uint64)
        h = h ^ _mix(lengths)
    elif pa.types.is_boolean(t):
        h = arr.fill_null(False).to_numpy(zero_copy_only=False).astype(np.uint64)
    elif (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
    ):
        fast = _repetitive_bytes_hash(arr)
        h = fast if fast is not None else _bytes_hash(arr)
    elif (
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_temporal(t)
        or pa.types.is_decimal(t)
    ) and t.bit_width in (8, 16, 32, 64, 128, 256):
        h = _fixed_hash(arr)
    else:
        h = _fallback_hash(arr)
    if not arr.null_count:
        return _mix(h)
    valid = arr.is_valid().to_numpy(zero_copy_only=False)
    return _mix(np.where(valid, h, _NULL))


def _fallback_hash(arr: pa.Array) -> np.ndarray:
    from pandas.util import hash_array  # only for types without a buffer hash (rare)

    values = arr.to_numpy(zero_copy_only=False)
    return hash_array(values, categorize=False).astype(np.uint64)


def row_hashes(data: pa.Table | pa.RecordBatch) -> np.ndarray:
    """One uint64 hash per row over every column, in schema order."""
    table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
    h = np.zeros(table.num_rows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for column in table.columns:
            h = h * _PRIME + value_hashes(column.combine_chunks())
        return _mix(h)


class RowChecksum:
    """Order-independent checksum of a multiset of rows: equal rows in, equal value out.

    Small tables are hashed together once enough rows are pending (hashing has a fixed cost
    per call that would dominate a bin of thousands of tiny files).
    """

    def __init__(self, rows_per_hash: int = READ_BATCH_ROWS) -> None:
        self.rows = 0
        self._sum = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._rows_per_hash = rows_per_hash

    @classmethod
    def of(cls, data: pa.Table | pa.RecordBatch) -> RowChecksum:
        """The checksum of `data`, hashed now, on the calling thread."""
        checksum = cls()
        checksum.update(data)
        checksum._hash_pending()
        return checksum

    def update(self, data: pa.Table | pa.RecordBatch) -> None:
        if not data.num_rows:
            return
        table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self.rows += table.num_rows
        if self._pending_rows >= self._rows_per_hash:
            self._hash_pending()

    def _hash_pending(self) -> None:
        if self._pending:
            with np.errstate(over="ignore"):
                # bounded: `_rows_per_hash` rows (plus one table) are pending at most
                hashes = row_hashes(pa.concat_tables(self._pending, promote_options="none"))
                self._sum = (self._sum + int(hashes.sum(dtype=np.uint64))) & _MASK
            self._pending, self._pending_rows = [], 0

    def merge(self, other: RowChecksum) -> None:
        other._hash_pending()
        self._sum = (self._sum + other._sum) & _MASK
        self.rows += other.rows

    @property
    def value(self) -> str:
        self._hash_pending()
        return f"{self.rows}:{self._sum:016x}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RowChecksum) and self.value == other.value

    __hash__ = None  # type: ignore[assignment]
