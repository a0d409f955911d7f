"""The lake's object store as a Dagster resource: one URL, three views of it."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from lake_pipelines import config as settings
from lake_pipelines.lake.storage import ObjectStore


class ObjectStoreResource(dg.ConfigurableResource):
    """Where the lake lives: ``file://`` (default ``./.lake``), ``s3://``, ``gs://`` or ``az://``.

    Empty fields fall back to the environment (``LAKE_STORE_URL``, ``LAKE_S3_*``); credentials
    come only from the environment (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` /
    ``AWS_SESSION_TOKEN``, or the default AWS chain), never from run config.
    """

    url: str = Field(default="", description="Lake URL; empty: LAKE_STORE_URL or ./.lake")
    endpoint_url: str = Field(default="", description="S3-compatible endpoint (MinIO, R2, ...)")
    region: str = Field(default="", description="S3 region")
    allow_http: str = Field(default="", description="'true' to permit a plain-HTTP endpoint")
    addressing_style: str = Field(default="", description="'path', 'virtual' or 'auto'")
    max_attempts: str = Field(default="", description="attempts per request, with backoff")

    def get_store(self) -> ObjectStore:
        style = settings.resolve("s3_addressing_style", self.addressing_style)
        if style not in ("auto", "path", "virtual"):
            raise settings.ConfigError(
                "LAKE_S3_ADDRESSING_STYLE", style, "use auto, path or virtual"
            )
        return ObjectStore(
            url=settings.resolve("store_url", self.url),
            endpoint_url=settings.resolve("s3_endpoint_url", self.endpoint_url),
            region=settings.resolve("s3_region", self.region),
            access_key_id=settings.secret("access_key_id"),
            secret_access_key=settings.secret("secret_access_key"),
            session_token=settings.secret("session_token"),
            allow_http=settings.as_bool(
                "s3_allow_http", settings.resolve("s3_allow_http", self.allow_http)
            ),
            addressing_style=style,  # type: ignore[arg-type]
            max_attempts=settings.as_int(
                "s3_max_attempts", settings.resolve("s3_max_attempts", self.max_attempts)
            ),
        )
