"""The clients that reach an `ObjectStore`: fsspec, pyarrow, DataFusion and pyiceberg FileIO.

One function per client, each choosing per protocol (``file``, ``s3``, ``gs``, ``az``) from the
store's settings, so the protocol-specific knobs (retries, addressing style, endpoints,
credentials) live in one place and every layer reaches the same objects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import fsspec
import pyarrow.fs as pafs

from lake_pipelines.errors import ConfigError
from lake_pipelines.lake import retries

if TYPE_CHECKING:
    from lake_pipelines.lake.storage import ObjectStore


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
    protocol = "gcs" if store.scheme == "gs" else "abfs"
    try:
        return fsspec.filesystem(protocol, skip_instance_cache=True, **store.options)
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
            bucket_name=store.bucket, service_account_path=store.options.get("token")
        )
    return f"az://{store.bucket}", dfo.MicrosoftAzure(
        container_name=store.bucket,
        account=store.options.get("account_name"),
        access_key=store.options.get("account_key"),
    )


def iceberg_io_properties(store: ObjectStore) -> dict[str, str]:
    """pyiceberg FileIO properties that reach this store."""
    props: dict[str, str] = {}
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
