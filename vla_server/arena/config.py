"""Arena constants (one place) and `EpisodeSpec`, the request for one episode.

`EpisodeSpec` crosses every boundary (HTTP body, SQLite row, worker process, Ray task) as JSON;
it is validated on construction, so a bad request fails before it is queued.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from frankateach.constants import SIM_CAMERAS, SIM_TIMESTEP
from vla_server.constants import DEFAULT_DATA_DIR

# --- episodes ----------------------------------------------------------------------------------
DEFAULT_STEPS = 50  # control steps per episode
MAX_STEPS = 3000
DEFAULT_CONTROL_HZ = 10.0
PHYSICS_HZ = round(1.0 / SIM_TIMESTEP)  # 500: the simulator's 2 ms step
CONTROL_EVERY = 2  # the Cartesian controller runs every this many physics steps (as `SimBackend`)
MAX_LATENCY_MS = 5000.0
DEFAULT_WIDTH, DEFAULT_HEIGHT = 320, 240
MIN_SIDE_PX, MAX_WIDTH_PX, MAX_HEIGHT_PX = 32, 1280, 960
CAMERAS = tuple(SIM_CAMERAS)  # "front" (what policies see), "wrist"
OBSERVATION_CAMERA = "front"
SCENES = ("default", "shuffled")  # named starts (see `scene.reset_scene`)
SHUFFLE_XY_M = 0.04  # "shuffled": each cube moves up to this far in x and y …
SHUFFLE_YAW_RAD = 0.6  # … and turns up to this much about z
MAX_SEED = 2**63 - 1
MAX_INSTRUCTION_CHARS = 500

# --- video and trajectory ----------------------------------------------------------------------
VIDEO_FPS = 30  # playback rate; frames are rendered at these sim times
VIDEO_CRF = 23  # H.264 constant rate factor
THUMB_WIDTH = 160
OBS_JPEG_QUALITY = 85  # observation frames stored on /camera/front/image

# --- task metrics ------------------------------------------------------------------------------
LIFT_SUCCESS_M = 0.05  # cube bottom this far above the table top = lifted
GRASP_POINT_OFFSET_M = 0.025  # between the finger pads: TCP + this along the approach axis
GRASP_RADIUS_M = 0.02  # cube centre within this of the grasp point (and fingers closed on it) = held
PLACE_TOLERANCE_M = 0.015  # "placed on": xy within this (plus half a cube) and resting height ± this
PROGRESS_MARGIN = 5.0  # battle by metric: progress must differ by this many points to decide
SUCCESS_STEP_MARGIN = 2  # battle by metric: of two successes, one this many control steps sooner wins

# --- jobs and storage --------------------------------------------------------------------------
ARENA_SUBDIR = "arena"
DB_NAME = "arena.sqlite3"
PROGRESS_DB_EVERY_S = 0.5  # progress is written to the database at most this often per job
LOG_TAIL_LINES = 2000  # log lines kept in memory per running job (the file keeps all)
BOOTSTRAP_ROUNDS = 200  # leaderboard confidence intervals
BT_PRIOR = 0.01  # L2 prior on Bradley–Terry log-strengths (keeps undefeated models finite)
ELO_BASE, ELO_SCALE = 1000.0, 400.0


def default_workers() -> int:
    """The local pool's default size: cores − 1 (at least 1)."""
    return max(1, (os.cpu_count() or 2) - 1)


def default_data_dir() -> str:
    """Where the arena keeps its database and files: ``$VLA_DATA_DIR/arena`` or ``vla_data/arena``."""
    return os.path.join(os.environ.get("VLA_DATA_DIR", DEFAULT_DATA_DIR), ARENA_SUBDIR)


class SpecError(ValueError):
    """An episode request that does not validate; the message names the field, value and rule."""


