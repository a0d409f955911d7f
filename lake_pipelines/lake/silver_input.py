"""A day of bronze as silver reads it: footers first, then the rows in sort order, streamed.

`day_input` reads only each file's Parquet footer (one ranged read of its tail): the rows,
the schema, each row group's lowest first sort key, and a digest of the footer bytes that
goes into the day's fingerprint. Deciding that a day is unchanged needs nothing more.

`sorted_rows` then streams the day in batches to the spill-capable merge sort
(`external_sort.sorted_stream`). Bronze row groups are each sorted (the writer sorts every
group it cuts), so row groups are opened in order of their lowest key, overlapping ones are
read a batch of each in turn (`_merged`), and each batch carries a *floor*, the lowest key
any later batch can hold: rows under it leave the sort at once. A day landed in time order,
or compacted into files each sorted as a whole, streams through without spilling. Groups
that each cover the whole day (several landed files in no order) spill sorted runs and merge
them, in bounded memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import json
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.errors import BronzeReadError
from lake_pipelines.lake.bronze import bronze_files, read_lineage
from lake_pipelines.lake.compaction.external_sort import sorted_stream
from lake_pipelines.lake.ingest.readers import LANDING_SUFFIXES
from lake_pipelines.lake.layout import bronze_dir, landing_dir
from lake_pipelines.lake.period import Unit
from lake_pipelines.lake.storage import FileEntry, ObjectStore
from lake_pipelines.lake.threads import read_ahead

FOOTER_READ_BYTES = 64 << 10  # tail read at once: the footer of a bronze file almost always
READ_BATCH_ROWS = 64 * 1024
# Rows held by the sort (uncompressed Arrow) before it spills. Row groups of overlapping
# bronze files (a 20M-row day: two or three groups of ~40 MiB cover the same half hour) must
# fit together, or the day spills from that point on: at 64 MiB a 20M-row day spilled 23
# runs after 10M rows; at 128 MiB it streams (benchmarks/ANALYSIS.md, run 23).
SORT_MEMORY_BYTES = 128 << 20


@dataclass(frozen=True)
class Group:
    """One row group of a bronze file: its rows and the lowest first sort key (None: unknown)."""

    file: int  # index into the day's files
    index: int
    rows: int
    low: Any
    is_sorted: bool  # the footer declares it sorted by the spec's first key


@dataclass(frozen=True)
class BronzeFile:
    key: str
    size: int
    rows: int
    digest: str  # of the footer's bytes
    schema: pa.Schema
    metadata: pq.FileMetaData


def _footer(store: ObjectStore, entry: FileEntry) -> tuple[bytes, pq.FileMetaData]:
    uri = store.uri(entry.key)
    try:
        with store.arrow_fs.open_input_file(store.path(entry.key)) as f:
            size = f.size()
            n = min(size, FOOTER_READ_BYTES)
            tail = f.read_at(n, size - n)
            if len(tail) < 12 or tail[-4:] != b"PAR1":
                raise BronzeReadError(uri, "not a Parquet file (no footer)")
            length = int.from_bytes(tail[-8:-4], "little") + 8
            if length > len(tail):
                tail = f.read_at(min(length, size), size - min(length, size))
        footer = tail[-length:]
        return footer, pq.read_metadata(pa.BufferReader(footer))
    except (OSError, pa.ArrowException) as exc:
        raise BronzeReadError(uri, f"cannot read its footer: {exc}") from exc


def read_footers(store: ObjectStore, spec: DatasetSpec, files: list[FileEntry]) -> list[BronzeFile]:
    """The day's bronze files as their footers describe them (no row is read)."""
    out = []
    for entry in files:
        raw, meta = _footer(store, entry)
        digest = hashlib.blake2b(raw, digest_size=16).hexdigest()
        out.append(
            BronzeFile(
                entry.key, entry.size, meta.num_rows, digest, meta.schema.to_arrow_schema(), meta
            )
        )
    return out


def renames(spec: DatasetSpec) -> dict[str, str]:
    """Column names a bronze file may still use → the spec's name for them."""
    return {c.column: c.to for c in spec.schema_changes if c.kind == "rename"}


