"""Helpers that travel with the recording records: the analog button value rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robot_formats.recording.records import analog_value


@pytest.mark.parametrize(
    ("value", "want"),
    [((0.5,), 0.5), ([0.25, 9.0], 0.25), (np.array([[0.125]]), 0.125), (0.75, 0.75), (1, 1.0), (True, 1.0)],
)
def test_analog_value_reads_oculus_reader_tuples_and_numbers(value, want) -> None:
    assert analog_value(value) == want


def test_analog_value_passes_non_finite_and_refuses_what_is_not_a_number() -> None:
    assert math.isnan(analog_value(float("nan"))) and math.isinf(analog_value((float("inf"),)))
    for bad in ((), [], None, object(), "fast", ("x",)):
        with pytest.raises(ValueError):
            analog_value(bad)
