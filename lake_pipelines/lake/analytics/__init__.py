"""DataFusion over the lake: sessions, our functions, the named gold queries."""

import os

# DataFusion's library brings its own mimalloc, which reads its options once, as the library
# loads (the first import of datafusion, which every module here does). By default it keeps
# the pages a query freed for reuse, and returns them only when the thread that freed them
# allocates again: the threads of DataFusion's runtime sit idle after a gold step, so each
# step left 0.1-0.2 GiB with the process at 2M rows, and at 20M rows ~1 GiB (a 2M-row day's
# daily metrics: 520 MiB resident after the query against 288 MiB with 0;
# benchmarks/ANALYSIS.md, run 23). 0 returns them as they are freed. A setting of the
# user's own wins.
os.environ.setdefault("MIMALLOC_PURGE_DELAY", "0")
