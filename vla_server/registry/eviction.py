"""Which loaded model to evict: LRU (least recently used) or LFU (least frequently used: fewest
requests since it was loaded, ties broken by LRU). Pinned models, models with requests in
flight and models that are not warm are never candidates; among candidates, models with no open
stream session go first."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

EVICTION_POLICIES = ("lru", "lfu")


@dataclass(frozen=True)
class Candidate:
    """What eviction looks at for one warm model."""

    model_id: str
    last_used: float  # monotonic s
    use_count: int  # requests since loaded
    sessions: int  # open stream sessions
    pinned: bool = False
    inflight: int = 0


def pick_victim(candidates: Iterable[Candidate], policy: str) -> str | None:
    """The model id to evict, or None when nothing may be evicted."""
    if policy not in EVICTION_POLICIES:
        raise ValueError(f"eviction policy: expected one of {EVICTION_POLICIES}, got {policy!r}")
    pool = [c for c in candidates if not c.pinned and c.inflight == 0]
    if not pool:
        return None

    def key(c: Candidate) -> tuple[object, ...]:
        if policy == "lru":
            return (c.sessions > 0, c.last_used, c.model_id)
        return (c.sessions > 0, c.use_count, c.last_used, c.model_id)

    return min(pool, key=key).model_id
