"""`teleop-replay`: inspect, replay, export, plot and recover episode recordings.

    teleop-replay info FILE [--json]
    teleop-replay play FILE [--host H --port P | --start-sim] [--speed N] [--start S] [--end S]
    teleop-replay export FILE|DIR --to hdf5|mp4|lerobot [-o OUT] [--images] [--fps HZ] [--success-only]
                  [--image-storage video|png] [--task-feature] [--size WxH]
    teleop-replay plot FILE -o OUT.png
    teleop-replay recover FILE [-o OUT] [--json]

Options before the command: ``--progress json`` prints progress as JSON lines on stdout
(``{"phase": "reading", "what": "reading NAME.mcap", "done": N, "total": M}``, at most one per
percent), for programs that run this command (the web UI does); ``--parent-pid PID`` ends the
command when that process exits (a child never outlives its parent).

Exit status: 0 success; 1 error; 2 bad arguments; `recover` also 3 (valid file written but data
was lost) and 1 (nothing recoverable), as `mcap recover` does.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from frankateach.constants import CONTROL_PORT, HOST
from frankateach.errors import FrankaTeachError
from frankateach.lifeline import ParentWatch

log = logging.getLogger("teleop-replay")


class JsonProgress:
    """`rich.progress.Progress`'s task interface, printing JSON lines on stdout instead of bars.

    One line per task update that moves its completion by at least a percent (and its first and
    last update): ``{"phase": <first word of the description>, "what": <description>, "done": N,
    "total": M}``.
    """

    def __init__(self) -> None:
        self._tasks: dict[TaskID, tuple[str, int, int, int]] = {}  # id -> (description, done, total, last percent)

    def __enter__(self) -> JsonProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, description: str, total: float | None = None) -> TaskID:
        task = TaskID(len(self._tasks))
        self._tasks[task] = (description, 0, int(total or 0), -1)
        return task

    def update(self, task: TaskID, completed: float | None = None, total: float | None = None) -> None:
        description, done, tot, last = self._tasks[task]
        done = int(completed) if completed is not None else done
        tot = int(total) if total is not None else tot
        percent = int(100 * done / tot) if tot > 0 else 0
        if percent != last or done == tot:
            line = {"phase": description.split(" ", 1)[0], "what": description, "done": done, "total": tot}
            print(json.dumps(line), flush=True)
        self._tasks[task] = (description, done, tot, percent)

    def advance(self, task: TaskID, advance: float = 1) -> None:
        self.update(task, completed=self._tasks[task][1] + int(advance))


def _progress(console: Console, mode: str = "bar") -> Progress | JsonProgress:
    if mode == "json":
        return JsonProgress()
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), console=console, transient=False, disable=not console.is_terminal,
    )


@contextmanager
def _bar(progress: Progress | JsonProgress, description: str) -> Iterator:
    task = progress.add_task(description, total=None)

    def update(done: int, total: int) -> None:
        progress.update(task, completed=done, total=max(total, 1))

    yield update


def image_size(text: str) -> tuple[int, int]:
    """``"80x60"`` → (80, 60): an image size W×H, each side 2…4096 px (argparse type)."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        w, h = (int(v) for v in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 80x60, got {text!r}") from None
    if not (2 <= w <= 4096 and 2 <= h <= 4096):
        raise argparse.ArgumentTypeError(f"expected each side in 2..4096 px, got {text!r}")
    return w, h


def recordings_in(target: Path) -> list[Path]:
    """`target` itself if it is a file, else its finished ``*.mcap`` recordings (recursively, sorted).

    Raises:
        FrankaTeachError: nothing found.
    """
    if target.is_file():
        return [target]
    if target.is_dir():
        found = sorted(p for p in target.rglob("*.mcap") if p.is_file())
        if found:
            return found
        raise FrankaTeachError(f"no .mcap recordings in {target}")
    raise FrankaTeachError(f"{target} does not exist")


# -- commands ---------------------------------------------------------------------------------------
def cmd_info(args: argparse.Namespace, console: Console) -> int:
    from robot_formats.recording.info import format_info, recording_info

    info = recording_info(args.file, sequences=not args.no_seq)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(format_info(info, verbose=args.verbose))
    return 0


def cmd_recover(args: argparse.Namespace, console: Console) -> int:
    from robot_formats.recording.recover import recover

    report = recover(args.file, args.out)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.describe())
    return report.exit_code


