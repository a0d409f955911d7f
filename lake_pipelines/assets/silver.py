"""Silver: the day's bronze partition committed to the dataset's Iceberg table."""
# No `from __future__ import annotations`: Dagster reads the real annotations of asset
# functions to inject the context and resources.

from typing import Any

import dagster as dg

from lake_pipelines.assets.common import (
    ROW_ACCOUNTING_CHECK,
    asset_key,
    column_schema,
    days_of,
    partitions_for,
    per_day_table,
    rows_quarantined,
)
from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.resources import IcebergCatalogResource, ObjectStoreResource


def build_silver_asset(spec: DatasetSpec, bronze_key: dg.AssetKey) -> dg.AssetsDefinition:
    key = asset_key("silver", spec.name)

    @dg.asset(
        key=key,
        deps=[bronze_key],
        partitions_def=partitions_for(spec),
        backfill_policy=dg.BackfillPolicy.single_run(),
        automation_condition=dg.AutomationCondition.eager(),
        group_name=spec.name,
        kinds={"iceberg", "pyarrow"},
        pool=f"iceberg_{spec.namespace}_{spec.name}",
        description=(
            f"Iceberg table `{spec.table_name}`, partitioned by "
            + ", ".join(f"{p.transform}({p.column})" for p in spec.partitioning)
            + ". Each day is replaced in one atomic commit (re-runs give the same table); "
            "the snapshot summary records the run, the day and the source files."
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
        store = object_store.get_store()
        catalog = iceberg.load(store)
        reports = []
        for day in days_of(context):
            from lake_pipelines.lake.silver import commit_day  # pyiceberg: on first use

            # the day's lineage (landed files) comes from bronze's manifest
            report = commit_day(store, catalog, spec, day, context.run.run_id)
            context.log.info(
                f"{spec.table_name} {day}: {report.rows_committed} rows, "
                f"snapshot {report.snapshot_id}"
                + (" (unchanged inputs: no new commit)" if report.unchanged else "")
            )
            reports.append(report)
        committed = sum(r.rows_committed for r in reports)
        table = catalog.load_table(spec.table_name)
        metadata: dict[str, Any] = {
            "dagster/row_count": committed,
            "dagster/uri": table.location(),
            "dagster/table_name": spec.table_name,
            "dagster/column_schema": column_schema(spec.schema),
            "snapshot_id": str(reports[-1].snapshot_id) if reports else "",
            # days whose source and bronze files were already committed as they are
            "days_unchanged": sum(r.unchanged for r in reports),
            "files": sum(r.files for r in reports),  # data files holding the days
            "bytes": sum(r.bytes for r in reports),
            "rows_quarantined": rows_quarantined(store, spec, [r.day for r in reports]),
            "seconds": round(sum(r.seconds for r in reports), 3),
        }
        if len(reports) == 1:
            metadata["dagster/partition_row_count"] = committed
        else:
            metadata["per_day"] = per_day_table(
                [
                    {
                        "day": r.day.isoformat(),
                        "rows": r.rows_committed,
                        "files": r.files,
                        "bytes": r.bytes,
                        "snapshot": str(r.snapshot_id),
                    }
                    for r in reports
                ]
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
