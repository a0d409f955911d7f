"""Hive compaction SIGKILLed at every step converges on a re-run."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from lake_pipelines.lake.compaction.hive import JOURNAL_NAME, compact_hive
from lake_pipelines.lake.layout import bronze_dir
from lake_pipelines.lake.storage import ObjectStore
from lake_pipelines_tests.lake.compaction.data import (
    DAY,
    KILL_POLICY,
    KILL_SPEC,
    SPEC,
    TUNING,
    hive_rows,
    land_tiny_files,
)
from lake_pipelines_tests.support import rows

# -- Hive: killed mid-run -----------------------------------------------------------------------

# One driver process imports the package once, then forks a child per scenario; each child
# compacts its own copy of the lake and is SIGKILLed at its crash point (no cleanup runs): by
# a hook that kills it at an exact step, or by the driver at a random moment.
DRIVER = r"""
import dataclasses, json, os, random, signal, sys, time
from lake_pipelines.datasets import get_dataset
from lake_pipelines.datasets.spec import CompactionPolicy
from lake_pipelines.lake.compaction import hive as compaction_hive
from lake_pipelines.lake.compaction.options import CompactionOptions
from lake_pipelines.lake.parquet import writer as parquet
from lake_pipelines.lake.storage import ObjectStore

args = json.loads(sys.argv[1])
spec = dataclasses.replace(get_dataset("events"), compaction=CompactionPolicy(**args["policy"]))


def crash_after(cls, name, after):
    real, count = getattr(cls, name), [0]

    def wrapper(*a, **k):
        count[0] += 1
        if count[0] > after:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*a, **k)

    setattr(cls, name, wrapper)


def crash_after_deleting(after):
    real = ObjectStore.delete

    def delete(self, keys):
        if len(keys) > after:  # the inputs: delete some, then die
            real(self, keys[:after])
            os.kill(os.getpid(), signal.SIGKILL)
        real(self, keys)

    ObjectStore.delete = delete


def child(stage, after):
    if stage == "write":  # after `after` row groups of the outputs
        crash_after(parquet.RollingParquetWriter, "_write_group", after)
    elif stage == "promote":  # the 1st promotion is the journal's, then the outputs'
        crash_after(ObjectStore, "promote", after)
    elif stage == "delete":
        crash_after_deleting(after)
    compaction_hive.compact_hive(ObjectStore(args["url_of"][stage + str(after)]), spec,
                                 options=CompactionOptions(**args["tuning"]))


status = {}
for stage, after in args["points"]:
    pid = os.fork()
    if pid == 0:
        child(stage, after)
        os._exit(0)
    if stage == "random":
        time.sleep(random.Random(args["seed"]).uniform(0.05, 0.9) * args["duration"])
        os.kill(pid, signal.SIGKILL)
    _, code = os.waitpid(pid, 0)
    status[stage + str(after)] = os.waitstatus_to_exitcode(code)
print(json.dumps(status))
"""


def _layout(store: ObjectStore) -> dict[str, list | None]:
    """Every file of the bronze layer (hidden ones too) → its rows, for exact comparisons."""
    out: dict[str, list | None] = {}
    for root, _, names in os.walk(store.path(SPEC.bronze_prefix)):
        for name in names:
            path = os.path.join(root, name)
            out[store.key_of(path)] = (
                rows(pq.read_table(path)) if name.endswith(".parquet") else None
            )
    return out


def _converge(store: ObjectStore) -> int:
    """Compact until nothing is flagged (outputs can still be small under this tiny policy)."""
    for runs in range(1, 5):
        if not compact_hive(store, KILL_SPEC, options=TUNING).results:
            return runs
    raise AssertionError("compaction does not converge")


def test_a_killed_compaction_converges_on_rerun(tmp_path: Path) -> None:
    seed_lake = ObjectStore(f"file://{tmp_path / 'seed'}")
    original = land_tiny_files(seed_lake, DAY, 150, 4, seed=8)
    reference = ObjectStore(f"file://{tmp_path / 'reference'}")
    shutil.copytree(seed_lake.root, reference.root)
    started = time.perf_counter()
    compact_hive(reference, KILL_SPEC, options=TUNING)
    duration = time.perf_counter() - started
    assert sum(k.endswith(".parquet") and "/compact-" in k for k in _layout(reference)) >= 3
    _converge(reference)
    expected = _layout(reference)

    points = [
        ("write", 3),  # outputs half written, no journal yet
        ("promote", 0),  # killed while promoting the journal
        ("promote", 2),  # journal written, one output promoted
        ("delete", 40),  # all outputs visible, 40 of the inputs deleted
        ("random", 0),  # anywhere
    ]
    lakes = {}
    for stage, after in points:
        lakes[stage + str(after)] = ObjectStore(f"file://{tmp_path / f'{stage}{after}'}")
        shutil.copytree(seed_lake.root, lakes[stage + str(after)].root)
    args = {
        "points": points,
        "url_of": {name: lake.url for name, lake in lakes.items()},
        "policy": dataclasses.asdict(KILL_POLICY),
        "tuning": dataclasses.asdict(TUNING),
        "duration": duration,
        "seed": 7,
    }
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    status = json.loads(done.stdout.strip().splitlines()[-1])
    killed = -signal.SIGKILL
    assert [status[n] for n in ("write3", "promote0", "promote2", "delete40")] == [killed] * 4
    assert status["random0"] in (0, killed)
    journal = f"{bronze_dir(SPEC, DAY)}/{JOURNAL_NAME}"
    assert [lakes[n].exists(journal) for n in ("write3", "promote0", "promote2", "delete40")] == [
        False,
        False,
        True,
        True,
    ]
    everyone = {r["event_id"] for r in rows(original)}
    for name, lake in lakes.items():
        # At the crash, readers see every row (some twice mid-swap: outputs come first).
        assert everyone <= set(hive_rows(lake).column("event_id").to_pylist()), name
        _converge(lake)  # the re-run (and whatever compaction would do next anyway)
        assert rows(hive_rows(lake)) == rows(original), name
        assert _layout(lake) == expected, name  # same files, same rows; no temp, no journal
