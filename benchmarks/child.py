"""One engine run in a process of its own.

``python -m benchmarks.child MODULE OP JSON_ARGS [--profile PATH]`` imports
``benchmarks.engines.MODULE`` (imports are not timed, including pandas, which pyarrow
imports lazily: see `_import_lazy_dependencies`), calls ``MODULE.prepare(OP, **args)`` if
the module has one (not timed either), then ``OP(**args)`` and prints one line
``BENCH_RESULT {...}`` with the in-process wall and CPU seconds of the call and what it returned.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
import time

RESULT_PREFIX = "BENCH_RESULT "


def main(argv: list[str]) -> None:
    module, op, raw = argv[0], argv[1], argv[2]
    profile = argv[4] if len(argv) > 4 and argv[3] == "--profile" else ""
    _import_lazy_dependencies()
    engine = importlib.import_module(f"benchmarks.engines.{module}")
    fn = getattr(engine, op)
    args = json.loads(raw)
    if hasattr(engine, "prepare"):  # set-up that is not part of the task (not timed)
        engine.prepare(op, **args)
    profiler = None
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.005)
        profiler.start()
    cpu0, t0 = time.process_time(), time.perf_counter()
    value = fn(**args)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if profiler is not None and profile:
        profiler.stop()
        with open(profile + ".txt", "w") as out:
            out.write(profiler.output_text(unicode=True, color=False, show_all=False))
        with open(profile + ".html", "w") as out:
            out.write(profiler.output_html())
    result = {"seconds": seconds, "cpu": cpu, "value": value, "vmhwm_mib": _vmhwm_mib()}
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def _import_lazy_dependencies() -> None:
    """Imports that libraries make on first use, done before the clock starts, for every
    engine alike: pyarrow imports pandas (~1.2 s here) the first time it handles a
    timestamp with a time zone, which would otherwise be timed as part of whichever task
    touches one first."""
    with contextlib.suppress(ImportError):
        import pandas  # noqa: F401


def _vmhwm_mib() -> float | None:
    """This process's own peak RSS (the kernel's high-water mark of its address space)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


if __name__ == "__main__":
    main(sys.argv[1:])
