"""Nested CSV cells parsed as JSON: the nesting limit, and what its check reads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from lake_pipelines.lake.ingest.coerce import parse_json_cells
from lake_pipelines.lake.ingest.json_strict import MAX_NESTING, nesting

PROPS = pa.struct([pa.field("browser", pa.string())])
TYPES = {"props": PROPS, "lat": pa.list_(pa.float64())}


def _nested(lists: int) -> str:
    """An object holding `lists` arrays one inside the other: ``lists + 1`` levels deep."""
    return '{"browser": "x", "zz": ' + "[" * lists + "]" * lists + "}"


def _cells(props: Sequence[str | None], lat: Sequence[str | None]) -> dict[str, pa.Array]:
    return {"props": pa.array(props, pa.string()), "lat": pa.array(lat, pa.string())}


def test_a_cell_as_deep_as_the_limit_parses_and_one_level_deeper_is_refused() -> None:
    at_limit = _nested(MAX_NESTING - 1)
    parsed = parse_json_cells(_cells([at_limit, None], ["[1.5]", None]), TYPES)
    first, second = parsed["props"].to_pylist()
    assert first["browser"] == "x" and nesting(first) == MAX_NESTING and second is None
    assert parsed["lat"].to_pylist() == [[1.5], None]
    with pytest.raises(pa.ArrowInvalid, match=f"nesting deeper than {MAX_NESTING} levels"):
        parse_json_cells(_cells(['{"browser": "y"}', _nested(MAX_NESTING)], ["[]", "[]"]), TYPES)


def test_brackets_are_counted_only_in_rows_with_a_cell_longer_than_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cell shorter than the limit cannot nest deeper than it: a day of short cells costs
    no pass over its JSON text; a long cell's row is still counted (and here refused)."""
    counted: list[int] = []
    count_substring = pc.count_substring

    def spy(strings: Any, pattern: str, **kwargs: Any) -> Any:
        counted.append(len(strings))
        return count_substring(strings, pattern, **kwargs)

    monkeypatch.setattr(pc, "count_substring", spy)
    short = ['{"browser": "firefox"}'] * 1000
    parsed = parse_json_cells(_cells(short, ["[3.4, 5.0]"] * 1000), TYPES)
    assert parsed["props"].to_pylist() == [{"browser": "firefox"}] * 1000
    assert counted == []
    deep = "[" * MAX_NESTING + "]" * MAX_NESTING  # as long as its 100 levels need, one more
    with pytest.raises(pa.ArrowInvalid, match="nesting deeper"):
        parse_json_cells(_cells([*short, '{"browser": "x"}'], [*["[]"] * 1000, f"[{deep}]"]), TYPES)
    assert counted == [1, 1]  # "{" and "[" in the one row with a long cell
