"""Daft landing one day's CSV and NDJSON files into an Iceberg table (task 10): `read_csv` and
`read_json` with the target schema (nested CSV cells parsed from their JSON text with
`deserialize`), then `DataFrame.write_iceberg`. Runs in the bench environment (.venv-bench)."""

from __future__ import annotations

import daft
import pyarrow as pa
from daft import DataType, col
from daft.functions import deserialize

from benchmarks.engines.peer_catalog import events_table
from benchmarks.schemas import decode, nested


def land(csv: list[str], ndjson: list[str], out: str, schema: str, **_: object) -> int:
    target = decode(schema)
    table = events_table(out, target)
    types = {f.name: DataType.from_arrow_type(f.type) for f in target}
    as_json = set(nested(target))
    frames = []
    if csv:
        cells = {n: DataType.string() if n in as_json else t for n, t in types.items()}
        frame = daft.read_csv(csv, schema=cells, infer_schema=False)
        frames.append(
            frame.with_columns({n: deserialize(col(n), "json", types[n]) for n in as_json})
        )
    if ndjson:
        frames.append(daft.read_json(ndjson, schema=types, infer_schema=False))
    frame = frames[0]
    for other in frames[1:]:
        frame = frame.concat(other)
    written = frame.select(*target.names).write_iceberg(table, mode="append").to_arrow()
    counts = written.column("rows") if "rows" in written.column_names else pa.array([-1])
    return int(pa.compute.sum(counts).as_py() or 0)
