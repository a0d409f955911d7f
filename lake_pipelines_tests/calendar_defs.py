"""A code location with a third dataset on its own calendar, as a user would add one.

`trips` starts in 2024 (the project's datasets in 2026), stopped at the end of 2026-06, and
carries its own local-date columns `year`, `month`, `day`: its Hive levels are named
``utc_year/utc_month/utc_day`` so no reader confuses the two. Declaring it took this one spec
and its registration (`DATASETS`), nothing else; `calendar_defs.defs` is loaded by the tests
the way `lake_pipelines.definitions` is (``-m lake_pipelines_tests.calendar_defs``).
"""

from __future__ import annotations

import csv
import io
import random
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pyarrow as pa

from lake_pipelines.datasets import ALL_DATASETS, DatasetSpec
from lake_pipelines.definitions import build_definitions
from lake_pipelines.lake.layout import landing_dir
from lake_pipelines.lake.storage import ObjectStore

if TYPE_CHECKING:
    import pandera.pandas as pdr

LOCAL = ZoneInfo("America/New_York")

SCHEMA = pa.schema(
    [
        pa.field("trip_id", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        # the trip's local (New York) date: differs from the UTC day for late-evening trips
        pa.field("year", pa.int16(), nullable=False),
        pa.field("month", pa.int8(), nullable=False),
        pa.field("day", pa.int8(), nullable=False),
        pa.field("city", pa.string()),
        pa.field("fare", pa.float64()),
    ]
)


def contract() -> pdr.DataFrameSchema:
    import pandera.pandas as pdr

    return pdr.DataFrameSchema(
        {
            "trip_id": pdr.Column(str, nullable=False, unique=True),
            "fare": pdr.Column(float, pdr.Check.ge(0), nullable=True),
        },
        strict=False,
    )


TRIPS = DatasetSpec(
    name="trips",
    description="Taxi trips with their local date; history from 2024.",
    schema=SCHEMA,
    timestamp_column="ts",
    start_date="2024-01-01",
    end_date="2026-07-01",
    contract=contract,
    sort_by=("ts",),
    hive_partition_columns=("utc_year", "utc_month", "utc_day"),
)

DATASETS: tuple[DatasetSpec, ...] = (*ALL_DATASETS, TRIPS)
defs = build_definitions(DATASETS)


def land_trips(store: ObjectStore, day: date, rows: int, seed: int = 0) -> list[dict]:
    """One CSV of `rows` trips on the UTC `day` in its landing folder; returns the rows. A
    third start in the first four UTC hours: the evening before, in New York."""
    rng = random.Random(f"{seed}-{day}")
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    out = []
    for i in range(rows):
        ts = start + timedelta(seconds=rng.randrange(0, 86_400))
        if i % 3 == 0:
            ts = start + timedelta(seconds=rng.randrange(0, 4 * 3600))
        local = ts.astimezone(LOCAL)
        out.append(
            {
                "trip_id": f"{day.isoformat()}-{i:05d}",
                "ts": ts.isoformat(),
                "year": local.year,
                "month": local.month,
                "day": local.day,
                "city": rng.choice(["nyc", "jfk", "ewr"]),
                "fare": round(rng.uniform(3, 90), 2),
            }
        )
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SCHEMA.names)
    writer.writeheader()
    writer.writerows(out)
    store.write_bytes(f"{landing_dir(TRIPS, day)}/trips.csv", buf.getvalue().encode())
    return out
