"""The lake's object store as a Dagster resource: one URL, three views of it."""

from __future__ import annotations

import dagster as dg

from lake_pipelines.config import StoreSettings
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.resources.fields import overrides, setting_field


class ObjectStoreResource(dg.ConfigurableResource):
    """Where the lake lives: ``file://`` (default ``./.lake``), ``s3://``, ``gs://`` or ``az://``.

    Unset fields are read from ``LAKE_STORE_URL``, ``LAKE_S3_*``, ``LAKE_GCS_*`` and
    ``LAKE_AZURE_*`` when a run starts; credentials come only from the environment
    (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN`` or the AWS
    chain; ``GOOGLE_APPLICATION_CREDENTIALS`` or Google's default credentials;
    ``AZURE_STORAGE_CONNECTION_STRING`` or ``AZURE_STORAGE_ACCOUNT_KEY`` or Azure's chain).
    """

    url: str | None = setting_field(StoreSettings, "url")
    endpoint_url: str | None = setting_field(StoreSettings, "endpoint_url")
    region: str | None = setting_field(StoreSettings, "region")
    allow_http: bool | None = setting_field(StoreSettings, "allow_http")
    # text, not the Literal: Dagster config has no Literal type; the settings check the choice
    addressing_style: str | None = setting_field(StoreSettings, "addressing_style")
    max_attempts: int | None = setting_field(StoreSettings, "max_attempts")
    gcs_endpoint_url: str | None = setting_field(StoreSettings, "gcs_endpoint_url")
    azure_account_name: str | None = setting_field(StoreSettings, "azure_account_name")

    def settings(self) -> StoreSettings:
        return StoreSettings.from_env(None, **overrides(self, StoreSettings))

    def get_store(self) -> ObjectStore:
        return self.settings().object_store()
