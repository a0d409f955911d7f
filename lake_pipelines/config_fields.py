"""How a setting is declared and resolved: its variable, its default, its parsing.

`setting` declares a field of a settings section (`lake_pipelines.config`) with the
environment variable it reads; `Section.from_env` resolves a section's fields when a run or
command starts: an override if given, else the variable, else the default. A bad value raises
`ConfigError` naming the variable. Nothing here knows which settings exist.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Self, TypeVar

from lake_pipelines.errors import ConfigError

_T = TypeVar("_T")
_SIZE_UNITS = {
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class Setting:
    """How one setting is read: its variable, what it is for, its default in words.

    Attributes:
        var: the environment variable.
        doc: one line for the UI and `.env.example`.
        default: the default as a user reads it (``5``, ``file://<LAKE_HOME>``).
        under_home: for a default under LAKE_HOME, its template (``file://{home}``).
        aws_fallbacks: AWS's own variables read, in order, when `var` is unset (as botocore
            reads them, so also skipped when AWS_IGNORE_CONFIGURED_ENDPOINT_URLS is true).
        unset: the value taken when `var` is unset, parsed as the variable's would be (a
            default that depends on the machine, e.g. ``25%`` of its memory).
        share_of_memory: a byte count that may also be given as a share of the memory
            available to the process (``25%``: the container's limit, else the machine's).
    """

    var: str
    doc: str
    default: str
    under_home: str = ""
    aws_fallbacks: tuple[str, ...] = ()
    unset: str = ""
    share_of_memory: bool = False


def setting(
    var: str,
    default: _T,
    doc: str,
    under_home: str = "",
    shown: str = "",
    aws_fallbacks: tuple[str, ...] = (),
    unset: str = "",
    share_of_memory: bool = False,
) -> _T:
    plain = str(default).lower() if isinstance(default, bool) else str(default)
    shown = shown or under_home.format(home="<LAKE_HOME>") or unset or plain
    spec = Setting(var, doc, shown, under_home, aws_fallbacks, unset, share_of_memory)
    return field(default=default, metadata={"setting": spec})


HOME = Setting("LAKE_HOME", "local root used when LAKE_STORE_URL is unset", ".lake")
AWS_IGNORE_ENDPOINTS = "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"


def lake_home(environ: Mapping[str, str] | None = None) -> Path:
    """The resolved LAKE_HOME: the root of every default location."""
    env = os.environ if environ is None else environ
    return Path(env.get(HOME.var) or HOME.default).expanduser().resolve()


class Section:
    """What the settings dataclasses share: resolution from overrides and the environment."""

    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    @classmethod
    def settings(cls) -> dict[str, Setting]:
        """Field name → its `Setting`, in declaration order."""
        return {f.name: f.metadata["setting"] for f in dataclasses.fields(cls)}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Self:
        """The settings resolved now: overrides, else the environment, else the defaults.

        Args:
            environ: the environment to read (default: `os.environ`).
            **overrides: field values that win over the environment; None or an empty
                string means unset. Strings are parsed as the variable would be.

        Raises:
            ConfigError: a value does not fit its setting; names the variable.
        """
        env = os.environ if environ is None else environ
        unknown = set(overrides) - set(cls.settings())
        if unknown:
            raise TypeError(f"{cls.__name__} has no setting {', '.join(sorted(unknown))}")
        types = _type_hints(cls)
        values: dict[str, object] = {}
        for f in dataclasses.fields(cls):
            spec: Setting = f.metadata["setting"]
            raw = overrides.get(f.name)
            if raw is None or raw == "":
                raw = env.get(spec.var, "") or _aws_fallback(spec, env) or spec.unset
            if raw != "":
                values[f.name] = _parse(spec.var, types[f.name], raw, spec.share_of_memory)
            elif spec.under_home:
                values[f.name] = spec.under_home.format(home=lake_home(env))
        return cls(**values)

    @classmethod
    def describe(cls, name: str) -> str:
        """A setting's description with its variable and default, as the UI shows it."""
        spec = cls.settings()[name]
        return f"{spec.doc} (if unset: ${spec.var}, else {spec.default or 'empty'})"


_HINTS: dict[type, dict[str, Any]] = {}


def _type_hints(cls: type) -> dict[str, Any]:
    """The section's field types, resolved once per class: `typing.get_type_hints` evaluates
    every annotation again on each call, and building the code location resolves the
    deployment profile once per asset."""
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _aws_fallback(spec: Setting, env: Mapping[str, str]) -> str:
    """The first of the setting's AWS variables that is set, unless AWS is told to ignore
    them (``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS``)."""
    if env.get(AWS_IGNORE_ENDPOINTS, "").strip().lower() in _TRUE:
        return ""
    return next((env[var] for var in spec.aws_fallbacks if env.get(var)), "")


def _parse(var: str, kind: object, value: object, share_of_memory: bool = False) -> object:
    if kind is bool:
        if isinstance(value, bool):
            return value
        low = str(value).strip().lower()
        if low in _TRUE or low in _FALSE:
            return low in _TRUE
        raise ConfigError(var, value, "expected true or false")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if share_of_memory and str(value).strip().lower().endswith(("%", "auto")):
            return _parse_share(var, value)
        return _parse_int(var, value)
    if typing.get_origin(kind) is Literal:
        choices = typing.get_args(kind)
        if value not in choices:
            *rest, last = choices
            raise ConfigError(var, value, f"use {', '.join(rest)} or {last}")
        return value
    if not isinstance(value, str):
        raise ConfigError(var, value, "expected text")
    return value


def _parse_share(var: str, value: object) -> int:
    """``25%``: that share of the memory available to the process, in bytes; ``auto``: the
    default of `lake.memory.default_query_memory`."""
    from lake_pipelines.lake.memory import default_query_memory, share_of_memory

    if str(value).strip().lower() == "auto":
        return default_query_memory()
    try:
        percent = float(str(value).strip()[:-1])
    except ValueError:
        percent = -1.0
    if not 0 < percent <= 100:
        raise ConfigError(var, value, "expected a share of memory between 0% and 100%")
    return share_of_memory(percent)


def _parse_int(var: str, value: object) -> int:
    """A whole number; size suffixes (``512MiB``, ``2GB``) are accepted for byte counts."""
    text = str(value).strip().replace("_", "")
    low = text.lower()
    for suffix, factor in _SIZE_UNITS.items():
        if low.endswith(suffix):
            try:
                return int(float(low[: -len(suffix)]) * factor)
            except ValueError:
                break
    try:
        return int(text)
    except ValueError:
        raise ConfigError(var, value, "expected a whole number") from None
