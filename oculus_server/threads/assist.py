"""Assist thread: streams the newest camera frame and measured state to a VLA policy service and
publishes the newest action it answers (`SharedState.assist`), at the session's ``target_fps``.

Loop (absolute deadlines on a monotonic clock, missed sends skipped, never a burst):

1. **Link.** Without a session it connects (one attempt per call, `connect_timeout_s`), backing
   off between attempts while checking the stop event. Once connected the client reconnects by
   itself after a link loss; meanwhile this thread publishes the link as ``reconnecting`` (the
   control thread then uses no policy action) and tells the operator (``assist`` events). A
   refusal (bad key, unknown model) is final: assist stays off, the daemon goes on.
2. **Send** at each deadline: the newest frame of `camera` (JPEG bytes as received, never
   re-encoded) with the measured pose ``[x, y, z, roll, pitch, yaw]`` and gripper, if both are
   fresh; the pose is remembered under the frame's id (the client's session number, `send_frame`'s frame id).
3. **Receive** until the next deadline, in slices of at most `RECEIVE_SLICE_S` (the stop event is
   seen at once): the newest action is published with its receive time, score, latency, and the
   pose it answers — the pose sent with the frame whose id (session number, frame id) it carries.
   Stream actions whose pose is no longer known are counted and not used; openpi chunk rows carry
   no pose (they apply to the pose of the moment).

It never touches the control thread: the control thread reads the newest action and its age.
Every client call has a timeout (`vla_client`); the client's own event loop runs in a thread it
starts (created here, so it inherits this thread's scheduling).
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from urllib.parse import urlsplit

import numpy as np

from frankateach.timing import MONOTONIC, Clock, RateStats
from oculus_server.assist.channel import AssistChannel
from oculus_server.assist.config import AssistConfig
from oculus_server.state import CameraFrames, EventLog, RateBoard, RobotChannel
from oculus_server.threads.base import DaemonThread, Supervisor
from robot_formats.recording.records import AssistAction, AssistStatus
from robot_formats.rotations import quat_normalize, quat_to_euler_xyz
from robot_formats.stream import limits as L
from vla_client import (
    Backoff,
    ConnectionLost,
    RateLimitError,
    ReceivedAction,
    ServerError,
    SessionRejected,
    SyncVLAStreamingClient,
    Timeout,
    VLAClientError,
    make_client,
)

log = logging.getLogger(__name__)

RECEIVE_SLICE_S = 0.05  # longest single wait for an action (the stop event is checked between)
FRAME_MAX_AGE_S = 1.0  # a camera frame older than this is not sent
STATE_MAX_AGE_S = 0.5  # nor with a measured state older than this
STATUS_PERIOD_S = 1.0  # status published (and recorded) this often, and on every link change
SERVER_STATS_PERIOD_S = 5.0  # the service's own drop figures are asked for this often
SENT_KEPT = 256  # recent sends remembered (pose per frame id)
WINDOW = 200  # actions behind the latency percentiles and rates
CLOSE_TIMEOUT_S = 0.5
RATE_WINDOW_S = 2.0  # the action rate is counted over this trailing window

ClientFactory = Callable[[], SyncVLAStreamingClient]
Pos = tuple[float, float, float]  # (3,) m, base frame
Quat4 = tuple[float, float, float, float]  # xyzw


def default_client(url: str, key: str, cfg: AssistConfig) -> SyncVLAStreamingClient:
    """The synchronous client for `url` (either wire format), with the daemon's timeouts."""
    client = make_client(url, key, connect_timeout_s=cfg.connect_timeout_s, send_timeout_s=1.0,
                         backoff=Backoff(0.25, 2.0))
    return SyncVLAStreamingClient(client=client)


