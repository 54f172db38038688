"""Read-only arrays: what every producer does before publishing, so sharing is as safe as copying."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def freeze(arrays: Iterable[object]) -> None:
    """Marks arrays read-only, so sharing them is as safe as sharing a copy (non-arrays are skipped)."""
    for a in arrays:
        if isinstance(a, np.ndarray):
            a.flags.writeable = False
