"""One step that allocates and frees a lot of Arrow memory, in a fresh process.

``python -m lake_pipelines_tests.step_memory_probe`` runs a body that builds and sorts ~300 MB
of Arrow data and drops it, inside `step_metrics` as an asset does, and prints
``{"start": ..., "peak": ..., "after": ..., "logged": [...]}``: resident bytes before the step,
at its peak and after it, and the lines it logged.
"""

from __future__ import annotations

import json
from typing import Any


class _Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str, *_: Any, **__: Any) -> None:
        self.lines.append(message)

    warning = info


class _Context:
    def __init__(self) -> None:
        self.log = _Log()


def main() -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from lake_pipelines.assets.observability import step_metrics
    from lake_pipelines.lake import memory

    context = _Context()
    start = memory.resident_bytes()
    with step_metrics(context, "events", "silver", "materialize"):
        column = pa.chunked_array([np.arange(20_000_000)])
        parts = [pc.multiply(column.slice(i, 100_000), 2) for i in range(0, len(column), 100_000)]
        rows = pa.concat_tables([pa.table({"x": p}) for p in parts]).sort_by("x")
        peak = memory.resident_bytes()
        del column, parts, rows
    after = memory.resident_bytes()
    print(json.dumps({"start": start, "peak": peak, "after": after, "logged": context.log.lines}))


if __name__ == "__main__":
    main()
