"""`vla-arena`: run episodes and battles, show the leaderboard — no service needed.

    vla-arena run --model M --instruction TEXT [start] [--steps N --hz F --latency-ms MS …] [--out DIR]
    vla-arena battle --model-a A --model-b B --instruction TEXT [start] [--count N] [--outcome-by metric|vote]
    vla-arena leaderboard [--rounds N] [--json]
    vla-arena list [--model M --status S --limit N] | show ID | vote BATTLE a|b|tie | rerun ID
    vla-arena models | blob-info BLOB

Start (one of): ``--scene default|shuffled --seed N`` (default), ``--blob FILE|TEXT``,
``--from-recording FILE --at SECONDS``. Global options select the data folder and where episodes
run: ``--executor local|inline|ray`` (``--workers N``, ``--ray-address ADDR``). Exit status: 0
done, 1 failed or cancelled, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from robot_formats.recording.errors import RecordingError
from vla_server.arena.blob import BlobError, blob_summary
from vla_server.arena.config import (
    CAMERAS,
    DEFAULT_CONTROL_HZ,
    DEFAULT_HEIGHT,
    DEFAULT_STEPS,
    DEFAULT_WIDTH,
    SCENES,
    EpisodeSpec,
    SpecError,
    default_data_dir,
)
from vla_server.arena.executors import EXECUTORS
from vla_server.arena.live import ArenaLive, episode_server
from vla_server.arena.live import install as install_live
from vla_server.arena.models import DEFAULT_PROVIDER, ModelNotFound, ProviderRef
from vla_server.arena.recording_start import RecordingStartError
from vla_server.arena.runtime import ArenaConfig, ArenaRuntime, spec_with_start
from vla_server.arena.store import WINNERS, StoreError
from vla_server.arena.work import DONE, FINISHED

log = logging.getLogger("vla-arena")


def _add_start(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("episode")
    g.add_argument("--instruction", required=True, help='the task, e.g. "pick up the red cube"')
    g.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"control steps (default {DEFAULT_STEPS})")
    g.add_argument("--hz", type=float, default=DEFAULT_CONTROL_HZ, help="control rate in sim time, Hz")
    g.add_argument(
        "--latency-ms", type=float, default=None, help="inference latency in sim time (default: the model's)"
    )
    g.add_argument("--jitter-ms", type=float, default=0.0, help="uniform ± latency jitter, ms (seeded)")
    g.add_argument("--camera", choices=CAMERAS, default="front", help="video camera")
    g.add_argument("--width", type=int, default=DEFAULT_WIDTH)
    g.add_argument("--height", type=int, default=DEFAULT_HEIGHT)
    g.add_argument("--task", default="auto", help="auto | lift:<cube> | place:<cube>:<cube>")
    g.add_argument("--no-video", action="store_true")
    g.add_argument("--no-trajectory", action="store_true")
    s = p.add_argument_group("start (default: the named scene)")
    s.add_argument("--scene", choices=SCENES, default="default")
    s.add_argument("--seed", type=int, default=0, help="scene shuffle, latency jitter and policy seed")
    s.add_argument("--blob", default=None, help="state blob: a file holding one, or the text itself")
    s.add_argument("--from-recording", type=Path, default=None, help="a debug teleop recording (.mcap)")
    s.add_argument("--at", type=float, default=None, help="seconds into the recording")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vla-arena", description="VLA arena: policies in the simulated scene, "
                                "in sim time; battles and a leaderboard.")
    p.add_argument("--data", default=None, help=f"data folder (default {default_data_dir()})")
    p.add_argument(
        "--executor",
        choices=EXECUTORS,
        default=None,
        help="where episodes run: local process pool (default for battles), inline thread (default for run), ray",
    )
    p.add_argument("--workers", type=int, default=None, help="local pool size (default cores − 1)")
    p.add_argument("--ray-address", default=None, help="Ray cluster address (default: start a local instance)")
    p.add_argument("--catalog", default=None, help="model catalog YAML (default: the service's)")
    p.add_argument("--provider", default=DEFAULT_PROVIDER, help=argparse.SUPPRESS)  # tests: module:Class
    p.add_argument("--log-level", default="WARNING")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("run", help="run one episode")
    s.add_argument("--model", required=True)
    _add_start(s)
    s.add_argument("--out", type=Path, default=None, help="also copy video, trajectory and blobs here")
    s.add_argument("--live", action="store_true",
                   help="watch it in Foxglove while it runs (ws://HOST:PORT, sim time, paced to real time)")
    s.add_argument("--live-host", default="127.0.0.1", help="address the live view binds (default 127.0.0.1)")
    s.add_argument("--live-port", type=int, default=8765, help="live view port (default 8765; 0: any free port)")
    s.add_argument("--live-fast", action="store_true", help="with --live: do not pace the episode to real time")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("battle", help="run battles: two models from the same start")
    s.add_argument("--model-a", required=True)
    s.add_argument("--model-b", required=True)
    _add_start(s)
    s.add_argument("--outcome-by", choices=("metric", "vote"), default="metric")
    s.add_argument("--count", type=int, default=1, help="battles, with seeds seed … seed + count − 1")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("leaderboard", help="Bradley–Terry ratings from every decided battle")
    s.add_argument("--rounds", type=int, default=200, help="bootstrap rounds for the intervals")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("list", help="recent episodes")
    s.add_argument("--model", default=None)
    s.add_argument("--status", default=None)
    s.add_argument("--limit", type=int, default=20)
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("show", help="one episode: status, metrics, log tail")
    s.add_argument("id")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("vote", help="vote on a battle")
    s.add_argument("battle")
    s.add_argument("winner", choices=WINNERS)

    s = sub.add_parser("rerun", help="run a finished episode again (same id)")
    s.add_argument("id")

    sub.add_parser("models", help="models the arena can run")

    s = sub.add_parser("blob-info", help="what a state blob holds")
    s.add_argument("blob", help="a file holding a blob, or the text itself")
    return p


def _read_blob(arg: str) -> str:
    path = Path(arg)
    if len(arg) < 4096 and path.is_file():
        return path.read_text().strip()
    return arg.strip()


def _spec(args: argparse.Namespace, model: str, seed: int | None = None) -> EpisodeSpec:
    spec = EpisodeSpec(
        model=model, instruction=args.instruction, steps=args.steps, control_hz=args.hz,
        latency_ms=args.latency_ms, latency_jitter_ms=args.jitter_ms, camera=args.camera, width=args.width,
        height=args.height, seed=args.seed if seed is None else seed, scene=args.scene,
        start_blob=_read_blob(args.blob) if args.blob else None, task=args.task,
        video=not args.no_video, trajectory=not args.no_trajectory,
    )
    spec, start = spec_with_start(spec, args.from_recording, args.at)
    if start is not None:
        print(f"start: {args.from_recording} at {start.blob_at_s:.3f} s (asked {start.at_s:.3f} s), "
              f"sim t={start.sim_time_s:.3f} s", file=sys.stderr)
    return spec


def _runtime(args: argparse.Namespace, default_executor: str) -> ArenaRuntime:
    kwargs: dict[str, Any] = {"catalog": args.catalog} if args.catalog else {}
    cfg = ArenaConfig(
        data_dir=args.data or default_data_dir(), executor=args.executor or default_executor,
        workers=args.workers, ray_address=args.ray_address, provider=ProviderRef(args.provider, kwargs),
    )
    return ArenaRuntime(cfg)


def _follow(rt: ArenaRuntime, ids: list[str], quiet: bool) -> list[dict[str, Any]]:
    """Prints progress and new log lines of `ids` until all finished."""
    offsets = dict.fromkeys(ids, 0)
    while True:
        done = []
        for eid in ids:
            lines = rt.jobs.log_lines(eid, offsets[eid])
            offsets[eid] += len(lines)
            if not quiet:
                for line in lines:
                    print(f"[{eid}] {line}", file=sys.stderr)
            st = rt.store.episode(eid)
            if st["status"] in FINISHED:
                done.append(st)
        if len(done) == len(ids):
            return [rt.store.episode(e) for e in ids]
        rt.jobs.wait_change(0.5)


def _print_episode(ep: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(ep, indent=2, default=str))
        return
    m = ep.get("metrics") or {}
    print(f"episode {ep['id']}  {ep['status']}  model {ep['model']}  \"{ep['instruction']}\"")
    if ep.get("error"):
        print(f"  error: {ep['error']}")
    if m:
        wall = m.get("wall", {})
        print(f"  success {m.get('success')}  progress {m.get('progress')}  task {m.get('task')}  "
              f"latency {m.get('latency_ms')} ms  stale {m.get('stale_action_ratio', 0):.2f}")
        print(
            f"  wall {wall.get('total_s', 0):.2f} s (physics {wall.get('physics_s', 0):.2f}, render "
            f"{wall.get('render_s', 0):.2f}, policy {wall.get('policy_s', 0):.2f}, "
            f"encode {wall.get('encode_s', 0):.2f})"
            f"  blob {m.get('final_blob_chars')} chars  trajectory {m.get('trajectory_sha256', '')[:16]}"
        )
    if ep.get("files"):
        print(f"  files: {', '.join(ep['files'])}")


def _start_live(args: argparse.Namespace) -> ArenaLive | None:
    """`--live`: a Foxglove WebSocket server for the episode this process runs (inline executor)."""
    if not args.live:
        return None
    if (args.executor or "inline") != "inline":
        raise SpecError(f"--live shows an episode run in this process: use --executor inline, not {args.executor}")
    if args.no_trajectory:
        raise SpecError("--live publishes the trajectory's topics: drop --no-trajectory")
    try:
        server = episode_server(args.live_host, args.live_port)
    except RecordingError as exc:
        raise SpecError(str(exc)) from None
    print(f"live view: in Foxglove, Open connection -> {server.url} (layout: configs/foxglove_layout.json)",
          file=sys.stderr, flush=True)
    live = ArenaLive(server, realtime=not args.live_fast)
    install_live(live)
    return live


def cmd_run(args: argparse.Namespace) -> int:
    spec = _spec(args, args.model)
    live = _start_live(args)
    try:
        return _run(args, spec)
    finally:
        if live is not None:
            install_live(None)
            live.server.stop()


def _run(args: argparse.Namespace, spec: Any) -> int:
    with _runtime(args, "inline") as rt:
        eid = rt.jobs.submit(spec)
        ep = _follow(rt, [eid], args.json)[0]
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            for name in ep["files"]:
                p = rt.store.file_path(eid, name)
                if p is not None:
                    shutil.copy2(p, args.out / name)
        _print_episode(ep, args.json)
        if not args.json:
            print(f"  folder: {rt.store.episode_dir(eid)}")
    return 0 if ep["status"] == DONE else 1


def cmd_battle(args: argparse.Namespace) -> int:
    if args.count < 1:
        raise SpecError(f"--count: expected >= 1, got {args.count}")
    with _runtime(args, "local") as rt:
        bids = []
        for i in range(args.count):
            spec = _spec(args, args.model_a, seed=args.seed + i)
            bids.append(rt.battles.create(spec, args.model_b, args.outcome_by))
        eids = [e for b in bids for e in (rt.store.battle(b)["episode_a"], rt.store.battle(b)["episode_b"])]
        _follow(rt, eids, quiet=args.json or args.count > 1)
        out = [rt.battles.get(b) for b in bids]
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    else:
        for b in out:
            ea, eb = b["episodes"]["a"], b["episodes"]["b"]
            print(f"battle {b['id']}: {b['model_a']} vs {b['model_b']} → {b['outcome'] or b['status']} "
                  f"(a: success {(ea.get('metrics') or {}).get('success')} progress {ea.get('progress')}; "
                  f"b: success {(eb.get('metrics') or {}).get('success')} progress {eb.get('progress')})")
    return 0 if all(b["status"] != "failed" for b in out) else 1


def cmd_leaderboard(args: argparse.Namespace) -> int:
    with _runtime(args, "inline") as rt:
        rows = rt.leaderboard(args.rounds)
        n = len(rt.store.decided_battles())
    if args.json:
        print(json.dumps({"battles": n, "rows": [r.to_dict() for r in rows]}, indent=2))
        return 0
    print(f"{n} decided battles; Bradley–Terry (Elo scale), 95% bootstrap CI over {args.rounds} rounds")
    print(f"{'#':>2} {'model':<28} {'rating':>7} {'95% CI':>15} {'W':>4} {'L':>4} {'T':>4} {'eps':>5} {'success':>8}")
    for r in rows:
        sr = "-" if r.success_rate is None else f"{100 * r.success_rate:.0f}%"
        print(f"{r.rank:>2} {r.model:<28} {r.rating:>7.1f} {f'{r.ci_low:.0f}–{r.ci_high:.0f}':>15} "
              f"{r.wins:>4} {r.losses:>4} {r.ties:>4} {r.episodes:>5} {sr:>8}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    with _runtime(args, "inline") as rt:
        eps = rt.store.list_episodes(args.model, args.status, limit=args.limit)
    if args.json:
        print(json.dumps(eps, indent=2, default=str))
        return 0
    for e in eps:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["created_at"]))
        print(f"{e['id']}  {when}  {e['status']:<9} {e['model']:<26} success={e['success']} "
              f"progress={e['progress']}  {e['instruction']}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with _runtime(args, "inline") as rt:
        ep = rt.store.episode(args.id)
        lines = rt.store.read_log(args.id)
    _print_episode(ep, args.json)
    if not args.json:
        print("  log (last 15 lines):")
        for line in lines[-15:]:
            print(f"    {line}")
    return 0


def cmd_vote(args: argparse.Namespace) -> int:
    with _runtime(args, "inline") as rt:
        b = rt.battles.vote(args.battle, args.winner, voter="cli")
    print(f"battle {b['id']}: outcome {b['outcome']} (votes {b['votes']})")
    return 0


def cmd_rerun(args: argparse.Namespace) -> int:
    with _runtime(args, "inline") as rt:
        rt.jobs.rerun(args.id)
        ep = _follow(rt, [args.id], False)[0]
    _print_episode(ep, False)
    return 0 if ep["status"] == DONE else 1


def cmd_models(args: argparse.Namespace) -> int:
    with _runtime(args, "inline") as rt:
        for m in rt.jobs.models():
            print(f"{m['id']:<28} {m['backend']:<14} latency {m['latency_ms']:g} ms  {m['description']}")
    return 0


def cmd_blob_info(args: argparse.Namespace) -> int:
    print(json.dumps(blob_summary(_read_blob(args.blob)), indent=2))
    return 0


COMMANDS = {"run": cmd_run, "battle": cmd_battle, "leaderboard": cmd_leaderboard, "list": cmd_list,
            "show": cmd_show, "vote": cmd_vote, "rerun": cmd_rerun, "models": cmd_models, "blob-info": cmd_blob_info}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return COMMANDS[args.cmd](args)
    except (SpecError, BlobError, RecordingStartError, ModelNotFound, StoreError, ValueError) as exc:
        print(f"vla-arena: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vla-arena: interrupted", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
