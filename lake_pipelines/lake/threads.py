"""Bounded concurrency helpers: an ordered map over a shared pool, read-ahead."""

from __future__ import annotations

import collections
import os
import queue
import threading
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from lake_pipelines.lake.cores import usable_cores

T = TypeVar("T")
R = TypeVar("R")


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
            workers = max(2, min(4, usable_cores()))
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


def read_ahead(items: Iterable[T], depth: int = 1) -> Generator[T, None, None]:
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
