"""Our compaction of bronze Hive partitions, when `lake_pipelines` has it.

The compaction engine was written alongside the benchmarks. This adapter calls
``lake_pipelines.lake.compaction.hive.compact_hive(store, spec, options=CompactionOptions(
force=True))`` when that exists and reports why not otherwise, so task 4 then shows "ours: not
available". Compaction works in place, so `prepare` (not timed) hard-links the small files into
the output store's bronze day.
"""

from __future__ import annotations

import importlib
import os
from datetime import date
from pathlib import Path
from typing import Any

from lake_pipelines.datasets.events import SPEC
from lake_pipelines.lake.layout import bronze_dir
from lake_pipelines.lake.storage import ObjectStore

ENTRY_MODULE = "lake_pipelines.lake.compaction.hive"
ENTRY_POINT = "compact_hive"
OPTIONS_MODULE = "lake_pipelines.lake.compaction.options"


def unavailable_reason() -> str | None:
    """Why ours cannot run task 4, or None when it can."""
    try:
        module = importlib.import_module(ENTRY_MODULE)
    except ModuleNotFoundError:
        return f"{ENTRY_MODULE} does not exist yet"
    except Exception as exc:  # a half-written module must not stop the other engines
        return f"{ENTRY_MODULE} does not import: {type(exc).__name__}: {exc}"
    if not callable(getattr(module, ENTRY_POINT, None)):
        return f"{ENTRY_MODULE} has no {ENTRY_POINT}()"
    return None


def prepare(op: str, src: str, out: str, day: str, **_: object) -> None:
    importlib.import_module(ENTRY_MODULE)  # imported here, outside the timed call
    target = Path(out) / bronze_dir(SPEC, date.fromisoformat(day))
    target.mkdir(parents=True, exist_ok=True)
    for name in os.listdir(src):
        if name.endswith(".parquet"):
            os.link(os.path.join(src, name), target / name)


def compact(src: str, out: str, day: str, **_: object) -> dict[str, Any]:
    compact_hive = getattr(importlib.import_module(ENTRY_MODULE), ENTRY_POINT)
    options = importlib.import_module(OPTIONS_MODULE).CompactionOptions(force=True)
    report = compact_hive(ObjectStore(out), SPEC, options=options)
    return {k: v for k, v in report.totals().items() if isinstance(v, int | float)}
