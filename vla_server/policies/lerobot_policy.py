"""`lerobot`: a LeRobot checkpoint (``pretrained_model/`` as ``lerobot-train`` writes it) as a policy.

Runs in the LeRobot environment (`tools/make_lerobot_env.sh`; the catalog entry's ``python:``
names its interpreter), on the CPU. Any `PreTrainedPolicy` whose ``predict_action_chunk`` takes
one batch works (ACT, VQ-BeT, …); Diffusion's observation history is fed through its queues.

What the checkpoint's ``config.json`` says is used as is: ``input_features`` (image keys and
their (3, H, W) sizes, the state key and size), ``output_features["action"]`` (the action size),
``n_obs_steps`` and ``n_action_steps``; the saved pre/post-processors normalise inputs and
unnormalise actions. The mapping to and from this project:

* image features: the front camera goes to the feature named by ``camera_key`` (default: the
  one whose name contains "front", else the first), the wrist camera to ``wrist_key``; frames are
  resized to the feature's size with `robot_formats.image.resize_rgb` (the resize
  ``teleop-replay export --to lerobot --size`` makes datasets with), RGB in [0, 1].
* ``observation.state`` of 8 = [x, y, z, qx, qy, qz, qw, gripper 0 open … 1 closed] (what
  ``teleop-replay export --to lerobot`` writes: DROID's gripper convention, so the robot state's
  −1 … +1 is mapped with `robot_formats.droid.gripper_to_droid`), 7 = [x, y, z, roll, pitch,
  yaw, gripper 0…1],
  6 = the pose only. The quaternion's sign is the one nearest the training mean (q and −q are
  one rotation). A missing robot state or gripper becomes the training mean.
* ``observation.environment_state`` = the one-hot of the session's instruction over the tasks
  the policy was trained on (``teleop-replay export --to lerobot --task-feature``): ACT and
  Diffusion read no language, so this input is how they know which cube "pick up the red cube"
  names. The vocabulary is ``task_vocabulary.json`` in the checkpoint folder (written by
  tools/train_lerobot.py from the dataset's feature names); an instruction matches a task when
  both are equal after `normalize_task` (case, spaces, a final period); any other instruction is
  a clear error listing the vocabulary. An empty instruction becomes the training mean (as a
  missing robot state does).
* action of 7 = this project's action space (`robot_formats.action_space`), clipped; 8 = an
  absolute target [x, y, z, qx, qy, qz, qw, gripper 0…1] (the export's ``action.target``),
  turned into actions from the observed pose.

The chunk returned is ``n_action_steps`` rows. Session memory: the last ``n_obs_steps − 1``
observations (none for ACT, whose single-frame policy is stateless); `export_session` /
`import_session` carry them so a split arena episode continues exactly. Diffusion's sampling is
seeded from ``(obs.seed, obs.step)``, so it is deterministic too.
"""

from __future__ import annotations

import base64
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robot_formats.action_space import ACTION_DIM, GRIPPER_INDEX, clip_action, target_to_action
from robot_formats.droid import droid_to_gripper, gripper_to_droid
from robot_formats.image import resize_rgb
from robot_formats.lerobot_keys import ENV_STATE_KEY
from robot_formats.robot_state import pose_to_pos_quat
from robot_formats.rotations import euler_xyz_to_quat
from vla_server.policies.base import BadInput, Observation, Policy, PolicyInfo
from vla_server.policies.session_blob import decode_session, encode_session
from vla_server.policies.session_memory import SessionMemory

ENV_COMMAND = "tools/make_lerobot_env.sh"
SESSION_FORMAT = 1
STATE_KEY = "observation.state"
VOCABULARY_FILE = "task_vocabulary.json"
VOCABULARY_FORMAT = "one-hot task (instruction) of observation.environment_state"


class LeRobotPolicyError(RuntimeError):
    """The checkpoint cannot be loaded or its features do not map to this project's."""


class UnknownInstruction(LeRobotPolicyError, BadInput):
    """The instruction is none of the tasks a task-conditioned checkpoint was trained on (bad input)."""


class LeRobotEnvMissing(LeRobotPolicyError):
    """LeRobot (or torch) is not importable in this interpreter."""


