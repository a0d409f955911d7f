"""Gold: DataFusion computations over silver, committed to Iceberg per day."""
# No `from __future__ import annotations`: Dagster reads the real annotations of asset
# functions to inject the context and resources.

from datetime import date
from typing import cast

import dagster as dg

from lake_pipelines.assets.common import (
    asset_key,
    commit_numbers,
    commit_row,
    daily_asset_args,
    days_of,
    layer_metadata,
)
from lake_pipelines.assets.observability import day_numbers, record_days, step_metrics
from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.deployment import window_dependency, write_pool
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
    # Day D of a gold table with a lookback reads silver days D-lookback..D itself (the
    # window is planned in `lake.gold`); which silver days it depends on is the profile's
    # choice (`window_dependency`: day D embedded, the window distributed).
    window = (
        f" Each day reads the {gold.lookback_days + 1} silver days ending with it: when silver "
        f"day D is materialized again (a late file), `{spec.name}_gold_window_sensor` requests "
        f"D..D+{gold.lookback_days} of this asset, the days computed before that read D."
        if gold.lookback_days
        else ""
    )

    @dg.asset(
        key=asset_key("gold", gold.name),
        deps=[window_dependency(silver_key, gold.lookback_days)],
        **daily_asset_args(spec, eager=True),
        kinds={"gold", "iceberg", "datafusion"},
        pool=write_pool(f"iceberg_{identifier.replace('.', '_')}"),
        description=(
            f"{gold.description}\n\nComputed by DataFusion over `{spec.table_name}` "
            f"and committed to `{identifier}`: a range of days in one snapshot per month; "
            "a day whose silver files did not change is not recomputed; a day without "
            f"silver rows has no gold rows.{window}"
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
        with step_metrics(context, spec.name, "gold", gold.name):
            store = object_store.get_store()
            catalog = iceberg.load(store)
            settings = datafusion.session_settings()
            reports = commit_gold_days(
                store,
                catalog,
                spec,
                gold,
                cast("list[date]", days_of(context, spec)),
                settings,
                context.run.run_id,
            )
            record_days(
                context,
                {
                    r.day: day_numbers(
                        r.rows,
                        **commit_numbers(store, spec, r),
                        # days whose silver inputs were those of their last commit: not recomputed
                        source_files_scanned=0 if r.unchanged else r.source_files,
                        source_snapshot_id=str(r.source_snapshot_id),
                        snapshot_id=str(r.snapshot_id),
                    )
                    for r in reports
                },
            )
        metadata = layer_metadata(
            gold.schema,
            [commit_row(r, r.rows) for r in reports],
            table_name=identifier,
            retries_before=retries_before,
        )
        return dg.MaterializeResult(metadata=metadata)

    return gold_asset


def build_gold_assets(spec: DatasetSpec, silver_key: dg.AssetKey) -> list[dg.AssetsDefinition]:
    """One asset per gold table declared for the dataset in `lake.analytics.queries.GOLD_TABLES`."""
    return [build_gold_asset(spec, gold, silver_key) for gold in gold_tables_for(spec)]
