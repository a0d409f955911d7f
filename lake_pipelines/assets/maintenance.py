"""Maintenance: table-health checks on bronze and silver, and the compaction assets they trigger."""
# No `from __future__ import annotations`: Dagster reads the real annotations of asset and
# check functions to inject the context, config and resources.

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import dagster as dg
from pydantic import Field

from lake_pipelines.assets.common import TABLE_HEALTH_CHECK, asset_key
from lake_pipelines.datasets import ALL_DATASETS
from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.lake.compaction.hive import compact_hive, plan_hive
from lake_pipelines.lake.compaction.options import CompactionOptions
from lake_pipelines.lake.compaction.plan import PartitionPlan
from lake_pipelines.lake.compaction.report import CompactionReport
from lake_pipelines.resources import IcebergCatalogResource, ObjectStoreResource

MAINTENANCE_GROUP = "maintenance"
MAINTENANCE_JOB = "lake_maintenance"
WEEKLY_SCHEDULE = "lake_maintenance_weekly"
WORST_PARTITIONS_SHOWN = 10


class CompactionConfig(dg.Config):
    """Run config of the compaction assets."""

    dry_run: bool = Field(default=False, description="plan and report only; change nothing")
    force: bool = Field(
        default=False, description="compact every partition with small files to merge"
    )
    verify: Literal["footers", "content"] = Field(
        default="footers",
        description=(
            "how new files are checked before the swap: 'footers' (complete files holding "
            "exactly the rows read, each input row handed to the writer once) or 'content' "
            "(also read every row back and compare checksums; about twice the work)"
        ),
    )


def health_degraded(check: dg.AssetCheckKey) -> dg.AutomationCondition:
    """True on the tick after `check` (a table-health check upstream) ran and warned.

    Every new warning requests one compaction run; none while one is already in progress.
    """
    warned = dg.AutomationCondition.any_checks_match(
        dg.AutomationCondition.check_failed() & dg.AutomationCondition.newly_updated()
    ).allow(dg.AssetSelection.checks(check))
    return (
        dg.AutomationCondition.any_deps_match(warned) & ~dg.AutomationCondition.in_progress()
    ).with_label("table health degraded")


def _health(plans: list[PartitionPlan], spec: DatasetSpec) -> dg.AssetCheckResult:
    policy = spec.compaction
    flagged = [p for p in plans if p.flagged]
    files = sum(len(p.files) for p in plans)
    nbytes = sum(p.bytes for p in plans)
    worst = sorted(plans, key=lambda p: (-p.small_files, p.partition))[:WORST_PARTITIONS_SHOWN]
    table = dg.MetadataValue.table(
        [
            dg.TableRecord(
                {
                    "partition": p.partition,
                    "files": len(p.files),
                    "small_files": p.small_files,
                    "avg_file_kib": round(p.avg_file_bytes / 1024, 1),
                    "flagged": p.flagged,
                }
            )
            for p in worst
        ],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn("partition", "str"),
                dg.TableColumn("files", "int"),
                dg.TableColumn("small_files", "int"),
                dg.TableColumn("avg_file_kib", "float"),
                dg.TableColumn("flagged", "bool"),
            ]
        ),
    )
    return dg.AssetCheckResult(
        passed=not flagged,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{len(flagged)} of {len(plans)} partitions hold more than {policy.max_small_files} "
            f"files under {policy.small_file_bytes / (1 << 20):.1f} MiB"
        ),
        metadata={
            "partitions": len(plans),
            "flagged_partitions": len(flagged),
            "flagged": [p.partition for p in flagged][:100],
            "files": files,
            "small_files": sum(p.small_files for p in plans),
            "max_small_files_in_a_partition": max((p.small_files for p in plans), default=0),
            "avg_file_bytes": round(nbytes / files, 1) if files else 0.0,
            "small_file_bytes": policy.small_file_bytes,
            "max_small_files": policy.max_small_files,
            "worst_partitions": table,
        },
    )


