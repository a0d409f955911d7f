"""Rows in the spec's sort order, cheaply when they almost are already."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def is_sorted(table: pa.Table, keys: Sequence[str]) -> bool:
    """Whether `table` is already in ascending order of `keys` (nulls in a key: unknown).

    One vectorised pass over neighbouring rows; landed data usually arrives in time order, and
    then the sort before each row group is skipped.
    """
    n = table.num_rows
    if n < 2:
        return True
    tied: pa.Array | None = None  # neighbours equal on every key so far
    for k in keys:
        col = table.column(k)
        if col.null_count:
            return False
        if pa.types.is_nested(col.type):
            return False
        col = col.combine_chunks()
        if pa.types.is_floating(col.type) and pc.any(pc.is_nan(col)).as_py():
            return False
        prev, nxt = col.slice(0, n - 1), col.slice(1)
        descending = pc.greater(prev, nxt)
        if tied is not None:
            descending = pc.and_(tied, descending)
        if pc.any(descending).as_py():
            return False
        equal = pc.equal(prev, nxt)
        tied = equal if tied is None else pc.and_(tied, equal)
        if not pc.any(tied).as_py():
            return True
    return True


def sort_rows(table: pa.Table, keys: Sequence[str]) -> pa.Table:
    """`table` in ascending order of `keys` (a stable sort, as `pa.Table.sort_by`).

    Landed data usually arrives in time order: then nothing is done (`is_sorted`), or, when
    only rows that tie on the first key are out of order, just those runs are sorted and the
    table is stitched back from zero-copy slices (`_sort_ties`), instead of a gather of every
    column of every row.
    """
    if is_sorted(table, keys):
        return table
    repaired = _sort_ties(table, keys)
    if repaired is not None:
        return repaired
    return table.sort_by([(c, "ascending") for c in keys])


# Above this share of tied neighbours a full sort is used: it is then cheaper, and the
# stitched table would have up to two chunks per run.
MAX_TIED_SHARE = 0.001


def _sort_ties(table: pa.Table, keys: Sequence[str]) -> pa.Table | None:
    """The sorted table if the first key never descends and ties are rare; else None."""
    n = table.num_rows
    first = table.column(keys[0])
    if len(keys) < 2 or first.null_count or pa.types.is_nested(first.type):
        return None
    first = first.combine_chunks()
    if pa.types.is_floating(first.type) and pc.any(pc.is_nan(first)).as_py():
        return None
    prev, nxt = first.slice(0, n - 1), first.slice(1)
    if pc.any(pc.greater(prev, nxt)).as_py():
        return None
    tied = np.flatnonzero(pc.equal(prev, nxt).to_numpy(zero_copy_only=False))
    if len(tied) > MAX_TIED_SHARE * n:
        return None
    # Runs of rows sharing a first key: tied[i] ties row tied[i] with the row after it.
    breaks = np.flatnonzero(np.diff(tied) > 1)
    starts = np.concatenate([tied[:1], tied[breaks + 1]])
    ends = np.concatenate([tied[breaks], tied[-1:]]) + 2  # exclusive
    order = [(c, "ascending") for c in keys]
    pieces, pos = [], 0
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        pieces.append(table.slice(pos, start - pos))
        pieces.append(table.slice(start, end - start).sort_by(order))
        pos = end
    pieces.append(table.slice(pos))
    return pa.concat_tables(pieces)  # slices of `table` (a row group's rows): no more than it
