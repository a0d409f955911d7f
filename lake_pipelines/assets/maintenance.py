"""Maintenance: table-health checks on bronze and silver, and the compaction assets they trigger.

Translation only: run config becomes `CompactionOptions`, the core's plans and reports become
check results and metadata. The work is in `lake_pipelines.lake.compaction`.
"""
# No `from __future__ import annotations`: Dagster reads the real annotations of asset and
# check functions to inject the context, config and resources.

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
from pydantic import Field

from lake_pipelines.assets.common import TABLE_HEALTH_CHECK, asset_key
from lake_pipelines.assets.observability import step_metrics
from lake_pipelines.datasets import ALL_DATASETS
from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.lake import metrics
from lake_pipelines.lake.compaction.driver import PlanHook
from lake_pipelines.lake.compaction.health import TableHealth
from lake_pipelines.lake.compaction.hive import compact_hive, plan_hive
from lake_pipelines.lake.compaction.options import CompactionOptions, Verify
from lake_pipelines.lake.compaction.plan import PartitionPlan
from lake_pipelines.lake.compaction.report import CompactionReport
from lake_pipelines.lake.progress import ProgressHook
from lake_pipelines.resources import IcebergCatalogResource, ObjectStoreResource

MAINTENANCE_GROUP = "maintenance"
MAINTENANCE_JOB = "lake_maintenance"
WEEKLY_SCHEDULE = "lake_maintenance_weekly"
WORST_PARTITIONS_SHOWN = 10
# Columns (and their types) of the tables shown in the UI.
HEALTH_COLUMNS = {
    "partition": "str",
    "files": "int",
    "small_files": "int",
    "avg_file_kib": "float",
    "flagged": "bool",
}
RESULT_COLUMNS = {
    "partition": "str",
    "status": "str",
    "files_before": "int",
    "files_after": "int",
    "bytes_before": "int",
    "bytes_after": "int",
    "rows": "int",
    "checksum": "str",
    "seconds": "float",
}


