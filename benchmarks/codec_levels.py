"""Encoding CPU and file size of one table at several ZSTD levels (ANALYSIS.md, run 33).

    python -m benchmarks.codec_levels FILE [FILE ...] [--rows N] [--levels 1,3] [--rounds 4]

FILEs are Parquet (e.g. a bronze day's files; then the events spec's writer settings, and its
sort order, are used) or TPC-H ``.csv`` with ``|`` separators (then plain dictionary pages).
Each level writes the same rows in memory, in 200k-row groups, one thread, rounds interleaved;
the median CPU seconds and the size are printed. Not a task: no peer; it says what a level costs.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from lake_pipelines.datasets.spec import DatasetSpec

GROUP_ROWS = 200_000


def _load(paths: list[str], rows: int) -> tuple[pa.Table, DatasetSpec | None]:
    if paths[0].endswith(".csv"):
        options = pcsv.ParseOptions(delimiter="|")
        tables = [pcsv.read_csv(p, parse_options=options) for p in paths]
        return pa.concat_tables(tables).slice(0, rows), None
    from lake_pipelines.datasets import get_dataset

    spec = get_dataset("events")
    table = pa.concat_tables([pq.read_table(p) for p in paths]).slice(0, rows)
    return table.sort_by([(c, "ascending") for c in spec.sort_by]), spec


def _options(table: pa.Table, level: int, spec: DatasetSpec | None) -> dict[str, Any]:
    """The lake's settings at `level` where the spec names none (as an Iceberg table's
    ``write.parquet.compression-level`` sets it), or plain ZSTD for a table without a spec."""
    if spec is None:
        return {"compression": "zstd", "compression_level": level}
    from lake_pipelines.lake.parquet.encodings import fit_encodings
    from lake_pipelines.lake.parquet.options import writer_options

    opts = writer_options(spec, table_properties={"write.parquet.compression-level": str(level)})
    return fit_encodings(opts, spec, table.slice(0, GROUP_ROWS))


def _write(table: pa.Table, opts: dict[str, Any]) -> tuple[float, int]:
    sink = io.BytesIO()
    started = time.process_time()
    with pq.ParquetWriter(sink, table.schema, **opts) as writer:
        for offset in range(0, table.num_rows, GROUP_ROWS):
            writer.write_table(table.slice(offset, GROUP_ROWS), row_group_size=GROUP_ROWS)
    return time.process_time() - started, sink.tell()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--rows", type=int, default=2_500_000)
    parser.add_argument("--levels", default="1,3")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    table, spec = _load(args.files, args.rows)
    levels = [int(x) for x in args.levels.split(",")]
    options = {lv: _options(table, lv, spec) for lv in levels}
    cpu: dict[int, list[float]] = {lv: [] for lv in levels}
    size: dict[int, int] = {}
    for _ in range(args.rounds):
        for lv in levels:
            seconds, size[lv] = _write(table, options[lv])
            cpu[lv].append(seconds)
    print(f"{table.num_rows:,} rows, {table.nbytes / 2**20:.0f} MiB in Arrow")
    for lv in levels:
        print(f"ZSTD({lv}): {statistics.median(cpu[lv]):.2f} CPU s, {size[lv] / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
