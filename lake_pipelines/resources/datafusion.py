"""DataFusion sessions as a Dagster resource: partitions, batch size, memory limit, spill dir."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

from lake_pipelines.config import DataFusionSettings
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.resources.fields import overrides, setting_field

if TYPE_CHECKING:  # imported on first use: only analytics runs need DataFusion
    from datafusion import SessionContext

    from lake_pipelines.lake.analytics.session import SessionSettings


class DataFusionResource(dg.ConfigurableResource):
    """Builds `SessionContext`s; unset fields are read from ``LAKE_DF_*`` when a run starts.

    `memory_limit` is text so that run config can say ``2GiB`` as the variable can.
    """

    target_partitions: int | None = setting_field(DataFusionSettings, "target_partitions")
    batch_size: int | None = setting_field(DataFusionSettings, "batch_size")
    memory_limit: str | None = setting_field(DataFusionSettings, "memory_limit")
    spill_dir: str | None = setting_field(DataFusionSettings, "spill_dir")

    def session_settings(self) -> SessionSettings:
        settings = DataFusionSettings.from_env(None, **overrides(self, DataFusionSettings))
        return settings.session_settings()

    def session(self, *stores: ObjectStore) -> SessionContext:
        from lake_pipelines.lake.analytics.session import make_session

        return make_session(self.session_settings(), stores)
