"""One object store, chosen by URL, seen through fsspec, pyarrow and DataFusion alike.

`ObjectStore("file:///data/lake")`, `ObjectStore("s3://bucket/prefix", endpoint_url=...)`,
`gs://bucket/prefix` and `az://container/prefix` all hand out the same three views of the same
place, so every layer (readers, Parquet writer, pyiceberg FileIO, DataFusion) reads and writes
the same objects. Paths handed around inside lake_pipelines are *store-relative* keys such as
``bronze/events/year=2026/month=11/day=01/part-0.parquet``.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import io
import os
import posixpath
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import fsspec
import pyarrow.fs as pafs

from lake_pipelines.errors import ConfigError, ObjectStoreError
from lake_pipelines.lake import clients, listing, retries
from lake_pipelines.lake.clients import AZURE_SCHEMES
from lake_pipelines.lake.listing import FileEntry

AddressingStyle = Literal["auto", "path", "virtual"]
SUPPORTED_SCHEMES = ("file", "s3", "gs", "az", "abfs", "abfss")
TMP_SUFFIX = ".tmp"
DELETE_BATCH = 1000  # keys per bulk delete request (the S3 limit)


@dataclass(frozen=True)
class ObjectStore:
    """A place to keep the lake: a URL plus the connection settings it needs.

    Args:
        url: ``file:///abs/path`` (or a plain path), ``s3://bucket[/prefix]``,
            ``gs://bucket[/prefix]`` or ``az://container[/prefix]`` (also spelled
            ``abfs://`` / ``abfss://container[/prefix]``; the account is a setting).
        endpoint_url: S3-compatible endpoint (MinIO, moto, R2, ...); empty for AWS itself.
        region: S3 region.
        access_key_id / secret_access_key / session_token: S3 credentials. Empty means the
            default AWS credential chain (environment, profile, instance role).
        allow_http: permit a plain ``http://`` endpoint. Off by default: credentials and data
            must not travel unencrypted by accident.
        addressing_style: ``path`` (``host/bucket/key``, what most S3-compatible servers want),
            ``virtual`` (``bucket.host/key``) or ``auto``.
        max_attempts: attempts per request, with exponential backoff between them.
        gcs_endpoint_url: GCS JSON API endpoint, for an emulator; empty for Google itself.
        gcs_credentials: path of a service-account JSON file; empty means Google's default
            credentials, or anonymous access with `gcs_endpoint_url` (an emulator).
        azure_connection_string: an Azure storage connection string (account, key,
            endpoints; Azurite's names its local endpoint).
        azure_account_name / azure_account_key: the account without a connection string;
            no key means Azure's default credential chain.
        options: extra keyword arguments for the fsspec filesystem.
    """

    url: str
    endpoint_url: str = ""
    region: str = ""
    access_key_id: str = field(default="", repr=False)
    secret_access_key: str = field(default="", repr=False)
    session_token: str = field(default="", repr=False)
    allow_http: bool = False
    addressing_style: AddressingStyle = "auto"
    max_attempts: int = 5
    gcs_endpoint_url: str = ""
    gcs_credentials: str = field(default="", repr=False)
    azure_connection_string: str = field(default="", repr=False)
    azure_account_name: str = ""
    azure_account_key: str = field(default="", repr=False)
    options: dict[str, Any] = field(default_factory=dict, repr=False, hash=False, compare=False)

    def __post_init__(self) -> None:
        scheme = self.scheme
        if scheme not in SUPPORTED_SCHEMES:
            raise ConfigError(
                "LAKE_STORE_URL", self.url, f"scheme must be one of {', '.join(SUPPORTED_SCHEMES)}"
            )
        if scheme != "file" and not self.root:
            raise ConfigError("LAKE_STORE_URL", self.url, "a bucket name is required")
        if self.endpoint_url:
            ep = urlparse(self.endpoint_url)
            if ep.scheme not in ("http", "https") or not ep.netloc:
                raise ConfigError(
                    "LAKE_S3_ENDPOINT_URL", self.endpoint_url, "must be http(s)://host[:port]"
                )
            if ep.scheme == "http" and not self.allow_http:
                raise ConfigError(
                    "LAKE_S3_ENDPOINT_URL",
                    self.endpoint_url,
                    "plain HTTP is refused; use https:// or set LAKE_S3_ALLOW_HTTP=true "
                    "for a trusted local endpoint",
                )
        if scheme in AZURE_SCHEMES and "@" in urlparse(self.url).netloc:
            raise ConfigError(
                "LAKE_STORE_URL",
                self.url,
                "write abfs://container/prefix and name the account in "
                "LAKE_AZURE_ACCOUNT_NAME (or AZURE_STORAGE_CONNECTION_STRING)",
            )
        if scheme in AZURE_SCHEMES and not (
            self.azure_connection_string or self.azure_account_name
        ):
            raise ConfigError(
                "LAKE_AZURE_ACCOUNT_NAME",
                "",
                f"{self.url} needs an account: set it, or AZURE_STORAGE_CONNECTION_STRING",
            )
        if self.gcs_endpoint_url:
            ep = urlparse(self.gcs_endpoint_url)
            if ep.scheme not in ("http", "https") or not ep.netloc:
                raise ConfigError(
                    "LAKE_GCS_ENDPOINT_URL", self.gcs_endpoint_url, "must be http(s)://host[:port]"
                )
            if ep.scheme == "http" and self.gcs_credentials:
                raise ConfigError(
                    "LAKE_GCS_ENDPOINT_URL",
                    self.gcs_endpoint_url,
                    "plain HTTP is only for an emulator without credentials; use https:// "
                    "or unset GOOGLE_APPLICATION_CREDENTIALS",
                )
        if self.max_attempts < 1:
            raise ConfigError("LAKE_S3_MAX_ATTEMPTS", self.max_attempts, "must be at least 1")

    # -- naming ---------------------------------------------------------------------------

    @property
    def scheme(self) -> str:
        return split_uri(self.url)[0] or "file"

    @functools.cached_property
    def root(self) -> str:
        """The store's root as the filesystems see it: ``/abs/path`` or ``bucket/prefix``."""
        raw = split_uri(self.url)[1]
        if self.scheme == "file":
            return str(Path(raw).expanduser().resolve())
        return raw.rstrip("/")

    @property
    def bucket(self) -> str:
        return "" if self.scheme == "file" else self.root.split("/", 1)[0]

    def path(self, key: str = "") -> str:
        """Filesystem path (no scheme) of a store-relative key."""
        key = key.strip("/")
        return posixpath.join(self.root, key) if key else self.root

    def uri(self, key: str = "") -> str:
        """Full URI of a store-relative key, e.g. ``s3://bucket/prefix/key``."""
        if self.scheme == "file":
            return "file://" + self.path(key)
        return f"{self.scheme}://{self.path(key)}"

    def key_of(self, path: str) -> str:
        """Store-relative key of a filesystem path or URI inside this store."""
        raw = split_uri(path)[1]
        raw = raw if self.scheme != "file" else str(Path(raw))
        if raw == self.root:
            return ""
        if not raw.startswith(self.root + "/"):
            raise ObjectStoreError(path, "locate", ValueError(f"not inside {self.uri()}"))
        return raw[len(self.root) + 1 :]

    # -- the three views ------------------------------------------------------------------

    # -- the clients that reach it (lake/clients.py builds them per protocol) ---------------

    @functools.cached_property
    def fs(self) -> fsspec.AbstractFileSystem:
        """An fsspec filesystem (listing with ETags, moves, deletes, small reads)."""
        return clients.fsspec_filesystem(self)

    @functools.cached_property
    def arrow_fs(self) -> pafs.FileSystem:
        """A pyarrow filesystem for the bulk data path (streamed reads, multipart writes)."""
        return clients.arrow_filesystem(self)

    def datafusion_store(self) -> tuple[str, Any] | None:
        """The DataFusion object store for this place and the URL prefix to register it under;
        None for local files, which DataFusion reads without registration."""
        return clients.datafusion_object_store(self)

    def iceberg_properties(self) -> dict[str, str]:
        """pyiceberg FileIO properties that reach this store."""
        return clients.iceberg_io_properties(self)

    # -- operations -----------------------------------------------------------------------

    def list(
        self, prefix: str, suffixes: tuple[str, ...] = (), hidden: bool = False
    ) -> builtins.list[FileEntry]:
        """Every object under a store-relative prefix, sorted by key: the one listing the
        project makes, normalized per protocol (`FileEntry`).

        Args:
            prefix: store-relative folder; a missing folder lists as empty.
            suffixes: keep only names ending in one of these.
            hidden: also list names below the prefix that start with ``.`` or ``_``
                (temporary files, markers, journals, uploads in progress), which readers
                never see.

        Raises:
            ObjectStoreError: the listing failed, or an object came without a modification
                time.
        """
        base = self.path(prefix)
        if self.scheme != "file":
            # Objects are also written through pyarrow: a cached listing would hide them.
            self.fs.invalidate_cache(base)
        try:
            found = self.fs.find(base, detail=True, withdirs=False)
        except FileNotFoundError:
            return []
        except Exception as exc:
            raise ObjectStoreError(self.uri(prefix), "list", exc) from exc
        try:
            return listing.entries(found, self.scheme, self.key_of, prefix, suffixes, hidden)
        except listing.NoModificationTime as missing:
            raise ObjectStoreError(self.uri(missing.key), "list", missing) from None

    def escapes(self, key: str, within: str) -> str | None:
        """Why `key` may not be read as part of `within` (a store-relative folder), or None.

        Only local disk has links: a symbolic link (of the file or of a folder above it)
        is followed only when it ends inside `within` at an existing file.
        """
        if self.scheme != "file":
            return None
        path = Path(self.path(key))
        target = Path(os.path.realpath(path))
        inside = Path(os.path.realpath(self.path(within)))
        if target != path and not target.is_relative_to(inside):
            return f"a symbolic link to {target}, outside {self.uri(within)}: not followed"
        if not target.is_file():
            return f"a symbolic link to {target}, which is not a file" if target != path else None
        return None

    def exists(self, key: str) -> bool:
        return retries.call_with_retries(
            lambda: bool(self.fs.exists(self.path(key))), self.max_attempts
        )

    def open_input(self, key: str) -> io.RawIOBase:
        """A binary input stream for a store-relative key. A transient failure, when opening
        or in the middle of the body, is retried where the stream was (`RetryingInput`)."""
        path = self.path(key)
        try:
            return retries.RetryingInput(
                lambda: self.arrow_fs.open_input_file(path), self.max_attempts
            )
        except Exception as exc:
            raise ObjectStoreError(self.uri(key), "open", exc) from exc

    @contextlib.contextmanager
    def staged_output(self, key: str) -> Iterator[str]:
        """Yield a hidden temporary path next to ``key``; on success it becomes ``key``.

        Readers never see a partly written object: the temporary name starts with ``.`` (so
        Hive/Spark/pyarrow discovery skips it) and ends in ``.tmp`` (so ``*.parquet`` globs
        skip it). On error the temporary object is removed and the old ``key`` is untouched.
        """
        directory, name = posixpath.split(self.path(key))
        tmp = posixpath.join(directory, f".{name}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")
        if self.scheme == "file":
            Path(directory).mkdir(parents=True, exist_ok=True)
        try:
            yield tmp
            self.promote(tmp, self.path(key))
        except BaseException:
            self.discard(tmp)  # also after a failed promote: a copy may be left behind
            raise

    def discard(self, tmp_path: str) -> None:
        """Remove a staged object of a write that failed, retrying transient failures (a
        store failing the write may fail its cleanup too); never raises."""
        with contextlib.suppress(Exception):
            retries.call_with_retries(
                functools.partial(self._delete_if_present, tmp_path), self.max_attempts
            )

    def promote(self, tmp_path: str, final_path: str) -> None:
        """Move a finished temporary object to its final name (replacing any old one).

        Local disk renames. An object store has no rename: a server-side copy (the final
        object appears whole), then the temporary's delete, each retried on its own after a
        transient failure (both are idempotent; a delete of a key already gone succeeds). A
        single move call would report a failed delete after a successful copy as a failed
        commit and leave the temporary behind. On GCS through gcsfs (emulators lack the newer
        move API, and gcsfs retries its 501 for ~30 s).
        """
        try:
            if self.scheme == "file":
                self.arrow_fs.move(tmp_path, final_path)
                return
            if self.scheme == "gs":
                copy: Callable[[], object] = functools.partial(self.fs.copy, tmp_path, final_path)
            else:
                copy = functools.partial(self.arrow_fs.copy_file, tmp_path, final_path)
            retries.call_with_retries(copy, self.max_attempts)
        except Exception as exc:
            raise ObjectStoreError(self.uri(self.key_of(final_path)), "commit", exc) from exc
        try:
            retries.call_with_retries(
                functools.partial(self._delete_if_present, tmp_path), self.max_attempts
            )
        except Exception as exc:  # committed, but its temporary is still there
            raise ObjectStoreError(self.uri(self.key_of(tmp_path)), "delete", exc) from exc

    def _delete_if_present(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.arrow_fs.delete_file(path)

    def delete(self, keys: Iterable[str]) -> None:
        """Delete objects by key, in bulk where the store has it (S3 deletes 1,000 keys per
        request); keys already gone are not an error."""
        keys = list(keys)
        if not keys:
            return
        if self.scheme == "file":
            for key in keys:
                try:
                    self.arrow_fs.delete_file(self.path(key))
                except FileNotFoundError:
                    continue
                except Exception as exc:
                    raise ObjectStoreError(self.uri(key), "delete", exc) from exc
            return
        for i in range(0, len(keys), DELETE_BATCH):
            batch = keys[i : i + DELETE_BATCH]
            try:
                paths = [self.path(k) for k in batch]
                retries.call_with_retries(functools.partial(self.fs.rm, paths), self.max_attempts)
            except FileNotFoundError:
                for key in batch:  # some of them were gone: the rest one by one
                    with contextlib.suppress(FileNotFoundError):
                        self.fs.rm_file(self.path(key))
            except Exception as exc:
                raise ObjectStoreError(self.uri(batch[0]), "delete", exc) from exc
            self.fs.invalidate_cache(posixpath.dirname(self.path(batch[0])))

    def remove_empty_dirs(self, prefix: str, stop: str) -> None:
        """Remove the folder `prefix` and then its parents below `stop` while they are empty.

        Object stores have no folders (a prefix without objects is gone); a local disk keeps
        empty ones, which a Hive reader would still walk and a listing still show.
        """
        if self.scheme != "file":
            return
        stop = stop.strip("/")
        key = prefix.strip("/")
        while key.startswith(stop + "/"):
            try:
                Path(self.path(key)).rmdir()
            except FileNotFoundError:
                pass
            except OSError:  # not empty
                return
            key = posixpath.dirname(key)

    def write_bytes(self, key: str, data: bytes) -> None:
        with (
            self.staged_output(key) as tmp,
            self.arrow_fs.open_output_stream(tmp, compression=None) as out,
        ):
            out.write(data)

    def read_bytes(self, key: str) -> bytes:
        """A whole object (a small one: it is held in memory)."""

        with self.open_input(key) as f:
            return f.readall()


def split_uri(uri: str) -> tuple[str, str]:
    """``(scheme, rest)`` of ``s3://bucket/key``, ``file:///abs/path`` or a plain path
    (scheme ``""``). Nothing else is parsed: ``?``, ``#`` and ``%`` are part of a key or a
    local path, never a query, a fragment or an escape."""
    scheme, sep, rest = uri.partition("://")
    if sep and scheme and scheme.isascii() and scheme.replace("+", "").isalnum():
        return scheme.lower(), rest
    if uri.startswith("file:") and not uri.startswith("file://"):
        return "file", uri.removeprefix("file:")
    return "", uri