def _result(report: CompactionReport, extra: dict[str, object]) -> dg.MaterializeResult:
    results = report.results
    per_partition = dg.MetadataValue.table(
        [
            dg.TableRecord(
                {
                    "partition": r.partition,
                    "status": r.status,
                    "files_before": r.files_before,
                    "files_after": r.files_after,
                    "bytes_before": r.bytes_before,
                    "bytes_after": r.bytes_after,
                    "rows": r.rows,
                    "checksum": r.checksum,
                    "seconds": round(r.seconds, 3),
                }
            )
            for r in results
        ],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn(c, t)
                for c, t in (
                    ("partition", "str"),
                    ("status", "str"),
                    ("files_before", "int"),
                    ("files_after", "int"),
                    ("bytes_before", "int"),
                    ("bytes_after", "int"),
                    ("rows", "int"),
                    ("checksum", "str"),
                    ("seconds", "float"),
                )
            ]
        ),
    )
    metadata: dict[str, Any] = {
        **report.totals(),
        "dry_run": report.dry_run,
        "partitions": [r.partition for r in report.compacted],
        "checksums": {r.partition: r.checksum for r in report.compacted},
        "skipped": {r.partition: r.reason for r in report.skipped},
        "recovered": report.recovered,
        "flagged_partitions": sum(1 for p in report.plans if p.flagged),
        "plan": dg.MetadataValue.md(
            "\n".join(f"- {p.describe()}" for p in report.plans if p.bins) or "nothing to compact"
        ),
        "per_partition": per_partition,
        **extra,
    }
    return dg.MaterializeResult(metadata=metadata)


def _log_plan(context: dg.AssetExecutionContext) -> Callable[[list[PartitionPlan]], None]:
    def log(plans: list[PartitionPlan]) -> None:
        todo = [p for p in plans if p.bins]
        context.log.info(f"compaction plan: {len(todo)} of {len(plans)} partitions have bins")
        for p in todo:
            context.log.info(("FLAGGED " if p.flagged else "") + p.describe())

    return log


def build_bronze_health_check(spec: DatasetSpec) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset_key("bronze", spec.name),
        name=TABLE_HEALTH_CHECK,
        blocking=False,
        description=(
            "Small files per day partition of the Hive layer (sizes from the listing). Warns "
            f"when a partition holds more than {spec.compaction.max_small_files} small files; "
            "each warning starts the bronze compaction asset."
        ),
    )
    def bronze_table_health(object_store: ObjectStoreResource) -> dg.AssetCheckResult:
        store = object_store.get_store()
        return _health(plan_hive(store, spec, with_rows=False), spec)

    return bronze_table_health


def build_silver_health_check(spec: DatasetSpec) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset_key("silver", spec.name),
        name=TABLE_HEALTH_CHECK,
        blocking=False,
        description=(
            f"Small data files per partition of `{spec.table_name}` (from the manifests). Warns "
            f"when a partition holds more than {spec.compaction.max_small_files} small files; "
            "each warning starts the silver compaction asset."
        ),
    )
    def silver_table_health(
        object_store: ObjectStoreResource, iceberg: IcebergCatalogResource
    ) -> dg.AssetCheckResult:
        from lake_pipelines.lake.compaction.iceberg_plan import plan_iceberg

        catalog = iceberg.load(object_store.get_store())
        if not catalog.table_exists(spec.table_name):
            return dg.AssetCheckResult(passed=True, metadata={"partitions": 0})
        table = catalog.load_table(spec.table_name)
        return _health(plan_iceberg(table, spec.compaction), spec)

    return silver_table_health


def build_bronze_compaction(spec: DatasetSpec) -> dg.AssetsDefinition:
    upstream = asset_key("bronze", spec.name)

    @dg.asset(
        key=asset_key("maintenance", f"{spec.name}_bronze_compaction"),
        deps=[upstream],
        group_name=MAINTENANCE_GROUP,
        kinds={"parquet", "pyarrow"},
        pool=f"bronze_{spec.name}",
        backfill_policy=dg.BackfillPolicy.single_run(),
        automation_condition=health_degraded(dg.AssetCheckKey(upstream, TABLE_HEALTH_CHECK)),
        description=(
            f"Compaction of `{spec.bronze_prefix}`: in every day partition the table-health "
            "check flags, small Parquet files are merged (sorted, dataset codecs) toward "
            f"{spec.compaction.target_file_bytes >> 20} MiB files. New files are complete and "
            "verified (complete files, every row read handed to the writer exactly once; config "
            "`verify: content` also re-reads and checksums them) before a journaled swap "
            "removes the old ones; an "
            "interrupted swap is finished by the next run."
        ),
    )
    def bronze_compaction(
        context: dg.AssetExecutionContext,
        config: CompactionConfig,
        object_store: ObjectStoreResource,
    ) -> dg.MaterializeResult:
        store = object_store.get_store()
        options = CompactionOptions(
            dry_run=config.dry_run, force=config.force, verify=config.verify
        )
        report = compact_hive(store, spec, options=options, on_plan=_log_plan(context))
        for r in report.skipped:
            context.log.warning(f"skipped {r.partition}: {r.reason}")
        return _result(
            report, {"dagster/uri": store.uri(spec.bronze_prefix), "verify": config.verify}
        )

    return bronze_compaction


