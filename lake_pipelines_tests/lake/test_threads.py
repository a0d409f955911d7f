"""The shared pool: ordered maps, read-ahead, fork safety."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import pytest

from lake_pipelines.lake.threads import ordered_map, read_ahead


def test_read_ahead_keeps_order_and_raises_at_the_failing_item() -> None:
    def items() -> Iterator[int]:
        yield from range(5)
        raise ValueError("block 5 is broken")

    seen = []
    with pytest.raises(ValueError, match="block 5 is broken"):
        for x in read_ahead(items(), depth=2):
            seen.append(x)
    assert seen == [0, 1, 2, 3, 4]


def test_read_ahead_closed_early_stops_the_producer_and_closes_the_source() -> None:
    closed = threading.Event()
    produced = []

    def items() -> Iterator[int]:
        try:
            for i in range(1000):
                produced.append(i)
                yield i
        finally:
            closed.set()

    it = read_ahead(items(), depth=1)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    it.close()
    assert closed.is_set()
    assert len(produced) <= 3 + 2  # the producer got at most one item and one slot ahead


def test_a_forked_child_parses_on_its_own_pool() -> None:
    assert list(ordered_map(lambda x: x * 2, range(5))) == [0, 2, 4, 6, 8]  # the parent's pool
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the inherited pool has no threads
        os.close(read)
        try:
            out = list(ordered_map(lambda x: x + 1, range(5)))
            os.write(write, repr(out).encode())
        finally:
            os._exit(0)
    os.close(write)
    done = threading.Event()

    def reap() -> None:
        os.waitpid(pid, 0)
        done.set()

    threading.Thread(target=reap, daemon=True).start()
    if not done.wait(60):
        os.kill(pid, signal.SIGKILL)
        pytest.fail("the child hung on the inherited pool")
    assert os.read(read, 100) == b"[1, 2, 3, 4, 5]"
