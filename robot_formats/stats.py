"""Summary statistics that the daemon's client, the service and the arena all report: one
definition, pure Python (the service keeps numpy out of its own process)."""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float], q: float) -> float | None:
    """The `q`-th percentile (0..100) of `values`, interpolated linearly between the two nearest
    ranks (numpy's default method); None when there are none."""
    ordered = sorted(float(v) for v in values)
    if not ordered:
        return None
    pos = (len(ordered) - 1) * min(max(q, 0.0), 100.0) / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
