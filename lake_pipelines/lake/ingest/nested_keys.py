"""Keys inside a nested column that the spec's struct type does not name.

Such a key is held to the contract of an unknown column. Under ``freeze`` the row is
quarantined with the key's path (``properties.zzz``). Under ``discard_value`` the key's value
is dropped and the row kept. ``evolve`` adds new top-level columns to the table but not new
fields inside a struct, so there too the row is quarantined, with a reason that says what to
do: dropping the value without a word would lose data.

CSV cells reach this as the types pyarrow's JSON reader inferred (`extra_in_type`); JSON
records that took the careful path as decoded values (`extra_in_value`).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from lake_pipelines.datasets.spec import DatasetSpec


def refuses_nested_keys(spec: DatasetSpec) -> bool:
    """Whether a row with an unknown key inside a nested column is quarantined."""
    return spec.unknown_columns != "discard_value"


UNKNOWN_KEY = "unknown key "  # how every such reason starts


def nested_key_reason(path: str, spec: DatasetSpec) -> str:
    if spec.unknown_columns == "evolve":
        return (
            f"{UNKNOWN_KEY}{path!r} (contract mode evolve adds columns, not fields inside one:"
            " add the field to the spec's type)"
        )
    return f"{UNKNOWN_KEY}{path!r} (contract mode: {spec.unknown_columns})"


def _children(t: pa.DataType) -> dict[str, pa.DataType]:
    return {t.field(i).name: t.field(i).type for i in range(t.num_fields)}


def _is_list(t: pa.DataType) -> bool:
    return bool(
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_fixed_size_list(t)
        or pa.types.is_list_view(t)
        or pa.types.is_large_list_view(t)
    )


def extra_in_type(actual: pa.DataType, expected: pa.DataType, path: str) -> list[str]:
    """Paths of the struct fields in `actual` that `expected` lacks, at any depth (pyarrow's
    JSON reader adds a field for every unknown key it meets when it infers)."""
    if pa.types.is_struct(actual) and pa.types.is_struct(expected):
        known = _children(expected)
        out: list[str] = []
        for name, child in _children(actual).items():
            if name not in known:
                out.append(f"{path}.{name}")
            else:
                out += extra_in_type(child, known[name], f"{path}.{name}")
        return out
    if _is_list(actual) and _is_list(expected):
        return extra_in_type(actual.value_type, expected.value_type, f"{path}[]")
    if pa.types.is_map(actual) and pa.types.is_map(expected):
        return extra_in_type(actual.item_type, expected.item_type, f"{path}{{}}")
    return []


def extra_in_value(value: Any, expected: pa.DataType, path: str) -> str | None:
    """The path of the first key of a decoded JSON value that the struct types of `expected`
    do not name, or None."""
    if isinstance(value, dict) and pa.types.is_struct(expected):
        known = _children(expected)
        for name, child in value.items():
            if name not in known:
                return f"{path}.{name}"
            found = extra_in_value(child, known[name], f"{path}.{name}")
            if found:
                return found
    elif isinstance(value, list) and _is_list(expected):
        for item in value:
            found = extra_in_value(item, expected.value_type, f"{path}[]")
            if found:
                return found
    elif isinstance(value, dict) and pa.types.is_map(expected):
        for item in value.values():
            found = extra_in_value(item, expected.item_type, f"{path}{{}}")
            if found:
                return found
    return None
