"""A code location with two datasets on calendars of their own kind, as a user adds them.

`readings` is hourly (meter readings from 2025-03-01, landed per UTC hour in
``landing/readings/2025-03-01T05/``); its rows carry the meter's own ``hour`` column, so its
Hive levels are named ``utc_year/utc_month/utc_day/utc_hour``. `shifts` is daily on the days
of Europe/Berlin: its partition keys and folders are local days, its Iceberg table stays UTC
(partitioned by ``hour(ts)``). Each took its spec and its registration (`DATASETS`), nothing
else; `period_defs.defs` is loaded the way `lake_pipelines.definitions` is.
"""

from __future__ import annotations

import csv
import io
import random
from datetime import timedelta
from typing import TYPE_CHECKING

import pyarrow as pa

from lake_pipelines.datasets import ALL_DATASETS, DatasetSpec
from lake_pipelines.definitions import build_definitions
from lake_pipelines.lake.layout import landing_dir
from lake_pipelines.lake.period import Unit, bounds
from lake_pipelines.lake.storage import ObjectStore

if TYPE_CHECKING:
    import pandera.pandas as pdr

READINGS_SCHEMA = pa.schema(
    [
        pa.field("reading_id", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("meter", pa.string()),
        pa.field("hour", pa.int8()),  # the meter's own clock hour: a data column
        pa.field("kwh", pa.float64()),
    ]
)
SHIFTS_SCHEMA = pa.schema(
    [
        pa.field("shift_id", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("site", pa.string()),
        pa.field("minutes", pa.int32()),
    ]
)


def _contract(key: str, positive: str) -> pdr.DataFrameSchema:
    import pandera.pandas as pdr

    return pdr.DataFrameSchema(
        {
            key: pdr.Column(str, nullable=False, unique=True),
            positive: pdr.Column(nullable=True, checks=pdr.Check.ge(0)),
        },
        strict=False,
    )


READINGS = DatasetSpec(
    name="readings",
    description="Meter readings, partitioned by UTC hour; history from 2025-03.",
    schema=READINGS_SCHEMA,
    timestamp_column="ts",
    start_date="2025-03-01",
    granularity="hourly",
    contract=lambda: _contract("reading_id", "kwh"),
    sort_by=("ts",),
    hive_partition_columns=("utc_year", "utc_month", "utc_day", "utc_hour"),
)
SHIFTS = DatasetSpec(
    name="shifts",
    description="Work shifts, partitioned by the local days of Berlin.",
    schema=SHIFTS_SCHEMA,
    timestamp_column="ts",
    start_date="2025-01-01",
    timezone="Europe/Berlin",
    contract=lambda: _contract("shift_id", "minutes"),
    sort_by=("ts",),
)

DATASETS: tuple[DatasetSpec, ...] = (*ALL_DATASETS, READINGS, SHIFTS)
defs = build_definitions(DATASETS)


def _write_csv(store: ObjectStore, key: str, rows: list[dict], fields: list[str]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    store.write_bytes(key, buf.getvalue().encode())


def land_readings(
    store: ObjectStore, hour: Unit, rows: int, *, seed: int = 0, bad: int = 0, files: int = 1
) -> list[dict]:
    """`rows` readings of `hour` in `files` CSVs of its landing folder, the last `bad` of
    them with a negative kwh (quarantined); returns the rows that should reach silver."""
    rng = random.Random(f"{seed}-{hour}")
    start, _ = bounds(hour)
    out = []
    for i in range(rows):
        ts = start + timedelta(seconds=rng.randrange(0, 3600))
        out.append(
            {
                "reading_id": f"{hour}-{seed}-{i:04d}",
                "ts": ts.isoformat(),
                "meter": rng.choice(["m1", "m2", "m3"]),
                "hour": (ts.hour + 1) % 24,  # the meter's clock: not the folder's hour
                "kwh": -1.0 if i >= rows - bad else round(rng.uniform(0, 5), 3),
            }
        )
    for f in range(files):
        part = out[f::files]
        _write_csv(store, f"{landing_dir(READINGS, hour)}/r{f}.csv", part, READINGS_SCHEMA.names)
    return out[: rows - bad]


def land_shifts(store: ObjectStore, day: Unit, stamps: list[str]) -> list[dict]:
    """One CSV of shifts starting at the UTC `stamps` in the landing folder of `day`."""
    out = [
        {"shift_id": f"s-{i}-{s}", "ts": s, "site": "ber", "minutes": 60 + i}
        for i, s in enumerate(stamps)
    ]
    _write_csv(store, f"{landing_dir(SHIFTS, day)}/shifts.csv", out, SHIFTS_SCHEMA.names)
    return out
