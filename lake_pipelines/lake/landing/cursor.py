"""Where a landing sensor is: the high-water second, recently handled files, files waiting
for their day. Serialized into the sensor cursor."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from lake_pipelines.errors import SensorCursorError

LOOKBACK_SECONDS = 600
CURSOR_VERSION = 1


@dataclass
class LandingCursor:
    """Where a landing sensor is: see the module docstring."""

    high_water: int = 0
    seen: dict[str, int] = field(default_factory=dict)  # file id -> arrival second
    deferred: dict[str, list[str]] = field(default_factory=dict)  # day -> file ids

    def floor(self, lookback: int) -> int | None:
        """The earliest arrival second a listing must still return; None: list everything."""
        return self.high_water - lookback if self.high_water else None

    @classmethod
    def parse(cls, text: str | None, sensor: str) -> LandingCursor:
        if not text:
            return cls()
        try:
            raw = json.loads(text)
            if raw.get("v") != CURSOR_VERSION:
                raise SensorCursorError(sensor, f"version {raw.get('v')!r}")
            return cls(
                high_water=int(raw["hw"]),
                seen={str(k): int(v) for k, v in raw["seen"].items()},
                deferred={str(d): [str(i) for i in ids] for d, ids in raw["deferred"].items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SensorCursorError(sensor, f"{type(exc).__name__}: {exc}") from exc

    def dump(self) -> str:
        raw = {"v": CURSOR_VERSION, "hw": self.high_water, "seen": self.seen}
        raw["deferred"] = self.deferred
        return json.dumps(raw, separators=(",", ":"), sort_keys=True)
