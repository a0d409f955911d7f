"""Batches of converted rows and the rejects that travel with them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from lake_pipelines.lake import arrow


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
    needed when some of them are rejected later); ``row_text`` gives a row's source text as
    it was landed (the quarantine's ``raw``), also only when asked. Both come from the same
    scan of the source: when that scan does not find one record per row (pyarrow and our
    scan can disagree about odd input), `drop` trusts neither.
    """

    table: pa.Table
    rejects: list[Reject] = field(default_factory=list)
    row_lines: Callable[[], np.ndarray] | None = None
    numbers_are_records: bool = False
    row_text: Callable[[int], str] | None = None

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
        if lines is not None and len(lines) != self.table.num_rows:
            lines = None  # the scan did not place the rows: lines and text are unknown
        landed = self.row_text if lines is not None else None

        def text(i: int) -> str:
            return (landed(i) if landed is not None else raw(i))[:2000]

        rejects = list(self.rejects)
        for i in sorted(bad):
            col, reason = bad[i]
            n = int(lines[i]) if lines is not None else None
            if self.numbers_are_records:
                rejects.append(Reject(source, None, col, reason, text(i), record=n))
            else:
                rejects.append(Reject(source, n, col, reason, text(i)))
        keep = np.ones(self.table.num_rows, dtype=bool)
        keep[list(bad)] = False
        parent, parent_text = self.row_lines, self.row_text

        def lines_of_kept() -> np.ndarray:
            assert parent is not None
            got = parent()
            return got[keep] if len(got) == len(keep) else np.zeros(0, dtype=np.int64)

        kept_lines = lines_of_kept if parent is not None else None
        kept_text = None
        if parent_text is not None:
            kept_rows = np.flatnonzero(keep)
            kept_text = lambda j: parent_text(int(kept_rows[j]))  # noqa: E731
        return Batch(
            self.table.filter(arrow.mask(keep)),
            rejects,
            kept_lines,
            self.numbers_are_records,
            kept_text,
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


def count_byte(data: bytes, byte: int) -> int:
    """How often `byte` occurs in `data`: numpy's vector compare, ~3x faster than
    ``bytes.count`` on a block, and it releases the GIL while the parse threads work."""
    return int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == byte))


def with_end(blocks: Iterator[bytes]) -> Iterator[bytes | None]:
    """The blocks, then None: the end of the input, for readers that flush what they carry."""
    yield from blocks
    yield None


def nullable_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([f.with_nullable(True) for f in schema], metadata=schema.metadata)