def build_silver_compaction(spec: DatasetSpec) -> dg.AssetsDefinition:
    upstream = asset_key("silver", spec.name)

    @dg.asset(
        key=asset_key("maintenance", f"{spec.name}_silver_compaction"),
        deps=[upstream],
        group_name=MAINTENANCE_GROUP,
        kinds={"iceberg", "pyarrow"},
        pool=f"iceberg_{spec.namespace}_{spec.name}",
        backfill_policy=dg.BackfillPolicy.single_run(),
        automation_condition=health_degraded(dg.AssetCheckKey(upstream, TABLE_HEALTH_CHECK)),
        description=(
            f"Compaction of `{spec.table_name}`: in every partition the table-health check "
            "flags, small data files are rewritten (sorted, dataset codecs) and replaced in one "
            "Iceberg commit per partition, recorded as `lake.operation=compaction`. Concurrent "
            "appends to other partitions still land; a write to the same partition skips it."
        ),
    )
    def silver_compaction(
        context: dg.AssetExecutionContext,
        config: CompactionConfig,
        object_store: ObjectStoreResource,
        iceberg: IcebergCatalogResource,
    ) -> dg.MaterializeResult:
        from lake_pipelines.lake.compaction.iceberg import compact_iceberg

        store = object_store.get_store()
        catalog = iceberg.load(store)
        if not catalog.table_exists(spec.table_name):
            context.log.info(f"{spec.table_name} does not exist yet: nothing to compact")
            return _result(CompactionReport(spec.name, "silver", dry_run=config.dry_run), {})
        table = catalog.load_table(spec.table_name)
        report = compact_iceberg(
            store,
            table,
            spec,
            options=CompactionOptions(
                dry_run=config.dry_run, force=config.force, verify=config.verify
            ),
            run_id=context.run.run_id,
            on_plan=_log_plan(context),
        )
        for r in report.skipped:
            context.log.warning(f"skipped {r.partition}: {r.reason}")
        snapshot = table.current_snapshot()
        return _result(
            report,
            {
                "dagster/table_name": spec.table_name,
                "verify": config.verify,
                "snapshot_ids": {r.partition: str(r.snapshot_id) for r in report.compacted},
                "snapshot_id": str(snapshot.snapshot_id) if snapshot else "",
            },
        )

    return silver_compaction


@dataclass
class Maintenance:
    """Everything maintenance adds to the code location."""

    assets: list[dg.AssetsDefinition] = field(default_factory=list)
    checks: list[dg.AssetChecksDefinition] = field(default_factory=list)
    jobs: "list[dg.UnresolvedAssetJobDefinition]" = field(default_factory=list)
    schedules: list[dg.ScheduleDefinition] = field(default_factory=list)


def build_maintenance(specs: tuple[DatasetSpec, ...] = ALL_DATASETS) -> Maintenance:
    """Health checks and compaction assets per dataset and layer, and the weekly schedule."""
    out = Maintenance()
    for spec in specs:
        out.assets += [build_bronze_compaction(spec), build_silver_compaction(spec)]
        out.checks += [build_bronze_health_check(spec), build_silver_health_check(spec)]
    job = dg.define_asset_job(
        MAINTENANCE_JOB,
        selection=dg.AssetSelection.groups(MAINTENANCE_GROUP),
        description="Compaction of every dataset's bronze and silver layer.",
    )
    out.jobs.append(job)
    out.schedules.append(
        dg.ScheduleDefinition(
            name=WEEKLY_SCHEDULE,
            job=job,
            cron_schedule="0 3 * * 0",
            execution_timezone="UTC",
            default_status=dg.DefaultScheduleStatus.STOPPED,
            description="Sundays 03:00 UTC: compact whatever the health checks would flag.",
        )
    )
    return out
