"""No import cycles inside lake_pipelines, and no import a process does not need.

The graph is read from the source with `ast`: every ``import``/``from`` of a lake_pipelines
module, at module level or inside a function, except under ``if TYPE_CHECKING:`` (never run).
A function-level import still counts: one that only dodges a cycle hides it until the function
runs. Importing ``a.b.c`` also runs the ``__init__`` of ``a.b``, so that package is an edge too,
except when it is a package the importing module itself lives in (already imported by then).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq

import lake_pipelines

Graph = dict[str, set[str]]


def _modules(root: Path, package: str) -> dict[str, Path]:
    """Module name -> file, for every ``.py`` under `root` (the package's directory)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement under `node`, skipping the bodies of ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield from _import_nodes_of(other)
            continue
        yield from _import_nodes_of(child)


def _import_nodes_of(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    else:
        yield from _import_nodes(node)


def _targets(
    node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]
) -> set[str]:
    """The modules of `known` that `node`, written in `module`, names."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in known}
    base = node.module or ""
    if node.level:
        anchor = module.split(".")
        if not is_package:
            anchor.pop()
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, *([base] if base else [])])
    named = {f"{base}.{alias.name}" for alias in node.names}
    submodules = named & known
    # `from pkg import name` where `name` is not a submodule reads an attribute of pkg.
    plain = len(submodules) < len(named)
    return submodules | ({base} if plain and base in known else set())


def import_graph(root: Path, package: str) -> Graph:
    """Module -> the package modules it imports (at run time), for the package at `root`."""
    files = _modules(root, package)
    known = set(files)
    graph: Graph = {name: set() for name in files}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
        for node in _import_nodes(ast.parse(path.read_text(), str(path))):
            for target in _targets(node, name, is_package, known):
                parts = target.split(".")
                parents = {".".join(parts[:i]) for i in range(1, len(parts))}
                graph[name] |= {target} | {p for p in parents if p in known and p not in own}
        graph[name].discard(name)
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """One cycle (as a path that returns to its start) per strongly connected component."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan; the package graph is small enough for recursion
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_in(graph, c) for c in components]


def _cycle_in(graph: Graph, component: set[str]) -> list[str]:
    """A shortest path from the component's first module back to itself."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    return [*paths[v], start]
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {start}")  # a component always has one


def test_lake_pipelines_has_no_import_cycle() -> None:
    root = Path(lake_pipelines.__file__).parent
    graph = import_graph(root, "lake_pipelines")
    assert len(graph) > 50 and graph["lake_pipelines.lake.iceberg.tables"]
    found = [" -> ".join(c) for c in cycles(graph)]
    assert not found, "import cycles:\n" + "\n".join(found)


def test_the_graph_sees_function_level_and_relative_imports_but_not_type_checking(
    tmp_path: Path,
) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from pkg.sub import b\n")
    (pkg / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from pkg import c\n"
        "def f():\n    from .sub import b\n"
    )
    (pkg / "sub" / "b.py").write_text("import pkg.a\n")
    (pkg / "c.py").write_text("from pkg.a import f\n")
    graph = import_graph(pkg, "pkg")
    assert graph["pkg.a"] == {"pkg.sub.b", "pkg.sub"}
    assert graph["pkg.sub.b"] == {"pkg.a"}  # its own package pkg.sub is no edge
    assert graph["pkg.c"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.sub.b", "pkg.a"]]


# -- what a process imports ------------------------------------------------------------------
#
# Dagster loads the code location in every run, sensor tick and UI reload, and task 7 of the
# benchmarks times one bronze partition through `dagster asset materialize` against Dagster's
# own floor (benchmarks/ANALYSIS.md, run 25). These modules were each imported by loading the
# code location once, and a bronze partition never uses them.
NOT_AT_LOAD = (
    "datafusion",  # gold's queries: only the DataFrame-API table imports it, when it runs
    "urllib.request",  # the Pushgateway client, only when a gateway is set
    "http.client",
    "pandas",  # pyarrow imports it when handed Python values; the contract's pandera
    "pandera",
    "pyiceberg",  # silver and gold: their steps import it
    "sqlalchemy",
    "dagster_aws",
    "s3fs",
    "gcsfs",
    "adlfs",
    "pyarrow.dataset",  # imports pandas
)
# ... and of those, what a bronze partition's whole run never imports (Dagster's own SQLite
# storage brings sqlalchemy; the contract cache keeps pandera and pandas out, test_arrow.py).
NOT_IN_A_BRONZE_RUN = tuple(m for m in NOT_AT_LOAD if m != "sqlalchemy")

_LOADED = """
import json, sys
import lake_pipelines.definitions
print(json.dumps(sorted(m for m in {names!r} if m in sys.modules)))
"""

_AFTER_THE_RUN = """
import atexit, json, sys
names = {names!r}
atexit.register(lambda: print("IMPORTED", json.dumps(sorted(m for m in names if m in sys.modules))))
from dagster._cli import main
sys.argv = ["dagster", "asset", "materialize", "-m", "lake_pipelines.definitions",
            "--select", "lake/bronze/events", "--partition", {day!r}]