_TASK = re.compile(r"^(auto|lift:[a-z_]+|place:[a-z_]+:[a-z_]+)$")


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode to simulate.

    Attributes:
        model: catalog model id.
        instruction: the task in words, e.g. "pick up the red cube".
        steps: control steps (policy queries).
        control_hz: policy query rate, Hz; its period must be a whole number of 2 ms steps.
        latency_ms: inference latency counted in sim time; None = the model's own default.
        latency_jitter_ms: uniform ± jitter on each latency draw (seeded), ms.
        camera: video camera ("front" or "wrist"); the policy always sees "front".
        width, height: video and observation size, pixels (even numbers).
        seed: seeds the scene shuffle (named scenes), the latency jitter and the policy.
        scene: named start, used when `start_blob` is None.
        start_blob: a state blob to start from (see `frankateach.sim.state_blob`), or None.
        task: "auto" (read from the instruction), "lift:<cube>" or "place:<cube>:<cube>".
        video: render the MP4 (observations are rendered either way).
        trajectory: write the MCAP trajectory.
    """

    model: str
    instruction: str
    steps: int = DEFAULT_STEPS
    control_hz: float = DEFAULT_CONTROL_HZ
    latency_ms: float | None = None
    latency_jitter_ms: float = 0.0
    camera: str = "front"
    width: int = DEFAULT_WIDTH
    height: int = DEFAULT_HEIGHT
    seed: int = 0
    scene: str = "default"
    start_blob: str | None = None
    task: str = "auto"
    video: bool = True
    trajectory: bool = True

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> SpecError:
            return SpecError(f"episode {name}: expected {rule}, got {getattr(self, name)!r}")

        if not isinstance(self.model, str) or not self.model.strip():
            raise bad("model", "a model id")
        if (
            not isinstance(self.instruction, str)
            or not self.instruction.strip()
            or len(self.instruction) > MAX_INSTRUCTION_CHARS
        ):
            raise bad("instruction", f"non-empty text of at most {MAX_INSTRUCTION_CHARS} characters")
        if not _is_int(self.steps) or not 1 <= self.steps <= MAX_STEPS:
            raise bad("steps", f"an integer 1..{MAX_STEPS}")
        if not _is_num(self.control_hz) or not 0 < self.control_hz <= PHYSICS_HZ / CONTROL_EVERY:
            raise bad("control_hz", f"a rate in (0, {PHYSICS_HZ / CONTROL_EVERY:g}] Hz")
        period = PHYSICS_HZ / float(self.control_hz)
        if abs(period - round(period)) > 1e-9:
            raise bad(
                "control_hz",
                f"a rate whose period is a whole number of {SIM_TIMESTEP * 1e3:g} ms steps (e.g. 5, 10, 20, 25, 50)",
            )
        if self.latency_ms is not None and (not _is_num(self.latency_ms) or not 0 <= self.latency_ms <= MAX_LATENCY_MS):
            raise bad("latency_ms", f"null (the model's default) or 0..{MAX_LATENCY_MS:g} ms")
        if not _is_num(self.latency_jitter_ms) or not 0 <= self.latency_jitter_ms <= MAX_LATENCY_MS:
            raise bad("latency_jitter_ms", f"0..{MAX_LATENCY_MS:g} ms")
        if self.camera not in CAMERAS:
            raise bad("camera", f"one of {CAMERAS}")
        for name, hi in (("width", MAX_WIDTH_PX), ("height", MAX_HEIGHT_PX)):
            v = getattr(self, name)
            if not _is_int(v) or not MIN_SIDE_PX <= v <= hi or v % 2:
                raise bad(name, f"an even number of pixels {MIN_SIDE_PX}..{hi}")
        if not _is_int(self.seed) or not 0 <= self.seed <= MAX_SEED:
            raise bad("seed", f"an integer 0..{MAX_SEED}")
        if self.scene not in SCENES:
            raise bad("scene", f"one of {SCENES}")
        if self.start_blob is not None and (not isinstance(self.start_blob, str) or not self.start_blob):
            raise bad("start_blob", "null or a state blob (base64 text)")
        if not isinstance(self.task, str) or not _TASK.match(self.task):
            raise bad("task", "'auto', 'lift:<cube>' or 'place:<cube>:<cube>'")
        for name in ("video", "trajectory"):
            if not isinstance(getattr(self, name), bool):
                raise bad(name, "true or false")

    @property
    def control_period_steps(self) -> int:
        """Physics steps per control step."""
        return round(PHYSICS_HZ / float(self.control_hz))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EpisodeSpec:
        """Builds a spec from a mapping (HTTP body, database row), refusing unknown keys."""
        if not isinstance(d, Mapping):
            raise SpecError(f"episode spec: expected an object, got {type(d).__name__}")
        allowed = {f.name for f in fields(cls)}
        unknown = set(d) - allowed
        if unknown:
            raise SpecError(f"episode spec: unknown fields {sorted(unknown)}; allowed: {sorted(allowed)}")
        missing = {"model", "instruction"} - set(d)
        if missing:
            raise SpecError(f"episode spec: missing required fields {sorted(missing)}")
        return cls(**dict(d))

    @classmethod
    def from_json(cls, text: str) -> EpisodeSpec:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"episode spec: not JSON: {exc}") from None
        return cls.from_dict(d)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
