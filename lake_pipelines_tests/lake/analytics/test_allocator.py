"""A gold query's memory goes back to the OS once the query is done."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_memory_a_query_freed_does_not_stay_with_the_process() -> None:
    """In a fresh process: DataFusion's mimalloc kept a third of what a query freed (its
    runtime's threads sit idle after it and never return their pages) before the lake set
    ``MIMALLOC_PURGE_DELAY=0`` as it loads DataFusion."""
    env = {k: v for k, v in os.environ.items() if k != "MIMALLOC_PURGE_DELAY"}
    done = subprocess.run(
        [sys.executable, "-m", "lake_pipelines_tests.gold_memory_probe"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    grown = answer["peak"] - answer["before"]
    assert grown > 200 << 20, answer  # the query did take memory
    assert answer["after"] - answer["before"] < grown / 5, answer
