"""Where things live in the lake: the store-relative folders of each layer, and a day's bounds.

Every layer names its paths through these functions, so the layout is written down once.

A day is written to one Hive folder, ``year=2026/month=01/day=05`` (zero-padded, so that an
object store's lexicographic listing is chronological; level names from the spec). Lakes
written before kept ``year=2026/month=1/day=5``: readers of a day look in every folder the day
may be in (`bronze_dirs`, `quarantine_keys`), and a re-ingestion of the day moves it to the
current folder.

An hourly dataset adds an hour level (``.../day=05/hour=07``); a dataset on local days
(`DatasetSpec.timezone`) names its folders by the local date. The unit of each layer is a
`lake.period` unit: a date (the daily UTC calendar) or a `Period`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TypeVar

from lake_pipelines.datasets.periods import DEFAULT_HIVE_HOUR_COLUMN
from lake_pipelines.datasets.spec import DEFAULT_HIVE_PARTITION_COLUMNS, DatasetSpec
from lake_pipelines.lake.period import Period, Unit, as_period, bounds, follows

LINEAGE_NAME = "_lineage.json"
U = TypeVar("U", bound=Unit)  # days, or periods: one calendar's units


def default_names(day: Unit) -> tuple[str, ...]:
    """The default Hive level names of `day`'s calendar (with ``hour`` for an hour)."""
    if isinstance(day, Period) and day.granularity == "hourly":
        return (*DEFAULT_HIVE_PARTITION_COLUMNS, DEFAULT_HIVE_HOUR_COLUMN)
    return DEFAULT_HIVE_PARTITION_COLUMNS


def hive_dir(day: Unit, names: tuple[str, ...] | None = None) -> str:
    """``year=2026/month=01/day=05`` (``/hour=07`` for an hour): zero-padded, so folders
    list in time order. DuckDB, Polars, pyarrow and DataFusion all still type the levels as
    integers (the tests check). A local day's folder is its local date."""
    values = as_period(day).hive_values
    levels = zip(names or default_names(day), values, strict=True)
    return "/".join(f"{n}={v:04d}" if i == 0 else f"{n}={v:02d}" for i, (n, v) in enumerate(levels))


def hive_pattern(names: tuple[str, ...] = DEFAULT_HIVE_PARTITION_COLUMNS) -> str:
    """The folder layout as people read it: ``year=YYYY/month=MM/day=DD`` (``/hour=HH``)."""
    shown = ("YYYY", "MM", "DD", "HH")
    return "/".join(f"{n}={v}" for n, v in zip(names, shown, strict=False))


def hive_dirs(day: Unit, names: tuple[str, ...] | None = None) -> list[str]:
    """Every folder `day` may be in, the current one (`hive_dir`) first: then the default
    names zero-padded (a dataset that renamed its levels since), then the unpadded folder
    every lake had before padding (``year=2026/month=1/day=5``; daily UTC lakes only)."""
    candidates = [hive_dir(day, names), hive_dir(day)]
    if not isinstance(day, Period):
        year, month, day_ = DEFAULT_HIVE_PARTITION_COLUMNS
        candidates.append(f"{year}={day.year}/{month}={day.month}/{day_}={day.day}")
    return list(dict.fromkeys(candidates))


def landing_dir(spec: DatasetSpec, day: Unit) -> str:
    """``landing/<dataset>/2026-11-01`` (``2026-11-01T05`` for an hour; local days by
    their local date)."""
    return f"{spec.landing_prefix}/{day.isoformat()}"


def bronze_dir(spec: DatasetSpec, day: Unit) -> str:
    """The folder bronze writes `day` to."""
    return f"{spec.bronze_prefix}/{hive_dir(day, spec.hive_partition_columns)}"


def bronze_dirs(spec: DatasetSpec, day: Unit) -> list[str]:
    """Every folder `day` may be in: `bronze_dir` first, then those of earlier layouts."""
    return [f"{spec.bronze_prefix}/{d}" for d in hive_dirs(day, spec.hive_partition_columns)]


def bronze_lineage_key(spec: DatasetSpec, day: Unit) -> str:
    """The day's lineage manifest: the landed files bronze's Parquet came from. The ``_``
    prefix keeps it out of every Hive/Parquet reader and of `ObjectStore.list` by default."""
    return f"{bronze_dir(spec, day)}/{LINEAGE_NAME}"


def bronze_lineage_keys(spec: DatasetSpec, day: Unit) -> list[str]:
    """Every key the day's lineage manifest may have, `bronze_lineage_key` first."""
    return [f"{d}/{LINEAGE_NAME}" for d in bronze_dirs(spec, day)]


def quarantine_prefix(dataset: str) -> str:
    return f"quarantine/{dataset}"


def quarantine_key(dataset: str, day: Unit) -> str:
    """Quarantine keeps the default level names for every dataset: its schema is ours (no
    ``year``/``month``/``day`` column), and one naming lets ``quarantine/**`` be read whole."""
    return quarantine_keys(dataset, day)[0]


def quarantine_keys(dataset: str, day: Unit) -> list[str]:
    """Every key the day's quarantine file may have, the current one first."""
    return [f"{quarantine_prefix(dataset)}/{d}/part-00000.parquet" for d in hive_dirs(day)]


def day_bounds(day: Unit) -> tuple[datetime, datetime]:
    """[start, end) of a day (or any period) in UTC."""
    return bounds(day)


def consecutive_days(days: Iterable[U]) -> list[tuple[U, U]]:
    """`days` (or periods of one calendar) as runs of consecutive ones, ``(first, last)`` each."""
    out: list[tuple[U, U]] = []
    for d in sorted(set(days)):  # one calendar: all alike
        if out and follows(out[-1][1], d):
            out[-1] = (out[-1][0], d)
        else:
            out.append((d, d))
    return out