class AssistThread(DaemonThread):
    """Streams frames to the policy service and publishes its newest action.

    Args:
        cfg: the resolved assist config.
        url: the service (``ws://…/v1/stream`` or ``openpi://…``).
        key: its API key (never logged or recorded).
        supervisor: the daemon's.
        frames, robot: the newest camera frame and measured state (read).
        channel: where actions and the link status go.
        events, rates: the daemon's.
        client_factory: builds the client (default `default_client`).
        clock: monotonic clock for the send deadlines (the client's own waits are real time).
        realtime_priority: SCHED_FIFO priority (the client's loop thread inherits it).
    """

    def __init__(
        self,
        cfg: AssistConfig,
        url: str,
        key: str,
        supervisor: Supervisor,
        *,
        frames: CameraFrames,
        robot: RobotChannel,
        channel: AssistChannel,
        events: EventLog,
        rates: RateBoard,
        client_factory: ClientFactory | None = None,
        clock: Clock = MONOTONIC,
        realtime_priority: int = 0,
    ) -> None:
        super().__init__("assist", supervisor, realtime_priority)
        self.frames, self.robot, self.channel, self.events = frames, robot, channel, events
        if cfg.model is None:
            raise ValueError("the assist thread needs a model (assist.model)")
        self.cfg = cfg
        self.model = cfg.model
        self.url = url
        self._factory = client_factory or (lambda: default_client(url, key, cfg))
        self.clock = clock
        self.period = 1.0 / cfg.fps
        self.stats = RateStats("assist", cfg.fps)
        rates.register(self.stats)
        self.client: SyncVLAStreamingClient | None = None
        self.rebase = urlsplit(url).scheme in ("ws", "wss")  # stream actions answer the pose sent
        self.link = "connecting"
        self.detail = ""
        self._ever_connected = False
        self._backoff = Backoff(0.25, 2.0)
        # (client session number, frame id) -> the pose sent with that frame; the newest SENT_KEPT
        self._sent: OrderedDict[tuple[int, int], tuple[Pos, Quat4]] = OrderedDict()
        self._latency: deque[float] = deque(maxlen=WINDOW)
        self._rtt: deque[float] = deque(maxlen=WINDOW)
        self._recv_times: deque[float] = deque(maxlen=WINDOW)
        self._counts = {"frames_sent": 0, "frames_skipped": 0, "actions_received": 0, "actions_unmatched": 0,
                        "server_errors": 0}
        self._seq = 0
        self._client_stats: dict[str, int] = {}
        self._server = (0, math.nan)
        self._next_status = 0.0
        self._next_server_stats = 0.0
        self._skip_reason = ""

    # -- loop ------------------------------------------------------------------------------------
    def body(self) -> None:
        self.client = self._factory()
        self._publish_status(record=True)
        next_send = self.clock.now()
        while not self.stop_event.is_set():
            if not self._linked():
                next_send = self.clock.now()
                continue
            now = self.clock.now()
            if now >= next_send:
                self._send(now)
                next_send += self.period * (math.floor((now - next_send) / self.period) + 1)
            self._receive_until(next_send)
            if self.clock.now() >= self._next_status:
                self._refresh_stats()
                self._publish_status(record=True)

    def cleanup(self) -> None:
        if self.client is not None:
            try:
                self.client.close(timeout=CLOSE_TIMEOUT_S)
            except VLAClientError as exc:
                log.info("assist: closing the client: %s", exc)
        self._set_link("closed", "daemon stopped", quiet=True)

    # -- link ------------------------------------------------------------------------------------
    def _linked(self) -> bool:
        """True with a session; else tries to get one (or waits), returning False."""
        client = self.client
        assert client is not None
        if self.link == "failed":
            self._wait(STATUS_PERIOD_S)
            self._publish_status(record=self.clock.now() >= self._next_status)
            return False
        state = client.state
        if state == "connected":
            if self.link != "connected":
                self._set_link("connected", "")
                word = "reconnected" if self._ever_connected else "connected"
                self._event(f"assist {word}: {self.model} at {self.url}")
                self._ever_connected = True
            return True
        if state in ("reconnecting", "connecting"):
            if self.link == "connected":
                self._lost(client.client_stats().last_error or "link lost")
            self._wait(0.05)
            return False
        if self._ever_connected and state == "closed":
            why = client.client_stats().last_error or "the service closed the session"
            self._fail(f"the service ended the session for good: {why}")
            return False
        self._connect(client)
        return False

    def _connect(self, client: SyncVLAStreamingClient) -> None:
        """One connection attempt; on failure, backs off (waiting on the stop event)."""
        try:
            client.connect(self.model, target_fps=self.cfg.fps, enable_smoothing=self.cfg.smoothing,
                           enable_safety=True)
        except RateLimitError as exc:
            if exc.close_code != L.CLOSE_TOO_MANY_SESSIONS:
                self._fail(f"the service refused the session: {exc}")
                return
            self._retry(str(exc))
        except SessionRejected as exc:
            self._fail(f"the service refused the session: {exc}")
        except (ConnectionLost, Timeout, ServerError, VLAClientError) as exc:
            self._retry(str(exc))
        else:
            self._backoff.reset()

    def _retry(self, why: str) -> None:
        if self.detail != why:
            log.info("assist: cannot reach %s yet: %s", self.url, why)
        self._set_link("connecting" if not self._ever_connected else "reconnecting", why)
        self._wait(self._backoff.next_delay())

    def _lost(self, why: str) -> None:
        self._set_link("reconnecting", why)
        log.warning("assist: link to %s lost (%s); operator only, reconnecting", self.url, why)
        self._event(f"assist link lost ({why}): operator only, reconnecting in the background", error=True)

    def _why(self, exc: Exception) -> str:
        """What the client says went wrong (its last error), else the exception's text."""
        try:
            return (self.client.client_stats().last_error if self.client else "") or str(exc)
        except VLAClientError:
            return str(exc)

    def _fail(self, why: str) -> None:
        self._set_link("failed", why)
        log.error("assist: %s; assist stays off, the operator drives alone", why)
        self._event(f"assist failed: {why}; the operator drives alone", error=True)

    def _set_link(self, link: str, detail: str, quiet: bool = False) -> None:
        changed = link != self.link or detail != self.detail
        self.link, self.detail = link, detail
        if changed and not quiet:
            self._publish_status(record=True)

    def _wait(self, seconds: float) -> None:
        self.stop_event.wait(max(0.0, seconds))

    def _event(self, message: str, error: bool = False) -> None:
        self.events.add("assist", message, model=self.model, link=self.link, error=error)

    # -- frames and actions ----------------------------------------------------------------------
    def _send(self, now: float) -> None:
        client = self.client
        assert client is not None
        payload = self._frame(now)
        if payload is None:
            self._counts["frames_skipped"] += 1
            return
        jpeg, robot_state, pos, quat = payload
        try:
            frame_id = client.send_frame(jpeg, self.cfg.instruction, robot_state)
        except ValueError as exc:  # bad input: nothing was sent
            self._counts["frames_skipped"] += 1
            self._skip_reason = f"frame refused by the client: {exc}"
            return
        except ConnectionLost as exc:
            if self.link == "connected":
                self._lost(self._why(exc))
            return
        except VLAClientError as exc:
            self._skip_reason = f"send failed: {exc}"
            return
        self.stats.tick(now)
        self._sent[(client.session_number, frame_id)] = (pos, quat)
        while len(self._sent) > SENT_KEPT:
            self._sent.popitem(last=False)
        self._counts["frames_sent"] += 1
        self._skip_reason = ""

    def _frame(self, now: float) -> tuple[bytes, dict, Pos, Quat4] | None:
        """(JPEG, robot_state, pos, quat) to send now, or None (saying why in the status)."""
        latest = self.frames.latest(self.cfg.camera)
        if latest is None or now - latest[1] > FRAME_MAX_AGE_S:
            self._skip_reason = f"no fresh '{self.cfg.camera}' camera frame"
            return None
        obs = self.robot.observation()
        if obs is None or now - obs.t_recv > STATE_MAX_AGE_S:
            self._skip_reason = "no fresh robot state"
            return None
        try:
            px, py, pz = (float(v) for v in obs.state.pos)
            quat = quat_normalize(tuple(float(v) for v in obs.state.quat))
            euler = quat_to_euler_xyz(quat)
            gripper = float(obs.state.gripper)
        except (TypeError, ValueError):
            self._skip_reason = "the measured pose is not 3 + 4 numbers"
            return None
        pos: Pos = (px, py, pz)
        if not all(math.isfinite(v) for v in (*pos, *quat, *euler)):
            self._skip_reason = "the measured pose is not finite"
            return None
        robot_state: dict = {"pose": [*pos, *euler]}
        if math.isfinite(gripper):
            robot_state["gripper"] = min(1.0, max(-1.0, gripper))
        return latest[0].jpeg, robot_state, pos, quat  # type: ignore[return-value]

    def _receive_until(self, deadline: float) -> None:
        client = self.client
        assert client is not None
        while not self.stop_event.is_set():
            remaining = deadline - self.clock.now()
            if remaining <= 0:
                return
            try:
                received = client.receive_action(timeout=min(remaining, RECEIVE_SLICE_S), latest=True)
            except Timeout:
                continue
            except ServerError as exc:
                self._counts["server_errors"] += 1
                if self._counts["server_errors"] in (1, 10, 100) or self._counts["server_errors"] % 1000 == 0:
                    log.warning("assist: the service answered a frame with an error (%d so far): %s",
                                self._counts["server_errors"], exc)
                continue
            except ConnectionLost as exc:
                if self.link == "connected":
                    self._lost(self._why(exc))
                return
            except VLAClientError as exc:
                log.warning("assist: receive failed: %s", exc)
                return
            self._publish(received)

    def _publish(self, ra: ReceivedAction) -> None:
        self._counts["actions_received"] += 1
        seen_pos: Pos | None = None
        seen_quat: Quat4 | None = None
        rtt = float(ra.rtt_ms) if ra.rtt_ms is not None else math.nan
        if self.rebase:
            match = self._sent.get((ra.session_number, int(ra.frame_id)))
            if match is None:
                self._counts["actions_unmatched"] += 1
                return
            seen_pos, seen_quat = match
        now = self.clock.now()
        self._recv_times.append(ra.received_at)
        if math.isfinite(ra.latency_ms):
            self._latency.append(float(ra.latency_ms))
        if math.isfinite(rtt):
            self._rtt.append(rtt)
        action = np.array(ra.action, dtype=np.float64).reshape(-1)
        self.channel.publish_action(AssistAction(
            seq=self._seq,
            frame_id=int(ra.frame_id),
            action=action,
            received_at=float(ra.received_at),
            received_wall=time.time() - (now - float(ra.received_at)),
            safety_score=float(ra.safety_score),
            latency_ms=float(ra.latency_ms),
            rtt_ms=rtt,
            seen_pos=seen_pos,
            seen_quat=seen_quat,
            smoothed=bool(ra.smoothed),
        ))
        self._seq += 1

    # -- figures ---------------------------------------------------------------------------------
    def _refresh_stats(self) -> None:
        client = self.client
        if client is None:
            return
        try:
            cs = client.client_stats()
        except VLAClientError:
            return
        self._client_stats = {"frames_dropped": cs.frames_dropped, "actions_dropped": cs.actions_dropped,
                              "reconnects": cs.reconnects}
        now = self.clock.now()
        if self.rebase and self.link == "connected" and now >= self._next_server_stats:
            self._next_server_stats = now + SERVER_STATS_PERIOD_S
            try:
                st = client.get_stats(timeout=0.3)
                self._server = (int(st.dropped_frames), float(st.drop_rate_percent))
            except VLAClientError:
                pass

    def status(self) -> AssistStatus:
        """The current link and figures."""
        now = self.clock.now()
        lat = np.fromiter(self._latency, float)
        rtt = np.fromiter(self._rtt, float)
        recv = np.fromiter(self._recv_times, float)
        snap = self.stats.snapshot()
        c = self._counts
        detail = self.detail or self._skip_reason
        return AssistStatus(
            link=self.link,
            model=self.model,
            url=self.url,
            detail=detail,
            frames_sent=c["frames_sent"],
            frames_skipped=c["frames_skipped"],
            actions_received=c["actions_received"],
            actions_unmatched=c["actions_unmatched"],
            client_frames_dropped=self._client_stats.get("frames_dropped", 0),
            client_actions_dropped=self._client_stats.get("actions_dropped", 0),
            server_frames_dropped=self._server[0],
            server_drop_rate_percent=self._server[1],
            server_errors=c["server_errors"],
            reconnects=self._client_stats.get("reconnects", 0),
            latency_ms_p50=float(np.percentile(lat, 50)) if lat.size else math.nan,
            latency_ms_p95=float(np.percentile(lat, 95)) if lat.size else math.nan,
            rtt_ms_p50=float(np.percentile(rtt, 50)) if rtt.size else math.nan,
            rtt_ms_p95=float(np.percentile(rtt, 95)) if rtt.size else math.nan,
            send_hz=snap.achieved_hz,
            action_hz=float(np.count_nonzero(recv > now - RATE_WINDOW_S)) / RATE_WINDOW_S,
            t_mono=now,
        )

    def _publish_status(self, record: bool) -> None:
        self.channel.set_status(self.status(), record=record)
        if record:
            self._next_status = self.clock.now() + STATUS_PERIOD_S
