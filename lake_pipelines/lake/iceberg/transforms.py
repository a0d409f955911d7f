"""Partition transforms by the names dataset specs use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyiceberg.transforms import (
    DayTransform,
    HourTransform,
    IdentityTransform,
    MonthTransform,
    YearTransform,
)

# name → a transform instance's maker (pydantic's view of `Transform()` wants a `root`)
TRANSFORMS: dict[str, Callable[[], Any]] = {
    "identity": IdentityTransform,
    "year": YearTransform,
    "month": MonthTransform,
    "day": DayTransform,
    "hour": HourTransform,
}
