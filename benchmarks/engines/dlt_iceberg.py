"""dlt landing one day's CSV and NDJSON files into Iceberg (task 10): the filesystem source
with its readers (`read_csv_duckdb` yielding Arrow tables, `read_jsonl`), the filesystem
destination on local disk with ``table_format="iceberg"``, dlt's defaults otherwise (nested
JSON objects become columns and child tables, as dlt normalises them). Runs in .venv-bench."""

from __future__ import annotations

import os

import dlt
from dlt.sources.filesystem import filesystem, read_csv_duckdb, read_jsonl

DATASET, TABLE = "lake", "events"


def land(csv: list[str], ndjson: list[str], out: str, **_: object) -> int:
    os.makedirs(out, exist_ok=True)
    # Arrow items (CSV) get dlt's required _dlt_load_id and _dlt_id too: without them the
    # JSON load that follows adds them to the Iceberg table, which pyiceberg refuses for
    # required columns.
    os.environ["NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_LOAD_ID"] = "true"
    os.environ["NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_ID"] = "true"
    pipeline = dlt.pipeline(
        pipeline_name="bench_events",
        destination=dlt.destinations.filesystem(bucket_url=f"file://{out}/lake"),
        dataset_name=DATASET,
        pipelines_dir=f"{out}/pipelines",
    )
    readers = (
        ("csv", csv, read_csv_duckdb(use_pyarrow=True, chunk_size=200_000)),
        ("ndjson", ndjson, read_jsonl()),
    )
    for suffix, files, reader in readers:
        if not files:
            continue  # the day's folder holds exactly its files: one glob per format
        source = filesystem(
            bucket_url=f"file://{os.path.dirname(files[0])}", file_glob=f"*.{suffix}"
        )
        pipeline.run((source | reader).with_name(TABLE), table_format="iceberg")
    return -1  # counted from the table by the harness


def table_dir(out: str) -> str:
    return f"{out}/lake/{DATASET}/{TABLE}"