@dataclass(frozen=True)
class LeRobotParams:
    """Parameters of `LeRobotPolicy`.

    Attributes:
        path: the checkpoint: a ``pretrained_model`` folder, or a training output / checkpoint
            folder holding one (``checkpoints/last/pretrained_model`` is looked for).
        camera_key: input feature that gets the front camera ("" = found by name).
        wrist_key: input feature that gets the wrist camera ("" = none, or found by name).
        threads: torch intra-op threads.
        max_sessions: sessions whose observation history is kept.
    """

    path: str
    camera_key: str = ""
    wrist_key: str = ""
    threads: int = 1
    max_sessions: int = 64

    def __post_init__(self) -> None:
        if not self.path:
            raise ValueError("path: expected the checkpoint folder, got ''")
        if self.threads < 1:
            raise ValueError(f"threads: expected >= 1, got {self.threads}")
        if self.max_sessions < 1:
            raise ValueError(f"max_sessions: expected >= 1, got {self.max_sessions}")


def _load_config(config_cls: Any, folder: Path) -> Any:
    """``PreTrainedConfig.from_pretrained`` with its temporary file kept in a folder of our own.

    LeRobot 0.4.4 writes the config it parses to a ``NamedTemporaryFile(delete=False)`` and never
    removes it: one ~1 KB ``tmp*.json`` left in the system's temporary folder per load.
    """
    with tempfile.TemporaryDirectory(prefix="lerobot-config-") as tmp:
        saved = tempfile.tempdir
        tempfile.tempdir = tmp
        try:
            return config_cls.from_pretrained(str(folder), local_files_only=True)
        finally:
            tempfile.tempdir = saved


def normalize_task(text: str) -> str:
    """An instruction as the task vocabulary compares it: case-folded, spaces collapsed, no final
    period ("Pick up the  red cube." → "pick up the red cube")."""
    return " ".join(text.split()).rstrip(".").strip().casefold()


def write_vocabulary(folder: Path, tasks: list[str], mean: list[float] | None = None) -> Path:
    """Writes ``task_vocabulary.json`` into `folder`: the tasks (index i = component i of the
    one-hot) and the feature's training mean (each task's share of the frames; the input for an
    empty instruction)."""
    path = Path(folder) / VOCABULARY_FILE
    tmp = path.with_suffix(".tmp")
    doc = {"feature": ENV_STATE_KEY, "encoding": VOCABULARY_FORMAT, "tasks": list(tasks),
           "mean": [float(m) for m in mean] if mean is not None else [1.0 / len(tasks)] * len(tasks)}
    tmp.write_text(json.dumps(doc, indent=2))
    tmp.replace(path)
    return path


def read_vocabulary(folder: Path, size: int) -> tuple[list[str], np.ndarray]:
    """The task vocabulary of the checkpoint in `folder` and its training mean, checked against
    the feature's `size`.

    Raises:
        LeRobotPolicyError: the file is missing, malformed or of another size.
    """
    path = Path(folder) / VOCABULARY_FILE
    if not path.is_file():
        raise LeRobotPolicyError(
            f"{folder}: the policy takes {ENV_STATE_KEY} ({size} values) but {VOCABULARY_FILE} is missing; "
            f"this backend fills {ENV_STATE_KEY} only as the one-hot of the instruction (datasets exported "
            "with --task-feature; tools/train_lerobot.py writes the file into every checkpoint)")
    try:
        doc = json.loads(path.read_text())
        tasks = [str(t) for t in doc["tasks"]]
        mean = np.asarray(doc.get("mean") or [1.0 / max(1, size)] * size, np.float32).reshape(-1)
    except (ValueError, KeyError, TypeError) as exc:
        raise LeRobotPolicyError(f"{path}: expected {{\"tasks\": [instruction, ...]}}, got an unreadable file "
                                 f"({type(exc).__name__}: {exc})") from exc
    if len(tasks) != size or len({normalize_task(t) for t in tasks}) != size or mean.shape != (size,):
        raise LeRobotPolicyError(f"{path}: {len(tasks)} tasks ({len({normalize_task(t) for t in tasks})} distinct), "
                                 f"{mean.size} mean values for a {ENV_STATE_KEY} of {size} values")
    return tasks, mean


def find_pretrained(path: Path) -> Path:
    """The folder holding ``config.json`` and ``model.safetensors`` under `path`.

    Raises:
        LeRobotPolicyError: none found (the message lists where it looked).
    """
    tried = [path, path / "pretrained_model", path / "checkpoints" / "last" / "pretrained_model"]
    for p in tried:
        if (p / "config.json").is_file() and (p / "model.safetensors").is_file():
            return p
    raise LeRobotPolicyError(
        f"no LeRobot checkpoint (config.json + model.safetensors) in {', '.join(str(t) for t in tried)}"
    )


@dataclass
class _Frame:
    """One observation as the policy's inputs take it (resized images, state vector)."""

    images: dict[str, np.ndarray]  # feature key -> (H, W, 3) uint8
    state: np.ndarray | None  # (D,) float32


