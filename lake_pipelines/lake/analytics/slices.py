"""Exact aggregates over more groups than memory holds, a slice of one key at a time.

A distinct count or a per-user aggregate of a big day groups by a high-cardinality key
(users, sessions): a 20M-row day has 10.5M (day, event type, user) groups, 1.7 GB in
DataFusion's hash table. Under the memory limit DataFusion spills those groups in sorted runs
and merges them, and that merge is slow: 50 s for the day's distinct users, 64 s of it in the
final aggregate (benchmarks/ANALYSIS.md, run 30).

The same numbers come cheaper in slices. The day's rows are split once, by ranges of the key,
into Arrow files (one streaming ``COPY ... PARTITIONED BY``, in DataFusion, with the range
bounds taken from a sample of the key); then each slice is aggregated alone. A key value lies
in exactly one slice, so every group does too, and an aggregate that counts or sums per key
adds up exactly across slices (a distinct count is the sum of the slices' distinct counts).
The bounds decide only how even the slices are, never the result: a bad sample makes one slice
bigger, and that slice spills as before. Each slice holds about 1/n of the groups, so it fits
the limit without spilling and the day's peak memory stays near a small day's.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pyarrow as pa

from lake_pipelines.errors import ConfigError
from lake_pipelines.lake import logs

if TYPE_CHECKING:
    from datafusion import SessionContext

# Memory of DataFusion's hash aggregate per group keyed by (day, a short string, a string id):
# 1.68 GB for 10.5M groups of a 20M-row day (run 30). A group per row is the upper bound.
GROUP_BYTES = 160
# The share of the memory limit a slice's groups may take: the fair pool splits the limit
# between the plan's spilling operators (a 2 GiB pool spilled the final aggregate at 0.54 GB).
SLICE_SHARE = 4
SAMPLE_ROWS = 20_000  # key values sampled to place the bounds (1.9 s of a 20M-row day's scan)
MAX_SLICES = 64
log = logs.logger(__name__)


def slices_for(rows: int, memory_limit: int, share: int = 1) -> int:
    """How many slices keep the groups of `rows` rows (at most one group a row) within a
    `SLICE_SHARE`-th of the `share`-th of `memory_limit` that the caller may use (1: no
    limit, or the groups fit)."""
    if not memory_limit or rows <= 0:
        return 1
    budget = max(memory_limit // (SLICE_SHARE * max(share, 1)), 1)
    return max(1, min(MAX_SLICES, math.ceil(rows * GROUP_BYTES / budget)))


def _literal(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"a slice key must be a string or an integer, not {type(value).__name__}")
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("'", "''") + "'"


def slice_bounds(ctx: SessionContext, rows: str, key: str, total: int, slices: int) -> list[object]:
    """Up to ``slices - 1`` ascending, distinct values of `key` that split the `rows` subquery
    (`total` rows) into slices of about equal size, from a random sample of the key."""
    if slices <= 1 or total <= 0:
        return []
    share = min(1.0, SAMPLE_ROWS / total)
    sample = ctx.sql(
        f"SELECT {key} AS k FROM ({rows}) WHERE {key} IS NOT NULL AND random() < {share!r}"
    ).to_arrow_table()
    # sorted here, whatever the Arrow type (pyarrow sorts no string views): Python orders
    # strings by code point, as DataFusion's `<` in `slice_case` orders their UTF-8 bytes
    ordered = sorted(sample.column("k").to_pylist())
    if not ordered:
        return []
    bounds: list[object] = []
    for i in range(1, slices):
        value = ordered[len(ordered) * i // slices]
        if value != ordered[0] and (not bounds or value != bounds[-1]):
            bounds.append(value)
    return bounds


def slice_case(key: str, bounds: Sequence[object]) -> str:
    """The SQL expression of a row's slice: 0 below the first bound, ..., ``len(bounds)``
    from the last one up, and for a null key."""
    whens = " ".join(f"WHEN {key} < {_literal(b)} THEN {i}" for i, b in enumerate(bounds))
    return f"CASE {whens} ELSE {len(bounds)} END" if bounds else "0"


def _host_prefix() -> str:
    return f"lake-slices-{socket.gethostname()}-"


def _folder_prefix(pid: int | None = None) -> str:
    # the host and the process in the name: who may remove it once the process is gone
    return f"{_host_prefix()}{os.getpid() if pid is None else pid}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sweep_dead_slices(parent: str) -> list[str]:
    """Remove the slice folders under `parent` that a process of this host left when it was
    killed (its pid is gone); returns them. A ~310 MB folder per 20M-row day would otherwise
    stay until the OS clears its temporary directory, if it ever does. Folders of live
    processes and of other hosts sharing the directory are left alone; a reused pid keeps a
    folder until that process ends too."""
    removed: list[str] = []
    if os.name != "posix":  # os.kill(pid, 0) is a probe on POSIX only (on Windows, Ctrl-C)
        return removed
    prefix = _host_prefix()
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    for name in names:
        pid, sep, _ = name.removeprefix(prefix).partition("-")
        if not name.startswith(prefix) or not sep or not pid.isdigit() or _alive(int(pid)):
            continue
        shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
        removed.append(name)
    return removed


@contextmanager
def sliced(
    ctx: SessionContext, rows: str, key: str, bounds: Sequence[object], spill_dir: str = ""
) -> Iterator[list[str]]:
    """Register the rows of the `rows` subquery as one table per slice of `key` (see
    `slice_case`), written once to Arrow files under `spill_dir` (the OS temporary directory if
    empty; uncompressed, the columns of `rows`: ~310 MB for a 20M-row day's three columns);
    yields the tables' names, empty slices left out. The files and tables are removed
    afterwards, also on an error; a killed process's folder is removed by the next slicing
    on the same host (`sweep_dead_slices`)."""
    from lake_pipelines.lake.analytics.session import GLOB_CHARACTERS

    parent = spill_dir or tempfile.gettempdir()
    for name in sweep_dead_slices(parent):
        log.info("removed %s: slices of a process of this host that is gone", name)
    folder = tempfile.mkdtemp(prefix=_folder_prefix(), dir=parent)
    names: list[str] = []
    try:
        if GLOB_CHARACTERS & set(folder) or "'" in folder:
            # DataFusion would read the slices' folders as globs, and a glob matching nothing
            # as no rows: wrong numbers without an error
            raise ConfigError(
                "LAKE_DF_SPILL_DIR",
                spill_dir or tempfile.gettempdir(),
                "the gold queries' slices cannot be written under a path with * ? [ ] { } or '",
            )
        ctx.sql(
            f"COPY (SELECT *, {slice_case(key, bounds)} AS lake_slice FROM ({rows})) "
            f"TO '{folder}/' STORED AS ARROW PARTITIONED BY (lake_slice)"
        ).collect()
        tag = os.path.basename(folder).replace("-", "_")
        for i in range(len(bounds) + 1):
            part = os.path.join(folder, f"lake_slice={i}")
            if os.path.isdir(part):
                names.append(f"{tag}_{i}")
                ctx.register_arrow(names[-1], part + "/")
        yield names
    finally:
        for name in names:
            ctx.deregister_table(name)
        shutil.rmtree(folder, ignore_errors=True)


def sliced_sum(
    ctx: SessionContext,
    rows: str,
    key: str,
    bounds: Sequence[object],
    query: Callable[[str], str],
    keys: Sequence[str],
    summed: Sequence[str],
    spill_dir: str = "",
) -> pa.Table:
    """``query(rows)`` computed a slice of `key` at a time and added up: ``query`` maps a rows
    subquery to SQL whose result has a row per `keys` and `summed` columns that add up across
    slices (counts or sums per key value). Without bounds, or without rows, one query."""
    if not bounds:
        return ctx.sql(query(rows)).to_arrow_table().select([*keys, *summed])
    total: pa.Table | None = None
    with sliced(ctx, rows, key, bounds, spill_dir) as tables:
        for t in tables:
            part = ctx.sql(query(f"SELECT * FROM {t}")).to_arrow_table().select([*keys, *summed])
            # added up as the slices come: at most two slices' results held, not all of them
            total = part if total is None else _add(total, part, keys, summed)
    if total is None:  # no rows: the query's answer to none
        return ctx.sql(query(rows)).to_arrow_table().select([*keys, *summed])
    return total


def _add(a: pa.Table, b: pa.Table, keys: Sequence[str], summed: Sequence[str]) -> pa.Table:
    """`a` and `b` added up per `keys` (null keys are one group, as in SQL's GROUP BY)."""
    both = pa.concat_tables([a, b.cast(a.schema)])
    out = both.group_by(list(keys), use_threads=False).aggregate([(c, "sum") for c in summed])
    columns = {k: out.column(k) for k in keys} | {c: out.column(f"{c}_sum") for c in summed}
    return pa.table(columns).cast(a.schema)
