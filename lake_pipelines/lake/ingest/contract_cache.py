"""Compiled contracts kept on disk, so a run whose contract compiles wholly to Arrow never
imports pandera (measured: 0.57 s less CPU for a one-day bronze process, 2.40 s → 1.83 s;
pandas itself is still imported, by pyarrow, whenever an array is built from Python values).

pandera stays the language a contract is written in. The first run that validates a dataset
builds its pandera schema and compiles it (`validation.compile_contract`); when no check is
left to pandera, the compiled form (column, check name, its statistics, whether it ignores
nulls, required and unique columns) is written next to the contract's module, in its
``__pycache__`` folder, like Python's own bytecode. Later processes rebuild the Arrow kernels
from it. The file's name holds a digest of what the compilation depended on:

- the contract function's own code, and the source of the module that defines it (so editing
  the contract, or a constant of that module it uses, such as the allowed values of an
  ``isin``, changes it); a function with a closure or default arguments is not cached;
- the dataset's Arrow schema, the pandera version, and this cache's format.

A contract that reads constants from *another* module is not covered by the digest: declare
them in the contract's module (as `datasets/events.py` does), or delete ``__pycache__``.
Nothing is cached for a contract given as a pandera object (pandera is then loaded anyway),
nor for one with checks Arrow cannot run. A folder that cannot be written is skipped.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any

from lake_pipelines.datasets.spec import DatasetSpec

FORMAT = 1


def _contract_source(spec: DatasetSpec) -> Path | None:
    contract = spec.contract
    if hasattr(contract, "validate") or not inspect.isfunction(contract):
        return None  # a pandera schema object: pandera is loaded already
    if contract.__closure__ or contract.__defaults__ or contract.__kwdefaults__:
        return None  # depends on values the sources do not show
    try:
        source = inspect.getsourcefile(contract)
    except TypeError:
        return None
    return Path(source) if source else None


def cache_path(spec: DatasetSpec) -> Path | None:
    """Where the compiled form of `spec`'s contract is kept, or None if it is not cached."""
    source = _contract_source(spec)
    if source is None or not source.is_file():
        return None
    try:
        pandera_version = metadata.version("pandera")
    except metadata.PackageNotFoundError:
        return None
    digest = hashlib.sha256()
    for part in (
        str(FORMAT),
        pandera_version,
        spec.name,
        str(spec.schema),
    ):
        digest.update(part.encode() + b"\0")
    code = spec.contract.__code__  # type: ignore[union-attr]
    # Which function of the module: its name, code and where it is (columns tell two lambdas
    # on one line apart). Not marshal: its bytes depend on reference counts.
    digest.update(f"{code.co_qualname}\0{list(code.co_positions())}\0".encode() + code.co_code)
    digest.update(source.read_bytes())
    name = f"{source.stem}.{spec.name}.contract-{digest.hexdigest()[:20]}.json"
    return source.parent / "__pycache__" / name


def load(spec: DatasetSpec) -> dict[str, Any] | None:
    """The compiled contract's record, if a process wrote one for the current sources."""
    path = cache_path(spec)
    if path is None:
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("format") == FORMAT else None


def store(spec: DatasetSpec, record: dict[str, Any]) -> None:
    """Keep `record` for later processes; best effort, atomically (write, then rename)."""
    path = cache_path(spec)
    if path is None:
        return
    text = json.dumps({"format": FORMAT, **record}, sort_keys=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(exist_ok=True)
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
