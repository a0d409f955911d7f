"""What every layer's assets share: partitions, keys, check names and metadata helpers."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import date
from typing import Any

import dagster as dg
import pyarrow as pa

from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.lake.storage import ObjectStore

ROW_ACCOUNTING_CHECK = "row_accounting"
CONTRACT_CHECK = "contract"
TABLE_HEALTH_CHECK = "table_health"


@functools.cache
def daily_partitions(start_date: str) -> dg.DailyPartitionsDefinition:
    """Daily UTC partitions; the same object for every asset of the same start date."""
    return dg.DailyPartitionsDefinition(start_date=start_date, timezone="UTC")


def partitions_for(spec: DatasetSpec) -> dg.DailyPartitionsDefinition:
    return daily_partitions(spec.start_date)


def asset_key(layer: str, name: str) -> dg.AssetKey:
    return dg.AssetKey(["lake", layer, name])


def days_of(context: dg.AssetExecutionContext) -> list[date]:
    """The days a run covers: one partition, or a whole range in a single-run backfill."""
    keys: Sequence[str] = context.partition_keys
    return [date.fromisoformat(k) for k in keys]


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                f.name, str(f.type), constraints=dg.TableColumnConstraints(nullable=f.nullable)
            )
            for f in schema
        ]
    )


def per_day_table(rows: list[dict[str, Any]]) -> dg.TableMetadataValue:
    """Per-day numbers of a multi-day run as a table in the UI."""
    columns = list(rows[0]) if rows else []
    schema = dg.TableSchema(columns=[dg.TableColumn(c, type(rows[0][c]).__name__) for c in columns])
    return dg.MetadataValue.table(
        [dg.TableRecord({k: v for k, v in r.items()}) for r in rows], schema=schema
    )


def throughput(nbytes: int, seconds: float) -> float:
    return round(nbytes / (1 << 20) / seconds, 2) if seconds > 0 else 0.0


def rows_quarantined(store: ObjectStore, spec: DatasetSpec, days: Sequence[date]) -> int:
    """Rows of `days` held back in bronze's quarantine (so in no table downstream)."""
    from lake_pipelines.lake.ingest import quarantine

    return sum(quarantine.counts(store, spec.name, day)[0] for day in days)
