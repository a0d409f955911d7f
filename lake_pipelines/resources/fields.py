"""Resource fields that override one settings section of `lake_pipelines.config`."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import Field

from lake_pipelines.config import Section


def setting_field(section: type[Section], name: str) -> Any:
    """An optional field for setting `name`: None (unset) leaves it to the environment.

    Its description, shown in the Dagster UI, names the variable and the default.
    """
    return Field(default=None, description=section.describe(name))


def overrides(resource: object, section: type[Section]) -> dict[str, object]:
    """The resource's field values, keyed by the section's setting names."""
    return {f.name: getattr(resource, f.name) for f in dataclasses.fields(section)}
