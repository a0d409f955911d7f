"""Arrow helpers every layer shares."""

from __future__ import annotations

import pyarrow as pa


def fit_to_schema(data: pa.Table | pa.RecordBatch, schema: pa.Schema) -> pa.Table:
    """`data` as `schema`: its columns in the schema's order, each cast to its type, a column
    the data lacks as nulls, a column the schema lacks dropped (callers that must refuse
    those check first).

    Raises:
        pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, ValueError: a value
            does not fit its column's type.
    """
    table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
    columns = [
        table.column(f.name) if f.name in table.column_names else pa.nulls(len(table), f.type)
        for f in schema
    ]
    if all(c.type == f.type for c, f in zip(columns, schema, strict=True)):
        return pa.Table.from_arrays(columns, schema=schema)  # nothing to cast (the usual case)
    return pa.Table.from_arrays(columns, names=schema.names).cast(schema)
