"""The clients that reach an `ObjectStore`: fsspec, pyarrow, DataFusion and pyiceberg FileIO.

One function per client, each choosing per protocol (``file``, ``s3``, ``gs``, ``az``) from the
store's settings, so the protocol-specific knobs (retries, addressing style, endpoints,
credentials) live in one place and every layer reaches the same objects.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import fsspec
import pyarrow.fs as pafs

from lake_pipelines.errors import ConfigError
from lake_pipelines.lake import retries

if TYPE_CHECKING:
    from lake_pipelines.lake.storage import ObjectStore

AZURE_SCHEMES = ("az", "abfs", "abfss")
# pyiceberg's FileIO property names (pyiceberg.io), also read by lake/iceberg/fileio.py; the
# GCS service-account file is ours (pyiceberg's gcs.oauth2.token is a token to other readers)
GCS_ENDPOINT, GCS_CREDENTIALS_FILE = "gcs.service.host", "lake.gcs.credentials-file"
ADLS_CONNECTION_STRING, ADLS_ACCOUNT_NAME = "adls.connection-string", "adls.account-name"
ADLS_ACCOUNT_KEY = "adls.account-key"
LAKE_FILE_IO = "lake_pipelines.lake.iceberg.fileio.LakeFileIO"


def fsspec_filesystem(store: ObjectStore) -> fsspec.AbstractFileSystem:
    """An fsspec filesystem (listing with ETags, moves, deletes, small reads)."""
    if store.scheme == "file":
        return fsspec.filesystem("file", auto_mkdir=True)
    if store.scheme == "s3":
        config: dict[str, Any] = {
            "retries": {"max_attempts": store.max_attempts, "mode": "standard"}
        }
        if store.addressing_style != "auto":
            config["s3"] = {"addressing_style": store.addressing_style}
        client: dict[str, Any] = {}
        if store.region:
            client["region_name"] = store.region
        # No listing cache: objects are also written through pyarrow, and a stale listing
        # would hide them from ingestion, compaction and the sensor.
        kwargs: dict[str, Any] = {
            "config_kwargs": config,
            "client_kwargs": client,
            "use_listings_cache": False,
        }
        if store.endpoint_url:
            kwargs["endpoint_url"] = store.endpoint_url
        if store.access_key_id:
            kwargs.update(key=store.access_key_id, secret=store.secret_access_key)
        if store.session_token:
            kwargs["token"] = store.session_token
        # A fresh instance: s3fs caches instances by kwargs, and a cached one may carry
        # another test's event loop or a stale directory listing.
        fs = fsspec.filesystem("s3", skip_instance_cache=True, **kwargs, **store.options)
        fs.s3.meta.events.register("after-call.s3", _count_botocore_retries)
        return fs
    try:
        if store.scheme == "gs":
            return gcs_filesystem(store.gcs_endpoint_url, store.gcs_credentials, store.options)
        return azure_filesystem(
            store.azure_connection_string,
            store.azure_account_name,
            store.azure_account_key,
            store.options,
        )
    except ImportError as exc:
        extra = "gcs" if store.scheme == "gs" else "azure"
        raise ConfigError(
            "LAKE_STORE_URL", store.url, f"install lake_pipelines[{extra}] for {store.scheme}://"
        ) from exc


def _count_botocore_retries(parsed: dict[str, Any] | None = None, **_: Any) -> None:
    """botocore's retries of a call that succeeded, as its response reports them."""
    if parsed:
        retries.count_retry(
            "botocore", int(parsed.get("ResponseMetadata", {}).get("RetryAttempts", 0))
        )


def arrow_filesystem(store: ObjectStore) -> pafs.FileSystem:
    """A pyarrow filesystem for the bulk data path (streamed reads, multipart writes)."""
    if store.scheme == "file":
        return pafs.LocalFileSystem()
    if store.scheme == "s3":
        kwargs: dict[str, Any] = {
            "retry_strategy": retries.arrow_retry_strategy(store.max_attempts),
            "force_virtual_addressing": store.addressing_style == "virtual",
        }
        if store.region:
            kwargs["region"] = store.region
        if store.endpoint_url:
            ep = urlparse(store.endpoint_url)
            kwargs["endpoint_override"] = ep.netloc + ep.path.rstrip("/")
            kwargs["scheme"] = ep.scheme
        if store.access_key_id:
            kwargs.update(access_key=store.access_key_id, secret_key=store.secret_access_key)
            if store.session_token:
                kwargs["session_token"] = store.session_token
        return pafs.S3FileSystem(**kwargs)
    return pafs.PyFileSystem(pafs.FSSpecHandler(store.fs))


