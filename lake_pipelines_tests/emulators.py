"""GCS and Azure Blob emulators for the tests, each in its own process on a free port.

* `gcp-storage-emulator` (PyPI, a dev dependency) serves Google's JSON API in memory,
  started by `lake_pipelines_tests.gcs_emulator` with a deep listen backlog.
  It lacks the XML API (``HEAD``, ``GET /bucket?list-type=2``), which DataFusion's GCS store
  (object_store) speaks, and the newer ``moveTo`` call (we promote by copy + delete).
* Azurite (npm ``azurite``, installed into ``.tools/azurite`` by ``.ci/install-azurite``
  with the machine's Node.js) serves the Blob API for the well-known development account. It
  has no ADLS Gen2 (``dfs``) endpoint: hierarchical-namespace renames are not covered.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lake_pipelines.lake.clients import azure_filesystem, gcs_filesystem
from lake_pipelines.lake.storage import ObjectStore

REPO = Path(__file__).resolve().parent.parent
AZURITE = REPO / ".tools" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
# Azurite's documented development account (public, the same in every installation).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class GcsServer:
    endpoint: str


@dataclass(frozen=True)
class AzuriteServer:
    endpoint: str  # http://127.0.0.1:<port>

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};BlobEndpoint={self.endpoint}/{AZURITE_ACCOUNT};"
        )


def serve(cmd: list[str], ready: str, name: str) -> Iterator[subprocess.Popen[bytes]]:
    """Run `cmd` until the test session ends; wait until `ready` answers over HTTP."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(ready, timeout=1).close()
                break
            except urllib.error.HTTPError:
                break  # it answered (Azurite answers a bare GET with 400)
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"{name} did not start ({' '.join(cmd)})")
                time.sleep(0.1)
        yield proc
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """Terminate a server a fixture started, killed if it does not exit within `timeout`."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[GcsServer]:
    """gcp-storage-emulator, in memory."""
    port = free_port()
    launcher = [sys.executable, "-m", "lake_pipelines_tests.gcs_emulator"]
    cmd = [*launcher, "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"]
    endpoint = f"http://127.0.0.1:{port}"
    for _ in serve(cmd, endpoint + "/", "gcp-storage-emulator"):
        yield GcsServer(endpoint)


@pytest.fixture(scope="session")
def azurite_server() -> Iterator[AzuriteServer]:
    """Azurite's Blob service, its data in a temporary folder."""
    if not AZURITE.exists():
        pytest.fail(f"Azurite is missing ({AZURITE}): run .ci/install-azurite (make test-deps)")
    port = free_port()
    location = tempfile.mkdtemp(prefix="lake-azurite-")
    cmd = [
        str(AZURITE),
        "--location",
        location,
        "--skipApiVersionCheck",
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--silent",
    ]
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in serve(cmd, endpoint + "/", "Azurite"):
            yield AzuriteServer(endpoint)
    finally:
        shutil.rmtree(location, ignore_errors=True)


def new_gcs_lake(server: GcsServer) -> ObjectStore:
    """A fresh bucket on the emulator with an ObjectStore for ``gs://<bucket>/lake``."""
    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    gcs_filesystem(server.endpoint).mkdir(bucket)
    return ObjectStore(f"gs://{bucket}/lake", gcs_endpoint_url=server.endpoint)


def new_azure_lake(server: AzuriteServer, scheme: str = "az") -> ObjectStore:
    """A fresh container on Azurite with an ObjectStore for ``<scheme>://<container>/lake``."""
    container = f"lake-{uuid.uuid4().hex[:12]}"
    azure_filesystem(server.connection_string).mkdir(container)
    return ObjectStore(
        f"{scheme}://{container}/lake", azure_connection_string=server.connection_string
    )
