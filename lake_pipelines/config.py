"""Environment → configuration, resolved when a run starts (never at import time).

Every setting a resource field leaves empty is taken from its environment variable, else from
the embedded default (everything under ``./.lake/``). `.env.example` lists them all. Secrets
are only ever read from the environment: they are not resource config, so they never show in
the Dagster UI, run config or logs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from lake_pipelines.errors import ConfigError

DEFAULT_HOME = ".lake"

# setting → (environment variable, default); a default of None means "unset".
ENV: dict[str, tuple[str, str | None]] = {
    "store_url": ("LAKE_STORE_URL", None),  # default: file://<cwd>/.lake
    "s3_endpoint_url": ("LAKE_S3_ENDPOINT_URL", ""),
    "s3_region": ("LAKE_S3_REGION", ""),
    "s3_allow_http": ("LAKE_S3_ALLOW_HTTP", "false"),
    "s3_addressing_style": ("LAKE_S3_ADDRESSING_STYLE", "auto"),
    "s3_max_attempts": ("LAKE_S3_MAX_ATTEMPTS", "5"),
    "catalog_name": ("LAKE_CATALOG_NAME", "lake"),
    "catalog_type": ("LAKE_CATALOG_TYPE", "sql"),
    "catalog_uri": ("LAKE_CATALOG_URI", None),  # default: sqlite:///<cwd>/.lake/catalog.db
    "warehouse": ("LAKE_WAREHOUSE", None),  # default: <store>/warehouse
    "df_target_partitions": ("LAKE_DF_TARGET_PARTITIONS", "0"),
    "df_batch_size": ("LAKE_DF_BATCH_SIZE", "8192"),
    "df_memory_limit": ("LAKE_DF_MEMORY_LIMIT", "0"),
    "df_spill_dir": ("LAKE_DF_SPILL_DIR", ""),
}
SECRETS = {
    "access_key_id": "AWS_ACCESS_KEY_ID",
    "secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "session_token": "AWS_SESSION_TOKEN",
}


def lake_home(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get("LAKE_HOME", DEFAULT_HOME)).expanduser().resolve()


def resolve(name: str, configured: str = "", environ: Mapping[str, str] | None = None) -> str:
    """A setting's value: configured value, else environment variable, else default."""
    if configured:
        return configured
    env = os.environ if environ is None else environ
    var, default = ENV[name]
    value = env.get(var, "")
    if value:
        return value
    if default is not None:
        return default
    home = lake_home(env)
    if name == "store_url":
        return f"file://{home}"
    if name == "catalog_uri":
        return f"sqlite:///{home / 'catalog.db'}"
    return ""


def secret(name: str, environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get(SECRETS[name], "")


def as_bool(name: str, value: str) -> bool:
    low = value.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(ENV[name][0], value, "expected true or false")


def as_int(name: str, value: str) -> int:
    """An integer setting; accepts size suffixes (``512MiB``, ``2GB``) for byte counts."""
    text = value.strip().replace("_", "")
    units = {"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "kb": 10**3, "mb": 10**6, "gb": 10**9}
    low = text.lower()
    for suffix, factor in units.items():
        if low.endswith(suffix):
            try:
                return int(float(low[: -len(suffix)]) * factor)
            except ValueError:
                break
    try:
        return int(text)
    except ValueError:
        raise ConfigError(ENV[name][0], value, "expected a whole number") from None