def datafusion_object_store(store: ObjectStore) -> tuple[str, Any] | None:
    """The DataFusion object store for this place and the URL prefix to register it under.

    Returns None for local files, which DataFusion reads without registration.
    """
    from datafusion import object_store as dfo

    if store.scheme == "file":
        return None
    if store.scheme == "s3":
        kwargs: dict[str, Any] = {"bucket_name": store.bucket}
        if store.region:
            kwargs["region"] = store.region
        if store.access_key_id:
            kwargs["access_key_id"] = store.access_key_id
            kwargs["secret_access_key"] = store.secret_access_key
            if store.session_token:
                kwargs["session_token"] = store.session_token
        if store.endpoint_url:
            kwargs["endpoint"] = store.endpoint_url
            kwargs["allow_http"] = store.allow_http
        # No retry setting either: the object_store crate retries on its own (10 times,
        # jittered backoff), which LAKE_S3_MAX_ATTEMPTS cannot change.
        # No addressing style here: datafusion's AmazonS3 (53) has no such argument (passing
        # one is a TypeError that broke every gold run with addressing_style="virtual").
        # It requests path style unless AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true is set.
        return f"s3://{store.bucket}", dfo.AmazonS3(**kwargs)
    if store.scheme == "gs":
        return f"gs://{store.bucket}", dfo.GoogleCloud(
            bucket_name=store.bucket, service_account_path=_gcs_service_account(store) or None
        )
    return f"{store.scheme}://{store.bucket}", dfo.MicrosoftAzure(**_azure_datafusion(store))


def iceberg_io_properties(store: ObjectStore) -> dict[str, str]:
    """pyiceberg FileIO properties that reach this store."""
    props: dict[str, str] = {}
    if store.scheme == "gs" or store.scheme in AZURE_SCHEMES:
        return _iceberg_cloud_properties(store)
    if store.scheme == "s3":
        props["py-io-impl"] = "pyiceberg.io.pyarrow.PyArrowFileIO"
        # pyiceberg's own S3 filesystem, with our retry strategy (pyarrow's default is
        # AWS's standard one, whose retry quota arrow never refills: see lake/retries.py).
        props["s3.retry-strategy-impl"] = retries.iceberg_retry_impl(store.max_attempts)
        if store.endpoint_url:
            props["s3.endpoint"] = store.endpoint_url
        if store.region:
            props["s3.region"] = store.region
        if store.access_key_id:
            props["s3.access-key-id"] = store.access_key_id
            props["s3.secret-access-key"] = store.secret_access_key
        if store.session_token:
            props["s3.session-token"] = store.session_token
        if store.addressing_style == "virtual":
            props["s3.force-virtual-addressing"] = "true"
        elif store.addressing_style == "path" or store.endpoint_url:
            # pyiceberg-core (Rust, behind DataFusion's Iceberg provider in gold) defaults
            # to virtual-host requests (bucket.host:port), which a custom endpoint such as
            # MinIO or moto on 127.0.0.1 cannot serve. pyarrow and DataFusion's own store
            # use path style here, so tell the Rust reader to do the same.
            props["s3.path-style-access"] = "true"
    return props


# -- GCS and Azure ---------------------------------------------------------------------------


def gcs_filesystem(
    endpoint_url: str = "", credentials: str = "", options: dict[str, Any] | None = None
) -> fsspec.AbstractFileSystem:
    """gcsfs for Google Cloud Storage, or for an emulator at `endpoint_url`.

    With an endpoint this is gcsfs' plain JSON-API filesystem (``gcsfs.core``): the class
    fsspec registers for ``gs`` first asks Google's Storage Control gRPC API for the
    bucket's layout (flat, hierarchical, zonal), which no emulator serves, so every
    operation would wait ~60 s for that probe to fail (its failure is not cached).
    Credentials: a service-account JSON file, else anonymous with an endpoint (the
    emulator), else Google's default credentials.
    """
    token: str | None = credentials or ("anon" if endpoint_url else None)
    kwargs: dict[str, Any] = {"token": token, "skip_instance_cache": True, **(options or {})}
    if endpoint_url:
        from gcsfs.core import GCSFileSystem

        return GCSFileSystem(endpoint_url=endpoint_url, **kwargs)
    return fsspec.filesystem("gcs", **kwargs)


