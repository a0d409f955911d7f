"""Silver: the day's bronze partition committed to the dataset's Iceberg table."""
# No `from __future__ import annotations`: Dagster reads the real annotations of asset
# functions to inject the context and resources.

import dagster as dg

from lake_pipelines.assets.common import (
    ROW_ACCOUNTING_CHECK,
    asset_key,
    commit_numbers,
    commit_row,
    daily_asset_args,
    days_of,
    layer_metadata,
)
from lake_pipelines.assets.observability import day_numbers, record_days, step_metrics
from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.deployment import write_pool
from lake_pipelines.lake.retries import retry_counts
from lake_pipelines.resources import IcebergCatalogResource, ObjectStoreResource


def build_silver_asset(spec: DatasetSpec, bronze_key: dg.AssetKey) -> dg.AssetsDefinition:
    key = asset_key("silver", spec.name)

    @dg.asset(
        key=key,
        deps=[bronze_key],
        **daily_asset_args(spec, eager=True),
        kinds={"silver", "iceberg", "pyarrow"},
        pool=write_pool(f"iceberg_{spec.namespace}_{spec.name}"),
        description=(
            f"Iceberg table `{spec.table_name}`, partitioned by "
            + ", ".join(f"{p.transform}({p.column})" for p in spec.partitioning)
            + ". Each day is replaced atomically, a range of days in one snapshot per month "
            "(re-runs give the same table; days whose inputs did not change are left as "
            "they are); the snapshot summary records the run and, per day, the source files."
        ),
        check_specs=[
            dg.AssetCheckSpec(
                ROW_ACCOUNTING_CHECK,
                asset=key,
                blocking=True,
                description="rows in the committed day = rows in the bronze partition",
            )
        ],
    )
    def silver(
        context: dg.AssetExecutionContext,
        object_store: ObjectStoreResource,
        iceberg: IcebergCatalogResource,
    ) -> dg.MaterializeResult:
        from lake_pipelines.lake.silver import commit_days  # pyiceberg: on first use

        retries_before = retry_counts()
        with step_metrics(context, spec.name, "silver", "materialize"):
            store = object_store.get_store()
            catalog = iceberg.load(store)
            # a range is committed a month per snapshot; each day's lineage (landed files)
            # comes from bronze's manifest; a long day reports its progress to the run's log
            reports = commit_days(
                store,
                catalog,
                spec,
                days_of(context, spec),
                context.run.run_id,
                progress=context.log.info,
            )
            for report in reports:
                context.log.info(
                    f"{spec.table_name} {report.day}: {report.rows_committed} rows, "
                    f"snapshot {report.snapshot_id}"
                    + (" (unchanged inputs: no new commit)" if report.unchanged else ""),
                    extra={"dataset": spec.name, "day": report.day.isoformat(), "layer": "silver"},
                )
            record_days(
                context,
                {
                    r.day: day_numbers(
                        r.rows_committed,
                        **commit_numbers(store, spec, r),
                        snapshot_id=str(r.snapshot_id),
                    )
                    for r in reports
                },
            )
            location = catalog.load_table(spec.table_name).location()
        committed = sum(r.rows_committed for r in reports)
        metadata = layer_metadata(
            spec.schema,
            [{**commit_row(r, r.rows_committed), "snapshot": str(r.snapshot_id)} for r in reports],
            uri=location,
            table_name=spec.table_name,
            retries_before=retries_before,
        )
        check = dg.AssetCheckResult(
            check_name=ROW_ACCOUNTING_CHECK,
            passed=all(r.rows_read == r.rows_committed for r in reports),
            metadata={
                "rows_in_bronze": sum(r.rows_read for r in reports),
                "rows_committed": committed,
            },
        )
        return dg.MaterializeResult(metadata=metadata, check_results=[check])

    return silver
