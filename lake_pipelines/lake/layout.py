"""Where things live in the lake: the store-relative folders of each layer, and a day's bounds.

Every layer names its paths through these functions, so the layout is written down once.

A day is written to one Hive folder, ``year=2026/month=01/day=05`` (zero-padded, so that an
object store's lexicographic listing is chronological; level names from the spec). Lakes
written before kept ``year=2026/month=1/day=5``: readers of a day look in every folder the day
may be in (`bronze_dirs`, `quarantine_keys`), and a re-ingestion of the day moves it to the
current folder.
"""

from __future__ import annotations

from collections.abc import Iterable
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


def hive_dirs(day: date, names: tuple[str, str, str] = DEFAULT_HIVE_PARTITION_COLUMNS) -> list[str]:
    """Every folder `day` may be in, the current one (`hive_dir`) first: then the default
    names zero-padded (a dataset that renamed its levels since), then the unpadded folder
    every lake had before padding (``year=2026/month=1/day=5``)."""
    year, month, day_ = DEFAULT_HIVE_PARTITION_COLUMNS
    legacy = f"{year}={day.year}/{month}={day.month}/{day_}={day.day}"
    candidates = [hive_dir(day, names), hive_dir(day), legacy]
    return list(dict.fromkeys(candidates))


def landing_dir(spec: DatasetSpec, day: date) -> str:
    return f"{spec.landing_prefix}/{day.isoformat()}"


def bronze_dir(spec: DatasetSpec, day: date) -> str:
    """The folder bronze writes `day` to."""
    return f"{spec.bronze_prefix}/{hive_dir(day, spec.hive_partition_columns)}"


def bronze_dirs(spec: DatasetSpec, day: date) -> list[str]:
    """Every folder `day` may be in: `bronze_dir` first, then those of earlier layouts."""
    return [f"{spec.bronze_prefix}/{d}" for d in hive_dirs(day, spec.hive_partition_columns)]


def bronze_lineage_key(spec: DatasetSpec, day: date) -> str:
    """The day's lineage manifest: the landed files bronze's Parquet came from. The ``_``
    prefix keeps it out of every Hive/Parquet reader and of `ObjectStore.list` by default."""
    return f"{bronze_dir(spec, day)}/{LINEAGE_NAME}"


def bronze_lineage_keys(spec: DatasetSpec, day: date) -> list[str]:
    """Every key the day's lineage manifest may have, `bronze_lineage_key` first."""
    return [f"{d}/{LINEAGE_NAME}" for d in bronze_dirs(spec, day)]


def quarantine_prefix(dataset: str) -> str:
    return f"quarantine/{dataset}"


def quarantine_key(dataset: str, day: date) -> str:
    """Quarantine keeps the default level names for every dataset: its schema is ours (no
    ``year``/``month``/``day`` column), and one naming lets ``quarantine/**`` be read whole."""
    return quarantine_keys(dataset, day)[0]


def quarantine_keys(dataset: str, day: date) -> list[str]:
    """Every key the day's quarantine file may have, the current one first."""
    return [f"{quarantine_prefix(dataset)}/{d}/part-00000.parquet" for d in hive_dirs(day)]


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a UTC day."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def consecutive_days(days: Iterable[date]) -> list[tuple[date, date]]:
    """`days` as runs of consecutive days, ``(first, last)`` each."""
    out: list[tuple[date, date]] = []
    for d in sorted(set(days)):
        if out and out[-1][1] + timedelta(days=1) == d:
            out[-1] = (out[-1][0], d)
        else:
            out.append((d, d))
    return out
