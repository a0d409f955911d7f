"""Sorting rows cheaply and exactly."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from lake_pipelines.lake.parquet import sort as sort_mod
from lake_pipelines.lake.parquet.sort import is_sorted, sort_rows


def _random_table(rnd: random.Random, n: int, nulls: bool) -> pa.Table:
    ts = [rnd.randint(0, 5) for _ in range(n)]
    user: list[str | None] = [rnd.choice("abc") for _ in range(n)]
    if nulls:
        user[rnd.randrange(n)] = None
    return pa.table({"ts": ts, "user_id": user, "x": list(range(n))})


@pytest.mark.parametrize("seed", range(40))
def test_is_sorted_agrees_with_sort_by(seed: int) -> None:
    rnd = random.Random(seed)
    keys = [("ts", "ascending"), ("user_id", "ascending")]
    table = _random_table(rnd, rnd.randint(0, 30), nulls=seed % 5 == 0)
    ordered = table.sort_by(keys)
    if is_sorted(table, ["ts", "user_id"]):
        assert table.equals(ordered)  # skipping the sort never changes the file
    if table.column("user_id").null_count == 0:
        assert is_sorted(ordered, ["ts", "user_id"])  # and a sorted table is recognised
    assert is_sorted(ordered.slice(0, 1), ["ts", "user_id"])


@pytest.mark.parametrize("seed", range(40))
def test_sort_rows_equals_a_full_stable_sort(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever shortcut `sort_rows` takes (nothing to do, only runs of tied first keys to
    sort, or a full sort), the rows come out exactly as `Table.sort_by` puts them, ties in the
    full key included (the `tag` column shows the order among rows equal on both keys)."""
    rng = random.Random(seed)
    n = rng.choice([0, 1, 2, 50, 400])
    ts = sorted(rng.randrange(0, max(n // rng.choice([1, 3, 50]), 1)) for _ in range(n))
    if seed % 5 == 0 and n > 3:  # the first key descends somewhere: a full sort
        ts[1], ts[-2] = ts[-2], ts[1]
    users = [rng.choice(["a", "b", "c", None] if seed % 7 == 0 else ["a", "b", "c"]) for _ in ts]
    table = pa.table(
        {
            "ts": pa.array(ts, pa.int64()),
            "user": pa.array(users, pa.string()),
            "tag": pa.array(range(n), pa.int64()),
        }
    )
    if n > 10:  # several chunks, as rows arrive from several batches
        table = pa.concat_tables([table.slice(0, n // 3), table.slice(n // 3)])
    if seed % 2:
        monkeypatch.setattr(sort_mod, "MAX_TIED_SHARE", 1.0)  # take the tie path more often
    expected = table.sort_by([("ts", "ascending"), ("user", "ascending")])
    got = sort_rows(table, ["ts", "user"])
    assert got.to_pylist() == expected.to_pylist()
    assert is_sorted(got.combine_chunks(), ["ts", "user"]) or None in users
