"""Shared fixtures: a temporary local lake, real servers (moto's S3, the GCS and Azure
emulators of `emulators.py`, PostgreSQL), catalogs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import boto3
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.resources import (
    DataFusionResource,
    IcebergCatalogResource,
    ObjectStoreResource,
)
from lake_pipelines_tests.emulators import azurite_server, free_port, gcs_server, serve

__all__ = ["azurite_server", "gcs_server"]  # fixtures, for every test module

S3_KEY = "lake-test-key"
S3_SECRET = "lake-test-secret"
S3_REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    def client(self):  # -> boto3 S3 client
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
            region_name=S3_REGION,
        )


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's standalone S3 server on a free loopback port, spoken to over real HTTP.

    It runs in its own process: pyiceberg-core (used by DataFusion to read Iceberg) holds the
    GIL while it does I/O, so a server thread inside the test process would never answer it.
    """
    port = free_port()
    cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    endpoint = f"http://127.0.0.1:{port}"
    for _ in serve(cmd, f"{endpoint}/moto-api/", "moto server"):
        yield S3Server(endpoint)


@dataclass(frozen=True)
class FaultProxy:
    """`fault_proxy`'s control: the endpoint clients use, the fault rate, the counters."""

    endpoint: str

    def _control(self, method: str, query: str = "") -> dict[str, Any]:
        request = urllib.request.Request(f"{self.endpoint}/__faults__{query}", method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def set_rate(self, rate: float, max_consecutive: int = 2, methods: str = "") -> None:
        """Fault this share of requests from now on, a request at most `max_consecutive`
        times in a row (and zero the counters); only requests of `methods` (``"DELETE,PUT"``)
        when given."""
        query = f"?rate={rate}&max_consecutive={max_consecutive}&methods={methods}"
        self._control("PUT", query)

    def stats(self) -> dict[str, float]:
        """Requests, faults by kind and by method since the last `set_rate`."""
        return self._control("GET")


@pytest.fixture(scope="session")
def fault_proxy(s3_server: S3Server) -> Iterator[FaultProxy]:
    """The tests' fault-injecting proxy (`fault_proxy.py`) in front of moto, faults off."""
    port = free_port()
    command = [sys.executable, "-m", "lake_pipelines_tests.fault_proxy", s3_server.endpoint]
    proxy = FaultProxy(f"http://127.0.0.1:{port}")
    for _ in serve(
        [*command, "--port", str(port), "--seed", "24"],
        f"{proxy.endpoint}/__faults__",
        "fault proxy",
    ):
        yield proxy


def _postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL server binaries are missing: run .ci/install-postgresql")
    return found[-1].parent


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free loopback port (Debian's server binaries).

    root may not run initdb, so as root the cluster runs as the ``postgres`` user, in a
    directory of its own under /tmp.
    """
    import pwd
    import shutil
    import tempfile

    bindir = _postgres_bin()
    data = Path(tempfile.mkdtemp(prefix="lake-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(data, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()

    def run(*cmd: str) -> None:
        subprocess.run([*as_user, *cmd], check=True, capture_output=True, timeout=120)

    run(str(bindir / "initdb"), "-D", str(data / "db"), "-A", "trust", "-U", "lake", "--no-sync")
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(
        str(bindir / "pg_ctl"),
        "-D",
        str(data / "db"),
        "-o",
        options,
        "-l",
        str(data / "log"),
        "-w",
        "start",
    )
    try:
        run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "lake", "iceberg")
        yield f"postgresql+psycopg2://lake@127.0.0.1:{port}/iceberg"
    finally:
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data / "db"), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """Credentials in the environment, as in production (never in resource config)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)
    monkeypatch.setenv("AWS_REGION", S3_REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return s3_server


@pytest.fixture
def s3_store(s3_env: S3Server) -> ObjectStore:
    """A fresh bucket per test, with the lake under a prefix."""
    return new_s3_lake(s3_env)


def new_s3_lake(
    server: S3Server, via: str = "", bucket: str = "", max_attempts: int = 3
) -> ObjectStore:
    """A fresh bucket on `server` with an ObjectStore for ``s3://<bucket>/lake``, reached
    directly or through the endpoint `via` (the fault proxy)."""
    bucket = bucket or f"lake-{uuid.uuid4().hex[:12]}"
    server.client().create_bucket(Bucket=bucket)
    return ObjectStore(
        f"s3://{bucket}/lake",
        endpoint_url=via or server.endpoint,
        region=S3_REGION,
        access_key_id=S3_KEY,
        secret_access_key=S3_SECRET,
        allow_http=True,
        addressing_style="path",
        max_attempts=max_attempts,
    )


CgroupTree = Callable[[str, dict[str, str]], tuple[str, str]]


@pytest.fixture
def cgroup_tree(tmp_path: Path) -> CgroupTree:
    """Lay out a fake cgroup file system: ``(own, files)`` → (its root, its
    ``/proc/self/cgroup``), `own` the text of the latter, `files` paths under the root and
    their text."""

    def make(own: str, files: dict[str, str]) -> tuple[str, str]:
        root = tmp_path / "cgroup"
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text + "\n")
        (tmp_path / "own").write_text(own)
        return str(root), str(tmp_path / "own")

    return make


@pytest.fixture
def local_store(tmp_path: Path) -> ObjectStore:
    return ObjectStore(f"file://{tmp_path / 'lake'}")


def sql_catalog(store: ObjectStore, db: Path) -> SqlCatalog:
    return SqlCatalog(
        "lake",
        uri=f"sqlite:///{db}",
        warehouse=store.uri("warehouse"),
        **store.iceberg_properties(),
    )


@pytest.fixture
def local_catalog(local_store: ObjectStore, tmp_path: Path) -> SqlCatalog:
    return sql_catalog(local_store, tmp_path / "catalog.db")


@pytest.fixture
def s3_catalog(s3_store: ObjectStore, tmp_path: Path) -> SqlCatalog:
    return sql_catalog(s3_store, tmp_path / "catalog.db")


class LakeResources(TypedDict):
    """The code location's resources, by the names its assets ask for."""

    object_store: ObjectStoreResource
    iceberg: IcebergCatalogResource
    datafusion: DataFusionResource


def dagster_resources(store: ObjectStore, catalog_db: Path) -> LakeResources:
    """The code location's resources pointed at a test lake."""
    return {
        "object_store": ObjectStoreResource(
            url=store.url,
            endpoint_url=store.endpoint_url,
            region=store.region,
            allow_http=store.allow_http,
            addressing_style=store.addressing_style,
            max_attempts=store.max_attempts,
            gcs_endpoint_url=store.gcs_endpoint_url,
            azure_account_name=store.azure_account_name,
        ),
        "iceberg": IcebergCatalogResource(uri=f"sqlite:///{catalog_db}"),
        "datafusion": DataFusionResource(target_partitions=2),
    }
