"""`teleop-replay play`: re-sends the recorded commands to a robot server and measures the departure.

The commands (``/robot/command``: pose target + gripper) are sent with their recorded spacing
divided by `speed`. Every reply carries the measured state; its position is compared with the
recorded measured position at the same recording time (linear interpolation), giving RMS and
maximum departure in millimetres. After the last command the arm is given up to `SETTLE_S` to come
to rest (the state polled until it moves less than `SETTLE_STEP_M` between polls), and the
*path* departure is measured without time: the farthest any measured position lies from the
recorded hand's path, and the farthest any recorded position lies from the measured path. At
`--speed 2` or on a busy machine the arm lags the clock (the timed departure grows) yet can still
trace the same path.

A recording is not trusted: every target passes the live command path's checks (`ReplayGuard`:
the same `StateCheck` and `CommandGate` as the control thread, with the daemon's default
`SafetyConfig` unless given one). Targets are clamped into the workspace box, steps are limited
to the same speed (the gate's per-command step at the replay's command rate, and two commands
never closer than one such period), non-finite targets are refused (the arm holds), the first
command holds the measured pose, and nothing is sent while the measured state is not believed.
So a replay cannot send what live control could not. What the gate changed is counted in the
report (`interventions`).
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from frankateach.client import RobotClient
from frankateach.errors import FrankaTeachError, RobotTimeoutError
from frankateach.messages import FrankaAction, FrankaState
from oculus_server.safety import CommandGate, Proposal, RobotView, SafetyConfig, StateCheck
from robot_formats.recording.episode import Episode
from robot_formats.recording.errors import RecordingError
from robot_formats.recording.records import ControlMode, RobotObservation

log = logging.getLogger(__name__)

StepCallback = Callable[[int, int], None]  # (commands sent, commands total)
APPROACH_TOLERANCE_M = 0.005
SETTLE_S = 3.0  # after the last command, how long the arm is given to come to rest, s
SETTLE_STEP_M = 0.0005  # ... at rest: it moved less than this between two polls 50 ms apart
MAX_CONSECUTIVE_FAILURES = 10


@dataclass
class PlayReport:
    """Outcome of a replay. Distances in millimetres, times in seconds."""

    commands_total: int
    commands_sent: int
    errors: int
    timeouts: int
    speed: float
    wall_s: float
    recorded_span_s: float
    samples: int
    rms_mm: float
    max_mm: float
    final_mm: float
    approach_mm: float  # distance to the first target when the replay started
    path_mm: float = float("nan")  # time-free: the farthest either path lies from the other (after settling)
    settled_final_mm: float = float("nan")  # the hand at rest vs the last command's target
    withheld: int = 0  # commands the gate let nothing out for (state not believed, arm outside the box)
    interventions: dict[str, int] = field(default_factory=dict)  # safety kind -> count

    def to_dict(self) -> dict[str, float | int | dict[str, int]]:
        return asdict(self)

    def describe(self) -> str:
        return (
            f"sent {self.commands_sent}/{self.commands_total} commands in {self.wall_s:.2f} s "
            f"({self.recorded_span_s:.2f} s recorded, speed {self.speed:g}×), {self.errors} errors, "
            f"{self.timeouts} timeouts\n"
            f"departure from the recorded measured trajectory: RMS {self.rms_mm:.2f} mm, max {self.max_mm:.2f} mm, "
            f"final {self.final_mm:.2f} mm ({self.samples} samples)\n"
            f"path: the measured and recorded hand paths lie within {self.path_mm:.2f} mm of each other; "
            f"at rest {self.settled_final_mm:.2f} mm from the last target\n"
            f"safety: {self.withheld} withheld; "
            + (", ".join(f"{k} {n}" for k, n in sorted(self.interventions.items())) or "no interventions")
        )


class ReplayGuard:
    """The live command path's checks for replayed targets: `StateCheck` + `CommandGate`.

    Args:
        safety: the limits (the daemon's defaults if None).
        rate_hz: commands per second of the replay (the gate's steps are per command), Hz.
        clock: monotonic clock, seconds.
    """

    SOURCE = "replay"

    def __init__(
        self, safety: SafetyConfig | None, rate_hz: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        cfg = safety if safety is not None else SafetyConfig()
        self.period_s = 1.0 / rate_hz
        self.gate = CommandGate(cfg, rate_hz)
        self.check = StateCheck(cfg, rate_hz)
        self.clock = clock
        self.epoch = 1
        self.interventions: Counter[str] = Counter()
        self.withheld = 0

    def observe(self, state: FrankaState) -> None:
        """Judges a measured state (every reply)."""
        now = self.clock()
        verdict = self.check.judge(
            RobotObservation(state, now, time.time(), link_epoch=self.epoch), self.gate.last_sent
        )
        if verdict.fault_started:
            self.interventions["implausible_state"] += 1
            log.warning("replay: robot state not believed (%s): nothing is sent until it is", verdict.reason)

    def link_lost(self) -> None:
        """A request failed: like an outage, the next command holds the freshly measured pose."""
        self.epoch += 1

    def admit(self, target: FrankaAction) -> FrankaAction | None:
        """What may leave for `target` (None: nothing now; ask for the state instead)."""
        obs = self.check.believed
        ok = obs is not None and not self.check.faulty
        view = RobotView(ok, obs, ControlMode.REAL_TIME, self.epoch, "" if ok else self.check.fault_reason)
        reset = bool(target.reset)
        proposal = Proposal(source=self.SOURCE, engaged=not reset, pos=target.pos, quat=target.quat,
                            gripper=float(target.gripper), reset=reset)
        result = self.gate.admit(proposal, view, self.clock())
        for r in result.records:
            self.interventions[r.kind] += 1
        if result.command is None:
            self.withheld += 1
            return None
        return result.command.command.target


def command_rate_hz(ep: Episode, idx: np.ndarray, speed: float) -> float:
    """Commands per second of a replay: the recorded median spacing divided by `speed`, Hz."""
    made = ep.cmd_made_t[idx]
    d = np.diff(made)
    d = d[d > 0]
    period = float(np.median(d)) if d.size else 0.05
    return speed / max(period, 1e-3)


def select_commands(ep: Episode, start_s: float = 0.0, end_s: float | None = None) -> np.ndarray:
    """Indices of the commands made between `start_s` and `end_s` (s from the recording start)."""
    if ep.cmd_made_t.size == 0:
        raise RecordingError(f"{ep.path} has no /robot/command messages to replay")
    rel = ep.cmd_made_t - ep.t0
    keep = rel >= start_s
    if end_s is not None:
        keep &= rel <= end_s
    idx = np.nonzero(keep)[0]
    if idx.size == 0:
        raise RecordingError(
            f"no commands between {start_s} s and {end_s} s (recording has {rel[0]:.2f}–{rel[-1]:.2f} s)"
        )
    return idx


def _action(ep: Episode, i: int) -> FrankaAction:
    return FrankaAction(
        pos=ep.target_pos[i].copy(),
        quat=ep.target_quat[i].copy(),
        gripper=float(ep.target_gripper[i]),  # the guard clips
        reset=bool(ep.target_reset[i]),
        timestamp=time.time(),
    )


def play(
    ep: Episode,
    client: RobotClient,
    speed: float = 1.0,
    start_s: float = 0.0,
    end_s: float | None = None,
    approach_s: float = 3.0,
    on_step: StepCallback | None = None,
    stop: Callable[[], bool] | None = None,
    safety: SafetyConfig | None = None,
) -> PlayReport:
    """Replays the recorded commands through `client`.

    Args:
        ep: the recording (images not needed).
        client: connected robot client.
        speed: time scale (2 = twice as fast).
        start_s, end_s: window, seconds from the recording start.
        approach_s: first hold the first target for up to this long until the hand is within
            5 mm of it (0 skips the approach).
        on_step: progress callback (sent, total).
        stop: polled between commands; returning True ends the replay early.
        safety: the command path's limits (default: the daemon's `SafetyConfig`).

    Raises:
        RecordingError: nothing to replay or bad arguments.
        FrankaTeachError: the robot stopped answering (10 failures in a row).
    """
    if not speed > 0:
        raise RecordingError(f"speed must be > 0, got {speed}")
    idx = select_commands(ep, start_s, end_s)
    made = ep.cmd_made_t[idx]
    errors = timeouts = consecutive = 0
    guard = ReplayGuard(safety, command_rate_hz(ep, idx, speed))
    last_send = -math.inf

    def exchange(action: FrankaAction | None) -> np.ndarray | None:
        """Sends `action` (None: asks for the state); returns the measured position or None."""
        nonlocal errors, timeouts, consecutive, last_send
        try:
            if action is None:
                state = client.get_state()
            else:
                wait = last_send + guard.period_s - time.monotonic()
                if wait > 0:  # never two commands closer than the gate's period: the speed limit holds
                    time.sleep(wait)
                last_send = time.monotonic()
                state = client.send(action)
        except RobotTimeoutError as exc:
            timeouts += 1
            consecutive += 1
            log.warning("replay: %s", exc)
        except FrankaTeachError as exc:
            errors += 1
            consecutive += 1
            log.warning("replay: robot refused a command: %s", exc)
        else:
            consecutive = 0
            guard.observe(state)
            return np.asarray(state.pos, dtype=float)
        guard.link_lost()
        if consecutive >= MAX_CONSECUTIVE_FAILURES:
            raise FrankaTeachError(
                f"replay stopped: {consecutive} commands in a row failed ({errors} errors, {timeouts} timeouts)"
            )
        return None

    def send(i: int) -> np.ndarray | None:
        """Recorded command `i` through the guard (the state is fetched first when needed)."""
        if guard.check.believed is None or consecutive:
            if exchange(None) is None:
                return None
        out = guard.admit(_action(ep, i))
        return exchange(out)

    first = int(idx[0])
    approach_mm = float("nan")
    if approach_s > 0 and not ep.target_reset[first]:
        deadline = time.monotonic() + approach_s
        while True:
            pos = send(first)
            if pos is not None:
                approach_mm = float(np.linalg.norm(pos - ep.target_pos[first]) * 1e3)
                if approach_mm <= APPROACH_TOLERANCE_M * 1e3:
                    break
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
    rec_t: list[float] = []
    got: list[np.ndarray] = []
    t_start = time.monotonic()
    sent = 0
    withheld_before = guard.withheld  # the approach's are not the recording's commands
    for k, i in enumerate(idx):
        if stop is not None and stop():
            break
        delay = t_start + (made[k] - made[0]) / speed - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        pos = send(int(i))
        sent += 1
        if pos is not None:
            rec_t.append(made[0] + (time.monotonic() - t_start) * speed)
            got.append(pos)
        if on_step is not None:
            on_step(sent, idx.size)
    wall = time.monotonic() - t_start
    settled = _settle(exchange, stop) if got else []
    rms = mx = final = float("nan")
    if got and ep.robot_t.size >= 2:
        q = np.asarray(rec_t)
        inside = (q >= ep.robot_t[0]) & (q <= ep.robot_t[-1])
        if inside.any():
            ref = np.stack([np.interp(q[inside], ep.robot_t, ep.ee_pos[:, a]) for a in range(3)], axis=1)
            d = np.linalg.norm(np.asarray(got)[inside] - ref, axis=1) * 1e3
            rms, mx, final = float(np.sqrt(np.mean(d**2))), float(d.max()), float(d[-1])
    path_mm = settled_mm = float("nan")
    # The recorded hand from the first command until it came to rest after the last (as the replay's).
    window = (ep.robot_t >= made[0]) & (ep.robot_t <= made[-1] + SETTLE_S)
    if got and window.any():
        from scipy.spatial import cKDTree

        measured = np.asarray(got + settled)
        # The recorded hand's path, ending at the last target: a recording may stop before its arm
        # arrives, the replay's arm is given the time to (1 mm steps from the last recorded point).
        last, goal = ep.ee_pos[window][-1], ep.target_pos[int(idx[-1])]
        steps = max(1, int(np.linalg.norm(goal - last) / 0.001))
        recorded = np.concatenate([ep.ee_pos[window], last + np.outer(np.arange(1, steps + 1) / steps, goal - last)])
        away = cKDTree(recorded).query(measured)[0].max()  # a measured point off the recorded path
        missed = cKDTree(measured).query(recorded)[0].max()  # a recorded point the arm never came near
        path_mm = float(max(away, missed) * 1e3)
        settled_mm = float(np.linalg.norm(measured[-1] - goal) * 1e3)
    return PlayReport(
        commands_total=int(idx.size), commands_sent=sent - (guard.withheld - withheld_before), errors=errors,
        timeouts=timeouts, speed=float(speed), wall_s=wall, recorded_span_s=float(made[-1] - made[0]),
        samples=len(got), rms_mm=rms, max_mm=mx, final_mm=final, approach_mm=approach_mm,
        path_mm=path_mm, settled_final_mm=settled_mm,
        withheld=guard.withheld - withheld_before,
        interventions=dict(guard.interventions),
    )


def _settle(exchange: Callable[[FrankaAction | None], np.ndarray | None],
            stop: Callable[[], bool] | None) -> list[np.ndarray]:
    """After the last command: the measured positions while the arm comes to rest (at most
    `SETTLE_S`; the robot keeps its last target)."""
    out: list[np.ndarray] = []
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline and not (stop is not None and stop()):
        time.sleep(0.05)
        pos = exchange(None)
        if pos is None:
            continue
        if out and np.linalg.norm(pos - out[-1]) < SETTLE_STEP_M:
            out.append(pos)
            break
        out.append(pos)
    return out
