"""Where things live in the lake: the store-relative folders of each layer, and a day's bounds.

Every layer names its paths through these functions, so the layout is written down once.

A day is written to one Hive folder, ``year=2026/month=01/day=05`` (zero-padded, so that an
object store's lexicographic listing is chronological; level names from the spec).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from lake_pipelines.datasets.spec import DEFAULT_HIVE_PARTITION_COLUMNS, DatasetSpec

LINEAGE_NAME = "_lineage.json"


def hive_dir(day: date, names: tuple[str, str, str] = DEFAULT_HIVE_PARTITION_COLUMNS) -> str:
    """``year=2026/month=01/day=05``: zero-padded, so folders list in date order. DuckDB,
    Polars, pyarrow and DataFusion all still type the levels as integers (the tests check)."""
    year, month, day_ = names
    return f"{year}={day.year:04d}/{month}={day.month:02d}/{day_}={day.day:02d}"


def hive_pattern(names: tuple[str, str, str] = DEFAULT_HIVE_PARTITION_COLUMNS) -> str:
    """The folder layout as people read it: ``year=YYYY/month=MM/day=DD``."""
    year, month, day_ = names
    return f"{year}=YYYY/{month}=MM/{day_}=DD"


def landing_dir(spec: DatasetSpec, day: date) -> str:
    return f"{spec.landing_prefix}/{day.isoformat()}"


def bronze_dir(spec: DatasetSpec, day: date) -> str:
    """The folder bronze writes `day` to."""
    return f"{spec.bronze_prefix}/{hive_dir(day, spec.hive_partition_columns)}"


def bronze_lineage_key(spec: DatasetSpec, day: date) -> str:
    """The day's lineage manifest: the landed files bronze's Parquet came from. The ``_``
    prefix keeps it out of every Hive/Parquet reader and of `ObjectStore.list` by default."""
    return f"{bronze_dir(spec, day)}/{LINEAGE_NAME}"


def quarantine_prefix(dataset: str) -> str:
    return f"quarantine/{dataset}"


def quarantine_key(dataset: str, day: date) -> str:
    """Quarantine keeps the default level names for every dataset: its schema is ours (no
    ``year``/``month``/``day`` column), and one naming lets ``quarantine/**`` be read whole."""
    return f"{quarantine_prefix(dataset)}/{hive_dir(day)}/part-00000.parquet"


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a UTC day."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)
