"""Link filter of the WebXR stream: out-of-order and late frames dropped and counted, rate, delay."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oculus_server.vr.webxr_link import LinkFilter

OFFSET = 1234.5  # the page's clock runs this far behind the daemon's (another device)


def test_in_order_frames_pass_and_the_rate_is_counted() -> None:
    f = LinkFilter(late_after_s=0.1)
    for k in range(100):
        t = 10.0 + k / 50
        assert f.offer(k, t - OFFSET - 0.01, t, t) is None
    fig = f.figures(10.0 + 99 / 50)
    assert (fig.accepted, fig.out_of_order, fig.late) == (100, 0, 0)
    assert fig.rate_hz == pytest.approx(50, abs=1)
    assert fig.delay_s == pytest.approx(OFFSET + 0.01)


def test_duplicates_and_older_frames_are_out_of_order() -> None:
    f = LinkFilter()
    assert f.offer(5, 0.0, 1.0, 1.0) is None
    assert f.offer(5, 0.0, 1.0, 1.0) == "out_of_order"
    assert f.offer(3, 0.0, 1.0, 1.0) == "out_of_order"
    assert f.offer(6, 0.0, 1.0, 1.0) is None
    assert (f.accepted, f.out_of_order) == (2, 2)


def test_a_frame_far_behind_the_quickest_recent_one_is_late_whatever_the_clock_offset() -> None:
    f = LinkFilter(late_after_s=0.1)
    for k in range(10):
        assert f.offer(k, k * 0.02 - OFFSET, k * 0.02 + 0.005, k * 0.02) is None
    assert f.offer(10, 0.2 - OFFSET, 0.2 + 0.25, 0.45) == "late"  # 245 ms slower than the best
    assert f.offer(11, 0.22 - OFFSET, 0.22 + 0.05, 0.47) is None  # 45 ms: kept
    assert f.offer(10, 0.2 - OFFSET, 0.5, 0.5) == "out_of_order"  # a late frame is not taken later
    assert (f.accepted, f.late, f.out_of_order) == (11, 1, 1)


@given(st.lists(st.tuples(st.integers(0, 50), st.floats(0, 0.5)), max_size=200))
def test_accepted_seqs_strictly_increase_and_every_frame_is_counted_once(frames) -> None:
    f = LinkFilter(late_after_s=0.1)
    accepted = []
    for i, (seq, delay) in enumerate(frames):
        t = i * 0.02
        if f.offer(seq, t - delay, t, t) is None:
            accepted.append(seq)
    assert accepted == sorted(set(accepted))
    assert f.accepted + f.late + f.out_of_order == len(frames)
