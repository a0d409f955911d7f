"""The external sort's merge in a fresh process, reporting how much resident memory it adds.

``python -m lake_pipelines_tests.sort_probe ROWS MEMORY_BYTES SPILL_DIR`` sorts ROWS random
rows (three int64 columns, arriving in chunks in no order, so every buffer spills) with
`sorted_stream` and prints ``{"rows": ..., "bytes": ..., "merge_growth": ...}``: the rows
out, their Arrow bytes, and the most bytes the process held resident during the merge above
what it held when the merge began (the peak is reset there).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator


def main() -> None:
    import numpy as np
    import pyarrow as pa

    from lake_pipelines.lake import memory
    from lake_pipelines.lake.compaction.external_sort import sorted_stream

    rows, memory_bytes, spill_dir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    chunk = 50_000
    rng = np.random.default_rng(7)

    def tables() -> Iterator[pa.Table]:
        for _ in range(rows // chunk):
            keys = rng.integers(0, 1 << 40, chunk)
            yield pa.table({"k": keys, "a": keys * 3, "b": keys * 5})

    out = total = 0
    base = None
    last = -1
    for table in sorted_stream(tables(), ["k"], memory_bytes, spill_dir):
        if base is None:  # the input is spilled: what follows is the merge
            memory.release_memory()
            memory.reset_peak_resident()
            base = memory.resident_bytes()
        keys = table.column("k").to_numpy()
        assert keys[0] >= last and bool((keys[1:] >= keys[:-1]).all())
        last = int(keys[-1])
        out += table.num_rows
        total += table.nbytes
    growth = memory.peak_resident_bytes() - (base or 0)
    print(json.dumps({"rows": out, "bytes": total, "merge_growth": growth}))


if __name__ == "__main__":
    main()
