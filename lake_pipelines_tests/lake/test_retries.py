"""Retries from LAKE_S3_MAX_ATTEMPTS on every S3 client, against real faults (the fault proxy)."""

from __future__ import annotations

import posixpath

import pyarrow.fs as pafs
import pytest
from pyiceberg.io.pyarrow import PyArrowFileIO

from lake_pipelines.errors import ObjectStoreError
from lake_pipelines.lake import retries
from lake_pipelines.lake.parquet.writer import WrittenFile, commit_files
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


@pytest.mark.chaos
def test_pyarrow_keeps_retrying_after_hundreds_of_faults(
    s3_server: S3Server, faults: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyarrow's standard strategy stopped retrying for good after ~100 retries (its quota
    is never refilled); ours must not, however many faults a long run meets.

    The uploads' POSTs (create, complete) are spared: pyarrow retries a failed
    CompleteMultipartUpload at most once whatever the strategy, and under load even one fault
    in a row failed it now and then (the lake's batch-level retries cover that; see the
    `faults` fixture). Parts, reads and HEADs take the faults, well over the old quota."""
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = _store(s3_server, faults)
    faults.set_rate(0.3, max_consecutive=1, methods="GET,PUT,HEAD")
    fs = store.arrow_fs
    for i in range(300):
        path = store.path(f"f/{i}.bin")
        with fs.open_output_stream(path) as out:  # multipart: create, part, complete
            out.write(BODY)
        with fs.open_input_file(path) as f:
            assert f.read() == BODY
    stats = faults.stats()
    assert int(stats.get("500", 0)) + int(stats.get("503", 0)) + int(stats.get("reset", 0)) > 150


@pytest.mark.chaos
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


@pytest.mark.chaos
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


def _hidden(store: ObjectStore, prefix: str) -> list[str]:
    return sorted(
        e.key for e in store.list(prefix, hidden=True) if posixpath.basename(e.key)[0] in "._"
    )


def test_a_commit_whose_temporary_is_hard_to_delete_is_committed_and_leaves_nothing(
    s3_server: S3Server, fault_proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An object store's move is a copy and a delete. Every DELETE fails 4 times in a row,
    more than one pyarrow call tries (3): the copy is done, so the commit must not fail on
    the delete (it is retried on its own), and no temporary may stay behind."""
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = new_s3_lake(s3_server, via=fault_proxy.endpoint, max_attempts=3)
    fault_proxy.set_rate(1.0, max_consecutive=4, methods="DELETE")
    try:
        for i in range(3):
            store.write_bytes(f"c/{i}.json", BODY)
        faults = fault_proxy.stats()
    finally:
        fault_proxy.set_rate(0.0)
    assert faults["fault DELETE"] == 3 * 4  # every temporary's delete met its faults
    assert [store.read_bytes(f"c/{i}.json") for i in range(3)] == [BODY] * 3
    assert _hidden(store, "c") == []


def test_a_failed_commit_removes_the_temporaries_it_did_not_promote(
    s3_server: S3Server, fault_proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every copy (a PUT) fails, whatever the attempts: the commit fails with the store's
    error named, and the staged files of it are gone, not left hidden for an hour."""
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = new_s3_lake(s3_server, via=fault_proxy.endpoint, max_attempts=2)
    staged = []
    for i in range(3):
        tmp = store.path(f"d/.{i}.parquet.abc.tmp")
        with store.arrow_fs.open_output_stream(tmp) as out:
            out.write(BODY)
        staged.append(WrittenFile(key=f"d/{i}.parquet", rows=1, bytes=len(BODY), tmp_path=tmp))
    assert len(_hidden(store, "d")) == 3
    fault_proxy.set_rate(1.0, max_consecutive=1000, methods="PUT")
    try:
        with pytest.raises(ObjectStoreError, match=r"commit .*d/0\.parquet"):
            commit_files(store, staged)
    finally:
        fault_proxy.set_rate(0.0)
    assert _hidden(store, "d") == []
    assert [e.key for e in store.list("d")] == []
