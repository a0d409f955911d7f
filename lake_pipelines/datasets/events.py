"""`events`: a website clickstream, one row per user interaction."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    import pandera.pandas as pdr

from lake_pipelines.datasets.spec import ColumnCodec, DatasetSpec

EVENT_TYPES = ("page_view", "click", "add_to_cart", "purchase", "search")

SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("session_id", pa.string(), nullable=False),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("url", pa.string()),
        pa.field("price", pa.float64()),
        pa.field(
            "properties",
            pa.struct(
                [
                    pa.field("browser", pa.string()),
                    pa.field("country", pa.string()),
                    pa.field("referrer", pa.string()),
                ]
            ),
        ),
        pa.field("latencies_ms", pa.list_(pa.float64())),
    ]
)


def contract() -> pdr.DataFrameSchema:
    """The pandera contract (built when a run first validates: pandera is slow to import)."""
    import pandera.pandas as pdr

    return pdr.DataFrameSchema(
        {
            "event_id": pdr.Column(str, nullable=False),
            "user_id": pdr.Column(str, pdr.Check.str_length(min_value=1), nullable=False),
            "session_id": pdr.Column(str, nullable=False),
            "event_type": pdr.Column(str, pdr.Check.isin(EVENT_TYPES), nullable=False),
            "price": pdr.Column(float, pdr.Check.in_range(0, 1_000_000), nullable=True),
        },
        strict=False,
        coerce=False,
    )


SPEC = DatasetSpec(
    name="events",
    description="Website clickstream: page views, clicks, carts, purchases and searches.",
    schema=SCHEMA,
    timestamp_column="ts",
    start_date="2026-01-01",
    contract=contract,
    sort_by=("ts", "user_id"),
    codecs={
        # Low-cardinality strings: dictionary pages shrink them to a few bits a row.
        "event_type": ColumnCodec(dictionary=True),
        "properties": ColumnCodec(dictionary=True),
        # Unique ids: a dictionary would only overflow and fall back, so skip it.
        "event_id": ColumnCodec(dictionary=False),
        "session_id": ColumnCodec(dictionary=False),
        # Sorted, near-unique microseconds: deltas are small and cheap to pack (1M events:
        # ~10 % less encoding time and a smaller file than a dictionary that overflows).
        "ts": ColumnCodec(encoding="DELTA_BINARY_PACKED"),
        # Many distinct floats: a dictionary costs time and saves nothing.
        "price": ColumnCodec(dictionary=False),
        "latencies_ms": ColumnCodec(dictionary=False),
        "url": ColumnCodec(compression="zstd", compression_level=6),
    },
)
