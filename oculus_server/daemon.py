"""The only place the daemon's threads are built, started, stopped and joined.

Threads (each in its own module under `oculus_server/threads/`):

=============  =========  ===============================================================
thread         rate       owns
=============  =========  ===============================================================
vr             50 Hz      the VR source
control        20/40 Hz   the policy, state check and command gate; feeds the command queue
                          (GatedCommands only; maxsize 2, freshest wins)
robot          as robot   the robot client; publishes each reply (SharedState.robot); logs every
                          command it sends (numbered) for the recorder
state-feed     100 Hz     the SUB socket on the server's state feed (every measured state, the
                          control reference while live; replies take over when it is silent)
recording      40 Hz      builds RecordTicks; feeds the MCAP queue (maxsize 1000)
mcap-writer    queue      forwards the MCAP queue to the recording process, which owns the
                          EpisodeWriter (writer_process: false: the EpisodeWriter, in this thread)
cameras        frames     camera SUB sockets (newest frame per camera)
assist         fps        the VLA client (only with --assist): newest frame + state out,
                          newest policy action into SharedState.assist
live-sink      queue      forwards the ticks the recorder offers while a viewer is subscribed
                          (queue of 80 ticks, drops counted) to the live-view process, which
                          owns the Foxglove WebSocket server (live view, --live / on with
                          --debug), maps and publishes; normal priority
=============  =========  ===============================================================

The shared state is split by concern (`oculus_server.state`); each thread is handed only the
parts it uses (the recorder and the dashboard read them all).

The main thread runs the dashboard (or a status line) and waits for the stop event, which
signal handlers, `--duration`, or any thread's failure set. Shutdown order: stop event → join
the loop threads → the recorder queues the episode's stop → the writer drains and finalizes →
exit code 0, or 1 naming every thread that failed.
"""

from __future__ import annotations

import gc
import logging
import platform
import queue
import sys
import time
from collections.abc import Callable
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from frankateach.client import RobotClient
from frankateach.constants import SIM_CAMERA_HEIGHT, SIM_CAMERA_WIDTH, SIM_CAMERAS
from frankateach.messages import make_codec
from frankateach.signals import SignalFlag
from frankateach.stop_event import StopEvent
from oculus_server import __version__
from oculus_server.assist.blender import AssistBlender
from oculus_server.assist.config import cadence_warning
from oculus_server.config import DaemonConfig, assist_config
from oculus_server.constants import COMMAND_QUEUE_SIZE, MCAP_QUEUE_SIZE
from oculus_server.errors import ConfigError
from oculus_server.policy import PolicyConfig, VRPolicy
from oculus_server.recording.sim_scene import SimScene, SimSceneFetch
from oculus_server.safety.config import SafetyConfig
from oculus_server.sim_process import sim_state_port_for
from oculus_server.state import SharedState
from oculus_server.threads.base import GIL_HOLDER_PRIORITY, DaemonThread, Supervisor
from oculus_server.threads.cameras import CameraThread
from oculus_server.threads.control import ControlThread
from oculus_server.threads.live_process import LiveProcessThread, LiveSettings
from oculus_server.threads.mcap_writer import McapWriterThread, WriterFactory
from oculus_server.threads.overrun import OverrunReporter
from oculus_server.threads.realtime import reset_normal
from oculus_server.threads.recorder import RecorderThread
from oculus_server.threads.robot_comm import RobotCommThread
from oculus_server.threads.scheduling import Report, Scheduling
from oculus_server.threads.sim_state import SimStateThread
from oculus_server.threads.state_feed import StateFeedThread
from oculus_server.threads.vr import VRThread
from oculus_server.threads.wakers import pick_cpus
from oculus_server.threads.writer_process import FINALIZE_S, WriterProcessThread
from oculus_server.vr.source import VRSource
from robot_formats.recording.camera_mounts import CameraMount
from robot_formats.recording.scene import ScenePainter
from robot_formats.recording.writer import EpisodeWriter

if TYPE_CHECKING:
    from oculus_server.threads.assist import AssistThread

log = logging.getLogger(__name__)

JOIN_BUDGET_S = 1.5
HELPERS_START_S = 10.0  # start() waits at most this long for the helper processes, s
SWITCH_INTERVAL_S = 0.0005  # all threads must be gone within this after the stop event


