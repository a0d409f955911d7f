"""Retries from LAKE_S3_MAX_ATTEMPTS on every S3 client, against real faults (the fault proxy)."""

from __future__ import annotations

import pyarrow.fs as pafs
import pytest
from pyiceberg.io.pyarrow import PyArrowFileIO

from lake_pipelines.lake import retries
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines_tests.conftest import FaultProxy, S3Server, new_s3_lake

BODY = b"x" * 2048  # longer than an S3 error body: see test_small_objects_are_read_through_faults


def _store(server: S3Server, proxy: FaultProxy) -> ObjectStore:
    return new_s3_lake(server, via=proxy.endpoint, max_attempts=5)


@pytest.fixture
def faults(fault_proxy: FaultProxy):
    """30 % of requests fail, none twice in a row; off again afterwards.

    One fault in a row at most: pyarrow retries a failed CompleteMultipartUpload only once
    whatever the strategy (silver's and gold's batch-level retries cover that in the lake; see
    test_a_store_failure_before_the_catalog_commit_writes_the_batch_again), and the upload id
    in its path makes the proxy's draws differ from run to run."""
    fault_proxy.set_rate(0.3, max_consecutive=1)
    yield fault_proxy
    fault_proxy.set_rate(0.0)


def test_the_strategy_classes_carry_the_attempts() -> None:
    assert retries.iceberg_retry_impl(7) == "lake_pipelines.lake.retries.S3Retry7"
    strategy = retries.S3Retry7()  # as pyiceberg builds it: no arguments
    assert isinstance(strategy, pafs.AwsDefaultS3RetryStrategy)
    assert strategy.max_attempts == 6  # AWS's default strategy counts retries, not attempts
    assert retries.arrow_retry_strategy(1).max_attempts == 0
    with pytest.raises(AttributeError):
        retries.S3RetryX  # noqa: B018


def test_our_loop_retries_transient_errors_only() -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise OSError("AWS Error SLOW_DOWN during GetObject operation: Please reduce")
        return "done"

    before = retries.retry_counts().get("boundary", 0)
    assert retries.call_with_retries(flaky, attempts=3) == "done"
    assert retries.retry_counts()["boundary"] - before == 2

    def missing() -> None:
        calls.append(1)
        raise FileNotFoundError("gone")

    calls.clear()
    with pytest.raises(FileNotFoundError):
        retries.call_with_retries(missing, attempts=5)
    assert len(calls) == 1  # a missing object is an answer, not a failure to retry
    calls.clear()
    with pytest.raises(OSError, match="SLOW_DOWN"):
        retries.call_with_retries(flaky, attempts=2)  # bounded: the last error comes out
    assert len(calls) == 2


def test_pyarrow_keeps_retrying_after_hundreds_of_faults(
    s3_server: S3Server, faults: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyarrow's standard strategy stopped retrying for good after ~100 retries (its quota
    is never refilled); ours must not, however many faults a long run meets."""
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = _store(s3_server, faults)
    fs = store.arrow_fs
    for i in range(200):
        path = store.path(f"f/{i}.bin")
        with fs.open_output_stream(path) as out:  # multipart: create, part, complete
            out.write(BODY)
        with fs.open_input_file(path) as f:
            assert f.read() == BODY
    stats = faults.stats()
    assert int(stats.get("500", 0)) + int(stats.get("503", 0)) + int(stats.get("reset", 0)) > 150


def test_pyiceberg_fileio_retries_from_our_properties(
    s3_server: S3Server, faults: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = _store(s3_server, faults)
    props = store.iceberg_properties()
    assert props["s3.retry-strategy-impl"] == "lake_pipelines.lake.retries.S3Retry5"
    io = PyArrowFileIO(props)
    for i in range(120):
        location = store.uri(f"warehouse/metadata/{i}.metadata.json")
        with io.new_output(location).create(overwrite=True) as out:
            out.write(BODY)
        with io.new_input(location).open() as f:
            assert f.read() == BODY


def test_small_objects_and_listings_are_read_through_faults(
    s3_server: S3Server, faults: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 2-byte object: pyarrow gives up on its GetObject when the error body is longer
    (INTERNAL_FAILURE); our loop retries it. Listings retry in botocore, and count."""
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = _store(s3_server, faults)
    faults.set_rate(0.0)
    bucket, prefix = store.root.split("/", 1)
    for i in range(5):
        s3_server.client().put_object(Bucket=bucket, Key=f"{prefix}/s/{i}", Body=b"ok")
    faults.set_rate(0.3, max_consecutive=2)
    before = retries.retry_counts()
    for _ in range(40):
        assert [e.key for e in store.list("s")] == [f"s/{i}" for i in range(5)]
        assert store.exists("s/1")
        assert store.read_bytes("s/2") == b"ok"
    after = retries.retry_counts()
    assert after["botocore"] > before.get("botocore", 0)
    assert after["boundary"] > before.get("boundary", 0)
