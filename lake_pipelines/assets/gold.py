"""Gold: DataFusion computations over silver, committed to Iceberg per day."""
# No `from __future__ import annotations`: Dagster reads the real annotations of asset
# functions to inject the context and resources.

from typing import Any

import dagster as dg

from lake_pipelines.assets.common import (
    asset_key,
    column_schema,
    days_of,
    partitions_for,
    per_day_table,
    rows_quarantined,
)
from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.lake.analytics.queries import GoldTable, gold_identifier, gold_tables_for
from lake_pipelines.resources import (
    DataFusionResource,
    IcebergCatalogResource,
    ObjectStoreResource,
)


def build_gold_asset(
    spec: DatasetSpec, gold: GoldTable, silver_key: dg.AssetKey
) -> dg.AssetsDefinition:
    identifier = gold_identifier(spec, gold)
    if gold.lookback_days:
        # Day D reads silver days D-lookback..D: Dagster shows the dependency and a backfill
        # of silver re-triggers every gold day that read it.
        dep = dg.AssetDep(
            silver_key,
            partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-gold.lookback_days),
        )
    else:
        dep = dg.AssetDep(silver_key)

    @dg.asset(
        key=asset_key("gold", gold.name),
        deps=[dep],
        partitions_def=partitions_for(spec),
        backfill_policy=dg.BackfillPolicy.single_run(),
        automation_condition=dg.AutomationCondition.eager(),
        group_name=spec.name,
        kinds={"iceberg", "datafusion"},
        pool=f"iceberg_{identifier.replace('.', '_')}",
        description=(
            f"{gold.description}\n\nComputed by DataFusion over `{spec.table_name}` "
            f"and committed to `{identifier}`, one atomic replace per day."
        ),
    )
    def gold_asset(
        context: dg.AssetExecutionContext,
        object_store: ObjectStoreResource,
        iceberg: IcebergCatalogResource,
        datafusion: DataFusionResource,
    ) -> dg.MaterializeResult:
        from lake_pipelines.lake.gold import commit_gold_day  # pyiceberg: on first use

        store = object_store.get_store()
        catalog = iceberg.load(store)
        settings = datafusion.session_settings()
        reports = [
            commit_gold_day(store, catalog, spec, gold, day, settings, context.run.run_id)
            for day in days_of(context)
        ]
        rows = sum(r.rows for r in reports)
        metadata: dict[str, Any] = {
            "dagster/row_count": rows,
            "dagster/table_name": identifier,
            "dagster/column_schema": column_schema(gold.schema),
            "source_files_scanned": sum(r.source_files for r in reports),
            "files": sum(r.files for r in reports),  # data files holding the days
            "bytes": sum(r.bytes for r in reports),
            # rows of these days quarantined in bronze, so in no aggregate
            "rows_quarantined": rows_quarantined(store, spec, [r.day for r in reports]),
            "seconds": round(sum(r.seconds for r in reports), 3),
        }
        if len(reports) == 1:
            metadata["dagster/partition_row_count"] = rows
            metadata["source_snapshot_id"] = str(reports[0].source_snapshot_id)
        else:
            metadata["per_day"] = per_day_table(
                [
                    {"day": r.day.isoformat(), "rows": r.rows, "files": r.files, "bytes": r.bytes}
                    for r in reports
                ]
            )
        return dg.MaterializeResult(metadata=metadata)

    return gold_asset


def build_gold_assets(spec: DatasetSpec, silver_key: dg.AssetKey) -> list[dg.AssetsDefinition]:
    """One asset per gold table declared for the dataset in `lake.analytics.queries.GOLD_TABLES`."""
    return [build_gold_asset(spec, gold, silver_key) for gold in gold_tables_for(spec)]
