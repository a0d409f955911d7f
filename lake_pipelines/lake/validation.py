"""The data contract: pandera checks over each batch, plus the rules pandera cannot see.

Rows failing a check are split off with a reason naming the column, the check and the value;
they are quarantined, never silently dropped.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pandera.errors as pe
import pyarrow as pa
import pyarrow.compute as pc

from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.lake.readers import Batch, add_reason, row_json


def _contract_frame(table: pa.Table, spec: DatasetSpec):  # -> pandas.DataFrame
    cols = [c for c in spec.contract.columns if c in table.column_names]
    return table.select(cols).to_pandas(types_mapper=None)


class UniqueTracker:
    """Remembers 64-bit hashes of the values seen in the unique columns of one partition.

    pandera sees one batch at a time; uniqueness is a property of the whole day, so it is
    kept here: the first occurrence of a value is kept, later ones are rejected. Memory is
    8 bytes per row and column.
    """

    def __init__(self, columns: list[str]) -> None:
        self.columns = columns
        self._seen: dict[str, list[np.ndarray]] = {c: [] for c in columns}

    def mark(self) -> dict[str, int]:
        return {c: len(v) for c, v in self._seen.items()}

    def rollback(self, mark: dict[str, int]) -> None:
        """Forget what was seen since `mark` (the rows of a file that was rejected whole)."""
        for c, n in mark.items():
            del self._seen[c][n:]

    def duplicates(self, table: pa.Table) -> dict[int, tuple[str, str]]:
        out: dict[int, tuple[str, str]] = {}
        for col in self.columns:
            values = table.column(col).to_numpy(zero_copy_only=False)
            hashes = pd.util.hash_array(values.astype(object))
            earlier = np.zeros(len(hashes), dtype=bool)
            for block in self._seen[col]:
                earlier |= np.isin(hashes, block, assume_unique=False)
            _, first = np.unique(hashes, return_index=True)
            within = np.ones(len(hashes), dtype=bool)
            within[first] = False
            for i in np.flatnonzero(earlier | within):
                out.setdefault(
                    int(i),
                    (col, f"{col}={values[i]!r} is a duplicate of an earlier row of the day"),
                )
            self._seen[col].append(np.unique(hashes))
        return out


def validate(
    batch: Batch,
    spec: DatasetSpec,
    day_start: datetime,
    day_end: datetime,
    source: str,
    unique: UniqueTracker | None = None,
) -> Batch:
    """Split the rows of `batch` that break the contract into rejects.

    Besides the pandera contract, every row's timestamp must lie inside the partition's day
    (``[day_start, day_end)``): a row elsewhere would escape the day's idempotent overwrite.
    """
    table = batch.table
    if table.num_rows == 0:
        return batch
    bad: dict[int, tuple[str | None, str]] = {}

    ts = table.column(spec.timestamp_column)
    missing_ts = pc.is_null(ts)
    before = pc.less(ts, pa.scalar(day_start, ts.type))
    outside = pc.or_(before, pc.greater_equal(ts, pa.scalar(day_end, ts.type)))
    for i in np.flatnonzero(pc.fill_null(outside, False).to_numpy(zero_copy_only=False)):
        bad[int(i)] = (
            spec.timestamp_column,
            f"{spec.timestamp_column}={ts[int(i)].as_py().isoformat()} is outside partition "
            f"{day_start.date().isoformat()}",
        )
    for i in np.flatnonzero(missing_ts.to_numpy(zero_copy_only=False)):
        bad[int(i)] = (spec.timestamp_column, f"{spec.timestamp_column} is null")
    for f in spec.schema:
        if not f.nullable and f.name != spec.timestamp_column:
            nulls = pc.is_null(table.column(f.name)).to_numpy(zero_copy_only=False)
            for i in np.flatnonzero(nulls):
                add_reason(bad, int(i), f.name, f"{f.name} is null but required")

    if unique is not None:
        for i, (col, reason) in unique.duplicates(table).items():
            add_reason(bad, i, col, reason)

    frame = _contract_frame(table, spec)
    try:
        spec.contract.validate(frame, lazy=True)
    except pe.SchemaErrors as errors:
        cases = errors.failure_cases
        for _, case in cases.iterrows():
            idx = case.get("index")
            if idx is None or (isinstance(idx, float) and np.isnan(idx)):
                continue
            col = case.get("column")
            if case.get("check") == "field_uniqueness":
                continue  # judged over the whole day by UniqueTracker
            add_reason(
                bad, int(idx), col, f"{col}={case.get('failure_case')!r} fails {case.get('check')}"
            )
    return batch.drop(bad, source, lambda i: row_json(table, i))
