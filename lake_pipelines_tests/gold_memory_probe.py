"""A memory-hungry DataFusion query in a fresh process: what stays resident once it is done.

``python -m lake_pipelines_tests.gold_memory_probe`` groups 2M rows by a distinct string key
in a session from `make_session`, drops the session and result, releases what the process
freed (`lake.memory.release_memory`, as a step's end does) and prints ``{"before": ...,
"peak": ..., "after": ...}`` in resident bytes.
"""

from __future__ import annotations

import gc
import json


def main() -> None:
    import numpy as np
    import pyarrow as pa

    from lake_pipelines.lake import memory
    from lake_pipelines.lake.analytics.session import SessionSettings, make_session

    n = 2_000_000
    keys = pa.array(np.char.add("user-", np.arange(n).astype(str)))
    data = pa.table({"k": keys, "v": np.arange(n, dtype=np.float64)})
    ctx = make_session(SessionSettings(1, 65536, 0))
    ctx.register_record_batches("t", [data.to_batches(max_chunksize=65536)])
    gc.collect()
    memory.release_memory()
    before = memory.resident_bytes()
    memory.reset_peak_resident()
    result = ctx.sql("SELECT k, COUNT(*) AS n, SUM(v) AS s FROM t GROUP BY k").to_arrow_table()
    assert result.num_rows == n
    peak = memory.peak_resident_bytes()
    del ctx, result
    gc.collect()
    memory.release_memory()
    print(json.dumps({"before": before, "peak": peak, "after": memory.resident_bytes()}))


if __name__ == "__main__":
    main()