def cmd_plot(args: argparse.Namespace, console: Console) -> int:
    from oculus_server.replay.plot import plot_episode
    from robot_formats.recording.episode import load_episode

    with _progress(console, args.progress) as progress, _bar(progress, "reading") as update:
        ep = load_episode(args.file, images=False, progress=update)
    out = plot_episode(ep, args.out)
    print(f"wrote {out}")
    return 0


def _successful(files: list[Path]) -> list[Path]:
    """The recordings of `files` whose outcome (``recording_end`` metadata) is "success"."""
    from robot_formats.recording.reader import RecordingReader

    kept = []
    for path in files:
        with RecordingReader(path) as r:
            if r.metadata().get("recording_end", {}).get("outcome") == "success":
                kept.append(path)
    return kept


def cmd_export(args: argparse.Namespace, console: Console) -> int:
    from oculus_server.replay.export import export_hdf5, export_mp4
    from oculus_server.replay.lerobot import export_lerobot
    from robot_formats.recording.episode import load_episode

    if args.fps is not None and args.to != "lerobot":
        print(f"error: --fps sets the frame rate of a LeRobot dataset (--to lerobot); --to {args.to} keeps "
              "the recorded timing (hdf5: one row per recorded tick, mp4: every frame at its capture time)",
              file=sys.stderr)
        return 2
    if args.to != "lerobot" and (args.image_storage != "video" or args.task_feature or args.size):
        print(f"error: --image-storage, --task-feature and --size shape a LeRobot dataset (--to lerobot), "
              f"not --to {args.to}", file=sys.stderr)
        return 2
    files = recordings_in(Path(args.target))
    base = Path(args.target)
    single = base.is_file()
    if args.success_only:
        found = len(files)
        files = _successful(files)
        console.print(f"{len(files)} of {found} recordings ended in success")
        if not files:
            raise FrankaTeachError(f"none of the {found} recordings in {base} ended in success; nothing to export")
    images = args.to in ("mp4", "lerobot") or args.images
    written: list[Path] = []
    with _progress(console, args.progress) as progress:
        overall = progress.add_task("recordings", total=len(files))
        if args.to == "lerobot":
            episodes = []
            for path in files:
                with _bar(progress, f"reading {path.name}") as update:
                    episodes.append(load_episode(path, images=True, progress=update))
                progress.advance(overall)
            out = Path(args.out) if args.out else base.with_name((base.name[:-5] if single else base.name) + "_lerobot")
            with _bar(progress, "encoding dataset") as update:
                written.append(export_lerobot(episodes, out, fps=args.fps, progress=update,
                                              image_storage=args.image_storage, task_feature=args.task_feature,
                                              size=args.size))
        else:
            out_dir = (
                Path(args.out) if args.out and not (single and args.to == "hdf5") else (base.parent if single else base)
            )
            for path in files:
                with _bar(progress, f"reading {path.name}") as update:
                    ep = load_episode(path, images=images, progress=update)
                if args.to == "hdf5":
                    dest = Path(args.out) if (single and args.out) else out_dir / (path.name[:-5] + ".h5")
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with _bar(progress, f"writing {dest.name}") as update:
                        written.append(export_hdf5(ep, dest, images=args.images, progress=update))
                else:
                    with _bar(progress, f"encoding {path.name}") as update:
                        written.extend(export_mp4(ep, out_dir, progress=update).values())
                progress.advance(overall)
    for p in written:
        print(f"wrote {p}")
    return 0


def cmd_play(args: argparse.Namespace, console: Console) -> int:
    from frankateach.client import RobotClient
    from oculus_server.replay.play import play
    from robot_formats.recording.episode import load_episode

    sim = None
    host, port = args.host, args.port
    if args.start_sim:
        try:
            from frankateach.sim.server import start_sim_server
        except ImportError as exc:
            raise FrankaTeachError(f"--start-sim needs the MuJoCo simulator (frankateach.sim): {exc}") from None
        sim = start_sim_server(cameras=False)
        host, port = "127.0.0.1", sim.ports.control
        print(f"started the simulator on 127.0.0.1:{port}")
    safety = None
    if args.config is not None:
        from oculus_server.config import load_config
        from oculus_server.safety import SafetyConfig

        safety = SafetyConfig.from_dict(load_config(args.config).safety)
    client = RobotClient(host, port)
    try:
        with _progress(console, args.progress) as progress:
            with _bar(progress, "reading") as update:
                ep = load_episode(args.file, images=False, progress=update)
            with _bar(progress, f"replaying at {args.speed:g}×") as update:
                report = play(ep, client, speed=args.speed, start_s=args.start, end_s=args.end,
                              approach_s=0.0 if args.no_approach else args.approach, on_step=update,
                              safety=safety)
    finally:
        client.close()
        if sim is not None:
            sim.stop()
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.describe())
    return 0 if report.commands_sent else 1