def azure_filesystem(
    connection_string: str = "",
    account_name: str = "",
    account_key: str = "",
    options: dict[str, Any] | None = None,
) -> fsspec.AbstractFileSystem:
    """adlfs for Azure Blob Storage / ADLS Gen2: a connection string (Azurite's names its
    local endpoint), else an account with its key, else the account with Azure's default
    credential chain (managed identity, workload identity, ``az login``)."""
    from adlfs import AzureBlobFileSystem

    kwargs: dict[str, Any] = {"skip_instance_cache": True, **(options or {})}
    if connection_string:
        kwargs["connection_string"] = connection_string
    else:
        kwargs.update(account_name=account_name or None, anon=False)
        if account_key:
            kwargs["account_key"] = account_key
    return AzureBlobFileSystem(**kwargs)


def azure_connection_fields(connection_string: str) -> dict[str, str]:
    """The ``Key=value;`` fields of an Azure connection string (AccountName, AccountKey,
    BlobEndpoint, ...)."""
    fields = (part.split("=", 1) for part in connection_string.split(";") if "=" in part)
    return {k.strip(): v.strip() for k, v in fields}


def _azure_datafusion(store: ObjectStore) -> dict[str, Any]:
    """DataFusion's MicrosoftAzure arguments. An Azurite endpoint (loopback) becomes
    ``use_emulator``: DataFusion 53 takes no endpoint, and its object_store crate then reads
    the emulator's URL from ``AZURITE_BLOB_STORAGE_URL`` (default http://127.0.0.1:10000)."""
    fields = azure_connection_fields(store.azure_connection_string)
    kwargs: dict[str, Any] = {
        "container_name": store.bucket,
        "account": fields.get("AccountName") or store.azure_account_name or None,
        "access_key": fields.get("AccountKey") or store.azure_account_key or None,
    }
    endpoint = urlparse(fields.get("BlobEndpoint", ""))
    if endpoint.hostname in ("127.0.0.1", "localhost", "::1"):
        kwargs.update(use_emulator=True, allow_http=endpoint.scheme == "http")
    return kwargs


def _gcs_service_account(store: ObjectStore) -> str:
    """The service-account file for DataFusion's GCS store. For an emulator, a file naming
    its base URL without OAuth (``gcs_base_url``, ``disable_oauth``: object_store's only way
    to take an endpoint), written once per endpoint to the temporary folder."""
    if not store.gcs_endpoint_url or store.gcs_credentials:
        return store.gcs_credentials
    import hashlib
    import json
    import tempfile
    from pathlib import Path

    digest = hashlib.sha256(store.gcs_endpoint_url.encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"lake-gcs-emulator-{digest}.json"
    if not path.exists():
        key = {
            "gcs_base_url": store.gcs_endpoint_url.rstrip("/"),
            "disable_oauth": True,
            "client_email": "",
            "private_key": "",
            "private_key_id": "",
        }
        tmp = path.with_suffix(f".{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(json.dumps(key))
        tmp.replace(path)
    return str(path)


def _iceberg_cloud_properties(store: ObjectStore) -> dict[str, str]:
    """GCS and Azure go through `LakeFileIO` (pyiceberg's fsspec FileIO, with gcsfs and
    adlfs built as `fsspec_filesystem` builds them and ``az://`` understood), under
    pyiceberg's own property names."""
    props = {"py-io-impl": LAKE_FILE_IO}
    if store.scheme == "gs":
        if store.gcs_endpoint_url:
            props[GCS_ENDPOINT] = store.gcs_endpoint_url
            # pyiceberg-core (Rust, DataFusion's Iceberg provider) names the endpoint so
            props["gcs.service.path"] = store.gcs_endpoint_url
            if not store.gcs_credentials:
                props["gcs.no-auth"] = "true"
        if store.gcs_credentials:
            props[GCS_CREDENTIALS_FILE] = store.gcs_credentials
        return props
    if store.azure_connection_string:
        props[ADLS_CONNECTION_STRING] = store.azure_connection_string
    if store.azure_account_name:
        props[ADLS_ACCOUNT_NAME] = store.azure_account_name
    if store.azure_account_key:
        props[ADLS_ACCOUNT_KEY] = store.azure_account_key
    return props
