"""Aggregates computed a slice of a key at a time (`analytics.slices`) give the numbers of one
query, whatever the bounds; the bounds follow the data; the slices' files are removed."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import cast

import numpy as np
import pyarrow as pa
import pytest
from datafusion import SessionContext

from lake_pipelines.errors import ConfigError
from lake_pipelines.lake.analytics.session import SessionSettings, make_session
from lake_pipelines.lake.analytics.slices import (
    MAX_SLICES,
    slice_bounds,
    sliced_sum,
    slices_for,
)
from lake_pipelines_tests.support import duckdb_query


def _session(data: pa.Table) -> SessionContext:
    ctx = make_session(SessionSettings(2))
    ctx.register_record_batches("source", [data.to_batches(max_chunksize=4096)])
    return ctx


def _distinct_per_group(rows: str) -> str:
    # the distinct keys per group (nulls not counted) and the (group, key) pairs (a null key
    # is one pair): both add up across slices of the key
    return f"""
        SELECT g, COUNT(k) AS keys, COUNT(*) AS pairs
        FROM (SELECT g, k FROM ({rows}) GROUP BY g, k) GROUP BY g
    """


def _keyed(keys: Sequence[object], key_type: pa.DataType, rows: int = 30_000) -> pa.Table:
    rng = np.random.default_rng(30)
    picked = [keys[i] for i in rng.integers(0, len(keys), rows)]
    return pa.table(
        {
            "g": pa.array(np.array(["a", "b", "c"])[rng.integers(0, 3, rows)]),
            "k": pa.array(picked, key_type),
        }
    )


def _sliced(
    ctx: SessionContext, bounds: list, summed: list[str], spill: Path, where: str = ""
) -> pa.Table:
    rows = f"SELECT g, k FROM source {where}"
    return sliced_sum(ctx, rows, "k", bounds, _distinct_per_group, ["g"], summed, str(spill))


STRINGS = [f"u{i:05d}" for i in range(3_000)] + ["o'k", "é", "", "a''b", "z\\n", None]


def test_slices_follow_the_rows_and_the_memory_limit() -> None:
    assert slices_for(20_000_000, 0) == 1  # no limit: nothing to fit
    assert slices_for(0, 2 << 30) == 1
    # 20M rows at 160 B a group, in a quarter of 2 GiB: 3.2e9 / 536,870,912 = 5.96
    assert slices_for(20_000_000, 2 << 30) == 6
    assert slices_for(20_000_000, 2 << 30, share=2) == 12  # two days at once: half each
    assert slices_for(3_000_000, 2 << 30) == 1  # 0.48 GB fits
    assert slices_for(10**12, 1 << 20) == MAX_SLICES


@pytest.mark.parametrize(
    "bounds",
    [
        ["u01500"],
        ["o'k"],  # a bound with a quote, itself a key
        ["", "a''b", "u00001", "u02999", "é"],  # the empty string, keys at both ends
        ["0", "1"],  # every key above the bounds: one slice holds all
        ["zzz"],  # every key below it (but é): one slice holds nearly all
        [chr(0x10FFFF)],
    ],
)
def test_any_string_bounds_give_the_numbers_of_one_query(tmp_path: Path, bounds: list[str]) -> None:
    data = _keyed(STRINGS, pa.string())
    ctx = _session(data)
    spill = tmp_path / "spill"
    spill.mkdir()
    got = _sliced(ctx, bounds, ["keys", "pairs"], spill)
    expected = duckdb_query(
        "SELECT g, COUNT(DISTINCT k) AS keys, COUNT(DISTINCT COALESCE(k, '<null>')) AS pairs "
        "FROM d GROUP BY g ORDER BY g",
        d=data,
    )
    assert got.sort_by("g").to_pylist() == expected.to_pylist()
    assert list(spill.iterdir()) == []  # the slices' files are gone
    assert [t for t in ctx.catalog().schema().names() if t != "source"] == []


def test_integer_keys_and_no_rows(tmp_path: Path) -> None:
    data = _keyed([*range(-50, 2_000), None], pa.int64())
    ctx = _session(data)
    for bounds in ([0], [-10, 10, 1_000], [5_000]):
        got = _sliced(ctx, bounds, ["keys"], tmp_path)
        expected = duckdb_query(
            "SELECT g, COUNT(DISTINCT k) AS keys FROM d GROUP BY g ORDER BY g", d=data
        )
        assert got.sort_by("g").to_pylist() == expected.to_pylist()
    none = _sliced(ctx, [0, 10], ["keys"], tmp_path, "WHERE k > 10000")
    assert none.num_rows == 0 and none.column_names == ["g", "keys"]


def test_string_view_keys_are_sampled_sliced_and_summed(tmp_path: Path) -> None:
    """DataFusion reads strings as views when a source has no schema given; pyarrow sorts no
    views, so the sample is ordered by DataFusion."""
    data = _keyed(STRINGS, pa.string())
    views = data.cast(pa.schema([("g", pa.string_view()), ("k", pa.string_view())]))
    ctx = _session(views)
    bounds = slice_bounds(ctx, "SELECT k FROM source", "k", views.num_rows, 5)
    assert len(bounds) == 4 and bounds == sorted(cast("list[str]", bounds))  # string keys
    got = _sliced(ctx, bounds, ["keys", "pairs"], tmp_path)
    expected = _sliced(_session(data), [], ["keys", "pairs"], tmp_path)  # one query
    assert sorted(got.to_pylist(), key=str) == sorted(expected.to_pylist(), key=str)


def test_sampled_bounds_split_the_rows_about_evenly() -> None:
    data = _keyed(STRINGS[:3_000], pa.string(), rows=100_000)
    ctx = _session(data)
    bounds = slice_bounds(ctx, "SELECT k FROM source", "k", data.num_rows, 4)
    assert len(bounds) == 3 and bounds == sorted(cast("list[str]", bounds))  # string keys
    keys = data.column("k").to_pylist()
    edges = [None, *bounds, None]
    sizes = [
        sum(1 for k in keys if (lo is None or k >= lo) and (hi is None or k < hi))
        for lo, hi in pairwise(edges)
    ]
    # a sample of ~20,000 places a quartile within about 1 % of the rows
    assert all(0.2 < s / len(keys) < 0.3 for s in sizes), sizes
    few = _session(_keyed(["x", "y", None], pa.string()))
    assert slice_bounds(few, "SELECT k FROM source", "k", 30_000, 8) == ["y"]


def test_a_spill_folder_datafusion_would_read_as_a_glob_is_refused(tmp_path: Path) -> None:
    """DataFusion reads ``x[1]/`` as a glob: the slices would read as no rows, silently."""
    spill = tmp_path / "spill[1]"
    spill.mkdir()
    ctx = _session(_keyed(STRINGS, pa.string()))
    with pytest.raises(ConfigError, match=r"LAKE_DF_SPILL_DIR=.*spill\[1\]"):
        _sliced(ctx, ["u01"], ["keys"], spill)
    assert list(spill.iterdir()) == []


def test_a_killed_processs_slices_are_removed_by_the_next_slicing(tmp_path: Path) -> None:
    """A process killed while it sliced leaves its folder; the next slicing on the host
    removes it, and leaves the folders of live processes, of other hosts sharing the
    directory, and anything else."""
    import socket
    import subprocess
    import sys

    from lake_pipelines.lake.analytics.slices import _folder_prefix

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()  # a pid no process has now
    left = tmp_path / f"{_folder_prefix(ended.pid)}k1ll3d"
    (left / "lake_slice=0").mkdir(parents=True)
    (left / "lake_slice=0" / "part-0.arrow").write_bytes(b"x" * 1000)
    kept = [
        tmp_path / f"{_folder_prefix()}running",  # this process: alive
        tmp_path / f"lake-slices-{socket.gethostname()}x-{ended.pid}-elsewhere",
        tmp_path / "lake-slices-abc123",  # no pid: nobody can say whose
        tmp_path / "datafusion-spill",
    ]
    for folder in kept:
        folder.mkdir()
    data = _keyed([*range(100), None], pa.int64())
    got = _sliced(_session(data), [10, 50], ["keys"], tmp_path)
    assert got.num_rows == 3
    assert sorted(tmp_path.iterdir()) == sorted(kept)
