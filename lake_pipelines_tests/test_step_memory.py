"""A step gives back what it freed before the next step of the run's process."""

from __future__ import annotations

import json
import subprocess
import sys


def test_a_step_hands_the_memory_it_freed_back_before_the_next_step() -> None:
    """In a fresh process: ~300 MB of Arrow data made and dropped inside `step_metrics`.
    pyarrow's pool keeps such pages for reuse (700+ MiB resident after the data was gone),
    which the next step of an in-process run would add its own peak to."""
    done = subprocess.run(
        [sys.executable, "-m", "lake_pipelines_tests.step_memory_probe"],
        capture_output=True,
        text=True,
        check=True,
    )
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    grown = answer["peak"] - answer["start"]
    assert grown > 300 << 20, answer  # the step did hold the data
    assert answer["after"] - answer["start"] < grown / 4, answer
    (line,) = [m for m in answer["logged"] if m.startswith("memory of silver materialize")]
    assert "peak" in line and "after releasing" in line
