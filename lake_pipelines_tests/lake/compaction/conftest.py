"""Fixtures of the compaction tests."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import Table

from lake_pipelines.lake.silver import ensure_silver_table
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines_tests.lake.compaction.data import DAY, ICE_SPEC, ORDER, add_tiny_files, events


@pytest.fixture
def tiny_table(local_store: ObjectStore, local_catalog: SqlCatalog) -> tuple[Table, pa.Table]:
    table = ensure_silver_table(local_catalog, ICE_SPEC)
    day1 = add_tiny_files(local_store, table, DAY, 60, 3, seed=1)
    big = events(np.random.default_rng(2), DAY, 3000, 500_000).sort_by(ORDER)
    table.append(big.cast(table.schema().as_arrow()))
    day2 = add_tiny_files(local_store, table, DAY + timedelta(days=1), 40, 3, seed=3)
    return table, pa.concat_tables([day1, big, day2])