def warm_up() -> None:
    """Does now what the loops would otherwise do the first time they call something, holding the
    GIL in their first ticks (measured: a 40–54 ms first recording period on a quiet machine):
    numpy's first `percentile` (rate, latency and round-trip figures) imports ``numpy.ma``, ~7 ms.
    """
    np.percentile(np.zeros(2), [50.0, 99.0])


def policy_config(cfg: DaemonConfig) -> PolicyConfig:
    """The policy config implied by the daemon config (performance, side, rate, overrides)."""
    changes = dict(cfg.policy)
    changes.setdefault("control_hz", cfg.effective_control_hz)
    if cfg.left_controller:
        changes.setdefault("right_controller", False)
    return PolicyConfig.from_dict(changes, performance=cfg.performance)


def safety_config(cfg: DaemonConfig) -> SafetyConfig:
    """The command gate's limits from the daemon config's ``safety`` section."""
    return SafetyConfig.from_dict(cfg.safety)


def _version(dist: str) -> str:
    try:
        return importlib_metadata.version(dist)
    except importlib_metadata.PackageNotFoundError:
        return "?"


def recording_metadata(cfg: DaemonConfig, source: VRSource) -> dict[str, Any]:
    """The start-of-recording metadata: who, what, which robot, config (JSON), versions, rates."""
    return {
        "operator": cfg.operator,
        "task": cfg.task,
        "robot": "frankateach-sim (MuJoCo Panda)" if cfg.debug else f"franka@{cfg.robot_host}",
        "robot_host": f"{cfg.robot_host}:{cfg.robot_port}",
        "vr_source": f"{cfg.vr_source_public} ({source.name})",
        "controller": "left" if cfg.left_controller else "right",
        "mode": "performance" if cfg.performance else "default",
        "rates_hz": f"vr={cfg.vr_hz} control={cfg.effective_control_hz} record={cfg.record_hz}",
        "config": cfg.to_dict(),
        "versions": (
            f"oculus_server={__version__} python={platform.python_version()} "
            f"mcap={_version('mcap')} mujoco={_version('mujoco')} numpy={_version('numpy')}"
        ),
        "host": platform.node(),
    }


def policy_gains(pc: PolicyConfig) -> dict[str, float]:
    """The policy's gains and step limits, shown on every /control/mode message."""
    return {
        "pos_action_gain": pc.pos_action_gain,
        "rot_action_gain": pc.rot_action_gain,
        "gripper_action_gain": pc.gripper_action_gain,
        "max_lin_delta_m": pc.max_lin_delta,
        "max_rot_delta_rad": pc.max_rot_delta,
        "spatial_coeff": pc.spatial_coeff,
        "control_hz": pc.control_hz,
    }


def camera_names(cfg: DaemonConfig) -> dict[int, str]:
    """Names for cameras whose frames carry none (Franka-Teach's ``rgb_image``): with --debug the
    simulator's own (id i is ``SIM_CAMERAS[i]``), so pickle mode records ``/camera/front`` as
    msgpack mode does; otherwise none (``cam_<id>``)."""
    if not cfg.debug:
        return {}
    return {i: SIM_CAMERAS[i] for i in cfg.cameras if 0 <= i < len(SIM_CAMERAS)}


SCENE_WAIT_S = 20.0  # the first episode waits this long at most for the simulator's scene
MEASURED_FRESH_S = 0.5  # a measured state older than this is not shown to a scripted operator


