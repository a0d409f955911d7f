"""Reachability of the distributed profile's services, checked before anything uses them.

An unreachable broker or database otherwise surfaces as a retry loop in kombu or a deep
SQLAlchemy stack trace; here it is one `ConfigError` naming the setting and the address.
``python -m lake_pipelines.preflight`` checks every service the environment names (the
cluster script runs it before it starts the daemon, the web UI and the workers).
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping
from urllib.parse import urlsplit

from lake_pipelines.config import CatalogSettings, DeploySettings, StoreSettings
from lake_pipelines.errors import ConfigError

DEFAULT_PORTS = {"redis": 6379, "rediss": 6379, "amqp": 5672, "pyamqp": 5672, "http": 80}
DEFAULT_PORTS |= {"https": 443, "postgresql": 5432, "postgres": 5432}


def redact(url: str) -> str:
    """`url` without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


def address(url: str) -> tuple[str, int] | None:
    """(host, port) of a network URL; None for a local one (sqlite, file)."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+")[0]
    if not parts.hostname or scheme not in DEFAULT_PORTS:
        return None
    return parts.hostname, parts.port or DEFAULT_PORTS[scheme]


def check_reachable(setting: str, url: str, timeout: float = 3.0) -> None:
    """Open (and close) a TCP connection to the address of `url`.

    Raises:
        ConfigError: nothing answers there; names `setting` and the address.
    """
    where = address(url)
    if where is None:
        return
    host, port = where
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(setting, redact(url), f"cannot reach {host}:{port}: {reason}") from None


def check_broker(settings: DeploySettings) -> None:
    """The Celery broker and result backend answer."""
    check_reachable("LAKE_CELERY_BROKER_URL", settings.broker_url)
    if settings.backend_url:
        check_reachable("LAKE_CELERY_BACKEND_URL", settings.backend_url)


def check_all(environ: Mapping[str, str] | None = None) -> list[str]:
    """Every network service the settings name: broker, Dagster's PostgreSQL (DAGSTER_PG_*),
    the Iceberg catalog, the S3 endpoint. Returns what was checked.

    Raises:
        ConfigError: the first one that does not answer (or a setting that does not parse).
    """
    env = os.environ if environ is None else environ
    deploy = DeploySettings.from_env(env)
    checked = []
    if deploy.distributed:
        check_broker(deploy)
        checked.append(f"broker {redact(deploy.broker_url)}")
    if env.get("DAGSTER_PG_HOST"):
        pg = f"postgresql://{env['DAGSTER_PG_HOST']}:{env.get('DAGSTER_PG_PORT') or 5432}"
        check_reachable("DAGSTER_PG_HOST", pg)
        checked.append(f"Dagster instance {pg}")
    catalog = CatalogSettings.from_env(env)
    check_reachable("LAKE_CATALOG_URI", catalog.uri)
    checked.append(f"catalog {redact(catalog.uri)}")
    store = StoreSettings.from_env(env)
    if store.endpoint_url:
        check_reachable("LAKE_S3_ENDPOINT_URL", store.endpoint_url)
        checked.append(f"object store {store.endpoint_url}")
    return checked


def main() -> None:
    try:
        for line in check_all():
            print(f"reachable: {line}")
    except ConfigError as exc:
        print(f"lake_pipelines: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