def _groups(spec: DatasetSpec, files: list[BronzeFile]) -> list[Group]:
    """Every row group of the day, in the order the merge wants them: unknown lows first
    (they give later batches no floor), then by lowest first sort key."""
    first = spec.sort_by[0] if spec.sort_by else None
    names = renames(spec)
    out = []
    for i, f in enumerate(files):
        meta = f.metadata
        column = next(
            (j for j, n in enumerate(meta.schema.names) if first and names.get(n, n) == first),
            None,
        )
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            low, declared = None, False
            if column is not None and rg.num_rows:
                stats = rg.column(column).statistics
                if stats is not None and stats.has_min_max and stats.null_count == 0:
                    low = stats.min
                order = list(rg.sorting_columns or [])
                declared = (
                    bool(order) and order[0].column_index == column and not order[0].descending
                )
            out.append(Group(i, g, rg.num_rows, low, declared and low is not None))
    try:
        known = sorted((g for g in out if g.low is not None), key=lambda g: g.low)
    except TypeError:  # lows that do not compare: no floors, the merge spills what it must
        return [Group(g.file, g.index, g.rows, None, False) for g in out]
    return [g for g in out if g.low is None] + known


# Uncompressed Arrow bytes of a bronze row, to size `sorted_rows`'s open groups (events: ~150).
BATCH_ROW_BYTES = 256


