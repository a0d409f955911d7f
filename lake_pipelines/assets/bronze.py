"""Bronze: landed files of a day → Hive-partitioned Parquet, bad rows to quarantine."""
# No `from __future__ import annotations`: Dagster reads the real annotations of asset
# functions to inject the context and resources.

from collections.abc import Iterator
from typing import Any

import dagster as dg

from lake_pipelines.assets.common import (
    CONTRACT_CHECK,
    ROW_ACCOUNTING_CHECK,
    asset_key,
    daily_asset_args,
    days_of,
    layer_metadata,
    throughput,
)
from lake_pipelines.assets.observability import day_numbers, record_days, step_metrics
from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.deployment import write_pool
from lake_pipelines.lake.bronze import IngestReport, ingest_day
from lake_pipelines.lake.layout import hive_pattern
from lake_pipelines.lake.retries import retry_counts
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines.resources import ObjectStoreResource


def build_bronze_asset(spec: DatasetSpec) -> dg.AssetsDefinition:
    key = asset_key("bronze", spec.name)

    @dg.asset(
        key=key,
        **daily_asset_args(spec, eager=False),
        kinds={"bronze", "parquet", "pyarrow"},
        # shared with the dataset's bronze compaction: the two never rewrite a day at once
        pool=write_pool(f"bronze_{spec.name}"),
        description=(
            f"{spec.description}\n\nEvery landed CSV/NDJSON file of the partition under "
            f"`{spec.landing_prefix}/<{spec.calendar.folder_pattern}>/`"
            f"{'' if spec.timezone == 'UTC' else f' (days of {spec.timezone})'}, "
            "converted to Hive-partitioned Parquet "
            f"(`{spec.bronze_prefix}/{hive_pattern(spec.hive_partition_columns)}`). Rows that do "
            "not parse or break the contract are quarantined with file, line and reason; "
            "unreadable files whole."
        ),
        check_specs=[
            dg.AssetCheckSpec(
                ROW_ACCOUNTING_CHECK,
                asset=key,
                blocking=True,
                description="rows read = rows in the Parquet files + rows quarantined",
            ),
            dg.AssetCheckSpec(
                CONTRACT_CHECK,
                asset=key,
                blocking=True,
                description=f"quarantined share at most {spec.quarantine_threshold:.1%}",
            ),
        ],
    )
    def bronze(
        context: dg.AssetExecutionContext, object_store: ObjectStoreResource
    ) -> Iterator[dg.MaterializeResult]:
        retries_before = retry_counts()
        store = object_store.get_store()
        reports = []
        with step_metrics(context, spec.name, "bronze", "materialize"):
            for day in days_of(context, spec):
                report = ingest_day(
                    store, spec, day, run_id=context.run.run_id, progress=context.log.info
                )
                context.log.info(
                    f"{spec.name} {day}: {len(report.sources)} files, {report.rows_read} rows "
                    f"read, {report.rows_written} written, {report.rows_quarantined} "
                    f"quarantined, {len(report.file_rejects)} files quarantined",
                    extra={"dataset": spec.name, "day": day.isoformat(), "layer": "bronze"},
                )
                reports.append(report)
            record_days(context, {r.day: _day_numbers(r) for r in reports})
            yield _result(store, spec, reports, retries_before)

    return bronze


def _result(
    store: ObjectStore,
    spec: DatasetSpec,
    reports: list[IngestReport],
    retries_before: dict[str, int],
) -> dg.MaterializeResult:
    read = sum(r.rows_read for r in reports)
    # as read back from storage after each day's commit, not the counters that wrote them
    in_parquet = sum(r.stored.rows_in_parquet for r in reports)
    in_quarantine = sum(r.stored.rows_in_quarantine for r in reports)
    reasons = [
        f"{x.source}:{x.line}: {x.reason}" for r in reports for x in r.file_rejects + r.rejects
    ]
    # Judged per day: a clean week must not hide one bad day.
    worst = max(reports, key=lambda r: r.quarantined_share)
    metadata = layer_metadata(
        spec.schema,
        [
            {
                "day": r.day.isoformat(),
                "rows_read": r.rows_read,
                "rows_written": r.rows_written,
                "rows_quarantined": r.rows_quarantined,
                "files_quarantined": len(r.file_rejects),
            }
            for r in reports
        ],
        uri=store.uri(spec.bronze_prefix),
        retries_before=retries_before,
    )
    checks = [
        dg.AssetCheckResult(
            check_name=ROW_ACCOUNTING_CHECK,
            passed=read == in_parquet + in_quarantine,
            metadata={
                "rows_read": read,
                "rows_in_parquet": in_parquet,
                "rows_in_quarantine": in_quarantine,
            },
        ),
        dg.AssetCheckResult(
            check_name=CONTRACT_CHECK,
            passed=worst.quarantined_share <= spec.quarantine_threshold,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "quarantined_share": round(worst.quarantined_share, 6),
                "worst_day": worst.day.isoformat(),
                "threshold": spec.quarantine_threshold,
                "sample_reasons": dg.MetadataValue.md(
                    "\n".join(f"- `{x}`" for x in reasons[:10]) or "none"
                ),
            },
        ),
    ]
    return dg.MaterializeResult(metadata=metadata, check_results=checks)


def _day_numbers(r: IngestReport) -> dict[str, Any]:
    """One day's bronze numbers, on that day's materialization."""
    return day_numbers(
        # as read back from storage after the day's commit, not the counters that wrote it
        r.stored.rows_in_parquet,
        rows_read=r.rows_read,
        rows_written=r.rows_written,
        rows_quarantined=r.rows_quarantined,
        quarantined_share=round(r.quarantined_share, 6),
        files_read=len(r.sources),
        files_quarantined=len(r.file_rejects),
        files_written=len(r.outputs),
        bytes_read=r.bytes_read,
        bytes_written=r.bytes_written,
        seconds=round(r.seconds, 3),
        mb_per_second=throughput(r.bytes_read, r.seconds),
    )
