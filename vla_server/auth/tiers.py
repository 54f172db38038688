"""Service tiers: how many concurrent sessions a key may hold (`/v1/stream` and openpi together),
the highest `target_fps` it may ask for, and the request rate of its openpi connections. Whether
a key may change things (load/unload models, arena runs, votes) is a separate `admin` flag on the
key, not a tier."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tier:
    """One tier.

    Attributes:
        name: ``free``, ``pro`` or ``enterprise``.
        max_sessions: concurrent sessions per key (both endpoints), None for unlimited.
        max_fps: highest allowed `target_fps`, Hz.
        max_request_hz: openpi requests per second across the key's connections (faster
            clients are slowed to it), None for unlimited.
    """

    name: str
    max_sessions: int | None
    max_fps: float
    max_request_hz: float | None


TIERS: dict[str, Tier] = {
    "free": Tier("free", 1, 10.0, 10.0),
    "pro": Tier("pro", 3, 30.0, 30.0),
    "enterprise": Tier("enterprise", None, 50.0, None),
}


def get_tier(name: str) -> Tier:
    """Returns the tier called `name`, or raises ValueError listing the tiers."""
    try:
        return TIERS[name]
    except KeyError:
        raise ValueError(f"unknown tier {name!r}; expected one of {sorted(TIERS)}") from None
