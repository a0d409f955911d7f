"""Dataset specs. Add a module with a `SPEC` and list it in `ALL_DATASETS`."""

from __future__ import annotations

from lake_pipelines.datasets import events, orders
from lake_pipelines.datasets.spec import (
    ColumnCodec,
    CsvDialect,
    DatasetSpec,
    PartitionField,
    SchemaChange,
)

ALL_DATASETS: tuple[DatasetSpec, ...] = (events.SPEC, orders.SPEC)


def get_dataset(name: str) -> DatasetSpec:
    for spec in ALL_DATASETS:
        if spec.name == name:
            return spec
    known = ", ".join(s.name for s in ALL_DATASETS)
    raise KeyError(f"unknown dataset {name!r}; known datasets: {known}")


__all__ = [
    "ALL_DATASETS",
    "ColumnCodec",
    "CsvDialect",
    "DatasetSpec",
    "PartitionField",
    "SchemaChange",
    "get_dataset",
]
