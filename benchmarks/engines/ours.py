"""Our data path, exactly as the bronze asset runs it, minus Dagster.

Events go through `lake.bronze.ingest_day` (list the day's landed files, stream, convert,
pandera contract, sort, write Hive Parquet, quarantine, row accounting, atomic commit). The
output store is the engine's output directory; the landed files are hard-linked into its
``landing/events/<day>/`` so nothing is copied. TPC-H lineitem has no days, so it goes through
the same lower-level functions bronze is made of: `read_file` → `validate` →
`RollingParquetWriter` → `commit_files`; its date-only ``l_shipdate`` needs a one-line fix of
the lake's timestamp parsing, applied here in-process while the lake lacks it
(`date_only_patch`).
"""

from __future__ import annotations

import os
import shutil
from datetime import date, datetime, timedelta

import pandera.pandas as pdr
import pyarrow as pa

from benchmarks.schemas import LINEITEM
from lake_pipelines.datasets.events import SPEC
from lake_pipelines.datasets.spec import DatasetSpec
from lake_pipelines.lake.bronze import ingest_day
from lake_pipelines.lake.ingest import coerce
from lake_pipelines.lake.ingest.readers import read_file
from lake_pipelines.lake.ingest.validation import validate
from lake_pipelines.lake.layout import landing_dir
from lake_pipelines.lake.parquet.options import ENCODERS
from lake_pipelines.lake.parquet.writer import RollingParquetWriter, commit_files
from lake_pipelines.lake.storage import ObjectStore

# Zone offsets only count after a time of day: the lake's pattern also takes the "-13" of a
# date-only "1996-03-13" for an offset, and then rejects every TPC-H date (see RESULTS.md).
_ZONE_AFTER_TIME = r"\d{2}:\d{2}(:\d{2}([.,]\d+)?)?\s*(Z|z|[+-]\d{2}(:?\d{2})?)$"


def lineitem_spec() -> DatasetSpec:
    """lineitem as a dataset of ours, with a contract of the kind a real dataset would have."""
    contract = pdr.DataFrameSchema(
        {
            "l_quantity": pdr.Column(float, pdr.Check.in_range(1, 50)),
            "l_discount": pdr.Column(float, pdr.Check.in_range(0, 0.1)),
            "l_returnflag": pdr.Column(str, pdr.Check.isin(["A", "N", "R"])),
            "l_linestatus": pdr.Column(str, pdr.Check.isin(["F", "O"])),
        },
        strict=False,
        coerce=False,
    )
    return DatasetSpec(
        name="lineitem",
        description="TPC-H lineitem",
        schema=LINEITEM,
        timestamp_column="l_shipdate",
        start_date="1992-01-01",
        contract=contract,
    )


def date_only_patch() -> bool:
    """Apply `_ZONE_AFTER_TIME` if the lake still rejects date-only timestamps; say if it did."""
    target = pa.timestamp("us", tz="UTC")
    if not coerce.convert_column(pa.array(["1996-03-13"]), target)[1]:
        return False
    coerce._ZONE = _ZONE_AFTER_TIME
    return True


def link_file(path: str, target: str) -> None:
    """Land `path` as `target` without copying its bytes: a hard link (the cached inputs and
    the outputs share the bench folder), else a copy. Not a symbolic link: bronze follows no
    link that points outside the landing folder, it quarantines the file."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.path.lexists(target):
        return
    try:
        os.link(path, target)
    except OSError:
        shutil.copyfile(path, target)


def _land(store: ObjectStore, inputs: list[str], days: list[str]) -> list[date]:
    """Link each input file into its day's landing directory (inputs and days pair up)."""
    out = []
    for path, day in zip(inputs, days, strict=True):
        d = date.fromisoformat(day)
        link_file(path, store.path(f"{landing_dir(SPEC, d)}/{os.path.basename(path)}"))
        out.append(d)
    return sorted(set(out))


def _ingest(inputs: list[str], out: str, days: list[str]) -> dict[str, int]:
    store = ObjectStore(out)
    totals = {"rows_read": 0, "rows_written": 0, "rows_quarantined": 0, "files_quarantined": 0}
    for d in _land(store, inputs, days):
        report = ingest_day(store, SPEC, d)
        totals["rows_read"] += report.rows_read
        totals["rows_written"] += report.rows_written
        totals["rows_quarantined"] += report.rows_quarantined
        totals["files_quarantined"] += len(report.file_rejects)
    return totals


def _lineitem(inputs: list[str], out: str) -> dict[str, int]:
    spec = lineitem_spec()
    patched = date_only_patch()
    store = ObjectStore(out)
    start = datetime.fromisoformat("1990-01-01T00:00:00+00:00")
    end = start + timedelta(days=365 * 15)
    totals = {"rows_read": 0, "rows_written": 0, "rows_quarantined": 0}
    for path in inputs:
        key = f"landing/{os.path.basename(path)}"
        link_file(path, store.path(key))
        writer = RollingParquetWriter(store, spec, "bronze/lineitem", "part", encoders=ENCODERS)
        with writer:
            for batch in read_file(store, key, spec):
                totals["rows_read"] += batch.rows_read
                checked = validate(batch, spec, start, end, key)
                totals["rows_quarantined"] += len(checked.rejects)
                writer.write(checked.table)
        commit_files(store, writer.files)
        totals["rows_written"] += sum(f.rows for f in writer.files)
    return totals | {"zone_patch": int(patched)}


def csv_to_parquet(
    inputs: list[str], out: str, dataset: str, days: list[str], **_: object
) -> dict[str, int]:
    if dataset == "lineitem":
        return _lineitem(inputs, out)
    return _ingest(inputs, out, days)


def ndjson_to_parquet(inputs: list[str], out: str, days: list[str], **_: object) -> dict[str, int]:
    return _ingest(inputs, out, days)
