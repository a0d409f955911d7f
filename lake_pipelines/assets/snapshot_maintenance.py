"""Iceberg housekeeping per dataset: expire old snapshots (freeing their files), drop orphans."""
# No `from __future__ import annotations`: Dagster reads the real annotations of asset
# functions to inject the context, config and resources.

from datetime import timedelta

import dagster as dg
from pydantic import Field

from lake_pipelines.assets.common import asset_key
from lake_pipelines.assets.maintenance import MAINTENANCE_GROUP  # the weekly job's group
from lake_pipelines.datasets import ALL_DATASETS
from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.lake.analytics.queries import gold_identifier, gold_tables_for
from lake_pipelines.resources import IcebergCatalogResource, ObjectStoreResource


class SnapshotMaintenanceConfig(dg.Config):
    """How much history to keep; the defaults suit a daily pipeline."""

    expire_older_than_days: float = Field(7.0, description="expire snapshots older than this")
    retain_last: int = Field(10, description="always keep this many of the newest snapshots")
    orphan_older_than_days: float = Field(
        3.0, description="an unreferenced file must be this old before it is deleted"
    )
    dry_run: bool = Field(False, description="only list orphan files, delete nothing")


def build_snapshot_maintenance(spec: DatasetSpec) -> dg.AssetsDefinition:
    tables = [spec.table_name, *(gold_identifier(spec, g) for g in gold_tables_for(spec))]

    @dg.asset(
        key=asset_key("maintenance", f"{spec.name}_iceberg_snapshots"),
        group_name=MAINTENANCE_GROUP,
        kinds={"iceberg"},
        # not partitioned; single-run lets a `dagster asset materialize --partition-range`
        # selection include it (the CLI requires it of every selected asset)
        backfill_policy=dg.BackfillPolicy.single_run(),
        description=(
            "Expires old snapshots of " + ", ".join(f"`{t}`" for t in tables) + " and deletes "
            "the data files, manifests and manifest lists no live snapshot reaches; then "
            "removes orphan files older than the safety window. Tagged snapshots are kept "
            "until their tag ages out."
        ),
    )
    def snapshot_maintenance(
        context: dg.AssetExecutionContext,
        config: SnapshotMaintenanceConfig,
        object_store: ObjectStoreResource,
        iceberg: IcebergCatalogResource,
    ) -> dg.MaterializeResult:
        from lake_pipelines.lake.iceberg.maintenance import expire_snapshots, remove_orphans

        store = object_store.get_store()
        catalog = iceberg.load(store)
        per_table = []
        for name in tables:
            if not catalog.table_exists(name):
                continue
            table = catalog.load_table(name)
            expiry = expire_snapshots(
                table, store, timedelta(days=config.expire_older_than_days), config.retain_last
            )
            orphans = remove_orphans(
                catalog.load_table(name),
                store,
                timedelta(days=config.orphan_older_than_days),
                dry_run=config.dry_run,
            )
            context.log.info(
                f"{name}: expired {len(expiry.snapshots_expired)} snapshots, deleted "
                f"{len(expiry.files_deleted)} files; {len(orphans.orphans)} orphans"
                + (" (dry run)" if config.dry_run else " removed")
            )
            per_table.append((name, expiry, orphans))
        return dg.MaterializeResult(
            metadata={
                "tables": len(per_table),
                "snapshots_expired": sum(len(e.snapshots_expired) for _, e, _ in per_table),
                "tags_removed": sum(len(e.tags_removed) for _, e, _ in per_table),
                "files_deleted": sum(len(e.files_deleted) for _, e, _ in per_table),
                "bytes_deleted": sum(e.bytes_deleted for _, e, _ in per_table),
                "orphan_files": sum(len(o.orphans) for _, _, o in per_table),
                "orphan_bytes": sum(o.bytes for _, _, o in per_table),
                "dry_run": config.dry_run,
                "per_table": dg.MetadataValue.md(
                    "\n".join(
                        f"- `{n}`: {len(e.snapshots_expired)} snapshots expired, "
                        f"{len(e.files_deleted)} files deleted, {len(o.orphans)} orphans"
                        for n, e, o in per_table
                    )
                    or "no tables yet"
                ),
            }
        )

    return snapshot_maintenance


def build_all_snapshot_maintenance(
    datasets: tuple[DatasetSpec, ...] = ALL_DATASETS,
) -> list[dg.AssetsDefinition]:
    return [build_snapshot_maintenance(spec) for spec in datasets]
