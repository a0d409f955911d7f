"""`orders`: shop orders landed as JSON arrays, each with a list of line-item structs.

Proves that specs are general: nothing in the asset code knows this dataset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    import pandera.pandas as pdr

from lake_pipelines.datasets.spec import ColumnCodec, DatasetSpec

STATUSES = ("placed", "paid", "shipped", "cancelled", "returned")

SCHEMA = pa.schema(
    [
        pa.field("order_id", pa.string(), nullable=False),
        pa.field("ordered_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("customer_id", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("currency", pa.string(), nullable=False),
        pa.field("total", pa.decimal128(12, 2)),
        pa.field(
            "shipping",
            pa.struct(
                [
                    pa.field("country", pa.string()),
                    pa.field("city", pa.string()),
                    pa.field("express", pa.bool_()),
                ]
            ),
        ),
        pa.field(
            "items",
            pa.list_(
                pa.struct(
                    [
                        pa.field("sku", pa.string()),
                        pa.field("quantity", pa.int32()),
                        pa.field("unit_price", pa.float64()),
                    ]
                )
            ),
        ),
    ]
)


def contract() -> pdr.DataFrameSchema:
    """The pandera contract (built when a run first validates: pandera is slow to import)."""
    import pandera.pandas as pdr

    return pdr.DataFrameSchema(
        {
            # unique across the whole day, enforced by the ingestion (pandera alone sees one batch)
            "order_id": pdr.Column(str, nullable=False, unique=True),
            "customer_id": pdr.Column(str, nullable=False),
            "status": pdr.Column(str, pdr.Check.isin(STATUSES), nullable=False),
            "currency": pdr.Column(str, pdr.Check.str_length(3, 3), nullable=False),
            "total": pdr.Column(
                nullable=True,
                checks=pdr.Check(lambda s: s.map(lambda d: d >= 0), element_wise=False),
            ),
        },
        strict=False,
    )


SPEC = DatasetSpec(
    name="orders",
    description="Shop orders with their line items, landed as JSON array files.",
    schema=SCHEMA,
    timestamp_column="ordered_at",
    start_date="2026-01-01",
    contract=contract,
    sort_by=("ordered_at",),
    codecs={
        "status": ColumnCodec(dictionary=True),
        "currency": ColumnCodec(dictionary=True),
        "order_id": ColumnCodec(dictionary=False),
    },
)