def _key(value: Any) -> Any:
    """A sort key that compares with the footers' minimums: Parquet statistics of a UTC
    timestamp may come back naive, the rows' values aware."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _merged(
    groups: list[Group],
    read: Callable[[Group], Iterator[pa.Table]],
    first: str | None,
    max_open: int,
) -> Iterator[tuple[pa.Table, Any]]:
    """Row groups with a known lowest key, as batches each with its floor: the lowest first
    sort key any later batch can hold.

    Overlapping groups are merged a batch at a time: the next batch always comes from the
    open group whose next rows have the lowest key (a sorted group's next rows start at its
    last batch's last key), and a group opens once its lowest key is the lowest of all. The
    floor then trails the rows closely, so the sort holds about a batch per open group instead
    of whole groups (a 20M-row day's compacted bronze files overlap three or four deep, with
    32 MiB groups). Beyond `max_open` groups the next one waits and the floor stays at its
    lowest key (the sort holds, or spills, the rest). An unsorted group, or a value that does
    not compare with the footers' keys, keeps the group's last known key: a lower floor, never
    a wrong one."""
    pending = sorted(groups, key=lambda g: _key(g.low))
    heap: list[tuple[Any, int, Group, Iterator[pa.Table]]] = []
    seq = 0
    try:
        while heap or pending:
            if (
                pending
                and len(heap) < max_open
                and (not heap or _key(pending[0].low) <= heap[0][0])
            ):
                group = pending.pop(0)
                heapq.heappush(heap, (_key(group.low), seq, group, read(group)))
                seq += 1
                continue
            key, n, group, rows = heapq.heappop(heap)
            table = next(rows, None)
            if table is None:
                continue
            if first is not None and group.is_sorted and table.num_rows:
                last = _key(table.column(first)[-1].as_py())
                with contextlib.suppress(TypeError):
                    key = last if last is not None and last >= key else key
            heapq.heappush(heap, (key, n, group, rows))
            floor = heap[0][0]
            if pending and _key(pending[0].low) < floor:
                floor = _key(pending[0].low)
            yield table, floor
    finally:  # closed early: the open groups' files
        for _, _, _, rows in heap:
            rows.close()  # type: ignore[attr-defined]  # a generator


def sorted_rows(
    store: ObjectStore,
    spec: DatasetSpec,
    files: list[BronzeFile],
    conform: Callable[[pa.Table], pa.Table],
    counted: Callable[[pa.Table], None],
    sort_memory_bytes: int = SORT_MEMORY_BYTES,
    batch_rows: int = READ_BATCH_ROWS,
    spill_dir: str | None = None,
) -> Generator[pa.Table, None, None]:
    """The day's rows in the spec's sort order, batch by batch, each `conform`-ed (renamed
    columns already under their new names). `counted` sees every batch as read, before it
    enters the sort (the rows read, for the caller's accounting)."""
    names = renames(spec)
    groups = _groups(spec, files)
    first = spec.sort_by[0] if spec.sort_by else None

    def read(group: Group) -> Iterator[pa.Table]:
        """The group's rows, batch by batch, conformed and counted (its file open meanwhile)."""
        f = files[group.file]
        try:
            with store.arrow_fs.open_input_file(store.path(f.key)) as source:
                parquet = pq.ParquetFile(source, metadata=f.metadata)
                for batch in parquet.iter_batches(
                    batch_size=batch_rows, row_groups=[group.index], use_threads=False
                ):
                    table = pa.Table.from_batches([batch])
                    renamed = [names.get(n, n) for n in table.column_names]
                    table = conform(table.rename_columns(renamed))
                    counted(table)
                    yield table
        except (OSError, pa.ArrowException) as exc:
            raise BronzeReadError(store.uri(f.key), f"cannot read its rows: {exc}") from exc

    def batches() -> Iterator[tuple[pa.Table, Any]]:
        for group in groups:  # unknown lowest keys first: no floor, the sort holds them
            if group.low is None:
                for table in read(group):
                    yield table, None
        yield from _merged([g for g in groups if g.low is not None], read, first, max_open)

    # Groups read at once, a batch of each in turn (see `_merged`): beyond this many
    # overlapping groups, the rest wait and the sort holds what they overlap.
    max_open = max(2, sort_memory_bytes // max(batch_rows * BATCH_ROW_BYTES, 1))
    items = read_ahead(batches(), depth=2)  # reading and decoding overlap the merge
    chunks = sorted_stream(items, spec.sort_by, sort_memory_bytes, spill_dir)
    try:
        yield from chunks
    finally:  # now, not when a traceback lets go: the spill files, the reader thread
        chunks.close()
        items.close()


def _fingerprint(spec: DatasetSpec, basis: list[object], schema: pa.Schema) -> str:
    """What a day's commit was made from: landed files (path, size, etag, version), bronze
    files (key, size, footer digest), schema."""
    text = json.dumps([*basis, str(schema), spec.partitioning], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass
class DayInput:
    """A day's bronze as its footers describe it: nothing of its rows read yet."""

    files: list[BronzeFile]
    rows: int
    lineage: dict[str, object]
    wanted: pa.Schema  # the table schema the day needs (evolve mode: its unknown columns)


def day_input(
    store: ObjectStore, spec: DatasetSpec, day: Unit, sources: list[FileEntry] | None
) -> DayInput:
    """The day's bronze footers, its lineage (rows, landed files, bronze files with a digest
    of their footers, fingerprint) and the schema the table needs for it."""
    files = read_footers(store, spec, bronze_files(store, spec, day))
    rows = sum(f.rows for f in files)
    if sources is None:
        landed = read_lineage(store, spec, day)
        if landed is None:  # bronze of a version without the manifest: the landing folder
            sources = store.list(landing_dir(spec, day), suffixes=LANDING_SUFFIXES)
    if sources is not None:
        recorded = [{"path": s.key, "size": s.size, "etag": s.etag} for s in sources]
        versions = [s.version for s in sources]
    else:
        assert landed is not None
        recorded = [{"path": f.path, "size": f.size, "etag": f.etag} for f in landed]
        versions = [f.version for f in landed]
    # A bronze file is named by its key, size and footer digest (rows, row groups, column
    # sizes and min/max): bronze writes the same bytes for the same landed files, and landed
    # files are named by path, size, etag and version (ETag, else mtime), so a corrected
    # landed file changes the fingerprint without any bronze row being read.
    bronze = [[f.key, f.size, f.digest] for f in files]
    lineage: dict[str, object] = {
        "rows": str(rows),
        "source-files": recorded,
        "bronze-files": bronze,
    }
    wanted = wanted_schema(spec, files, store.uri(bronze_dir(spec, day)))
    lineage["fingerprint"] = _fingerprint(spec, [recorded, versions, bronze], wanted)
    return DayInput(files, rows, lineage, wanted)


def wanted_schema(spec: DatasetSpec, files: list[BronzeFile], where: str) -> pa.Schema:
    """The spec's schema, plus (``evolve`` mode) the columns bronze kept that it lacks
    (`where`: the day's bronze folder, for the error)."""
    if spec.unknown_columns != "evolve":
        return spec.schema
    names = renames(spec)
    extras = [
        pa.schema(
            [
                fld.with_name(names.get(fld.name, fld.name))
                for fld in f.schema
                if names.get(fld.name, fld.name) not in spec.schema.names
            ]
        )
        for f in files
    ]
    try:
        extra = pa.unify_schemas(extras, promote_options="permissive") if extras else pa.schema([])
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        reason = f"its files disagree on the type of a column the spec lacks: {exc}"
        raise BronzeReadError(where, reason) from exc
    return pa.schema([*spec.schema, *(f.with_nullable(True) for f in extra)])
