"""One silver commit in a fresh process, reporting the peak of Arrow's memory pool.

``python -m lake_pipelines_tests.silver_probe`` reads one JSON request on stdin (``store``,
``catalog_db``, ``dataset``, ``day`` and `SilverOptions` fields under ``options``), commits
the day and prints ``{"rows": ..., "peak": ...}``: the rows committed and the most bytes the
default memory pool held at once, which nothing before the commit has touched.
"""

from __future__ import annotations

import json
import sys
from datetime import date


def main() -> None:
    import pyarrow as pa
    from pyiceberg.catalog.sql import SqlCatalog

    from lake_pipelines.datasets import get_dataset
    from lake_pipelines.lake.silver import SilverOptions, commit_day
    from lake_pipelines.lake.storage import ObjectStore

    req = json.loads(sys.stdin.read())
    store = ObjectStore(req["store"])
    catalog = SqlCatalog(
        "lake", uri=f"sqlite:///{req['catalog_db']}", warehouse=store.uri("warehouse")
    )
    spec = get_dataset(req["dataset"])
    day = date.fromisoformat(req["day"])
    report = commit_day(store, catalog, spec, day, "probe", [], SilverOptions(**req["options"]))
    pool = pa.default_memory_pool()
    print(json.dumps({"rows": report.rows_committed, "peak": pool.max_memory()}))


if __name__ == "__main__":
    main()
