"""Batches of converted rows and the rejects that travel with them."""

from __future__ import annotations

import collections
import json
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import pyarrow as pa

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Reject:
    """One row that did not make it, and why."""

    source: str
    line: int | None
    column: str | None
    reason: str
    raw: str | None
    record: int | None = None  # record number, where a line number means nothing (JSON arrays)


@dataclass
class Batch:
    """Converted rows of one block, plus the block's rejects.

    ``row_lines`` works out, on demand, the source line of every row of ``table`` (only
    needed when some of them are rejected later); ``row_text`` gives a row's source text as
    it was landed (the quarantine's ``raw``), also only when asked. Both come from the same
    scan of the source: when that scan does not find one record per row (pyarrow and our
    scan can disagree about odd input), `drop` trusts neither.
    """

    table: pa.Table
    rejects: list[Reject] = field(default_factory=list)
    row_lines: Callable[[], np.ndarray] | None = None
    numbers_are_records: bool = False
    row_text: Callable[[int], str] | None = None

    @property
    def rows_read(self) -> int:
        return self.table.num_rows + len(self.rejects)

    def drop(
        self, bad: dict[int, tuple[str | None, str]], source: str, raw: Callable[[int], str]
    ) -> Batch:
        """A new batch without the rows in `bad` ({row: (column, reason)}), which become rejects."""
        if not bad:
            return self
        lines = self.row_lines() if self.row_lines is not None else None
        if lines is not None and len(lines) != self.table.num_rows:
            lines = None  # the scan did not place the rows: lines and text are unknown
        landed = self.row_text if lines is not None else None

        def text(i: int) -> str:
            return (landed(i) if landed is not None else raw(i))[:2000]

        rejects = list(self.rejects)
        for i in sorted(bad):
            col, reason = bad[i]
            n = int(lines[i]) if lines is not None else None
            if self.numbers_are_records:
                rejects.append(Reject(source, None, col, reason, text(i), record=n))
            else:
                rejects.append(Reject(source, n, col, reason, text(i)))
        keep = np.ones(self.table.num_rows, dtype=bool)
        keep[list(bad)] = False
        parent, parent_text = self.row_lines, self.row_text

        def lines_of_kept() -> np.ndarray:
            assert parent is not None
            got = parent()
            return got[keep] if len(got) == len(keep) else np.zeros(0, dtype=np.int64)

        kept_lines = lines_of_kept if parent is not None else None
        kept_text = None
        if parent_text is not None:
            kept_rows = np.flatnonzero(keep)
            kept_text = lambda j: parent_text(int(kept_rows[j]))  # noqa: E731
        return Batch(
            self.table.filter(pa.array(keep)),
            rejects,
            kept_lines,
            self.numbers_are_records,
            kept_text,
        )


def row_json(table: pa.Table, i: int) -> str:
    """One row as JSON text, for the quarantine's ``raw`` column."""
    row = table.slice(i, 1).to_pylist()[0]
    return json.dumps(row, default=str, ensure_ascii=False)[:2000]


def add_reason(
    bad: dict[int, tuple[str | None, str]], i: int, column: str | None, reason: str
) -> None:
    """Record a reason for row i; a row failing several ways keeps every reason."""
    if i in bad:
        col, prev = bad[i]
        bad[i] = (col, f"{prev}; {reason}")
    else:
        bad[i] = (column, reason)


def count_byte(data: bytes, byte: int) -> int:
    """How often `byte` occurs in `data`: numpy's vector compare, ~3x faster than
    ``bytes.count`` on a block, and it releases the GIL while the parse threads work."""
    return int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == byte))


def with_end(blocks: Iterator[bytes]) -> Iterator[bytes | None]:
    """The blocks, then None: the end of the input, for readers that flush what they carry."""
    yield from blocks
    yield None


def nullable_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([f.with_nullable(True) for f in schema], metadata=schema.metadata)


_END = object()
_POOL: tuple[int, ThreadPoolExecutor] | None = None  # (pid that made it, pool)
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """The parse pool, shared by every reader of the process.

    A forked child inherits the pool object but none of its threads (work handed to it would
    never run), so a process makes its own.
    """
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != os.getpid():
            workers = max(2, min(4, os.cpu_count() or 2))
            _POOL = (os.getpid(), ThreadPoolExecutor(workers, thread_name_prefix="lake-parse"))
        return _POOL[1]


def ordered_map(fn: Callable[[T], R], items: Iterable[T], in_flight: int = 2) -> Iterator[R]:
    """``map(fn, items)`` on a shared thread pool, results in order, `in_flight` at a time.

    For pyarrow-heavy work (parsing a block releases the GIL) this puts every core on it while
    memory stays bounded: at most `in_flight` items are being worked on. An exception from
    `fn` is raised at its item, after the results before it.
    """
    pending: collections.deque[Future[R]] = collections.deque()
    try:
        for item in items:
            pending.append(_pool().submit(fn, item))
            if len(pending) >= in_flight:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for f in pending:
            f.cancel()


def read_ahead(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """Yield `items` while a background thread already produces the next `depth` of them.

    Parsing a block (pyarrow's readers and compute kernels release the GIL) then overlaps
    with whatever the caller does with the previous one, so a second core does useful work.
    An exception in the producer is re-raised here, at the item where it happened; closing
    this generator early stops the producer and closes `items` in its own thread.
    """
    slots: queue.Queue[tuple[object, BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[object, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                slots.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        source = iter(items)
        try:
            for item in source:
                if not put((item, None)):
                    return
            put((_END, None))
        except BaseException as exc:  # handed to the consumer, raised there
            put((_END, exc))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="lake-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item, exc = slots.get()
            if exc is not None:
                raise exc
            if item is _END:
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join()
