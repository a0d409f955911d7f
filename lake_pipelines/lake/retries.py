"""Retries of transient object-store failures, all from one setting (``LAKE_S3_MAX_ATTEMPTS``).

Each client retries in its own way; this module holds what they share:

* `arrow_retry_strategy`: pyarrow's S3 filesystem (ours and pyiceberg's FileIO, which names the
  class by `iceberg_retry_impl` since it builds the strategy without arguments). It is AWS's
  *default* strategy, not the *standard* one: arrow never reports a request's success back to
  the standard strategy, so its retry quota (500 tokens, 5 per retry) is never refilled and
  after about a hundred retries in a process every request fails on its first error. The
  default strategy has no quota; it waits 0, 50, 100, 200 ms, ... between attempts (no jitter).
* `call_with_retries`: our own loop, with exponential backoff and full jitter, for idempotent
  calls whose client gives up on a transient error (pyarrow cannot retry a GetObject whose
  error body is larger than the byte range asked for: it reports ``INTERNAL_FAILURE``).
* `retry_counts`: how many retries each client made in this process, where it can be known.
"""

from __future__ import annotations

import contextlib
import io
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import pyarrow.fs as pafs

_T = TypeVar("_T")
BASE_DELAY = 0.05  # seconds before the first retry at most; doubled per attempt
MAX_DELAY = 2.0
# How the clients word a failure worth another attempt: throttling, server errors, dropped
# connections (pyarrow's AWS error names, S3 error codes, botocore and curl messages).
TRANSIENT_MARKERS = (
    "INTERNAL_FAILURE",
    "SERVICE_UNAVAILABLE",
    "SLOW_DOWN",
    "THROTTLING",
    "NETWORK_CONNECTION",
    "REQUEST_TIMEOUT",
    "HTTP status 500",
    "HTTP status 502",
    "HTTP status 503",
    "HTTP status 504",
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "Internal Server Error",  # s3fs's wording of a 500 / 503 it gave up on
    "Service Unavailable",
    "Connection reset",
    "Connection was closed",
    "Connection aborted",
    "Read timed out",
    "curlCode",
)

_lock = threading.Lock()
_retries: Counter[str] = Counter()


def count_retry(client: str, n: int = 1) -> None:
    """Record `n` retries made by `client` (``boundary``, ``botocore``, ...)."""
    if n:
        with _lock:
            _retries[client] += n


def retry_counts() -> dict[str, int]:
    """Retries per client in this process so far (take differences around a run)."""
    with _lock:
        return dict(_retries)


def is_transient(exc: BaseException) -> bool:
    """Whether another attempt may succeed: a server error, throttling, a lost connection;
    never a missing object, a refused permission or bad input."""
    cause = getattr(exc, "cause", None)  # our ObjectStoreError names the library's error
    if isinstance(cause, BaseException):
        exc = cause
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return False
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    text = f"{type(exc).__name__}: {exc}"
    return any(marker in text for marker in TRANSIENT_MARKERS)


def backoff(attempt: int) -> float:
    """Seconds to wait before attempt ``attempt + 1``: full jitter over an exponential cap."""
    return random.uniform(0, min(MAX_DELAY, BASE_DELAY * 2**attempt))


def call_with_retries(call: Callable[[], _T], attempts: int, client: str = "boundary") -> _T:
    """``call()``, again after a transient failure, up to `attempts` calls in all.

    Only for idempotent calls (reads, listings, a whole-object write to a fresh name): a
    retried call may run twice. The last failure is raised as it came.
    """
    for attempt in range(attempts - 1):
        try:
            return call()
        except Exception as exc:
            if not is_transient(exc):
                raise
        count_retry(client)
        time.sleep(backoff(attempt))
    return call()


class RetryingInput(io.RawIOBase):
    """A read-only stream over a random-access file (`opener` opens it) that, after a
    transient failure, reopens it and goes on from where it was: reading is idempotent, so
    even a failure in the middle of a body is retried. Reads are ranged GETs of the size
    asked for."""

    def __init__(self, opener: Callable[[], Any], attempts: int) -> None:
        super().__init__()
        self._opener = opener
        self._attempts = attempts
        self._file: Any = call_with_retries(opener, attempts)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def _read_at(self, n: int) -> bytes:
        if self._file is None:
            self._file = self._opener()
        try:
            size = self._file.size()
            want = size - self._pos if n < 0 else min(n, size - self._pos)
            return bytes(self._file.read_at(want, self._pos)) if want > 0 else b""
        except Exception:
            self._drop()
            raise

    def read(self, n: int = -1) -> bytes:
        data = call_with_retries(lambda: self._read_at(n), self._attempts)
        self._pos += len(data)
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _drop(self) -> None:
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.close()
        self._file = None

    def close(self) -> None:
        self._drop()
        super().close()


def arrow_retry_strategy(attempts: int) -> pafs.S3RetryStrategy:
    """pyarrow's retry strategy for `attempts` attempts per request (see the module doc)."""
    return pafs.AwsDefaultS3RetryStrategy(max_attempts=max(attempts - 1, 0))  # it counts retries


def iceberg_retry_impl(attempts: int) -> str:
    """The ``s3.retry-strategy-impl`` FileIO property for `attempts` attempts per request."""
    return f"{__name__}.S3Retry{attempts}"


def __getattr__(name: str) -> type[pafs.S3RetryStrategy]:
    """``S3Retry<N>``: a strategy class pyiceberg can build without arguments."""
    digits = name.removeprefix("S3Retry")
    if not name.startswith("S3Retry") or not digits.isdigit() or int(digits) < 1:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    attempts = int(digits)

    def __init__(self: pafs.S3RetryStrategy) -> None:
        pafs.AwsDefaultS3RetryStrategy.__init__(self, max_attempts=max(attempts - 1, 0))

    return type(name, (pafs.AwsDefaultS3RetryStrategy,), {"__init__": __init__})
