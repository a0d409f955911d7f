"""What every layer's assets share: partitions, keys, check names and metadata helpers."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import dagster as dg
import pyarrow as pa

from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.deployment import backfill_policy
from lake_pipelines.lake.ingest import quarantine
from lake_pipelines.lake.period import Unit
from lake_pipelines.lake.retries import retry_counts
from lake_pipelines.lake.storage import ObjectStore

ROW_ACCOUNTING_CHECK = "row_accounting"
CONTRACT_CHECK = "contract"
TABLE_HEALTH_CHECK = "table_health"


@functools.cache
def daily_partitions(
    start_date: str, end_date: str | None = None, timezone: str = "UTC"
) -> dg.DailyPartitionsDefinition:
    """Daily partitions (local days of `timezone`); the same object for every asset of the
    same calendar."""
    return dg.DailyPartitionsDefinition(start_date=start_date, end_date=end_date, timezone=timezone)


@functools.cache
def hourly_partitions(
    start_date: str, end_date: str | None = None
) -> dg.HourlyPartitionsDefinition:
    """Hourly UTC partitions from the start date's midnight to the end date's (exclusive)."""
    end = f"{end_date}-00:00" if end_date is not None else None
    return dg.HourlyPartitionsDefinition(
        start_date=f"{start_date}-00:00", end_date=end, timezone="UTC"
    )


def partitions_for(spec: DatasetSpec) -> dg.TimeWindowPartitionsDefinition:
    """The dataset's own calendar: every asset, job, schedule and sensor of it uses this."""
    if spec.granularity == "hourly":
        return hourly_partitions(spec.start_date, spec.end_date)
    return daily_partitions(spec.start_date, spec.end_date, spec.timezone)


def daily_asset_args(spec: DatasetSpec, *, eager: bool) -> dict[str, Any]:
    """`dg.asset` arguments every layer's asset of `spec` shares: daily partitions, the
    profile's backfill policy (embedded: a range in one run), the dataset's group; `eager`
    (silver, gold) materializes a day as soon as its upstream day is."""
    args: dict[str, Any] = {
        "partitions_def": partitions_for(spec),
        "backfill_policy": backfill_policy(),
    }
    if eager:
        args["automation_condition"] = dg.AutomationCondition.eager()
    args["group_name"] = spec.name
    return args


def asset_key(layer: str, name: str) -> dg.AssetKey:
    return dg.AssetKey(["lake", layer, name])


def days_of(context: dg.AssetExecutionContext, spec: DatasetSpec) -> list[Unit]:
    """The days (hours, local days: `lake.period` units) a run covers: one partition, or a
    whole range in a single-run backfill."""
    keys: Sequence[str] = context.partition_keys
    return [spec.calendar.of_key(k) for k in keys]


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                f.name, str(f.type), constraints=dg.TableColumnConstraints(nullable=f.nullable)
            )
            for f in schema
        ]
    )


def per_day_table(rows: Sequence[dict[str, Any]]) -> dg.TableMetadataValue:
    """Per-day numbers of a multi-day run as a table in the UI."""
    columns = list(rows[0]) if rows else []
    schema = dg.TableSchema(columns=[dg.TableColumn(c, type(rows[0][c]).__name__) for c in columns])
    return dg.MetadataValue.table(
        [dg.TableRecord({k: v for k, v in r.items()}) for r in rows], schema=schema
    )


def throughput(nbytes: int, seconds: float) -> float:
    return round(nbytes / (1 << 20) / seconds, 2) if seconds > 0 else 0.0


def layer_metadata(
    schema: pa.Schema,
    per_day: Sequence[dict[str, Any]],
    *,
    uri: str | None = None,
    table_name: str | None = None,
    retries_before: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The metadata of a layer's run that is true of every day it covers: where the data is,
    its columns and, for a range, a table with a row per day (`per_day`). Each day's own
    numbers go on that day's event (`observability.record_days`).

    With `retries_before` (`retry_counts()` when the step started), ``object_store_retries``
    says how many requests each client retried since: botocore's (listings, deletes) and
    ours (``boundary``); pyarrow's own retries are not reported by pyarrow."""
    metadata: dict[str, Any] = {}
    if retries_before is not None:
        now = retry_counts()
        metadata["object_store_retries"] = {
            client: now[client] - retries_before.get(client, 0) for client in sorted(now)
        }
    if uri is not None:
        metadata["dagster/uri"] = uri
    if table_name is not None:
        metadata["dagster/table_name"] = table_name
    metadata["dagster/column_schema"] = column_schema(schema)
    if len(per_day) > 1:
        metadata["per_day"] = per_day_table(per_day)
    return metadata


class DayCommit(Protocol):
    """What silver's and gold's reports of one committed day have in common."""

    @property
    def day(self) -> Unit: ...

    files: int  # data files holding the day after the commit
    bytes: int
    seconds: float
    unchanged: bool


def commit_numbers(store: ObjectStore, spec: DatasetSpec, report: DayCommit) -> dict[str, Any]:
    """One day of an Iceberg layer: files and bytes holding it, its rows quarantined in bronze
    (so in no table downstream), seconds, whether its inputs were those of its last commit."""
    return {
        "files": report.files,
        "bytes": report.bytes,
        "rows_quarantined": quarantine.rows_quarantined(store, spec.name, [report.day]),
        "seconds": round(report.seconds, 3),
        "unchanged": report.unchanged,
    }


def commit_row(report: DayCommit, rows: int) -> dict[str, Any]:
    """One day of an Iceberg layer's per-day table."""
    return {
        "day": report.day.isoformat(),  # an hour: 2026-11-01T05
        "rows": rows,
        "files": report.files,
        "bytes": report.bytes,
    }
