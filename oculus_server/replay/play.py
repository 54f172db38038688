"""`teleop-replay play`: re-sends the recorded commands to a robot server and measures the departure.

The commands (``/robot/command``: pose target + gripper) are sent with their recorded spacing
divided by `speed`. Every reply carries the measured state; its position is compared with the
recorded measured position at the same recording time (linear interpolation), giving RMS and
maximum departure in millimetres.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from frankateach.client import RobotClient
from frankateach.errors import FrankaTeachError, RobotTimeoutError
from frankateach.messages import FrankaAction
from oculus_server.errors import RecordingError
from oculus_server.replay.episode import Episode

log = logging.getLogger(__name__)

StepCallback = Callable[[int, int], None]  # (commands sent, commands total)
APPROACH_TOLERANCE_M = 0.005
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

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def describe(self) -> str:
        return (
            f"sent {self.commands_sent}/{self.commands_total} commands in {self.wall_s:.2f} s "
            f"({self.recorded_span_s:.2f} s recorded, speed {self.speed:g}×), {self.errors} errors, {self.timeouts} timeouts\n"
            f"departure from the recorded measured trajectory: RMS {self.rms_mm:.2f} mm, max {self.max_mm:.2f} mm, "
            f"final {self.final_mm:.2f} mm ({self.samples} samples)"
        )


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
        raise RecordingError(f"no commands between {start_s} s and {end_s} s (recording has {rel[0]:.2f}–{rel[-1]:.2f} s)")
    return idx


def _action(ep: Episode, i: int) -> FrankaAction:
    return FrankaAction(
        pos=ep.target_pos[i].copy(), quat=ep.target_quat[i].copy(), gripper=float(np.clip(ep.target_gripper[i], -1, 1)),
        reset=bool(ep.target_reset[i]), timestamp=time.time(),
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

    Raises:
        RecordingError: nothing to replay or bad arguments.
        FrankaTeachError: the robot stopped answering (10 failures in a row).
    """
    if not speed > 0:
        raise RecordingError(f"speed must be > 0, got {speed}")
    idx = select_commands(ep, start_s, end_s)
    made = ep.cmd_made_t[idx]
    errors = timeouts = consecutive = 0

    def send(i: int) -> np.ndarray | None:
        nonlocal errors, timeouts, consecutive
        try:
            state = client.send(_action(ep, i))
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
            return state.pos
        if consecutive >= MAX_CONSECUTIVE_FAILURES:
            raise FrankaTeachError(f"replay stopped: {consecutive} commands in a row failed ({errors} errors, {timeouts} timeouts)")
        return None

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
    rms = mx = final = float("nan")
    if got and ep.robot_t.size >= 2:
        q = np.asarray(rec_t)
        inside = (q >= ep.robot_t[0]) & (q <= ep.robot_t[-1])
        if inside.any():
            ref = np.stack([np.interp(q[inside], ep.robot_t, ep.ee_pos[:, a]) for a in range(3)], axis=1)
            d = np.linalg.norm(np.asarray(got)[inside] - ref, axis=1) * 1e3
            rms, mx, final = float(np.sqrt(np.mean(d**2))), float(d.max()), float(d[-1])
    return PlayReport(
        commands_total=int(idx.size), commands_sent=sent, errors=errors, timeouts=timeouts, speed=float(speed),
        wall_s=wall, recorded_span_s=float(made[-1] - made[0]), samples=len(got), rms_mm=rms, max_mm=mx,
        final_mm=final, approach_mm=approach_mm,
    )
