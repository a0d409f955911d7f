"""Where things live in the lake: the store-relative folders of each layer, and a day's bounds.

Every layer names its paths through these functions, so the layout is written down once.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from lake_pipelines.datasets.spec import DatasetSpec


def hive_dir(day: date) -> str:
    """``year=2026/month=11/day=3``: plain integers, so DuckDB, Spark, Polars and DataFusion
    all type the partition columns as integers (``03`` would make DuckDB read a string)."""
    return f"year={day.year}/month={day.month}/day={day.day}"


def landing_dir(spec: DatasetSpec, day: date) -> str:
    return f"{spec.landing_prefix}/{day.isoformat()}"


def bronze_dir(spec: DatasetSpec, day: date) -> str:
    return f"{spec.bronze_prefix}/{hive_dir(day)}"


def bronze_lineage_key(spec: DatasetSpec, day: date) -> str:
    """The day's lineage manifest: the landed files bronze's Parquet came from. The ``_``
    prefix keeps it out of every Hive/Parquet reader and of `ObjectStore.list` by default."""
    return f"{bronze_dir(spec, day)}/_lineage.json"


def quarantine_key(dataset: str, day: date) -> str:
    return f"quarantine/{dataset}/{hive_dir(day)}/part-00000.parquet"


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a UTC day."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)
