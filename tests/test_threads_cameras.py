"""The daemon's camera thread on real ZMQ sockets: both wire formats, and errors that show."""

from __future__ import annotations

import io
import pickle

from PIL import Image

from frankateach.camera_format import encode_camera_frame, encode_franka_teach_frame
from frankateach.network import Publisher
from frankateach.records import CameraFrame
from oculus_server.state import SharedState
from oculus_server.threads.base import Supervisor
from oculus_server.threads.cameras import CameraErrorReporter, CameraThread
from tests.daemon_fakes import wait_for
from tests.fakes import FakeClock
from tests.robot_fakes import free_port_block

HOST = "127.0.0.1"


def _jpeg(w: int = 32, h: int = 24) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (10, 200, 10)).save(buf, format="JPEG")
    return buf.getvalue()


def test_thread_records_msgpack_and_franka_teach_frames_and_surfaces_bad_ones() -> None:
    base = free_port_block(2)
    pubs = [Publisher(HOST, base, role="camera 0"), Publisher(HOST, base + 1, role="camera 1")]
    sv, st = Supervisor(), SharedState()
    thread = CameraThread(HOST, [0, 1], sv, st.cameras, st.counters, st.events, st.rates, port_offset=base,
                          poll_s=0.02, names={1: "ft_front"})
    thread.start()
    try:
        jpeg = _jpeg()
        got: dict[str, list[CameraFrame]] = {}

        def pump() -> bool:
            pubs[0].publish(encode_camera_frame(CameraFrame(0, "front", 7, 12.5, 32, 24, jpeg)))
            pubs[1].publish(encode_franka_teach_frame(jpeg, 13.25))
            for name, frames in st.cameras.take_new().items():
                got.setdefault(name, []).extend(frames)
            return {"front", "ft_front"} <= set(got)

        assert wait_for(pump, 10.0, 0.05), f"frames seen: {sorted(got)}"
        ft = got["ft_front"][0]
        assert (ft.camera_id, ft.width, ft.height, ft.timestamp, ft.jpeg) == (1, 32, 24, 13.25, jpeg)
        assert got["front"][0].seq == 7
        assert st.counters.snapshot().get("camera_errors", 0) == 0

        # A Franka-Teach frame whose image is not a JPEG: counted, shown, recorded as an event.
        bad = b"rgb_image " + pickle.dumps({"timestamp": 1.0, "rgb_image": b"aGVsbG8="})
        assert wait_for(lambda: (pubs[1].publish(bad), st.counters.snapshot().get("camera_errors", 0) > 0)[1],
                        5.0, 0.05)
        events = [e for e in st.events.take() if e.kind == "error"]
        assert events and "camera 1" in events[0].message and "not a readable JPEG" in events[0].message
        assert "camera 1" in st.events.last_error()
        assert not sv.failures() and thread.is_alive()  # a bad frame never stops the thread
    finally:
        sv.stop.set()
        thread.join(5)
        for p in pubs:
            p.close()


def test_error_reports_are_rate_limited_per_camera_and_summarise_the_rest() -> None:
    clock = FakeClock()
    st = SharedState()
    rep = CameraErrorReporter(st.counters, st.events, period_s=10.0, clock=clock.now)
    for _ in range(5):
        rep.error(0, 10005, ValueError("bad jpeg"))
    rep.error(1, 10006, ValueError("bad pickle"))  # another camera reports at once
    clock.advance(10.0)
    rep.error(0, 10005, ValueError("bad jpeg"))
    events = [e.message for e in st.events.take()]
    assert events == [
        "camera 0 (port 10005): unreadable frame: bad jpeg",
        "camera 1 (port 10006): unreadable frame: bad pickle",
        "camera 0 (port 10005): 5 unreadable frames: bad jpeg",
    ]
    assert st.counters.snapshot()["camera_errors"] == 7 and rep.total == 7
