"""pyiceberg FileIO for tables on GCS and Azure: the same gcsfs and adlfs clients as the store.

pyiceberg's own choices do not reach every store the lake runs on: its fsspec FileIO builds
gcsfs' default class, which first probes Google's Storage Control gRPC API (an emulator never
answers; each operation waits ~60 s), and knows Azure only as ``abfs``/``abfss``/``wasb``,
not ``az://``. `LakeFileIO` is that FileIO with GCS and Azure filesystems built by
`lake_pipelines.lake.clients` from pyiceberg's standard properties (``gcs.service.host``,
``adls.connection-string``, ``adls.account-name``, ``adls.account-key``) and our
``lake.gcs.credentials-file`` (a service-account JSON path); every other scheme is
pyiceberg's. `ObjectStore.iceberg_properties`
names it as ``py-io-impl`` for ``gs://`` and ``az://``/``abfs://`` lakes.
"""

from __future__ import annotations

from typing import Any

from pyiceberg.io.fsspec import FsspecFileIO

from lake_pipelines.lake import clients


class LakeFileIO(FsspecFileIO):
    """pyiceberg's fsspec FileIO with the lake's GCS and Azure clients (see the module)."""

    def _get_fs(self, scheme: str, hostname: str | None = None) -> Any:
        props = self.properties
        if scheme in ("gs", "gcs"):
            return clients.gcs_filesystem(
                props.get(clients.GCS_ENDPOINT, ""), props.get(clients.GCS_CREDENTIALS_FILE, "")
            )
        if scheme in clients.AZURE_SCHEMES:
            return clients.azure_filesystem(
                props.get(clients.ADLS_CONNECTION_STRING, ""),
                props.get(clients.ADLS_ACCOUNT_NAME, ""),
                props.get(clients.ADLS_ACCOUNT_KEY, ""),
            )
        return super()._get_fs(scheme, hostname)
