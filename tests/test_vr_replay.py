"""ReplaySource over synthetic frame iterables (the MCAP reader only has to yield such tuples)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from oculus_server.vr.replay import ReplaySource, frames_from_samples
from oculus_server.vr.source import SourceState, VRSample
from oculus_server.vr.trajectories import get_trajectory


class ManualClock:
    def __init__(self, t: float = 50.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def recording(n: int, t0: float = 1.7e9, dt: float = 0.02) -> list[tuple[float, dict, dict]]:
    """n frames of the circle trajectory, stamped like a recording (wall-clock seconds)."""
    tr = get_trajectory("circle")
    frames = []
    for k in range(n):
        poses, buttons = tr.sample(1.0 + k * dt)
        buttons = {**buttons, "rightTrig": (buttons["rightTrig"],)}  # as oculus_reader stores it
        frames.append((t0 + k * dt, poses, buttons))
    return frames


def test_plays_in_real_time_relative_to_start_and_finishes() -> None:
    frames = recording(50)
    clock = ManualClock()
    src = ReplaySource(frames, clock=clock)
    assert src.status().state is SourceState.WAITING
    src.start()
    s = src.poll()
    assert s is not None and s.seq == 0 and s.t_recv == clock.t
    np.testing.assert_array_equal(s.poses["r"], frames[0][1]["r"])
    assert s.buttons["rightTrig"] == 0.0 and isinstance(s.buttons["rightTrig"], float)  # 1-tuple -> float
    assert src.poll() is None  # frame 1 is due at +0.02 s
    clock.t += 0.0201
    assert src.poll().seq == 1
    clock.t += 0.1  # frames 2..6 became due: only the newest comes out
    s = src.poll()
    assert s.seq == 6
    np.testing.assert_array_equal(s.poses["r"], frames[6][1]["r"])
    assert src.status().state is SourceState.CONNECTED
    clock.t += 10.0
    assert src.poll().seq == 49
    assert src.poll() is None
    st = src.status()
    assert st.state is SourceState.FINISHED and st.samples == 4 and st.rejected == 0


def test_speed_factor() -> None:
    clock = ManualClock()
    src = ReplaySource(recording(100), speed=4.0, clock=clock)
    src.start()
    assert src.poll().seq == 0
    clock.t += 0.1 + 1e-6  # 0.4 s of recording
    assert src.poll().seq == 20


def test_consumes_frames_lazily() -> None:
    pulled = []

    def frames() -> Iterator[tuple[float, dict, dict]]:
        for k, frame in enumerate(recording(1000)):
            pulled.append(k)
            yield frame

    clock = ManualClock()
    src = ReplaySource(frames(), clock=clock)
    src.start()
    src.poll()
    clock.t += 0.05
    src.poll()
    assert len(pulled) <= 5


def test_bad_frames_are_skipped_and_counted() -> None:
    good = recording(6)
    bad_pose = np.eye(4)
    bad_pose[0, 0] = 3.0
    frames = [
        good[0],
        (good[1][0], {"r": bad_pose}, good[1][2]),  # not rigid
        (float("nan"), good[2][1], good[2][2]),  # bad time
        (good[3][0], {"r": np.eye(3)}, good[3][2]),  # wrong shape
        "not a frame",
        (good[0][0] - 1.0, good[4][1], good[4][2]),  # goes back in time
        (good[4][0], good[4][1], ["A"]),  # buttons not a mapping
        good[5],
    ]
    clock = ManualClock()
    src = ReplaySource(frames, clock=clock)
    src.start()
    assert src.poll().seq == 0
    clock.t += 1.0
    s = src.poll()
    assert s.seq == 7
    assert src.poll() is None
    st = src.status()
    assert st.state is SourceState.FINISHED
    assert st.rejected == 6
    assert st.reject_reasons == {"not_rigid": 1, "bad_time": 1, "bad_pose": 1, "bad_frame": 2, "time_backwards": 1}
    assert "frame 6" in st.last_error


def test_a_failing_reader_ends_the_replay_with_its_error() -> None:
    def frames() -> Iterator[tuple[float, dict, dict]]:
        yield from recording(3)
        raise OSError("chunk 12 is corrupt")

    clock = ManualClock()
    src = ReplaySource(frames(), clock=clock)
    src.start()
    clock.t += 1.0
    assert src.poll().seq == 2
    assert src.status().state is SourceState.FINISHED
    assert "chunk 12 is corrupt" in src.status().last_error


def test_frames_from_samples_adapter() -> None:
    poses, buttons = get_trajectory("hold").sample(2.0)
    samples = [VRSample(poses=poses, buttons=buttons, t_recv=10.0 + k * 0.5, seq=k) for k in range(3)]
    clock = ManualClock()
    src = ReplaySource(frames_from_samples(samples), clock=clock)
    src.start()
    assert src.poll().buttons == buttons
    clock.t += 0.5
    assert src.poll().seq == 1
