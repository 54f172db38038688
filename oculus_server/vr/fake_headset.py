"""A stand-in for a Quest headset behind ``adb``: prints the app's logcat lines from a trajectory.

It writes byte-exact app lines (threadtime prefix included, see `oculus_server.vr.app_log`),
interleaved with unrelated log lines, at a fixed rate, so the *real* `QuestReader` parsing path
runs without a headset. The command line mimics the adb sub-commands `QuestReader` uses, so its
argv can replace ``adb`` as a whole::

    python -m oculus_server.vr.fake_headset --rate 50 --trajectory circle --duration 5
    python -m oculus_server.vr.fake_headset --rate 50 -s 10.0.0.2:5555 logcat -T 0
    python -m oculus_server.vr.fake_headset connect 10.0.0.2:5555      # prints "connected to ..."
    python -m oculus_server.vr.fake_headset shell am start -n PKG/.Act  # prints "Starting: ..."

``--duration S`` ends the stream after S s (exit 0); ``--drop-after S`` simulates a pulled cable:
after S s it writes half a line, prints an adb-style error on stderr and exits with 1.
``--pause-after S`` stops writing after S s but stays alive (a headset gone to sleep).
``--bad-every N`` corrupts every N-th app line (cycling through the kinds in `CORRUPTIONS`).
``--log-commands FILE`` appends each invocation's argv (one JSON list a line) to FILE.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from oculus_server.constants import VR_FREQ
from oculus_server.vr.app_log import format_buttons, format_logcat_line, format_matrix, format_payload, logcat_prefix
from oculus_server.vr.parser import TAG_PREFIX
from oculus_server.vr.source import ButtonValue
from oculus_server.vr.trajectories import TRAJECTORIES, Trajectory, get_trajectory

# Unrelated lines a Quest prints between the app's lines (the tag never appears in them).
NOISE_MESSAGES = (
    ("D", "OVRPlugin", "Tracking state: HMD 1 LHand 1 RHand 1"),
    ("I", "VrApi", "FPS=72/72,Prd=34ms,Tear=0,Early=0,Stale=0,Stale2/5/10/max=0/0/0/0,VSnc=1"),
    ("W", "Unity", "Screen position out of view frustum (screen pos 0.000000, 0.000000, 0.000000)"),
    ("I", "chatty", "uid=10123(com.rail.oculus.teleop) identical 3 lines"),
    ("D", "OpenXR", "xrWaitFrame: predicted display time 912873461"),
)
# Ways --bad-every corrupts an app line, applied in turn, and the parser's reason for each.
CORRUPTIONS = {
    "value_count": "value_count",  # 15 numbers per matrix
    "non_finite": "non_finite",  # first number of each matrix is nan
    "not_rigid": "not_rigid",  # first rotation entry 2.5
    "truncated_buttons": "missing_analog",  # the last analog field cut off
    "garbage": "no_separator",  # binary junk after the tag
}


def corrupt_payload(
    kind: str, poses: Mapping[str, np.ndarray], buttons: Mapping[str, ButtonValue], order: Sequence[str]
) -> str:
    """Returns an app payload damaged in the way `kind` (a key of `CORRUPTIONS`) says."""
    if kind == "garbage":
        return "\x00\ufffd garbage \ufffd r:1 0 0"
    if kind == "truncated_buttons":
        text = format_payload(poses, buttons, order)
        return text[: text.rfind(",")]
    items = []
    for side in order:
        if side not in poses:
            continue
        words = format_matrix(poses[side]).split()
        if kind == "value_count":
            words = words[:15]
        elif kind == "non_finite":
            words[0] = "nan"
        elif kind == "not_rigid":
            words[0] = "2.5"
        else:
            raise ValueError(f"unknown corruption {kind!r}; expected one of {', '.join(CORRUPTIONS)}")
        items.append(f"{side}:{' '.join(words)} ")
    return "|".join(items) + "&" + format_buttons(buttons)


class FakeHeadset:
    """Writes app lines for a trajectory to a file descriptor at a fixed rate.

    Args:
        out_fd: where the lines go (e.g. 1 for stdout or a pipe's write end).
        trajectory: trajectory name or object (see `oculus_server.vr.trajectories`).
        rate_hz: app lines per second.
        speed: trajectory seconds per wall second.
        duration_s: stop after this long (exit code 0); None: run until the reader goes away.
        drop_after_s: simulate a lost device after this long (half a line, then exit code 1).
        pause_after_s: stop writing after this long but stay alive (a headset gone to sleep)
            until `duration_s` (or forever).
        noise: unrelated log lines written before each app line.
        bad_every: corrupt every N-th app line (0: never).
        side_order: "rl", "lr", "alternate" (switch every line) or "r" (right controller only).
        left: the left controller performs the motion (see `Trajectory.sample`).
        err_fd: where the drop message goes (stderr by default).
        seed: seed of the noise line choice.
        clock: monotonic clock (s); sleep: sleeps for seconds; wall: wall clock for prefixes.
    """

    def __init__(
        self,
        out_fd: int,
        *,
        trajectory: str | Trajectory = "circle",
        rate_hz: float = VR_FREQ,
        speed: float = 1.0,
        duration_s: float | None = None,
        drop_after_s: float | None = None,
        pause_after_s: float | None = None,
        noise: int = 2,
        bad_every: int = 0,
        side_order: str = "rl",
        left: bool = False,
        err_fd: int = 2,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if side_order not in ("rl", "lr", "alternate", "r"):
            raise ValueError(f"side_order must be 'rl', 'lr', 'alternate' or 'r', got {side_order!r}")
        if not rate_hz > 0:
            raise ValueError(f"rate must be > 0 Hz, got {rate_hz!r}")
        self.out_fd = out_fd
        self.err_fd = err_fd
        self.trajectory = get_trajectory(trajectory) if isinstance(trajectory, str) else trajectory
        self.rate_hz = float(rate_hz)
        self.speed = float(speed)
        self.duration_s = duration_s
        self.drop_after_s = drop_after_s
        self.pause_after_s = pause_after_s
        self.noise = noise
        self.bad_every = bad_every
        self.side_order = side_order
        self.left = left
        self._rng = random.Random(seed)
        self._clock = clock
        self._sleep = sleep
        self._wall = wall
        self.pid = 4000 + seed % 1000
        self.lines_written = 0  # app lines, corrupted ones included
        self.bad_written = 0

    def app_line(self, k: int) -> bytes:
        """The k-th app line (possibly corrupted per `bad_every`), newline included."""
        t = k / self.rate_hz * self.speed
        if self.trajectory.duration_s is not None:
            t = min(t, self.trajectory.duration_s)
        poses, buttons = self.trajectory.sample(t, left=self.left)
        if self.side_order == "r":
            poses = {"r": poses["r"]}
        order = {"rl": ("r", "l"), "lr": ("l", "r"), "r": ("r",)}.get(self.side_order) or (
            ("r", "l") if k % 2 == 0 else ("l", "r")
        )
        kind = self.corruption(k)
        if kind is None:
            return format_logcat_line(poses, buttons, self._wall(), pid=self.pid, tid=self.pid + 56, order=order)
        text = (
            logcat_prefix(self._wall(), self.pid, self.pid + 56)
            + TAG_PREFIX
            + corrupt_payload(kind, poses, buttons, order)
        )
        return (text + "\n").encode("utf-8")

    def corruption(self, k: int) -> str | None:
        """The corruption applied to the k-th app line, or None for a clean line."""
        if not self.bad_every or (k + 1) % self.bad_every:
            return None
        kinds = list(CORRUPTIONS)
        return kinds[((k + 1) // self.bad_every - 1) % len(kinds)]

    def noise_lines(self) -> bytes:
        """`noise` unrelated logcat lines."""
        out = []
        for _ in range(self.noise):
            level, tag, msg = self._rng.choice(NOISE_MESSAGES)
            out.append(logcat_prefix(self._wall(), self.pid, self.pid + 3, level, tag) + msg + "\n")
        return "".join(out).encode("ascii")

    def run(self) -> int:
        """Streams until the duration/drop time or a closed reader; returns the exit code."""
        t0 = self._clock()
        k = 0
        try:
            os.write(self.out_fd, b"--------- beginning of main\n")
            while True:
                deadline = t0 + k / self.rate_hz
                delay = deadline - self._clock()
                if delay > 0:
                    self._sleep(delay)
                elapsed = self._clock() - t0
                if self.drop_after_s is not None and elapsed >= self.drop_after_s:
                    line = self.app_line(k)
                    os.write(self.out_fd, line[: len(line) // 2])
                    os.write(
                        self.err_fd,
                        f"error: device offline (fake headset dropped after {self.drop_after_s:g} s)\n".encode(),
                    )
                    return 1
                if self.duration_s is not None and elapsed >= self.duration_s:
                    return 0
                if self.pause_after_s is not None and elapsed >= self.pause_after_s:
                    k += 1  # silent: keep the grid, write nothing
                    continue
                noise = self.noise_lines()
                line = self.app_line(k)
                if self.corruption(k) is not None:
                    self.bad_written += 1
                os.write(self.out_fd, noise + line)
                self.lines_written += 1
                k += 1
        except (BrokenPipeError, ConnectionResetError):
            return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m oculus_server.vr.fake_headset",
        description="Fake Quest headset: prints the teleop app's logcat lines (adb-compatible sub-commands).",
    )
    p.add_argument("--rate", type=float, default=float(VR_FREQ), help="app lines per second (default %(default)s)")
    p.add_argument("--trajectory", default="circle", choices=sorted(TRAJECTORIES), help="controller motion")
    p.add_argument("--speed", type=float, default=1.0, help="trajectory speed factor")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (exit 0)")
    p.add_argument(
        "--drop-after", type=float, default=None, help="simulate a lost device after this many seconds (exit 1)"
    )
    p.add_argument(
        "--pause-after", type=float, default=None, help="stop writing (but stay alive) after this many seconds"
    )
    p.add_argument("--noise", type=int, default=2, help="unrelated log lines per app line")
    p.add_argument("--bad-every", type=int, default=0, help="corrupt every N-th app line")
    p.add_argument("--side-order", default="rl", choices=("rl", "lr", "alternate", "r"))
    p.add_argument("--left", action="store_true", help="the left controller performs the motion")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fail-connect", action="store_true", help="make `connect` fail like an unreachable headset")
    p.add_argument("--log-commands", default=None, help="append each invocation's argv as JSON to this file")
    p.add_argument("-s", dest="serial", default=None, help="device serial (accepted like adb's, ignored)")
    p.add_argument(
        "command", nargs=argparse.REMAINDER, help="adb sub-command: logcat ... | connect HOST:PORT | shell am start ..."
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; see the module docstring."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.log_commands:
        with open(args.log_commands, "a", encoding="utf-8") as f:
            f.write(json.dumps(argv) + "\n")
    cmd = args.command
    if cmd[:1] == ["connect"]:
        target = cmd[1] if len(cmd) > 1 else "?"
        if args.fail_connect:
            print(f"failed to connect to '{target}': Connection refused", flush=True)
            return 1
        print(f"connected to {target}", flush=True)
        return 0
    if cmd[:3] == ["shell", "am", "start"]:
        component = cmd[cmd.index("-n") + 1] if "-n" in cmd[:-1] else "?"
        print(f"Starting: Intent {{ cmp={component} }}", flush=True)
        return 0
    if cmd and cmd[0] != "logcat":
        print(f"fake_headset: unsupported adb command {' '.join(cmd)!r}", file=sys.stderr)
        return 1
    headset = FakeHeadset(
        sys.stdout.fileno(),
        trajectory=args.trajectory,
        rate_hz=args.rate,
        speed=args.speed,
        duration_s=args.duration,
        drop_after_s=args.drop_after,
        pause_after_s=args.pause_after,
        noise=args.noise,
        bad_every=args.bad_every,
        side_order=args.side_order,
        left=args.left,
        seed=args.seed,
    )
    code = headset.run()
    if code == 0:
        # The reader may be gone: silence the interpreter's final flush of stdout.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except OSError:
            pass
    return code


if __name__ == "__main__":
    sys.exit(main())
