"""`robot_formats.stats.percentile`, the one percentile the client, the service and the arena
report with: numpy's default (linear) method, without numpy; None for no samples."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from robot_formats.stats import percentile

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@given(st.lists(finite, min_size=1, max_size=300), st.floats(min_value=0.0, max_value=100.0))
def test_matches_numpy_linear_percentile(values: list[float], q: float) -> None:
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-9, abs=1e-6)


def test_no_samples_is_none_and_q_is_clamped_to_0_100() -> None:
    assert percentile([], 50) is None
    assert percentile((3.0, 1.0, 2.0), -5) == 1.0 and percentile([3.0, 1.0, 2.0], 250) == 3.0
