"""Gold: DataFusion computations over silver, committed to Iceberg per day."""
# No `from __future__ import annotations`: Dagster reads the real annotations of asset
# functions to inject the context and resources.

import dagster as dg

from lake_pipelines.assets.common import (
    asset_key,
    commit_numbers,
    commit_row,
    daily_asset_args,
    days_of,
    layer_metadata,
)
from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.lake.analytics.queries import GoldTable, gold_identifier, gold_tables_for
from lake_pipelines.lake.retries import retry_counts
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
        **daily_asset_args(spec, eager=True),
        kinds={"iceberg", "datafusion"},
        pool=f"iceberg_{identifier.replace('.', '_')}",
        description=(
            f"{gold.description}\n\nComputed by DataFusion over `{spec.table_name}` "
            f"and committed to `{identifier}`: a range of days in one snapshot per month; "
            "a day whose silver files did not change is not recomputed."
        ),
    )
    def gold_asset(
        context: dg.AssetExecutionContext,
        object_store: ObjectStoreResource,
        iceberg: IcebergCatalogResource,
        datafusion: DataFusionResource,
    ) -> dg.MaterializeResult:
        from lake_pipelines.lake.gold import commit_gold_days  # pyiceberg: on first use

        retries_before = retry_counts()
        store = object_store.get_store()
        catalog = iceberg.load(store)
        settings = datafusion.session_settings()
        reports = commit_gold_days(
            store, catalog, spec, gold, days_of(context), settings, context.run.run_id
        )
        rows = sum(r.rows for r in reports)
        metadata = layer_metadata(
            rows,
            gold.schema,
            [commit_row(r, r.rows) for r in reports],
            table_name=identifier,
            retries_before=retries_before,
            source_files_scanned=sum(r.source_files for r in reports if not r.unchanged),
            # days whose silver inputs were those of their last commit: not recomputed
            days_unchanged=sum(r.unchanged for r in reports),
            **commit_numbers(store, spec, reports),
        )
        if len(reports) == 1:
            metadata["source_snapshot_id"] = str(reports[0].source_snapshot_id)
        return dg.MaterializeResult(metadata=metadata)

    return gold_asset


def build_gold_assets(spec: DatasetSpec, silver_key: dg.AssetKey) -> list[dg.AssetsDefinition]:
    """One asset per gold table declared for the dataset in `lake.analytics.queries.GOLD_TABLES`."""
    return [build_gold_asset(spec, gold, silver_key) for gold in gold_tables_for(spec)]
