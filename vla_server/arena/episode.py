"""The executor of one episode: the policy in the loop of the simulated scene, in sim time.

The loop walks physics steps from event to event; events at one step happen in this order:

1. actions whose latency has elapsed take effect (the controller's target changes);
2. a video frame is rendered if one is due (30 fps of sim time);
3. an observation is taken if one is due (every ``1 / control_hz`` s): the front camera and the
   robot state go to the policy, row 0 of its chunk becomes a TCP target relative to the pose the
   policy saw, and joins the actions in flight (`latency`); with no latency it takes effect now.

The episode ends ``steps / control_hz`` s after it started; actions still in flight travel in
the final state blob, so an episode run as 20 + 30 steps equals the one run as 50. Rendering
works on a separate model and `MjData` (`render.camera`), and reading the state works on a
scratch copy (`scene`), so neither can change the trajectory. No sleep anywhere: latency costs
no wall time.

Staleness: `stale_action_ratio` is the fraction of the episode's sim time during which the
action in effect was decided from an observation older than the newest one taken (or no action
had taken effect yet); 0 without latency, latency / period below one period, 1 above.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robot_formats.action_space import (
    ActionError,
    action_to_target,
    clip_action,
    validate_action,
)
from robot_formats.stats import percentile
from vla_server.arena import live as arena_live
from vla_server.arena.blob import EpisodeRuntime, decode_blob, encode_blob, new_rng
from vla_server.arena.config import (
    OBS_JPEG_QUALITY,
    OBSERVATION_CAMERA,
    PHYSICS_HZ,
    VIDEO_FPS,
    EpisodeSpec,
)
from vla_server.arena.latency import ActionPipeline, LatencyModel, PendingAction
from vla_server.arena.metrics import TaskEvaluator, parse_task
from vla_server.arena.render.camera import renderer_for
from vla_server.arena.render.video import VideoEncoder, jpeg, thumbnail_jpeg
from vla_server.arena.scene import ArenaScene, Kinematics
from vla_server.arena.trajectory import McapSample, Trajectory, write_mcap
from vla_server.models import ModelSpec
from vla_server.policies.base import Observation, Policy

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (control steps done, total)
LogFn = Callable[[str], None]


class EpisodeCancelled(Exception):
    """The episode was cancelled (checked once per control step)."""


class EpisodeError(RuntimeError):
    """The episode could not run: the policy failed or answered garbage, a bad start state."""


@dataclass
class WallTimes:
    """Wall time per part of the episode, s (not deterministic; never part of the trajectory)."""

    physics: float = 0.0
    render: float = 0.0
    policy: float = 0.0
    encode: float = 0.0
    total: float = 0.0

    def as_dict(self) -> dict[str, float]:
        other = max(0.0, self.total - self.physics - self.render - self.policy - self.encode)
        return {"physics_s": self.physics, "render_s": self.render, "policy_s": self.policy,
                "encode_s": self.encode, "other_s": other, "total_s": self.total}


@dataclass
class EpisodeResult:
    """What an episode produced.

    Attributes:
        start_blob, final_blob: state blobs at the start and the end.
        metrics: JSON-able figures (see `run_episode`).
        trajectory: the deterministic arrays.
        files: name -> path of the files written into the output folder
            ("video.mp4", "trajectory.mcap", "thumb.jpg").
        wall: wall time split.
    """

    start_blob: str
    final_blob: str
    metrics: dict[str, Any]
    trajectory: Trajectory
    files: dict[str, Path] = field(default_factory=dict)
    wall: WallTimes = field(default_factory=WallTimes)


def _policy_state(policy: Policy, session: str) -> bytes:
    export = getattr(policy, "export_session", None)
    return bytes(export(session)) if callable(export) else b""


def run_episode(
    spec: EpisodeSpec,
    policy: Policy,
    model: ModelSpec,
    out_dir: Path | None = None,
    *,
    episode_id: str = "episode",
    progress: Progress | None = None,
    log_line: LogFn | None = None,
    cancelled: Callable[[], bool] | None = None,
    time_base: float | None = None,
    live: arena_live.ArenaLive | None = None,
) -> EpisodeResult:
    """Runs one episode.

    Args:
        spec: the request.
        policy: the loaded policy of `model` (its session memory is keyed by `episode_id`).
        model: the model's catalog entry (its `latency_ms` is the default latency).
        out_dir: folder for the video, trajectory and thumbnail (None: a temporary folder that
            is removed; use it for figures only).
        episode_id: the policy session key and the name in logs.
        progress: called after each control step with (done, total).
        log_line: receives human-readable log lines.
        cancelled: polled once per control step; True stops the episode (`EpisodeCancelled`).
        time_base: wall time that sim time zero maps to in the MCAP (default: now).
        live: publishes the episode as it runs (default: the view `arena_live.install`ed, if any).

    Raises:
        EpisodeCancelled, EpisodeError, BlobError (a start blob from another scene).
    """
    if out_dir is None:
        with tempfile.TemporaryDirectory(prefix="arena-") as tmp:
            return run_episode(spec, policy, model, Path(tmp), episode_id=episode_id, progress=progress,
                               log_line=log_line, cancelled=cancelled, time_base=time_base, live=live)
    return _Episode(spec, policy, model, Path(out_dir), episode_id, progress, log_line, cancelled,
                    time.time() if time_base is None else time_base, live).run()


class _Episode:
    """State of one run (see `run_episode`)."""

    def __init__(self, spec: EpisodeSpec, policy: Policy, model: ModelSpec, out_dir: Path, episode_id: str,
                 progress: Progress | None, log_line: LogFn | None, cancelled: Callable[[], bool] | None,
                 time_base: float, live: arena_live.ArenaLive | None = None) -> None:
        self.spec, self.policy, self.model, self.out_dir = spec, policy, model, out_dir
        self.id = episode_id
        self._progress = progress
        self._log = log_line
        self._cancelled = cancelled
        self.time_base = time_base
        self.wall = WallTimes()
        self.traj = Trajectory()
        self.samples: list[McapSample] = []
        self.frames_pending: dict[str, list[tuple[int, int, bytes, int, int]]] = {}
        self.obs_frame_seq = 0
        self.command: tuple[int, int, np.ndarray, np.ndarray, np.ndarray, float] | None = None
        self.applied = 0
        self.inference_ms: list[float] = []
        self.progress_series: list[float] = []  # task progress at each observation (relative to the start)
        self.events: list[tuple[int, str, str, dict[str, Any]]] = []
        self.live = live or arena_live.current()  # `--live` / API `live`: published as it runs
        self._live_events = 0  # events already published

    def say(self, text: str) -> None:
        log.debug("%s: %s", self.id, text)
        if self._log is not None:
            self._log(text)

    # -- setup --------------------------------------------------------------------------------
    def _start(self) -> tuple[ArenaScene, EpisodeRuntime, str]:
        scene = ArenaScene()
        spec = self.spec
        if spec.start_blob:
            snap, rt = decode_blob(spec.start_blob, scene.scene_hash)
            scene.restore(snap)
            how = f"blob at sim t={snap.time:.3f} s ({'arena' if rt else 'simulator'} blob)"
            if rt is None:
                rt = EpisodeRuntime(new_rng(spec.seed))
            elif rt.policy_state:
                restore = getattr(self.policy, "import_session", None)
                if callable(restore):
                    restore(self.id, rt.policy_state)
                else:
                    self.say("warning: the blob carries policy memory this policy cannot import; it starts fresh")
        else:
            scene.reset(spec.scene, spec.seed)
            rt = EpisodeRuntime(new_rng(spec.seed))
            how = f"scene {spec.scene!r} seed {spec.seed}"
        return scene, rt, how

    # -- main loop ------------------------------------------------------------------------------
    def run(self) -> EpisodeResult:
        t_start = time.perf_counter()
        spec = self.spec
        self.out_dir.mkdir(parents=True, exist_ok=True)
        scene, rt, how = self._start()
        start_blob = encode_blob(scene.snapshot(), rt)
        latency = LatencyModel(self.model.latency_ms if spec.latency_ms is None else float(spec.latency_ms),
                               float(spec.latency_jitter_ms))
        pipeline = ActionPipeline(rt.pending, rt.held_obs_step)
        task = parse_task(spec.task, spec.instruction)
        k0 = scene.kinematics()
        t0_sim = scene.time
        evaluator = TaskEvaluator(task, k0) if task is not None else None
        self.say(f"episode {self.id}: model {self.model.id}, {spec.steps} steps at {spec.control_hz:g} Hz, "
                 f"latency {latency.mean_ms:g} ms (±{latency.jitter_ms:g}), from {how}, "
                 f"task {task or 'none (no cube named)'}, scene {scene.scene_hash.hex()[:12]}")

        period = spec.control_period_steps
        s0 = scene.step_count
        end = s0 + spec.steps * period
        renderer = renderer_for(spec.width, spec.height)
        video = VideoEncoder(self.out_dir / "video.mp4", spec.width, spec.height) if spec.video else None
        self.events.append((s0, "episode_start", f"arena episode {self.id}: {spec.instruction}",
                            {"model": self.model.id, "latency_ms": latency.mean_ms}))
        if self.live is not None:
            self.live.begin(s0, self.time_base)

        def frame_step(j: int) -> int:
            return s0 + -(-j * PHYSICS_HZ // VIDEO_FPS)  # ceil(j · 500 / 30)

        j = 0
        k = 0
        next_obs = s0
        latest_obs = -1
        stale_steps = 0
        age_weighted = 0.0
        held_steps = 0
        best_progress = 0.0
        success_step: int | None = None
        last_state = None
        last_frame: tuple[int, np.ndarray] | None = None
        max_in_flight = len(pipeline)
        sample_due = False
        try:
            while True:
                cur = scene.step_count
                # 1. actions that take effect now
                for item in pipeline.pop_due(cur):
                    self._apply(scene, cur, item)
                # 2. a video frame / trajectory sample
                if frame_step(j) == cur:
                    qpos = scene.qpos()
                    if cur < end:
                        self.traj.sample_step.append(cur)
                        self.traj.sample_qpos.append(qpos)
                        sample_due = True
                    if video is not None:
                        t = time.perf_counter()
                        img = renderer.render(qpos, spec.camera)
                        self.wall.render += time.perf_counter() - t
                        t = time.perf_counter()
                        video.write(img)
                        self.wall.encode += time.perf_counter() - t
                        last_frame = (cur, img)
                    j += 1
                # 3. an observation
                if cur == next_obs and k < spec.steps:
                    if self._cancelled is not None and self._cancelled():
                        raise EpisodeCancelled(f"episode {self.id} cancelled at step {k} of {spec.steps}")
                    kin = scene.kinematics()
                    if last_frame is not None and last_frame[0] == cur and spec.camera == OBSERVATION_CAMERA:
                        obs_img = last_frame[1]  # the video frame just rendered is this observation
                    else:
                        t = time.perf_counter()
                        obs_img = renderer.render(scene.qpos(), OBSERVATION_CAMERA)
                        self.wall.render += time.perf_counter() - t
                    decided = self._decide(scene, kin, obs_img, rt, latency, cur)
                    pipeline.push(decided)
                    latest_obs = cur
                    max_in_flight = max(max_in_flight, len(pipeline))
                    if decided.apply_step == cur:
                        for now_due in pipeline.pop_due(cur):
                            self._apply(scene, cur, now_due)
                    if evaluator is not None:
                        st = evaluator.evaluate(kin)
                        self.progress_series.append(st.progress)
                        best_progress = max(best_progress, st.progress)
                        if st.success and success_step is None:
                            success_step = k
                        last_state = st
                    k += 1
                    next_obs += period
                    if self._progress is not None:
                        self._progress(k, spec.steps)
                    if k % 10 == 0 or k == spec.steps:
                        extra = f", progress {last_state.progress:.0f}" if last_state is not None else ""
                        self.say(f"step {k}/{spec.steps}: t={scene.time:.2f} s, in flight {len(pipeline)}{extra}")
                if sample_due:
                    # after the observation: a tick at an observation step carries the action
                    # decided there and the frame seen there (LeRobot's pairing of a frame)
                    self._sample(scene, cur)
                    sample_due = False
                if cur >= end:
                    break
                nxt = min(end, frame_step(j), next_obs if k < spec.steps else end)
                due_step = pipeline.next_due()
                if due_step is not None:
                    nxt = min(nxt, due_step)
                nxt = max(nxt, cur + 1)
                if pipeline.held_obs_step < latest_obs:
                    stale_steps += nxt - cur
                if pipeline.held_obs_step >= 0:
                    age_weighted += (nxt - cur) * ((cur + nxt) / 2.0 - pipeline.held_obs_step)
                    held_steps += nxt - cur
                t = time.perf_counter()
                scene.advance(nxt - cur)
                self.wall.physics += time.perf_counter() - t
        finally:
            if video is not None:
                t = time.perf_counter()
                video.close()
                self.wall.encode += time.perf_counter() - t
            self.policy_end()

        # -- the end: state, metrics, files ---------------------------------------------------
        rt.pending = pipeline.pending
        rt.held_obs_step = pipeline.held_obs_step
        rt.policy_state = self._exported
        final_kin = scene.kinematics()
        final_blob = encode_blob(scene.snapshot(), rt)
        final_state = evaluator.evaluate(final_kin) if evaluator is not None else None
        files: dict[str, Path] = {}
        if video is not None:
            files["video.mp4"] = video.path
        if last_frame is None:
            t = time.perf_counter()
            last_frame = (end, renderer.render(scene.qpos(), spec.camera))
            self.wall.render += time.perf_counter() - t
        t = time.perf_counter()
        (self.out_dir / "thumb.jpg").write_bytes(thumbnail_jpeg(last_frame[1]))
        files["thumb.jpg"] = self.out_dir / "thumb.jpg"
        self.wall.encode += time.perf_counter() - t

        duration = spec.steps * period / PHYSICS_HZ
        applied_lat = [
            (a - o) * 1000.0 / PHYSICS_HZ for a, o in zip(self.traj.applied_step, self.traj.applied_obs_step)
        ]
        metrics: dict[str, Any] = {
            "task": str(task) if task else None,
            "success": final_state.success if final_state else None,
            "success_step": success_step,
            "progress": final_state.progress if final_state else None,
            "max_progress": max(best_progress, final_state.progress) if final_state else None,
            "lift_m": round(final_state.lift_m, 5) if final_state else None,
            "steps": spec.steps,
            "control_hz": spec.control_hz,
            "sim_time_s": duration,
            "start_sim_time_s": t0_sim,
            "latency_ms": latency.mean_ms,
            "latency_jitter_ms": latency.jitter_ms,
            "latency_applied_ms_mean": float(np.mean(applied_lat)) if applied_lat else None,
            "latency_applied_ms_max": float(np.max(applied_lat)) if applied_lat else None,
            "stale_action_ratio": stale_steps / max(1, end - s0),
            "decision_age_ms_mean": age_weighted / held_steps * 1000.0 / PHYSICS_HZ if held_steps else None,
            "actions_applied": self.applied,
            "actions_superseded": pipeline.superseded,
            "actions_in_flight_end": len(pipeline),
            "actions_in_flight_max": max_in_flight,
            "inference_ms_p50": percentile(self.inference_ms, 50),
            "inference_ms_p95": percentile(self.inference_ms, 95),
            "inference_ms_max": max(self.inference_ms) if self.inference_ms else None,
            "trajectory_sha256": self.traj.sha256(),
            "final_blob_chars": len(final_blob),
            "video_frames": video.frames if video is not None else 0,
        }
        if spec.trajectory:
            t = time.perf_counter()
            self._sample(scene, end, final=True)
            outcome = "success" if metrics["success"] else "failure"
            self.events.append((end, "episode_stop", f"arena episode {self.id} ended ({outcome})",
                                {k2: metrics[k2] for k2 in ("success", "progress", "stale_action_ratio")}))
            path = self.out_dir / "trajectory.mcap"
            path.unlink(missing_ok=True)
            write_mcap(
                path,
                self.samples,
                s0,
                self.time_base,
                metadata={
                    "operator": "vla-arena",
                    "task": spec.instruction,
                    "robot": "vla-arena (MuJoCo Panda)",
                    "model": self.model.id,
                    "episode": self.id,
                    "arena_spec": spec.to_dict() | {"start_blob": None},
                    "start_blob": start_blob,
                    "scene_hash": scene.scene_hash.hex(),
                },
                end_metadata={"final_blob": final_blob, "metrics": metrics},
                outcome=outcome,
                events=self.events,
            )
            files["trajectory.mcap"] = path
            self.wall.encode += time.perf_counter() - t
        self.wall.total = time.perf_counter() - t_start
        metrics["wall"] = self.wall.as_dict()
        metrics["realtime_factor"] = duration / self.wall.total if self.wall.total > 0 else None
        self.say(f"done: success={metrics['success']} progress={metrics['progress']} "
                 f"stale={metrics['stale_action_ratio']:.2f} wall {self.wall.total:.2f} s "
                 f"(physics {self.wall.physics:.2f}, render {self.wall.render:.2f}, policy {self.wall.policy:.2f}, "
                 f"encode {self.wall.encode:.2f})")
        return EpisodeResult(start_blob, final_blob, metrics, self.traj, files, self.wall)

    _exported: bytes = b""

    def policy_end(self) -> None:
        """Exports then drops the policy's memory of this episode."""
        try:
            self._exported = _policy_state(self.policy, self.id)
        finally:
            self.policy.end_session(self.id)

    # -- steps ------------------------------------------------------------------------------------
    def _decide(self, scene: ArenaScene, kin: Kinematics, img: np.ndarray, rt: EpisodeRuntime,
                latency: LatencyModel, cur: int) -> PendingAction:
        """Asks the policy; returns the resulting action in flight."""
        obs = Observation(image=img, instruction=self.spec.instruction, robot_state=kin.robot_state(),
                          session=self.id, step=rt.observations, timestamp=scene.time, seed=self.spec.seed)
        t = time.perf_counter()
        try:
            chunk = self.policy.infer(obs)
        except Exception as exc:
            self.say("policy failed:\n" + traceback.format_exc())
            raise EpisodeError(f"policy {self.model.id!r} failed at observation {rt.observations}: "
                               f"{type(exc).__name__}: {exc}") from exc
        dt = time.perf_counter() - t
        self.wall.policy += dt
        self.inference_ms.append(dt * 1000.0)
        try:
            arr = np.asarray(chunk, dtype=np.float64)
            if arr.ndim != 2 or arr.shape[0] < 1:
                raise ActionError(f"expected an action chunk of shape (H, 7), got shape {arr.shape}")
            action = clip_action(validate_action(arr[0]))
        except (ActionError, ValueError, TypeError) as exc:
            raise EpisodeError(
                f"policy {self.model.id!r} answered a bad action at observation {rt.observations}: {exc}"
            ) from None
        target = action_to_target(kin.tcp_pos, kin.tcp_quat_xyzw, action)
        if target is None or target.gripper is None:
            raise EpisodeError(f"observation {rt.observations}: the TCP pose is not finite ({kin.tcp_pos}, "
                               f"{kin.tcp_quat_xyzw})")
        pos, quat, grip = np.array(target.pos), np.array(target.quat), target.gripper
        delay = LatencyModel.to_steps(latency.draw_ms(rt.rng))
        rt.observations += 1
        tr = self.traj
        tr.obs_step.append(cur)
        tr.obs_tcp_pos.append(kin.tcp_pos)
        tr.obs_tcp_quat.append(kin.tcp_quat_xyzw)
        tr.obs_gripper.append(kin.gripper)
        tr.obs_joints.append(kin.joints)
        tr.action.append(action)
        tr.delay_steps.append(delay)
        if self.spec.trajectory:
            t = time.perf_counter()
            data = jpeg(img, OBS_JPEG_QUALITY)
            self.wall.encode += time.perf_counter() - t
            self.frames_pending.setdefault(OBSERVATION_CAMERA, []).append(
                (self.obs_frame_seq, cur, data, img.shape[1], img.shape[0]))
            self.obs_frame_seq += 1
        return PendingAction(cur + delay, cur, action, pos, quat, grip)

    def _apply(self, scene: ArenaScene, cur: int, item: PendingAction) -> None:
        scene.set_target(item.target_pos, item.target_quat_xyzw, item.gripper)
        tpos, tquat, grip = scene.target()  # as the controller holds it (workspace-clamped)
        tr = self.traj
        tr.applied_step.append(cur)
        tr.applied_obs_step.append(item.obs_step)
        tr.applied_action.append(np.asarray(item.action, float))
        tr.target_pos.append(tpos)
        tr.target_quat.append(tquat)
        tr.target_gripper.append(grip)
        self.command = (self.applied, cur, np.asarray(item.action, float), tpos, tquat, grip)
        self.applied += 1

    def _sample(self, scene: ArenaScene, cur: int, final: bool = False) -> None:
        if not self.spec.trajectory:
            return
        kin = scene.kinematics(update_ref=final)
        self.samples.append(McapSample(cur, kin.tcp_pos, kin.tcp_quat_xyzw, kin.gripper, kin.joints,
                                       self.command, self.frames_pending))
        self.frames_pending = {}
        if self.live is not None:
            new = self.events[self._live_events:]
            self._live_events = len(self.events)
            self.live.sample(len(self.samples) - 1, self.samples[-1], new)


def split_check(a: EpisodeResult, b: EpisodeResult) -> bool:
    """True when two results are bit-identical (trajectory arrays and final blob)."""
    return a.trajectory.sha256() == b.trajectory.sha256() and a.final_blob == b.final_blob


def realtime_factor(metrics: dict[str, Any]) -> float:
    """Sim seconds per wall second of a finished episode."""
    rtf = metrics.get("realtime_factor")
    return float(rtf) if rtf is not None and math.isfinite(rtf) else float("nan")
