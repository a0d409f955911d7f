"""Every fenced command of README.md runs, verbatim, against a lake built as `make demo` builds it.

`uv run ...` lines go through a stand-in `uv` that runs the rest of the line in this test's
environment (the project's venv first on PATH), so the line itself is what a user types.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lake_pipelines_tests.support import LAKE_VARIABLES

ROOT = Path(__file__).resolve().parents[1]
# Fenced lines that are not run here, and why.
NOT_RUN = {
    "make demo": "what this test does step by step (sample data, then the backfill command)",
    "make test": "the test suite itself",
    "make cluster": "starts the distributed profile's services: `make test-cluster` runs them",
    "set -a; . .cluster/cluster.env; set +a": "reads the file `make cluster` writes",
    "make cluster-down": "stops what `make cluster` started",
    "export LAKE_PROMETHEUS_PUSHGATEWAY=http://pushgateway.monitoring:9091": (
        "a deployment's setting: test_prometheus.py pushes to a real gateway"
    ),
}
# What some commands must print, beyond exiting with 0 and no traceback.
EXPECT = {
    "uv run lake-pipelines summary": "* gold rows: the day's rows summed over the 3 gold tables",
    "--older-than-days 7 --retain-last 10 --dry-run": "(dry run; nothing changed)",
    "--tag day-2026-11-02 --columns event_id,ts --limit 5": "(5 rows)",
    "uv run dg check defs": "All definitions loaded successfully",
}
UV = """#!/bin/sh
# stands in for `uv run [--frozen] CMD...`: runs CMD in the test's environment
[ "$1" = run ] || { echo "only 'uv run' is supported here" >&2; exit 99; }
shift
[ "$1" = --frozen ] && shift
exec "$@"
"""


def fenced_commands(text: str) -> list[str]:
    """The command lines of the README's ```bash blocks: continuations joined, comments cut."""
    commands = []
    for block in re.findall(r"^\s*```bash\n(.*?)^\s*```", text, re.MULTILINE | re.DOTALL):
        joined = re.sub(r"\\\n\s*", "", block)
        for line in joined.splitlines():
            line = re.sub(r"\s{2,}#.*$", "", line.strip())
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def test_the_readme_has_the_commands_this_test_runs() -> None:
    commands = fenced_commands((ROOT / "README.md").read_text())
    assert "uv run lake-pipelines tables" in commands
    assert any(c.startswith("uv run dg launch") for c in commands)
    assert any(c.startswith("uv run dagster asset materialize") for c in commands)
    assert all(c.startswith("uv run ") or c in NOT_RUN for c in commands), commands
    for needle in EXPECT:
        assert any(needle in c for c in commands), needle


@pytest.mark.e2e
@pytest.mark.timeout(1800)
def test_every_fenced_command_of_the_readme_runs_on_a_demo_lake(tmp_path: Path) -> None:
    lake, home, bin_dir = tmp_path / "lake", tmp_path / "dagster", tmp_path / "bin"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    bin_dir.mkdir()
    (bin_dir / "uv").write_text(UV)
    (bin_dir / "uv").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in LAKE_VARIABLES}
    venv_bin = str(Path(sys.executable).parent)
    env.update(
        LAKE_HOME=str(lake),
        DAGSTER_HOME=str(home),
        PATH=os.pathsep.join([str(bin_dir), venv_bin, env.get("PATH", "")]),
        VIRTUAL_ENV=str(Path(venv_bin).parent),
        NO_COLOR="1",
    )
    # what `make demo` does before its backfill: the sample week in the landing zone
    subprocess.run(
        [sys.executable, "-m", "lake_pipelines.sample_data", "--store", str(lake)],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    ran: set[str] = set()
    for command in fenced_commands((ROOT / "README.md").read_text()):
        if command in NOT_RUN or command in ran:
            continue
        ran.add(command)
        done = subprocess.run(
            ["bash", "-c", command],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=900,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"{command}\n{output[-3000:]}"
        assert "Traceback" not in output, f"{command}\n{output[-3000:]}"
        for needle, expected in EXPECT.items():
            if needle in command:
                assert expected in output, f"{command}\n{output[-3000:]}"
    assert len(ran) >= 15