class CompactionConfig(dg.Config):
    """Run config of the compaction assets."""

    dry_run: bool = Field(default=False, description="plan and report only; change nothing")
    force: bool = Field(
        default=False, description="compact every partition with small files to merge"
    )
    verify: Verify = Field(
        default="footers",
        description=(
            "how new files are checked before the swap: 'footers' (complete files holding "
            "exactly the rows read, each input row handed to the writer once) or 'content' "
            "(also read every row back and compare checksums; about twice the work)"
        ),
    )

    def to_options(self, progress: ProgressHook | None = None) -> CompactionOptions:
        return CompactionOptions(
            dry_run=self.dry_run, force=self.force, verify=self.verify, progress=progress
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


def _table(rows: list[dict[str, Any]], columns: Mapping[str, str]) -> dg.TableMetadataValue:
    schema = dg.TableSchema(columns=[dg.TableColumn(c, t) for c, t in columns.items()])
    return dg.MetadataValue.table([dg.TableRecord(r) for r in rows], schema=schema)


def _health(plans: list[PartitionPlan], spec: DatasetSpec) -> dg.AssetCheckResult:
    health = TableHealth(tuple(plans), spec.compaction)
    metrics.record_health(len(health.flagged), sum(p.small_files for p in plans))
    worst = [
        {
            "partition": p.partition,
            "files": len(p.files),
            "small_files": p.small_files,
            "avg_file_kib": round(p.avg_file_bytes / 1024, 1),
            "flagged": p.flagged,
        }
        for p in health.worst(WORST_PARTITIONS_SHOWN)
    ]
    return dg.AssetCheckResult(
        passed=health.healthy,
        severity=dg.AssetCheckSeverity.WARN,
        description=health.describe(),
        metadata={**health.summary(), "worst_partitions": _table(worst, HEALTH_COLUMNS)},
    )


def _result(report: CompactionReport, extra: dict[str, object]) -> dg.MaterializeResult:
    per_partition = [
        {**{c: getattr(r, c) for c in RESULT_COLUMNS}, "seconds": round(r.seconds, 3)}
        for r in report.results
    ]
    metadata: dict[str, Any] = {
        **report.summary(),
        "plan": dg.MetadataValue.md(report.describe_plans()),
        "per_partition": _table(per_partition, RESULT_COLUMNS),
        **extra,
    }
    return dg.MaterializeResult(metadata=metadata)


def _log_plan(context: dg.AssetExecutionContext) -> PlanHook:
    """Logs what the run compacts, and in one line what it leaves alone and why."""

    def log(plans: list[PartitionPlan], chosen: list[PartitionPlan]) -> None:
        context.log.info(f"compaction: {len(chosen)} of {len(plans)} partitions to compact")
        for p in chosen:
            context.log.info(f"compacting {p.describe()}")
        left = [p for p in plans if p.bins and not p.flagged and p not in chosen]
        if left:
            limit = left[0].max_small_files
            context.log.info(
                f"left alone: {len(left)} partitions whose small files could be merged but "
                f"number {limit} or fewer each (not flagged; run with config force: true to "
                "compact them anyway)"
            )

    return log


def _log_skipped(context: dg.AssetExecutionContext, report: CompactionReport) -> None:
    for r in report.skipped:
        context.log.warning(f"skipped {r.partition}: {r.reason}")


def _health_check(
    spec: DatasetSpec, layer: str, description: str
) -> Callable[[Callable[..., dg.AssetCheckResult]], dg.AssetChecksDefinition]:
    """The decorator of a layer's table-health check (it warns, it does not block)."""
    return dg.asset_check(
        asset=asset_key(layer, spec.name),
        name=TABLE_HEALTH_CHECK,
        blocking=False,
        description=description,
    )


def build_bronze_health_check(spec: DatasetSpec) -> dg.AssetChecksDefinition:
    @_health_check(
        spec,
        "bronze",
        description=(
            "Small files per day partition of the Hive layer (sizes from the listing). Warns "
            f"when a partition holds more than {spec.compaction.max_small_files} small files; "
            "each warning starts the bronze compaction asset."
        ),
    )
    def bronze_table_health(
        context: dg.AssetCheckExecutionContext, object_store: ObjectStoreResource
    ) -> dg.AssetCheckResult:
        with step_metrics(context, spec.name, "bronze", TABLE_HEALTH_CHECK):
            store = object_store.get_store()
            return _health(plan_hive(store, spec, with_rows=False), spec)

    return bronze_table_health


def build_silver_health_check(spec: DatasetSpec) -> dg.AssetChecksDefinition:
    @_health_check(
        spec,
        "silver",
        description=(
            f"Small data files per partition of `{spec.table_name}` (from the manifests). Warns "
            f"when a partition holds more than {spec.compaction.max_small_files} small files; "
            "each warning starts the silver compaction asset."
        ),
    )
    def silver_table_health(
        context: dg.AssetCheckExecutionContext,
        object_store: ObjectStoreResource,
        iceberg: IcebergCatalogResource,
    ) -> dg.AssetCheckResult:
        from lake_pipelines.lake.compaction.iceberg_plan import plan_iceberg

        with step_metrics(context, spec.name, "silver", TABLE_HEALTH_CHECK):
            catalog = iceberg.load(object_store.get_store())
            if not catalog.table_exists(spec.table_name):
                return dg.AssetCheckResult(passed=True, metadata={"partitions": 0})
            table = catalog.load_table(spec.table_name)
            return _health(plan_iceberg(table, spec.compaction), spec)

    return silver_table_health


def _compaction_asset(
    spec: DatasetSpec, layer: str, kinds: set[str], pool: str, description: str
) -> Callable[[Callable[..., dg.MaterializeResult]], dg.AssetsDefinition]:
    """The asset decorator of a layer's compaction: after the layer, started by its health."""
    upstream = asset_key(layer, spec.name)
    return dg.asset(
        key=asset_key("maintenance", f"{spec.name}_{layer}_compaction"),
        deps=[upstream],
        group_name=MAINTENANCE_GROUP,
        kinds=kinds,
        pool=pool,
        backfill_policy=dg.BackfillPolicy.single_run(),
        automation_condition=health_degraded(dg.AssetCheckKey(upstream, TABLE_HEALTH_CHECK)),
        description=description,
    )


def build_bronze_compaction(spec: DatasetSpec) -> dg.AssetsDefinition:
    @_compaction_asset(
        spec,
        "bronze",
        kinds={"parquet", "pyarrow"},
        pool=f"bronze_{spec.name}",
        description=(
            f"Compaction of `{spec.bronze_prefix}`: in every day partition the table-health "
            "check flags, small Parquet files are merged (sorted, dataset codecs) toward "
            f"{spec.compaction.target_file_bytes >> 20} MiB files. New files are complete and "
            "verified (complete files, every row read handed to the writer exactly once; config "
            "`verify: content` also re-reads and checksums them) before a journaled swap "
            "removes the old ones; an interrupted swap is finished by the next run."
        ),
    )
    def bronze_compaction(
        context: dg.AssetExecutionContext,
        config: CompactionConfig,
        object_store: ObjectStoreResource,
    ) -> dg.MaterializeResult:
        store = object_store.get_store()
        with step_metrics(context, spec.name, "bronze", "compaction"):
            options = config.to_options(progress=context.log.info)
            report = compact_hive(store, spec, options=options, on_plan=_log_plan(context))
        _log_skipped(context, report)
        return _result(
            report, {"dagster/uri": store.uri(spec.bronze_prefix), "verify": config.verify}
        )

    return bronze_compaction


def build_silver_compaction(spec: DatasetSpec) -> dg.AssetsDefinition:
    @_compaction_asset(
        spec,
        "silver",
        kinds={"iceberg", "pyarrow"},
        pool=f"iceberg_{spec.namespace}_{spec.name}",
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
        with step_metrics(context, spec.name, "silver", "compaction"):
            report = compact_iceberg(
                store,
                table,
                spec,
                options=config.to_options(progress=context.log.info),
                run_id=context.run.run_id,
                on_plan=_log_plan(context),
            )
        _log_skipped(context, report)
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
