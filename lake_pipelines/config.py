"""Every setting of lake_pipelines, declared once, and what turns them into engine objects.

A setting is a field of a frozen dataclass section (`StoreSettings`, `CatalogSettings`,
`DataFusionSettings`, together `LakeSettings`; `MetricsSettings`, `DeploySettings`) declared
with `config_fields.setting`, which names its environment variable and says what it is for.
`from_env` resolves each one when a run or a command starts, never at import time: an
override (a resource field, a keyword argument) if given, else the variable, else the default
(everything under ``./.lake/``). An empty value counts as unset. Values are parsed to the
field's type and a bad one raises `ConfigError` naming the variable.

Secrets (AWS keys) are read from the environment only when a store is built: they are not
fields, so they never show in the Dagster UI, run config or logs. `.env.example` lists every
variable. Nothing here imports Dagster.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from lake_pipelines.config_fields import HOME, Section, Setting, setting
from lake_pipelines.errors import ConfigError
from lake_pipelines.lake.storage import AddressingStyle, ObjectStore

if TYPE_CHECKING:  # imported on first use: pyiceberg and DataFusion take a while to import
    from pyiceberg.catalog import Catalog

    from lake_pipelines.lake.analytics.session import SessionSettings

SECRETS = {
    "access_key_id": "AWS_ACCESS_KEY_ID",
    "secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "session_token": "AWS_SESSION_TOKEN",
    "gcs_credentials": "GOOGLE_APPLICATION_CREDENTIALS",
    "azure_connection_string": "AZURE_STORAGE_CONNECTION_STRING",
    "azure_account_key": "AZURE_STORAGE_ACCOUNT_KEY",
}


@dataclass(frozen=True)
class StoreSettings(Section):
    """Where the lake lives: ``file://`` (default ``./.lake``), ``s3://``, ``gs://``, ``az://``."""

    url: str = setting(
        "LAKE_STORE_URL", "", "Lake URL: file://, s3://, gs:// or az://", "file://{home}"
    )
    endpoint_url: str = setting(
        "LAKE_S3_ENDPOINT_URL",
        "",
        "S3-compatible endpoint (MinIO, R2, ...); empty for AWS",
        shown="$AWS_ENDPOINT_URL_S3, else $AWS_ENDPOINT_URL, else AWS itself",
        aws_fallbacks=("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
    )
    region: str = setting("LAKE_S3_REGION", "", "S3 region")
    allow_http: bool = setting(
        "LAKE_S3_ALLOW_HTTP", False, "permit a plain-HTTP endpoint (a trusted local one only)"
    )
    addressing_style: AddressingStyle = setting(  # noqa: RUF009 (it is a dataclasses.field)
        "LAKE_S3_ADDRESSING_STYLE", "auto", "S3 addressing: path, virtual or auto"
    )
    max_attempts: int = setting(
        "LAKE_S3_MAX_ATTEMPTS", 5, "attempts per request, with exponential backoff"
    )
    gcs_endpoint_url: str = setting(
        "LAKE_GCS_ENDPOINT_URL", "", "GCS JSON API endpoint (an emulator); empty for Google"
    )
    azure_account_name: str = setting(
        "LAKE_AZURE_ACCOUNT_NAME", "", "Azure storage account (without a connection string)"
    )

    def object_store(self, environ: Mapping[str, str] | None = None) -> ObjectStore:
        """The `ObjectStore`, with credentials from the environment: S3 keys (else the AWS
        chain), a GCS service-account JSON file (else Google's default credentials, or none
        for an emulator endpoint), an Azure connection string or account key (else Azure's
        default credential chain).

        Raises:
            ConfigError: the URL or endpoint cannot be used.
        """
        env = os.environ if environ is None else environ
        secret = {name: env.get(var, "") for name, var in SECRETS.items()}
        return ObjectStore(
            url=self.url,
            endpoint_url=self.endpoint_url,
            region=self.region,
            allow_http=self.allow_http,
            addressing_style=self.addressing_style,
            max_attempts=self.max_attempts,
            gcs_endpoint_url=self.gcs_endpoint_url,
            azure_account_name=self.azure_account_name,
            access_key_id=secret["access_key_id"],
            secret_access_key=secret["secret_access_key"],
            session_token=secret["session_token"],
            gcs_credentials=secret["gcs_credentials"],
            azure_connection_string=secret["azure_connection_string"],
            azure_account_key=secret["azure_account_key"],
        )


@dataclass(frozen=True)
class CatalogSettings(Section):
    """The Iceberg catalog: SQL (SQLite default, PostgreSQL by URI), REST, Glue, ...

    Set ``LAKE_CATALOG_URI=postgresql+psycopg2://...`` for PostgreSQL, or
    ``LAKE_CATALOG_TYPE=rest`` / ``glue`` with ``LAKE_CATALOG_URI`` for those catalogs.
    """

    name: str = setting("LAKE_CATALOG_NAME", "lake", "catalog name")
    type: str = setting("LAKE_CATALOG_TYPE", "sql", "catalog type: sql, rest, glue, hive, ...")
    uri: str = setting(
        "LAKE_CATALOG_URI",
        "",
        "catalog URI (SQLAlchemy URL, REST endpoint)",
        "sqlite:///{home}/catalog.db",
    )
    warehouse: str = setting(
        "LAKE_WAREHOUSE", "", "warehouse URL", shown="<LAKE_STORE_URL>/warehouse"
    )

    def properties(self, store: ObjectStore) -> dict[str, str]:
        """pyiceberg catalog properties; the warehouse defaults to ``<store>/warehouse``."""
        props = {
            "type": self.type,
            "uri": self.uri,
            "warehouse": self.warehouse or store.uri("warehouse"),
            **store.iceberg_properties(),
        }
        if self.type == "sql" and self.uri.startswith("sqlite:///"):
            Path(self.uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return props

    def load(self, store: ObjectStore, metadata_only: bool = False) -> Catalog:
        """The catalog, its files on `store`.

        Args:
            metadata_only: the caller reads table metadata and manifests, never data files:
                on a local store they are then read through pyiceberg's fsspec FileIO, since
                its pyarrow FileIO imports pyarrow.dataset and with it pandas (about a
                second, the most of a CLI command's time).

        Raises:
            ConfigError: the catalog cannot be opened (names LAKE_CATALOG_URI).
        """
        from pyiceberg.catalog import load_catalog

        props = self.properties(store)
        if metadata_only and store.scheme == "file":
            props["py-io-impl"] = "pyiceberg.io.fsspec.FsspecFileIO"
        try:
            return load_catalog(self.name, **props)
        except Exception as exc:
            raise ConfigError(
                "LAKE_CATALOG_URI", props["uri"], f"cannot open {props['type']} catalog: {exc}"
            ) from exc


@dataclass(frozen=True)
class DataFusionSettings(Section):
    """How DataFusion sessions may use the machine."""

    target_partitions: int = setting(
        "LAKE_DF_TARGET_PARTITIONS",
        0,
        "parallelism of scans and aggregations; 0: one per usable core, but 1 up to 2 cores",
    )
    batch_size: int = setting("LAKE_DF_BATCH_SIZE", 65536, "rows per record batch")
    memory_limit: int = setting(
        "LAKE_DF_MEMORY_LIMIT",
        0,
        "memory of a session's operators before they spill: bytes, 2GiB, 512MB, a share "
        "of the container's / machine's memory (25%), or auto; 0: no limit",
        unset="auto",
        shown="auto: 2GiB, or 25% of the container's / machine's memory if less",
        share_of_memory=True,
    )
    spill_dir: str = setting(
        "LAKE_DF_SPILL_DIR", "", "spill directory", shown="the OS temporary directory"
    )

    def session_settings(self) -> SessionSettings:
        from lake_pipelines.lake.analytics.session import SessionSettings

        return SessionSettings(
            target_partitions=self.target_partitions,
            batch_size=self.batch_size,
            memory_limit=self.memory_limit,
            spill_dir=self.spill_dir,
        )


@dataclass(frozen=True)
class MetricsSettings(Section):
    """Where each step pushes its Prometheus metrics (`lake.pushgateway`); unset: nowhere."""

    pushgateway: str = setting(
        "LAKE_PROMETHEUS_PUSHGATEWAY", "", "Pushgateway URL (http://host:9091); empty: no metrics"
    )
    job: str = setting("LAKE_PROMETHEUS_JOB", "lake_pipelines", "job label of the pushed metrics")
    timeout: int = setting(
        "LAKE_PROMETHEUS_TIMEOUT", 5, "seconds a push may take before it is given up (a warning)"
    )


Executor = Literal["in_process", "celery"]


@dataclass(frozen=True)
class DeploySettings(Section):
    """The deployment profile: embedded (one process per run, the default) or distributed
    (Dagster's Celery executor: each step a task on a Redis broker, run by worker processes
    on any machine). Read when the code location loads, since backfill policies and pools are
    part of the definitions; the broker is checked when a run starts."""

    executor: Executor = setting(  # noqa: RUF009 (it is a dataclasses.field)
        "LAKE_EXECUTOR", "in_process", "in_process (embedded) or celery (distributed)"
    )
    broker_url: str = setting(
        "LAKE_CELERY_BROKER_URL", "redis://127.0.0.1:6379/0", "Celery broker (Redis) URL"
    )
    backend_url: str = setting(
        "LAKE_CELERY_BACKEND_URL",
        "",
        "Celery result backend URL",
        shown="<LAKE_CELERY_BROKER_URL>",
    )
    workers: int = setting(
        "LAKE_CELERY_WORKERS", 2, "worker processes `make cluster` starts on this machine"
    )
    days_per_run: int = setting(
        "LAKE_BACKFILL_DAYS_PER_RUN", 5, "days per run of a distributed backfill"
    )
    visibility_timeout: int = setting(
        "LAKE_CELERY_VISIBILITY_TIMEOUT",
        3600,
        "seconds before a step of a vanished worker is handed to another (> longest step)",
    )

    @property
    def distributed(self) -> bool:
        return self.executor == "celery"

    @property
    def backend(self) -> str:
        return self.backend_url or self.broker_url

    def celery_config(self) -> dict[str, Any]:
        """The Celery executor's config, the same block its workers are started with.

        A step's message is acknowledged only when the step is done (``task_acks_late``); a
        worker process killed mid-step hands the message back to the queue
        (``task_reject_on_worker_lost``), so another worker runs the step again, which
        replaces the same partitions. A worker that vanishes whole gets its message
        redelivered after ``visibility_timeout`` seconds.
        """
        return {
            "broker": self.broker_url,
            "backend": self.backend,
            "config_source": {
                "task_acks_late": True,
                "task_reject_on_worker_lost": True,
                "worker_prefetch_multiplier": 1,
                "broker_connection_retry_on_startup": True,
                "broker_transport_options": {
                    "visibility_timeout": self.visibility_timeout,
                    "max_retries": 3,
                    "interval_start": 0,
                    "interval_step": 0.2,
                    "interval_max": 0.5,
                },
                "result_expires": 86400,
            },
        }


SECTIONS: tuple[type[Section], ...] = (
    StoreSettings,
    CatalogSettings,
    DataFusionSettings,
    MetricsSettings,
    DeploySettings,
)


@dataclass(frozen=True)
class LakeSettings:
    """All settings, resolved together (each resource resolves only its own section)."""

    store: StoreSettings
    catalog: CatalogSettings
    datafusion: DataFusionSettings

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Mapping[str, object]
    ) -> LakeSettings:
        """Every section from the environment; overrides per section, e.g.
        ``LakeSettings.from_env(store={"max_attempts": 3})``.

        Raises:
            ConfigError: a value does not fit its setting; names the variable.
        """
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"LakeSettings has no section {', '.join(sorted(unknown))}")
        return cls(
            store=StoreSettings.from_env(environ, **overrides.get("store", {})),
            catalog=CatalogSettings.from_env(environ, **overrides.get("catalog", {})),
            datafusion=DataFusionSettings.from_env(environ, **overrides.get("datafusion", {})),
        )


def variables() -> dict[str, Setting]:
    """Every environment variable a setting reads (secrets aside), LAKE_HOME first."""
    found = {HOME.var: HOME}
    for section in SECTIONS:
        found.update({s.var: s for s in section.settings().values()})
    return found
