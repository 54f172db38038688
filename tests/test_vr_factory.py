"""make_source: spec grammar, options, and errors."""

from __future__ import annotations

import sys
import time

import pytest

from oculus_server.errors import ConfigError
from oculus_server.vr import make_source, parse_spec
from oculus_server.vr.keyboard import KeyboardSource
from oculus_server.vr.quest import QuestReader
from oculus_server.vr.replay import ReplaySource
from oculus_server.vr.scripted import ScriptedSource
from oculus_server.vr.source import SourceState
from oculus_server.vr.trajectories import get_trajectory


@pytest.mark.parametrize(
    "spec, parsed",
    [
        ("quest", ("quest", None, {})),
        ("quest:1WMHH0@start_app=1", ("quest", "1WMHH0", {"start_app": "1"})),
        ("quest@ip=10.0.0.2,port=5556", ("quest", None, {"ip": "10.0.0.2", "port": "5556"})),
        ("scripted:pick_place@speed=0.5@loop=yes", ("scripted", "pick_place", {"speed": "0.5", "loop": "yes"})),
        ("replay:/data/me@lab/run.mcap@speed=2", ("replay", "/data/me@lab/run.mcap", {"speed": "2"})),
        ("replay:/data/me@lab/run.mcap", ("replay", "/data/me@lab/run.mcap", {})),
        (" keyboard ", ("keyboard", None, {})),
    ],
)
def test_parse_spec(spec: str, parsed: tuple) -> None:
    assert parse_spec(spec) == parsed


def test_builds_each_kind_with_typed_options() -> None:
    q = make_source("quest:ABC@ip=10.0.0.2,start_app=on,stale_timeout=0.3,silent_restart=none")
    assert isinstance(q, QuestReader) and q.serial == "ABC" and q.ip == "10.0.0.2" and q.start_app is True
    assert q.stale_timeout_s == 0.3 and q.silent_restart_s is None
    assert make_source("quest@ip=10.0.0.2").logcat_command()[1:3] == ["-s", "10.0.0.2:5555"]

    s = make_source("scripted:pick_place@speed=0.5,loop=1,rate=100")
    assert isinstance(s, ScriptedSource) and (s.speed, s.loop, s.rate_hz) == (0.5, True, 100.0)
    assert s.trajectory is get_trajectory("pick_place") and s.name == "scripted:pick_place"

    k = make_source("keyboard@step=0.02,step_deg=10", fd=0)
    assert isinstance(k, KeyboardSource) and k.step_m == 0.02 and k.step_rad == pytest.approx(0.17453, abs=1e-5)

    f = make_source("fake_headset:figure8@rate=30,drop_after=2,backoff_max=1")
    assert isinstance(f, QuestReader) and f.name == "fake_headset:figure8" and f.backoff_max_s == 1.0
    cmd = f.logcat_command()
    assert cmd[:3] == [sys.executable, "-m", "oculus_server.vr.fake_headset"]
    assert cmd[3:] == ["--trajectory", "figure8", "--rate", "30.0", "--drop-after", "2.0", "logcat", "-T", "0"]


def test_keyword_arguments_win_over_spec_options() -> None:
    clock = lambda: 7.0  # noqa: E731
    s = make_source("scripted:circle@speed=0.5", speed=3.0, clock=clock)
    assert s.speed == 3.0
    assert s.poll().t_recv == 7.0


def test_replay_uses_the_loader() -> None:
    seen = []

    def loader(path: str):
        seen.append(path)
        poses, buttons = get_trajectory("hold").sample(0.0)
        return [(0.0, poses, buttons), (0.1, poses, buttons)]

    r = make_source("replay:/tmp/session.mcap@speed=2", replay_loader=loader)
    assert isinstance(r, ReplaySource) and r.speed == 2.0 and seen == ["/tmp/session.mcap"]
    assert r.name == "replay:/tmp/session.mcap"


@pytest.mark.parametrize(
    "spec, message",
    [
        ("", "expected a VR source spec"),
        ("oculus", "unknown VR source 'oculus'"),
        ("scripted", "expected 'scripted:NAME'"),
        ("scripted:spiral", "unknown VR trajectory 'spiral'"),
        ("scripted:circle@speed=fast", "bad value 'fast' for option 'speed'"),
        ("scripted:circle@speed=0", "speed must be a positive number"),
        ("scripted:circle@sped=1", "unknown option 'sped'"),
        ("scripted:circle@speed=1,speed=2", "given twice"),
        ("quest@start_app=maybe", "bad value 'maybe'"),
        ("keyboard:x", "takes no argument"),
        ("replay", "expected 'replay:FILE'"),
        ("replay:does-not-exist.mcap", "is not a file"),
    ],
)
def test_bad_specs_are_config_errors(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_source(spec)


def test_unknown_keyword_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="bad arguments for VR source 'keyboard'"):
        make_source("keyboard", colour="red")


@pytest.mark.timeout(60)
def test_fake_headset_spec_runs_end_to_end() -> None:
    src = make_source("fake_headset:pick_place@rate=50,noise=1")
    try:
        src.start()
        deadline = time.monotonic() + 30
        sample = None
        while sample is None and time.monotonic() < deadline:
            sample = src.poll()
            time.sleep(0.02)
        assert sample is not None, src.status()
        assert src.status().state is SourceState.CONNECTED
        assert set(sample.poses) == {"r", "l"}
    finally:
        src.close()


def test_left_and_ip_keywords_as_the_daemon_passes_them() -> None:
    # The CLI calls make_source(spec, left=cfg.left_controller, ip=cfg.quest_ip) for every kind.
    q = make_source("quest", left=True, ip="10.0.0.7")
    assert q.ip == "10.0.0.7" and q.serial == "10.0.0.7:5555"
    assert make_source("quest@ip=10.0.0.8", left=False, ip=None).ip == "10.0.0.8"
    s = make_source("scripted:pick_place", left=True, ip="10.0.0.7")
    assert s.left is True
    assert make_source("scripted:circle@left=1", left=False, ip=None).left is True
    assert make_source("keyboard", left=True, ip=None, fd=0).left is True
    assert make_source("replay:x.mcap", left=True, ip="1.2.3.4", replay_loader=lambda p: []).name == "replay:x.mcap"
    f = make_source("fake_headset:hold", left=True, ip="10.0.0.7")
    assert f.logcat_command()[-6:] == ["--left", "-s", "10.0.0.7:5555", "logcat", "-T", "0"]
    assert f.connect_command()[-2:] == ["connect", "10.0.0.7:5555"]
