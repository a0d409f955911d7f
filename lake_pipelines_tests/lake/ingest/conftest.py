"""Fixtures of the ingestion tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lake_pipelines_tests.support import IngestWorker


@pytest.fixture(scope="session")
def ingest_worker() -> Iterator[IngestWorker]:
    """Ingestion in a separate, long-lived process: a crash fails one request, not the run."""
    worker = IngestWorker()
    yield worker
    worker.close()
