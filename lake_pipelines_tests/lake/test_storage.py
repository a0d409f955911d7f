"""ObjectStore on every store (local disk, moto's S3, gcp-storage-emulator, Azurite): the one
listing with real modification times and versions, staged writes, bulk deletes."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lake_pipelines.errors import ConfigError, ObjectStoreError
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines_tests.conftest import S3Server, new_s3_lake
from lake_pipelines_tests.emulators import (
    AzuriteServer,
    GcsServer,
    new_azure_lake,
    new_gcs_lake,
)

KINDS = ["file", "s3", "gs", "az", "abfs"]


@pytest.fixture(params=KINDS)
def store(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    s3_env: S3Server,
    gcs_server: GcsServer,
    azurite_server: AzuriteServer,
) -> Iterator[ObjectStore]:
    kind = request.param
    if kind == "file":
        yield ObjectStore(f"file://{tmp_path / 'lake'}")
    elif kind == "s3":
        yield new_s3_lake(s3_env)
    elif kind == "gs":
        yield new_gcs_lake(gcs_server)
    else:
        yield new_azure_lake(azurite_server, scheme=kind)


def test_listing_has_real_modification_times_and_versions(store: ObjectStore) -> None:
    before = time.time()
    store.write_bytes("landing/events/2026-03-02/a.csv", b"id\n1\n")
    store.write_bytes("landing/events/2026-03-02/.b.csv.tmp", b"id\n")
    after = time.time()

    visible = store.list("landing/events")
    assert [e.key for e in visible] == ["landing/events/2026-03-02/a.csv"]
    entry = visible[0]
    assert entry.size == 5
    # Object stores keep whole seconds (S3, Azure) or microseconds (GCS, local disk).
    assert int(before) - 1 <= entry.mtime <= after + 1, (before, entry.mtime, after)
    if store.scheme != "file":
        assert entry.etag  # S3/Azure ETag, GCS generation

    hidden = store.list("landing/events", hidden=True)
    assert [e.key for e in hidden] == [
        "landing/events/2026-03-02/.b.csv.tmp",
        "landing/events/2026-03-02/a.csv",
    ]
    assert all(e.mtime >= int(before) - 1 for e in hidden)
    assert store.list("landing/nothing-here") == []


def test_a_rewrite_gets_a_new_version(store: ObjectStore) -> None:
    store.write_bytes("k/a.csv", b"1")
    first = store.list("k")[0]
    store.write_bytes("k/a.csv", b"22")
    second = store.list("k")[0]
    assert second.size == 2
    assert second.version != first.version or store.scheme == "file"


def test_staged_writes_promote_whole_and_bulk_delete_ignores_missing_keys(
    store: ObjectStore,
) -> None:
    with pytest.raises(RuntimeError), store.staged_output("d/x.bin") as tmp:
        store.arrow_fs.open_output_stream(tmp).close()
        raise RuntimeError("writer failed")
    assert store.list("d", hidden=True) == []  # nothing promoted, no temporary left

    for i in range(3):
        store.write_bytes(f"d/{i}.bin", bytes(i + 1))
    assert store.read_bytes("d/2.bin") == bytes(3)
    assert [e.key for e in store.list("d", hidden=True)] == ["d/0.bin", "d/1.bin", "d/2.bin"]
    store.delete(["d/0.bin", "d/1.bin", "d/gone.bin"])
    assert [e.key for e in store.list("d", hidden=True)] == ["d/2.bin"]


def test_a_listing_without_modification_time_is_an_error(
    store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = store.path("k/a.csv")
    entry = {"name": path, "size": 1, "type": "file"}
    monkeypatch.setattr(store.fs, "find", lambda *_, **__: {path: entry})
    with pytest.raises(ObjectStoreError, match="no modification time") as raised:
        store.list("k")
    assert "k/a.csv" in str(raised.value)


def test_s3_folder_markers_are_not_objects(s3_env: S3Server) -> None:
    store = new_s3_lake(s3_env)
    store.write_bytes("t/data/a.parquet", b"x")
    s3_env.client().put_object(Bucket=store.bucket, Key="lake/t/data/", Body=b"")
    s3_env.client().put_object(Bucket=store.bucket, Key="lake/t/empty/", Body=b"")
    assert [e.key for e in store.list("t", hidden=True)] == ["t/data/a.parquet"]


def test_gcs_emulator_settings_reach_every_client(gcs_server: GcsServer) -> None:
    store = new_gcs_lake(gcs_server)
    props = store.iceberg_properties()
    assert props["gcs.service.host"] == gcs_server.endpoint
    assert props["py-io-impl"].endswith("LakeFileIO")
    registration = store.datafusion_store()
    assert registration is not None and registration[0] == f"gs://{store.bucket}"
    # DataFusion's GCS store takes an endpoint only from a service-account file.
    from lake_pipelines.lake.clients import _gcs_service_account

    key = json.loads(Path(_gcs_service_account(store)).read_text())
    assert key["gcs_base_url"] == gcs_server.endpoint and key["disable_oauth"] is True


def test_cloud_urls_and_endpoints_are_checked() -> None:
    with pytest.raises(ConfigError, match="LAKE_AZURE_ACCOUNT_NAME"):
        ObjectStore("abfs://lake@acct.dfs.core.windows.net/x")
    with pytest.raises(ConfigError, match="needs an account") as info:
        ObjectStore("az://lake/x")
    assert info.value.setting == "LAKE_AZURE_ACCOUNT_NAME"
    with pytest.raises(ConfigError, match="LAKE_GCS_ENDPOINT_URL"):
        ObjectStore("gs://b/x", gcs_endpoint_url="localhost:4443")
    with pytest.raises(ConfigError, match="GOOGLE_APPLICATION_CREDENTIALS"):
        ObjectStore("gs://b/x", gcs_endpoint_url="http://gcs.internal", gcs_credentials="/k.json")


def test_gcs_emulator_queues_a_burst_of_connections_while_busy(gcs_server: GcsServer) -> None:
    """The emulator serves one request at a time. While one client holds it, a burst of new
    connections must still be accepted into its queue, not dropped for the kernel to retry
    seconds later (the stock backlog of 5 dropped them; the retries passed pyiceberg-core's 10 s
    io timeout in CI). Every queued request is then answered."""
    host, port = gcs_server.endpoint.removeprefix("http://").split(":")
    holder = socket.create_connection((host, int(port)), timeout=10)
    holder.sendall(b"GET /storage/v1/b HTTP/1.1\r\n")  # headers unfinished: the server waits
    burst: list[socket.socket] = []
    try:
        for _ in range(32):
            # a dropped handshake is retried after 1 s, so 0.9 s separates queued from dropped
            burst.append(socket.create_connection((host, int(port)), timeout=0.9))
        for sock in burst:
            sock.sendall(b"GET /storage/v1/b?project=test HTTP/1.0\r\n\r\n")
        holder.sendall(b"\r\n")
        for sock in [holder, *burst]:
            sock.settimeout(30)
            assert sock.recv(12).startswith(b"HTTP/1.")
    finally:
        for sock in [holder, *burst]:
            sock.close()
