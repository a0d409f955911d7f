"""A process that ingests days on request, so a test survives whatever the input does to it.

`python -m lake_pipelines_tests.ingest_worker` reads one JSON request per line on stdin
(``{"store": url, "dataset": name, "day": "YYYY-MM-DD", "block_bytes": n, "unknown_columns":
mode}``), runs `ingest_day`, and answers one JSON line on stdout with the report's counts, or
``{"error": ...}`` when ingestion raised. A segfault or a hang ends or stalls the process: the
parent (`IngestWorker` in support.py) tells those apart from answers and starts a new one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import traceback
from datetime import date


def _serve() -> None:
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # nothing a library prints can garble the answers
    from lake_pipelines.datasets import get_dataset
    from lake_pipelines.lake.bronze import ingest_day
    from lake_pipelines.lake.storage import ObjectStore

    for line in sys.stdin:
        req = json.loads(line)
        spec = get_dataset(req["dataset"])
        if req.get("unknown_columns"):
            spec = dataclasses.replace(spec, unknown_columns=req["unknown_columns"])
        kwargs = {"block_bytes": req["block_bytes"]} if req.get("block_bytes") else {}
        try:
            report = ingest_day(
                ObjectStore(req["store"]), spec, date.fromisoformat(req["day"]), **kwargs
            )
            answer = {
                "rows_read": report.rows_read,
                "rows_written": report.rows_written,
                "rows_quarantined": report.rows_quarantined,
                "file_rejects": [[r.source, r.line, r.reason] for r in report.file_rejects],
            }
        except Exception as exc:
            answer = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
        out.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    _serve()
