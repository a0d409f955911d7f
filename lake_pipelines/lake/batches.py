"""Batches of converted rows and the rejects that travel with them."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa


@dataclass(frozen=True)
class Reject:
    """One row that did not make it, and why."""

    source: str
    line: int | None
    column: str | None
    reason: str
    raw: str | None
    record: int | None = None  # record number, where a line number means nothing (JSON arrays)


@dataclass
class Batch:
    """Converted rows of one block, plus the block's rejects.

    ``row_lines`` works out, on demand, the source line of every row of ``table`` (only
    needed when some of them are rejected later).
    """

    table: pa.Table
    rejects: list[Reject] = field(default_factory=list)
    row_lines: Callable[[], np.ndarray] | None = None
    numbers_are_records: bool = False

    @property
    def rows_read(self) -> int:
        return self.table.num_rows + len(self.rejects)

    def drop(
        self, bad: dict[int, tuple[str | None, str]], source: str, raw: Callable[[int], str]
    ) -> Batch:
        """A new batch without the rows in `bad` ({row: (column, reason)}), which become rejects."""
        if not bad:
            return self
        lines = self.row_lines() if self.row_lines is not None else None
        rejects = list(self.rejects)
        for i in sorted(bad):
            col, reason = bad[i]
            n = int(lines[i]) if lines is not None and i < len(lines) else None
            if self.numbers_are_records:
                rejects.append(Reject(source, None, col, reason, raw(i), record=n))
            else:
                rejects.append(Reject(source, n, col, reason, raw(i)))
        keep = np.ones(self.table.num_rows, dtype=bool)
        keep[list(bad)] = False
        parent = self.row_lines
        kept_lines = (lambda: parent()[keep]) if parent is not None else None
        return Batch(
            self.table.filter(pa.array(keep)), rejects, kept_lines, self.numbers_are_records
        )


def row_json(table: pa.Table, i: int) -> str:
    """One row as JSON text, for the quarantine's ``raw`` column."""
    row = table.slice(i, 1).to_pylist()[0]
    return json.dumps(row, default=str, ensure_ascii=False)[:2000]


def add_reason(
    bad: dict[int, tuple[str | None, str]], i: int, column: str | None, reason: str
) -> None:
    """Record a reason for row i; a row failing several ways keeps every reason."""
    if i in bad:
        col, prev = bad[i]
        bad[i] = (col, f"{prev}; {reason}")
    else:
        bad[i] = (column, reason)


def nullable_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([f.with_nullable(True) for f in schema], metadata=schema.metadata)