@dataclass
class _Session:
    history: list[_Frame] = field(default_factory=list)  # the previous n_obs_steps - 1 frames


def _frame_to_json(f: _Frame) -> dict[str, Any]:
    return {
        "images": {k: [list(v.shape), base64.b64encode(np.ascontiguousarray(v).tobytes()).decode()]
                   for k, v in f.images.items()},
        "state": None if f.state is None else [float(x) for x in f.state],
    }


def _frame_from_json(d: dict[str, Any]) -> _Frame:
    images = {}
    for k, (shape, data) in d["images"].items():
        h, w, c = (int(x) for x in shape)
        raw = base64.b64decode(data, validate=True)
        if c != 3 or len(raw) != h * w * 3:
            raise ValueError(f"image {k}: {len(raw)} bytes for shape {shape}")
        images[str(k)] = np.frombuffer(raw, np.uint8).reshape(h, w, 3).copy()
    state = None if d["state"] is None else np.asarray(d["state"], np.float32)
    return _Frame(images, state)


class LeRobotPolicy(Policy):
    """A LeRobot checkpoint as a policy; see the module docstring."""

    def __init__(self, params: LeRobotParams) -> None:
        self.params = params
        self.path = Path(params.path).expanduser()
        self._policy: Any = None
        self._pre: Any = None
        self._post: Any = None
        self._torch: Any = None
        self._type = "?"
        self._images: dict[str, tuple[int, int]] = {}  # feature -> (H, W)
        self._front = ""
        self._wrist = ""
        self._state_dim = 0
        self._state_mean: np.ndarray | None = None
        self._action_dim = ACTION_DIM
        self._n_obs = 1
        self._n_act = 1
        self._ignored: list[str] = []  # input features the policy's model does not read
        self._tasks: list[str] = []  # the one-hot vocabulary of observation.environment_state
        self._task_mean: np.ndarray | None = None
        self._sessions: SessionMemory[_Session] = SessionMemory(_Session, params.max_sessions)

    # ---- loading ---------------------------------------------------------------------------------
    def info(self) -> PolicyInfo:
        return PolicyInfo(
            name=self.path.name,
            backend="lerobot",
            action_horizon=self._n_act,
            description=f"LeRobot {self._type} checkpoint {self.path}",
            extra={"path": str(self.path), "type": self._type, "images": {k: list(v) for k, v in self._images.items()},
                   "state_dim": self._state_dim, "action_dim": self._action_dim, "n_obs_steps": self._n_obs,
                   "ignored_features": list(self._ignored), "tasks": list(self._tasks)},
        )

    def load(self) -> None:
        if self._policy is not None:
            return
        try:
            from vla_server.policies.lerobot_compat import ensure_torchvision_importable

            ensure_torchvision_importable()
            import torch
            from lerobot.configs.policies import PreTrainedConfig
            from lerobot.configs.types import FeatureType
            from lerobot.policies.factory import get_policy_class, make_pre_post_processors
        except ImportError as exc:
            raise LeRobotEnvMissing(
                f"the lerobot backend needs LeRobot and torch, which this interpreter lacks ({exc}). "
                f"Build the LeRobot environment with `{ENV_COMMAND}` and set the model's catalog key "
                f"`python:` to the interpreter it prints (`{ENV_COMMAND} --print`)"
            ) from exc
        folder = find_pretrained(self.path)
        torch.set_num_threads(self.params.threads)
        try:
            cfg = _load_config(PreTrainedConfig, folder)
            cfg.device = "cpu"
            if hasattr(cfg, "pretrained_backbone_weights"):
                cfg.pretrained_backbone_weights = None  # the checkpoint holds the trained backbone
            policy = get_policy_class(cfg.type).from_pretrained(str(folder), config=cfg, local_files_only=True)
            pre, post = make_pre_post_processors(cfg, pretrained_path=str(folder))
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise LeRobotPolicyError(
                f"cannot load the LeRobot checkpoint {folder}: {type(exc).__name__}: {exc}"
            ) from exc
        policy.eval()
        self._type = str(cfg.type)
        for key, feat in cfg.input_features.items():
            if feat.type is FeatureType.VISUAL:
                c, h, w = (int(x) for x in feat.shape)
                if c != 3:
                    raise LeRobotPolicyError(f"{folder}: image feature {key} has {c} channels, expected 3 (RGB)")
                self._images[key] = (h, w)
            elif key == STATE_KEY:
                self._state_dim = int(feat.shape[0])
                if self._state_dim not in (6, 7, 8):
                    raise LeRobotPolicyError(f"{folder}: {STATE_KEY} has {self._state_dim} values; "
                                             "expected 8 (pos, quat xyzw, gripper), 7 (pos, rpy, gripper) or 6")
            elif key == ENV_STATE_KEY:
                self._tasks, self._task_mean = read_vocabulary(folder, int(feat.shape[0]))
            else:  # e.g. observation.joint_positions: listed by the dataset, read by no policy input
                self._ignored.append(key)
        if not self._images:
            raise LeRobotPolicyError(f"{folder}: the policy takes no image; this backend feeds the cameras")
        self._front = self._pick(self.params.camera_key, "front", folder, required=True)
        self._wrist = self._pick(self.params.wrist_key, "wrist", folder, required=False)
        action = cfg.output_features.get("action")
        if action is None or int(action.shape[0]) not in (7, 8):
            got = None if action is None else action.shape
            raise LeRobotPolicyError(f"{folder}: output 'action' must have 7 values (this project's action space) "
                                     f"or 8 (target pos, quat, gripper), got {got}")
        self._action_dim = int(action.shape[0])
        self._n_obs = max(1, int(getattr(cfg, "n_obs_steps", 1)))
        self._n_act = max(1, int(getattr(cfg, "n_action_steps", 1)))
        self._state_mean = self._read_mean(folder, STATE_KEY, self._state_dim)
        self._policy, self._pre, self._post, self._torch = policy, pre, post, torch

    def _pick(self, given: str, word: str, folder: Path, required: bool) -> str:
        if given:
            if given not in self._images:
                raise LeRobotPolicyError(f"{folder}: no image feature {given!r}; it has {sorted(self._images)}")
            return given
        named = [k for k in self._images if word in k]
        if named:
            return named[0]
        if required:
            others = [k for k in self._images if "wrist" not in k]
            return (others or list(self._images))[0]
        return ""

    @staticmethod
    def _read_mean(folder: Path, key: str, dim: int) -> np.ndarray | None:
        """The training mean of input `key` (dim values) from the saved preprocessor (zeros if absent)."""
        if not dim:
            return None
        from safetensors.numpy import load_file

        for f in sorted(folder.glob("policy_preprocessor*.safetensors")):
            tensors = load_file(str(f))
            for k, v in tensors.items():
                if k.startswith(key + ".") and k.endswith(".mean") and v.shape == (dim,):
                    return np.asarray(v, np.float32)
        return np.zeros(dim, np.float32)

    # ---- observation mapping ------------------------------------------------------------------
    def _state(self, obs: Observation) -> np.ndarray | None:
        if not self._state_dim:
            return None
        mean = self._state_mean if self._state_mean is not None else np.zeros(self._state_dim, np.float32)
        rs = obs.robot_state
        if rs is None:
            return mean.copy()
        pos = np.asarray(rs.pose[:3], np.float64)
        grip = float(mean[-1]) if rs.gripper is None else gripper_to_droid(float(rs.gripper))
        if self._state_dim == 8:
            q = np.asarray(euler_xyz_to_quat(tuple(float(v) for v in rs.pose[3:6])), np.float64)
            if float(np.dot(q, mean[3:7])) < 0:
                q = -q
            vec = np.concatenate([pos, q, [grip]])
        elif self._state_dim == 7:
            vec = np.concatenate([pos, rs.pose[3:6], [grip]])
        else:
            vec = np.asarray(rs.pose, np.float64)
        return vec.astype(np.float32)

    def _frame(self, obs: Observation) -> _Frame:
        images = {}
        for key, (h, w) in self._images.items():
            src = obs.image
            if key == self._wrist and obs.wrist_image is not None:
                src = obs.wrist_image
            img = np.asarray(src)
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise ValueError(f"image: expected (H, W, 3) uint8 RGB, got {img.shape} {img.dtype}")
            images[key] = resize_rgb(img, w, h)
        return _Frame(images, self._state(obs))

    def _batch(self, frame: _Frame, instruction: str) -> dict[str, Any]:
        torch = self._torch
        batch: dict[str, Any] = {
            k: torch.from_numpy(v.astype(np.float32).transpose(2, 0, 1) / 255.0)[None] for k, v in frame.images.items()
        }
        if frame.state is not None:
            batch[STATE_KEY] = torch.from_numpy(frame.state)[None]
        if self._tasks:
            batch[ENV_STATE_KEY] = torch.from_numpy(self.task_one_hot(instruction))[None]
        batch["task"] = instruction
        return dict(self._pre(batch))

    def task_one_hot(self, instruction: str) -> np.ndarray:
        """(K,) float32 one-hot of `instruction` over the checkpoint's tasks (the training mean when empty).

        Raises:
            UnknownInstruction: the instruction is none of the tasks the policy was trained on.
        """
        wanted = normalize_task(instruction)
        if not wanted and self._task_mean is not None:
            return self._task_mean.copy()
        names = [normalize_task(t) for t in self._tasks]
        if wanted not in names:
            raise UnknownInstruction(f"{self.path}: instruction {instruction!r} is not one this policy was trained on; "
                                     f"it knows {self._tasks} ({VOCABULARY_FILE})")
        out = np.zeros(len(names), np.float32)
        out[names.index(wanted)] = 1.0
        return out

    # ---- inference ---------------------------------------------------------------------------------
    def infer(self, obs: Observation) -> np.ndarray:
        if self._policy is None:
            self.load()
        torch = self._torch
        frame = self._frame(obs)
        session = self._sessions.use(obs.session)
        frames = (session.history + [frame])[-self._n_obs:]
        seed = (int(obs.seed) * 1_000_003 + int(obs.step)) % (2**63)
        with torch.inference_mode():
            batches = [self._batch(f, obs.instruction) for f in frames]
            torch.manual_seed(seed)
            chunk = self._predict(batches)
            actions = self._post(chunk)
        out = np.asarray(actions.detach().cpu().numpy(), np.float64).reshape(-1, self._action_dim)[: self._n_act]
        if not np.all(np.isfinite(out)):
            raise LeRobotPolicyError(f"{self.path}: non-finite action output {out.tolist()}")
        session.history = frames[-(self._n_obs - 1):] if self._n_obs > 1 else []
        return np.stack([self._to_action(row, obs) for row in out])

    def _predict(self, batches: list[dict[str, Any]]) -> Any:
        """(1, horizon, action_dim) normalised actions from the observation history."""
        policy = self._policy
        queues = getattr(policy, "_queues", None)
        if queues is None:  # single-frame policies (ACT …)
            return policy.predict_action_chunk(batches[-1])[:, : self._n_act]
        # Diffusion-style: the model reads the last n_obs_steps observations from its queues
        from lerobot.policies.utils import populate_queues
        from lerobot.utils.constants import OBS_IMAGES

        policy.reset()
        for b in [batches[0]] * (self._n_obs - len(batches)) + batches:
            # as select_action: no "action" key (the processors add it empty) in the queues
            b = {k: v for k, v in b.items() if v is not None and k != "action"}
            if policy.config.image_features:
                b[OBS_IMAGES] = self._torch.stack([b[k] for k in policy.config.image_features], dim=-4)
            policy._queues = populate_queues(policy._queues, b)
        horizon = int(getattr(policy.config, "horizon", self._n_act))
        gen = self._torch.Generator().manual_seed(int(self._torch.initial_seed()))
        noise = self._torch.randn((1, horizon, self._action_dim), generator=gen)
        chunk = policy.predict_action_chunk(b, noise=noise)
        return chunk[:, : self._n_act]

    def _to_action(self, row: np.ndarray, obs: Observation) -> np.ndarray:
        if self._action_dim == ACTION_DIM:
            return clip_action(row)
        # absolute target [x, y, z, qx, qy, qz, qw, gripper] -> action from the observed pose
        grip = droid_to_gripper(float(row[7]), binarize=False)
        hold = np.r_[np.zeros(GRIPPER_INDEX), grip]
        if obs.robot_state is None:
            return clip_action(hold)
        pos, quat = pose_to_pos_quat(obs.robot_state.pose)
        action = target_to_action(pos, quat, row[0:3], row[3:7], grip)
        return clip_action(np.asarray(action if action is not None else hold, np.float64))

    # ---- sessions -----------------------------------------------------------------------------------
    def end_session(self, session: str) -> None:
        self._sessions.pop(session)

    def export_session(self, session: str) -> bytes:
        """The session's observation history (empty for single-frame policies) as bytes."""
        s = self._sessions.get(session)
        return encode_session(SESSION_FORMAT, {"history": [_frame_to_json(f) for f in (s.history if s else [])]})

    def import_session(self, session: str, data: bytes) -> None:
        """Continues `session` from what `export_session` returned."""
        s = decode_session(data, SESSION_FORMAT, "lerobot",
                           lambda d: _Session([_frame_from_json(f) for f in d["history"]]))
        self._sessions.put(session, s)

    def close(self) -> None:
        self._policy = self._pre = self._post = None


def read_config(path: str | Path) -> dict[str, Any]:
    """The checkpoint's ``config.json`` (no torch needed): for catalogs and the UI."""
    return dict(json.loads((find_pretrained(Path(path)) / "config.json").read_text()))