class Daemon:
    """Builds the threads from a config and runs them until stopped.

    Args:
        cfg: the daemon config.
        source: the VR source (built by the CLI from `cfg.vr_source`).
        client_factory: builds the robot client (default: `RobotClient` to cfg's host/port).
        writer_factory: builds an `EpisodeWriter` for a path and metadata.
        sim_scene: the simulator's scene being described (with --debug; started here if None).
            Its MJCF is attached to recordings of the simulated robot only.
    """

    def __init__(
        self,
        cfg: DaemonConfig,
        source: VRSource,
        client_factory: Callable[[], RobotClient] | None = None,
        writer_factory: WriterFactory | None = None,
        sim_scene: SimSceneFetch | None = None,
        signals: SignalFlag | None = None,
    ) -> None:
        self.cfg = cfg
        self.source = source
        self.state = SharedState()
        self.supervisor = Supervisor()
        self.stop_event = self.supervisor.stop
        # SIGINT/SIGTERM are recorded here by the CLI's handler (no lock taken in a handler);
        # `wait` turns them into stop_event.set(). The CLI passes the flag it installed at its
        # start, so a signal that came during start-up is not lost.
        self.signals = signals if signals is not None else SignalFlag()
        self.writer_stop = StopEvent()
        self.commands: queue.Queue = queue.Queue(maxsize=COMMAND_QUEUE_SIZE)
        self.mcap_queue: queue.Queue = queue.Queue(maxsize=MCAP_QUEUE_SIZE)
        self.started_at = time.monotonic()
        self._switch_interval = sys.getswitchinterval()  # restored by shutdown()
        self._stopped_in_start = False  # a stop came while start() waited for the helpers
        self.scheduling = Scheduling(cfg.realtime_priority, cfg.rtkit)
        codec = make_codec(cfg.codec)
        self.client_factory = client_factory or (
            lambda: RobotClient(cfg.robot_host, cfg.robot_port, codec=codec, timeout_s=cfg.request_timeout_s)
        )
        metadata = recording_metadata(cfg, source)
        pc = policy_config(cfg)
        self._own_scene = sim_scene is None and cfg.debug and writer_factory is None and (
            cfg.record or cfg.effective_live)
        own = SimSceneFetch(nice=cfg.helper_nice).start() if self._own_scene else None
        self.sim_scene = own or (sim_scene if cfg.debug else None)
        self._gains = policy_gains(pc)
        self.writer_factory = writer_factory or self._make_writer
        # Recordings are written in a helper process unless a test injects its own writer.
        self._writer_process = writer_factory is None and cfg.writer_process
        self.policy = VRPolicy(pc)
        self.safety = safety_config(cfg)
        sv, st = self.supervisor, self.state
        rt = cfg.realtime_priority
        # VLA assist (off unless a model is named): the blender runs in the control thread.
        self.assist_cfg = assist_config(cfg)
        self.blender: AssistBlender | None = None
        if self.assist_cfg is not None:
            if self.assist_cfg.url is None:
                raise ConfigError("assist: no inference service URL (give --assist-url; with --debug, "
                                  "oculus-server starts a local service and passes its URL)")
            warning = cadence_warning(self.assist_cfg, cfg.effective_control_hz)
            if warning:
                log.warning("%s", warning)
            self.blender = AssistBlender(
                self.assist_cfg, st.assist, cfg.effective_control_hz, pc.max_lin_delta, pc.max_rot_delta,
                events=self._assist_event,
            )
        # A tick that starts more than a period late is counted and shown (dashboard, /events).
        self.overruns = OverrunReporter(st.events, st.counters)
        source.watch_robot(self._measured_position)  # a scripted operator watches the arm
        self.vr = VRThread(source, sv, st.vr, st.rates, hz=cfg.vr_hz, realtime_priority=rt, overruns=self.overruns)
        self.control = ControlThread(
            self.policy, self.commands, sv, vr=st.vr, robot=st.robot, command_out=st.commands,
            counters=st.counters, interventions=st.safety, events=st.events, episode=st.episode, rates=st.rates,
            hz=cfg.effective_control_hz, hold_after_s=cfg.hold_after_s, safety=self.safety, realtime_priority=rt,
            assist=self.blender, overruns=self.overruns, reanchor_on_restore=not source.keeps_anchor,
        )
        self.robot = RobotCommThread(
            self.client_factory, self.commands, sv, robot=st.robot, sent=st.sent, counters=st.counters,
            interventions=st.safety, events=st.events, rates=st.rates, safety=self.safety,
            idle_poll_s=1.0 / cfg.effective_control_hz, realtime_priority=max(0, rt - 1),
        )
        # Live view: the recording's topics over Foxglove's WebSocket protocol (never fatal).
        # It runs in its own process; the daemon only forwards ticks while a viewer is subscribed.
        self.live: LiveProcessThread | None = None
        if cfg.effective_live:
            names = tuple(camera_names(cfg).values())
            self.live = LiveProcessThread(LiveSettings(cfg.live_host, cfg.live_port, names),
                                          lambda: self._mapper_options(self._scene()), sv, st.counters, st.events,
                                          nice=cfg.helper_nice, realtime_priority=min(GIL_HOLDER_PRIORITY, rt))
        live = self.live
        self.recorder = RecorderThread(
            self.mcap_queue, sv, st, hz=cfg.record_hz, enabled=cfg.record,
            record_on_start=cfg.effective_record_on_start, task=cfg.task, realtime_priority=rt,
            robot_label=f"the robot at {cfg.robot_host}:{cfg.robot_port}", overruns=self.overruns,
            live=live,
        )
        self.writer: McapWriterThread | WriterProcessThread
        if self._writer_process:
            self.writer = WriterProcessThread(
                self.mcap_queue, sv, st.counters, st.episode, st.events, Path(cfg.recordings_dir),
                self._writer_options, base_metadata=metadata, realtime_priority=max(0, rt - 2),
                nice=cfg.helper_nice,
            )
        else:
            self.writer = McapWriterThread(
                self.mcap_queue, sv, st.counters, st.episode, st.events, Path(cfg.recordings_dir), self.writer_factory,
                base_metadata=metadata, realtime_priority=max(0, rt - 2),
            )
        self.writer.stop_event = self.writer_stop  # the writer outlives the others to finalize
        self.loop_threads: list[DaemonThread] = [self.vr, self.control, self.robot, self.recorder]
        self.timekeepers: list[DaemonThread] = [self.vr, self.control, self.robot, self.recorder]
        # The server's measured-state feed: fresher state than the replies (falls back to them).
        self.state_feed: StateFeedThread | None = None
        if cfg.state_feed:
            self.state_feed = StateFeedThread(cfg.robot_host, cfg.effective_state_port, codec, sv,
                                              st.robot, st.counters, st.events, st.rates,
                                              timeout_s=cfg.state_feed_timeout_s, realtime_priority=max(0, rt - 1))
            self.loop_threads.append(self.state_feed)
            self.timekeepers.append(self.state_feed)
        for t in self.timekeepers:
            t.slice_s = cfg.loop_slice_ms / 1e3
        # Without real-time scheduling, each tick of these loops is waited for on several CPUs.
        for i, loop in enumerate((self.control, self.recorder, self.vr)):
            loop.waker_cpus = pick_cpus(cfg.loop_wakers, offset=i * cfg.loop_wakers)
        # Built only with cameras: an idle camera loop would show (and be recorded) as a dead thread.
        self.cameras: CameraThread | None = None
        if cfg.cameras:
            self.cameras = CameraThread(cfg.robot_host, list(cfg.cameras), sv,
                                        st.cameras, st.counters, st.events, st.rates,
                                        port_offset=cfg.camera_port_offset, realtime_priority=max(0, rt - 2),
                                        names=camera_names(cfg))
            self.loop_threads.append(self.cameras)
        # --debug: the simulator's state blob (~1 Hz) goes into recordings as /sim/state.
        self.sim_state: SimStateThread | None = None
        if cfg.debug:
            self.sim_state = SimStateThread(cfg.robot_host, sim_state_port_for(cfg.robot_port), sv, st.sim, st.counters,
                                            realtime_priority=min(GIL_HOLDER_PRIORITY, rt))
            self.loop_threads.append(self.sim_state)
        # VLA assist: streams frames to the inference service; lowest priority of the loops.
        self.assist: AssistThread | None = None
        if self.assist_cfg is not None:
            # imported here: the client stack (websockets, vla_client) only when assist is on
            from oculus_server.threads.assist import AssistThread

            assert self.assist_cfg.url is not None
            self.assist = AssistThread(self.assist_cfg, self.assist_cfg.url, self.assist_cfg.key, sv,
                                       frames=st.cameras, robot=st.robot, channel=st.assist, events=st.events,
                                       rates=st.rates, realtime_priority=max(0, rt - 3))
            self.loop_threads.append(self.assist)

    def _scene(self) -> SimScene | None:
        """The simulator's scene (waits for it at most SCENE_WAIT_S; None without one)."""
        if self.sim_scene is None:
            return None
        scene = self.sim_scene.result(SCENE_WAIT_S)
        if scene is None:
            log.warning("no simulator scene for the recordings and the live view (%s)",
                        self.sim_scene.error or "not ready")
        return scene

    def _painter(self, scene: SimScene | None, mounts: dict[str, CameraMount]) -> ScenePainter:
        """The 3D scene of one mapper: the arm by FK, target, frusta; the sim's table and cubes."""
        sizes = {name: (SIM_CAMERA_WIDTH, SIM_CAMERA_HEIGHT) for name in SIM_CAMERAS} if self.cfg.debug else {}
        return ScenePainter(mounts, sizes, scene.bodies if scene else None)

    def _mapper_options(self, scene: SimScene | None) -> dict[str, Any]:
        """`TickMapper` keyword arguments: policy gains, camera mounts (the simulator's, then the
        configured ones), the 3D scene (the arm by FK, target, frusta; the sim's table and cubes)."""
        mounts = {**(scene.cameras if scene else {}), **self.cfg.camera_mounts}
        return {"policy_gains": self._gains, "camera_mounts": mounts, "scene": self._painter(scene, mounts)}

    def _assist_event(self, message: str, what: str) -> None:
        """An assist state change from the control thread: logged and shown (dashboard, /events)."""
        log.info("%s", message)
        self.state.events.add("assist", message, state=what)

    @property
    def threads(self) -> list[DaemonThread]:
        live = [self.live] if self.live is not None else []
        return [*self.loop_threads, self.writer, *live]

    def _writer_options(self) -> dict[str, Any]:
        """`EpisodeWriter` keyword arguments for a new episode: the simulator's scene (waited for,
        with --debug) as attachments, and the mapper's (runs in the MCAP-writer thread)."""
        scene = self._scene()
        return {"attachments": scene.attachments() if scene else (), **self._mapper_options(scene)}

    def _make_writer(self, path: Path, meta: dict) -> EpisodeWriter:
        """The writer factory of an in-process writer thread."""
        return EpisodeWriter(path, meta, **self._writer_options())

    def _measured_position(self) -> np.ndarray | None:
        """The newest measured TCP position (robot base frame, m), or None if none is fresh (0.5 s)."""
        obs = self.state.robot.observation()
        if obs is None or time.monotonic() - obs.t_recv > MEASURED_FRESH_S:
            return None
        return np.asarray(obs.state.pos, dtype=float)

    def start(self) -> None:
        """Starts the helper processes, then every thread."""
        # Each thread asks for real-time scheduling as it starts (SCHED_FIFO, else RealtimeKit); the
        # helpers' receivers start with them.
        grant = self.scheduling.setup()
        for t in self.threads:
            t.grant = grant
        self._start_helpers()
        # A stop (Ctrl-C) while the helpers started: the loops start and end at once, and the
        # robot not having been asked is no fault.
        self._stopped_in_start = self.stop_event.is_set()
        if self._stopped_in_start:
            log.info("interrupted during start-up: stopping before the loops ran")
        # Python hands the GIL over every 5 ms by default: a loop thread waking on its deadline
        # could wait that long behind the writer. 0.5 ms keeps wake-up jitter well under 1 ms.
        # A full garbage collection walks every tracked object (hundreds of thousands after
        # importing mujoco, numpy, protobuf, rich) while holding the GIL: tens of ms in which no
        # loop runs. Freezing what exists now keeps later collections down to the daemon's own
        # young objects.
        warm_up()
        gc.collect()
        gc.freeze()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        # The main thread (dashboard) takes the GIL too: it must not be preempted while holding it.
        grant(max(0, self.cfg.realtime_priority - 2))
        self.started_at = time.monotonic()
        for t in self.threads:
            t.start()
        self._say(self.scheduling.report(self.threads))
        log.info(
            "daemon running: vr %s Hz, control %s Hz, recording %s Hz, robot %s:%d, source %s",
            self.cfg.vr_hz, self.cfg.effective_control_hz, self.cfg.record_hz,
            self.cfg.robot_host, self.cfg.robot_port, self.source.name,
        )

    def _start_helpers(self) -> None:
        """Starts the recording and live-view processes and waits (at most HELPERS_START_S, or
        until a stop) until they and the simulator's scene description are up, before any loop
        runs: each spends about a second of CPU importing, which the loops would otherwise
        compete with in their first seconds (measured under load without SCHED_FIFO: stalls of
        0.2–0.55 s in the first 2 s of the recording)."""
        helpers = [h for h in (self.writer, self.live) if isinstance(h, (WriterProcessThread, LiveProcessThread))]
        for h in helpers:
            h.launch()
        deadline = time.monotonic() + HELPERS_START_S
        for h in helpers:
            self._wait_or_stop(h.wait_started, deadline)
        scene = self.sim_scene
        if scene is not None:
            self._wait_or_stop(lambda t: scene.result(t) is not None or bool(scene.error), deadline)

    def _wait_or_stop(self, done: Callable[[float], bool], deadline: float) -> None:
        """Calls `done(timeout_s)` (at most 0.1 s each) until it is True, `deadline` (monotonic, s)
        passes or a stop comes."""
        while not done(min(0.1, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline or self.signals.wait(self.stop_event, 0.0):
                return

    def _say(self, report: Report | None) -> None:
        """Tells the operator how the loops are scheduled (log, dashboard, /events, the recording):
        once at start, without real-time scheduling what that means and the command that fixes it."""
        if report is not None:
            log.log(report.level, "%s", report.message)
            self.state.events.add("scheduling", report.message, **report.data)

    def wait(self, tick: Callable[[], None] | None = None, period_s: float = 0.25) -> None:
        """Blocks until the stop event (calling `tick` every `period_s`) or `cfg.duration`."""
        end = None if self.cfg.duration is None else self.started_at + self.cfg.duration
        while not self.signals.wait(self.stop_event, period_s):
            self._say(self.scheduling.take_demotion())
            if tick is not None:
                tick()
            if end is not None and time.monotonic() >= end:
                log.info("duration of %.1f s reached: stopping", self.cfg.duration)
                self.stop_event.set()

    def shutdown(self) -> int:
        """Stops and joins everything, finalizes the recording; returns the exit code."""
        self.stop_event.set()
        deadline = time.monotonic() + JOIN_BUDGET_S
        for t in self.loop_threads:
            t.join(timeout=max(0.05, deadline - time.monotonic()))
        if not self.recorder.is_alive():
            # A thread's failure goes into the recording too (an error event, and `ended_by`).
            failed = self.supervisor.failures()
            for f in failed:
                self.state.events.add("error", f"thread '{f.thread}' failed: {f.error}", thread=f.thread)
            reason = "; ".join(f"thread '{f.thread}' failed: {f.error}" for f in failed)
            self.recorder.finish(reason=reason or "daemon stopped")
        self.writer_stop.set()
        if isinstance(self.writer, WriterProcessThread):
            # the recording process drains, finalizes and answers (or is killed and reported)
            self.writer.join(timeout=self.writer.drain_s + FINALIZE_S + 1.0)
            if self.writer.is_alive():
                self.writer.abandon()
                self.writer.join(timeout=2.0)
        else:
            self.writer.join(timeout=max(1.0, deadline + 0.4 - time.monotonic()))
        if self.live is not None:
            self.live.join(timeout=1.0)
            if self.live.is_alive():  # its forwarder waits on a stalled child: kill the child
                self.live.abandon()
                self.live.join(timeout=2.0)
        alive = [t.name for t in self.threads if t.is_alive()]
        if alive:
            log.error("threads still running after shutdown: %s", ", ".join(alive))
        reset_normal()  # the main thread goes back to normal scheduling
        self.scheduling.close()
        sys.setswitchinterval(self._switch_interval)
        if self._own_scene and self.sim_scene is not None:
            self.sim_scene.close()
        failures = self.supervisor.failures()
        for f in failures:
            log.error("thread '%s' failed: %s\n%s", f.thread, f.error, f.traceback)
        faults = self.writer.faults
        for fault in faults:
            log.error("recording fault: %s", fault.describe())
        never = self.state.robot.observation() is None and not self._stopped_in_start
        if never:
            link = self.state.robot.link()
            log.error("the robot at %s:%d never answered (%d requests timed out, %d failed): nothing "
                      "was received from it", self.cfg.robot_host, self.cfg.robot_port, link.timeouts, link.errors)
        return 1 if failures or alive or faults or never else 0

    def run(self, tick: Callable[[], None] | None = None) -> int:
        """start + wait + shutdown."""
        self.start()
        try:
            self.wait(tick)
        finally:
            code = self.shutdown()
        return code


def adb_headset_present(serial_or_ip: str | None = None) -> bool:
    """True if adb lists a ready headset (see `oculus_server.vr.quest.headset_present`)."""
    from oculus_server.vr.quest import headset_present

    return headset_present(serial_or_ip)
