"""Gold: DataFusion aggregations over silver, committed to Iceberg per day."""
# No `from __future__ import annotations`: Dagster reads the real annotations of asset
# functions to inject the context and resources.

import dagster as dg

from lake_pipelines.assets.common import (
    asset_key,
    column_schema,
    days_of,
    partitions_for,
    per_day_table,
)
from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.lake.analytics import DAILY_EVENT_METRICS_SCHEMA
from lake_pipelines.lake.gold import commit_daily_metrics, metrics_table_name
from lake_pipelines.resources import (
    DataFusionResource,
    IcebergCatalogResource,
    ObjectStoreResource,
)


def build_gold_assets(spec: DatasetSpec, silver_key: dg.AssetKey) -> list[dg.AssetsDefinition]:
    """The dataset's gold assets (today: daily metrics for datasets shaped like events)."""
    if spec.name != "events":
        return []
    name = f"{spec.name}_daily_metrics"

    @dg.asset(
        key=asset_key("gold", name),
        deps=[silver_key],
        partitions_def=partitions_for(spec),
        backfill_policy=dg.BackfillPolicy.single_run(),
        automation_condition=dg.AutomationCondition.eager(),
        group_name=spec.name,
        kinds={"iceberg", "datafusion"},
        pool=f"iceberg_{spec.namespace}_{name}",
        description=(
            f"Per day and event type: events, distinct users, distinct sessions and revenue, "
            f"computed by DataFusion over `{spec.table_name}` and committed to "
            f"`{metrics_table_name(spec)}` (one atomic replace per day)."
        ),
    )
    def daily_metrics(
        context: dg.AssetExecutionContext,
        object_store: ObjectStoreResource,
        iceberg: IcebergCatalogResource,
        datafusion: DataFusionResource,
    ) -> dg.MaterializeResult:
        store = object_store.get_store()
        catalog = iceberg.load(store)
        settings = datafusion.session_settings()
        reports = [
            commit_daily_metrics(store, catalog, spec, day, settings, context.run.run_id)
            for day in days_of(context)
        ]
        rows = sum(r.rows for r in reports)
        metadata: dict[str, object] = {
            "dagster/row_count": rows,
            "dagster/table_name": metrics_table_name(spec),
            "dagster/column_schema": column_schema(DAILY_EVENT_METRICS_SCHEMA),
            "seconds": round(sum(r.seconds for r in reports), 3),
        }
        if len(reports) == 1:
            metadata["dagster/partition_row_count"] = rows
            metadata["source_snapshot_id"] = str(reports[0].source_snapshot_id)
        else:
            metadata["per_day"] = per_day_table(
                [{"day": r.day.isoformat(), "rows": r.rows} for r in reports]
            )
        return dg.MaterializeResult(metadata=metadata)

    return [daily_metrics]
