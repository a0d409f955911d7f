"""DataFusion sessions as a Dagster resource: partitions, batch size, memory limit, spill dir."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from lake_pipelines import config as settings
from lake_pipelines.lake.storage import ObjectStore

if TYPE_CHECKING:  # imported on first use: only analytics runs need DataFusion
    from datafusion import SessionContext

    from lake_pipelines.lake.analytics.session import SessionSettings


class DataFusionResource(dg.ConfigurableResource):
    """Builds `SessionContext`s; empty fields fall back to ``LAKE_DF_*`` variables."""

    target_partitions: str = Field(default="", description="0: number of cores")
    batch_size: str = Field(default="", description="rows per batch (default 8192)")
    memory_limit: str = Field(default="", description="e.g. 2GiB; 0: unlimited")
    spill_dir: str = Field(default="", description="spill directory; empty: OS temp dir")

    def session_settings(self) -> SessionSettings:
        from lake_pipelines.lake.analytics.session import SessionSettings

        return SessionSettings(
            target_partitions=settings.as_int(
                "df_target_partitions",
                settings.resolve("df_target_partitions", self.target_partitions),
            ),
            batch_size=settings.as_int(
                "df_batch_size", settings.resolve("df_batch_size", self.batch_size)
            ),
            memory_limit=settings.as_int(
                "df_memory_limit", settings.resolve("df_memory_limit", self.memory_limit)
            ),
            spill_dir=settings.resolve("df_spill_dir", self.spill_dir),
        )

    def session(self, *stores: ObjectStore) -> SessionContext:
        from lake_pipelines.lake.analytics.session import make_session

        return make_session(self.session_settings(), stores)
