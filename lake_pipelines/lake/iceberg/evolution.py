"""Schema and partition evolution from a spec, staged into the same transaction as the data.

`plan_evolution` compares what the spec asks for with what the table has; `apply_evolution`
stages the changes in a transaction, so a table is never left evolved without its data (or
with data that needs a schema it does not have): the catalog commit takes both or neither.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pyarrow as pa
from pyiceberg.table import Table, Transaction
from pyiceberg.table.metadata import TableMetadata

from lake_pipelines.datasets.spec import SchemaChange
from lake_pipelines.lake.iceberg.transforms import TRANSFORMS

APPLIED_CHANGES_PROPERTY = "lake.schema-changes-applied"


@dataclass
class Evolution:
    """What a table needs before data of the spec's schema and partitioning can land."""

    changes: list[SchemaChange] = field(default_factory=list)
    new_columns: list[str] = field(default_factory=list)
    add_partition_fields: list[tuple[str, str]] = field(default_factory=list)
    remove_partition_fields: list[str] = field(default_factory=list)
    target_schema: pa.Schema | None = None

    def __bool__(self) -> bool:
        return bool(
            self.changes
            or self.new_columns
            or self.add_partition_fields
            or self.remove_partition_fields
        )

    def describe(self) -> str:
        parts = [f"{c.kind} {c.column}{' -> ' + c.to if c.to else ''}" for c in self.changes]
        parts += [f"add column {c}" for c in self.new_columns]
        parts += [f"partition by {t}({c})" for c, t in self.add_partition_fields]
        parts += [f"drop partition field {n}" for n in self.remove_partition_fields]
        return "; ".join(parts)


def _applied(table: Table | TableMetadata) -> list[str]:
    return json.loads(table.properties.get(APPLIED_CHANGES_PROPERTY, "[]"))


def _names_after(table: Table | TableMetadata, changes: list[SchemaChange]) -> set[str]:
    names = set(table.schema().as_arrow().names)
    for c in changes:
        if c.kind == "rename":
            names.discard(c.column)
            names.add(c.to)
        elif c.kind == "drop":
            names.discard(c.column)
    return names


def plan_evolution(
    table: Table | TableMetadata,
    schema: pa.Schema,
    partitioning: list[tuple[str, str]],
    changes: tuple[SchemaChange, ...] = (),
) -> Evolution:
    """Compare the spec with the table (or the metadata a transaction has staged so far);
    empty when nothing needs to change."""
    done = set(_applied(table))
    pending = [c for c in changes if c.id not in done]
    names = _names_after(table, pending)
    new_columns = [f.name for f in schema if f.name not in names]
    wanted = {(c, t) for c, t in partitioning}
    current_fields = table.spec().fields
    have = {}
    for pf in current_fields:
        source = table.schema().find_column_name(pf.source_id)
        have[(source, str(pf.transform).split("[")[0])] = pf.name
    add = [(c, t) for c, t in partitioning if (c, t) not in have]
    remove = [name for key, name in have.items() if key not in wanted]
    return Evolution(pending, new_columns, add, remove, schema)


def apply_evolution(tx: Transaction, evolution: Evolution) -> None:
    """Stage the evolution in `tx` (nothing is visible until the transaction commits)."""
    if evolution.changes or evolution.new_columns:
        with tx.update_schema() as update:
            for c in evolution.changes:
                if c.kind == "rename":
                    update.rename_column(c.column, c.to)
                elif c.kind == "drop":
                    update.delete_column(c.column)
                elif c.kind == "move_first":
                    update.move_first(c.column)
                elif c.kind == "move_after":
                    update.move_after(c.column, c.to)
            if evolution.new_columns and evolution.target_schema is not None:
                new = pa.schema(
                    [
                        evolution.target_schema.field(n).with_nullable(True)
                        for n in evolution.new_columns
                    ]
                )
                update.union_by_name(new)  # new columns are optional: old rows read as null
    if evolution.add_partition_fields or evolution.remove_partition_fields:
        with tx.update_spec() as spec:
            for name in evolution.remove_partition_fields:
                spec.remove_field(name)
            for column, transform in evolution.add_partition_fields:
                spec.add_field(column, TRANSFORMS[transform](), f"{column}_{transform}")
    if evolution.changes:
        applied = json.loads(tx.table_metadata.properties.get(APPLIED_CHANGES_PROPERTY, "[]"))
        applied += [c.id for c in evolution.changes]
        tx.set_properties({APPLIED_CHANGES_PROPERTY: json.dumps(applied)})