# -- parser -------------------------------------------------------------------------------------------
def _positive(text: str) -> float:
    v = float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return v


def _non_negative(text: str) -> float:
    v = float(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="teleop-replay", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--log-level", default="WARNING")
    p.add_argument("--progress", choices=("bar", "json"), default="bar",
                   help="bar: progress bars on a terminal; json: JSON lines on stdout (for programs)")
    p.add_argument("--parent-pid", type=int, default=0, help="exit when this process (the parent) exits")
    p.add_argument("--parent-death-signal", type=int, default=0, help="signal the kernel sends when the parent exits")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("info", help="duration, topics, rates, gaps, metadata")
    s.add_argument("file", type=Path)
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--no-seq", action="store_true", help="skip sequence numbers (index only, fastest)")
    s.add_argument("-v", "--verbose", action="store_true", help="full metadata values and every gap")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("play", help="re-send the recorded commands to a robot server")
    s.add_argument("file", type=Path)
    s.add_argument("--host", default=HOST)
    s.add_argument("--port", type=int, default=CONTROL_PORT, help="control (REP) port")
    s.add_argument("--start-sim", action="store_true", help="start the MuJoCo simulator in-process and replay on it")
    s.add_argument("--speed", type=_positive, default=1.0, help="time scale, e.g. 2 = twice as fast")
    s.add_argument("--start", type=_non_negative, default=0.0, help="seconds from the recording start")
    s.add_argument("--end", type=_non_negative, default=None, help="seconds from the recording start")
    s.add_argument("--approach", type=_non_negative, default=3.0, help="seconds allowed to reach the first target")
    s.add_argument("--no-approach", action="store_true", help="start replaying at once")
    s.add_argument("--config", type=Path, default=None,
                   help="daemon YAML whose safety: section limits the replay (default: the daemon's defaults)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_play)

    s = sub.add_parser("export", help="convert to HDF5 (DROID-like), MP4 or a LeRobot v3 dataset")
    s.add_argument("target", type=Path, help="a recording or a folder of recordings")
    s.add_argument("--to", required=True, choices=("hdf5", "mp4", "lerobot"))
    s.add_argument("-o", "--out", type=Path, default=None, help="output file (hdf5, one input) or folder")
    s.add_argument("--images", action="store_true", help="hdf5: embed decoded camera images")
    s.add_argument("--fps", type=_positive, default=None,
                   help="lerobot only: frame rate (default: the recording rate)")
    s.add_argument("--success-only", action="store_true",
                   help="only recordings whose outcome is success (arena episodes, teleop runs marked with B)")
    s.add_argument("--image-storage", choices=("video", "png"), default="video",
                   help="lerobot only: camera frames as one MP4 per camera (default) or PNG per frame in the "
                        "data parquet (no video decoding when training: faster on a CPU)")
    s.add_argument("--task-feature", action="store_true",
                   help="lerobot only: add observation.environment_state, the one-hot of each episode's task "
                        "(instruction), so ACT / Diffusion learn which object the instruction names")
    s.add_argument("--size", type=image_size, default=None, metavar="WxH",
                   help="lerobot only: resize every camera's frames to W×H (e.g. 80x60; default: as recorded)")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("plot", help="overview PNG: rates, latency, pose vs target, gripper, VR inputs")
    s.add_argument("file", type=Path)
    s.add_argument("-o", "--out", type=Path, required=True)
    s.set_defaults(func=cmd_plot)

    s = sub.add_parser("recover", help="rebuild a valid file from an unfinished recording")
    s.add_argument("file", type=Path)
    s.add_argument("-o", "--out", type=Path, default=None)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_recover)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        format="%(levelname)s %(name)s: %(message)s",
    )
    console = Console(stderr=True)
    if args.parent_pid:
        if args.parent_pid < 0:
            print(f"error: --parent-pid must be a pid (or 0), got {args.parent_pid}", file=sys.stderr)
            return 2
        # no clean stop to ask for: the watch ends the process shortly after the parent is gone
        ParentWatch(args.parent_pid, lambda: None, death_signal=args.parent_death_signal).start()
    try:
        return int(args.func(args, console))
    except FrankaTeachError as exc:  # RecordingError included
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into `head` and the like
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
