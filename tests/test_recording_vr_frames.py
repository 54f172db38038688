"""VR topics of a real recording read back as replay frames, and replayed by `replay:FILE`."""

from __future__ import annotations

import numpy as np

from oculus_server.recording.synthetic import SyntheticEpisode
from oculus_server.recording.vr_frames import load_vr_frames
from oculus_server.vr import make_source
from oculus_server.vr.source import SourceState
from robot_formats.recording.writer import EpisodeWriter


def _write(tmp_path, n=40):
    ep = SyntheticEpisode(cameras={})
    ticks = list(ep.ticks(n))
    w = EpisodeWriter(tmp_path / "ep.mcap", {"task": "t"})
    for t in ticks:
        w.write(t)
    return w.close("success"), ticks


def test_vr_frames_round_trip_poses_and_buttons(tmp_path):
    path, ticks = _write(tmp_path)
    frames = list(load_vr_frames(path))
    samples = []
    for t in ticks:  # the writer records each distinct VR sample once
        if t.vr is not None and (not samples or samples[-1].seq != t.vr.seq):
            samples.append(t.vr)
    assert len(frames) == len(samples) > 10
    t_prev = -1.0
    for (t, poses, buttons), s in zip(frames, samples):
        assert t > t_prev
        t_prev = t
        assert set(poses) == set(s.poses)
        for side, m in poses.items():
            np.testing.assert_allclose(m, s.poses[side], atol=1e-9)
        for key, value in s.buttons.items():
            if isinstance(value, tuple):
                np.testing.assert_allclose(buttons[key], value)
            else:
                assert buttons[key] == value, key


def test_replay_source_plays_a_recording(tmp_path):
    path, _ = _write(tmp_path)
    src = make_source(f"replay:{path}@speed=20")
    src.start()
    got = []
    for _ in range(200):
        s = src.poll()
        if s is not None:
            got.append(s)
        if src.status().state is SourceState.FINISHED:
            break
        import time

        time.sleep(0.005)
    src.close()
    assert got and src.status().state is SourceState.FINISHED
    assert all("r" in s.poses for s in got)