main()
"""


def test_loading_the_code_location_imports_nothing_a_bronze_partition_does_not_use() -> None:
    probe = _LOADED.format(names=NOT_AT_LOAD)
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_a_bronze_partition_through_the_cli_imports_none_of_them(tmp_path: Path) -> None:
    from lake_pipelines.datasets.events import SPEC
    from lake_pipelines.lake.ingest.validation import compile_contract
    from lake_pipelines.lake.storage import ObjectStore
    from lake_pipelines.sample_data import generate_events
    from lake_pipelines_tests.support import LAKE_VARIABLES

    lake, home = tmp_path / "lake", tmp_path / "home"
    store = ObjectStore(str(lake))
    (day,) = generate_events(store, date(2026, 11, 1), 1, 200, seed=5, bad_rows=False)
    compile_contract(SPEC)  # the compiled contract on disk, as after any first run
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "LAKE_HOME": str(lake), "DAGSTER_HOME": str(home)}
    for var in LAKE_VARIABLES:
        env.pop(var, None)
    probe = _AFTER_THE_RUN.format(names=NOT_IN_A_BRONZE_RUN, day=day.day.isoformat())
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    imported = next(line for line in done.stdout.splitlines() if line.startswith("IMPORTED"))
    assert json.loads(imported.removeprefix("IMPORTED ")) == []
    # the run did the work: every landed row is in the day's bronze Parquet files
    files = list((lake / SPEC.bronze_prefix).rglob("*.parquet"))
    assert files and sum(pq.read_metadata(f).num_rows for f in files) == day.valid.num_rows


def _fresh_python(probe: str, unset: str, **env: str) -> str:
    """What `probe` prints in a fresh interpreter without the variable `unset`, plus `env`."""
    environ = {k: v for k, v in os.environ.items() if k != unset}
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={**environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout.strip()


def test_numpy_starts_no_blas_thread_pool_unless_asked() -> None:
    # The lake does no linear algebra; OpenBLAS's pool cost every process ~70 ms (run 25).
    probe = (
        "import os, lake_pipelines.definitions, numpy\n"
        "threads = next(l for l in open('/proc/self/status') if l.startswith('Threads:'))\n"
        "print(os.environ['OPENBLAS_NUM_THREADS'], int(threads.split()[1]))"
    )

    def run(**env: str) -> tuple[str, int]:
        value, threads = _fresh_python(probe, "OPENBLAS_NUM_THREADS", **env).split()
        return value, int(threads)

    default, chosen = run(), run(OPENBLAS_NUM_THREADS="2")
    assert default[0] == "1" and chosen[0] == "2"  # a value set in the environment wins
    assert default[1] < chosen[1]  # with two, numpy's import started a BLAS worker thread


def test_the_lake_chooses_jemalloc_for_pyarrow_unless_told_otherwise() -> None:
    # mimalloc kept each thread's freed pages: a 20M-row day's run peaked ~110-160 MiB higher
    # (benchmarks/ANALYSIS.md, run 41)
    probe = (
        "import lake_pipelines.definitions, pyarrow as pa\n"
        "pa.array(range(10)); print(pa.default_memory_pool().backend_name)"
    )
    unset = "ARROW_DEFAULT_MEMORY_POOL"
    assert _fresh_python(probe, unset) == "jemalloc"
    assert _fresh_python(probe, unset, **{unset: "mimalloc"}) == "mimalloc"  # a value set wins
