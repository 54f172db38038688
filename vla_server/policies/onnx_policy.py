"""`onnx`: any ONNX policy run by onnxruntime on the CPU (one intra-op thread).

The model must take an image input, NCHW float32 ``(1, 3, H, W)`` with static H and W, and may
take a state input ``(1, 7)`` = ``[x, y, z, roll, pitch, yaw, gripper]`` (or ``(1, 6)``, the pose
only); its output is ``(1, 7)``, ``(1, H, 7)`` or ``(H, 7)`` actions. The frame is resized to
(W, H) bilinearly (PIL) and scaled to [0, 1] (or [0, 255], `image_scale`); missing robot state
or gripper becomes zeros. Rows are clipped to the action space (`action_space.clip_action`);
a non-finite output raises `OnnxPolicyError`. Stateless, so deterministic.

The default model is the shipped ``assets/tiny_policy.onnx`` (`tools/make_onnx_policy.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from robot_formats.action_space import ACTION_DIM, clip_action
from vla_server.policies.base import Observation, Policy, PolicyInfo

DEFAULT_MODEL = "tiny_policy.onnx"  # inside vla_server/policies/assets


class OnnxPolicyError(RuntimeError):
    """The ONNX model cannot be loaded or run, or its inputs/outputs do not fit a policy."""


def default_model_path() -> Path:
    """Path of the shipped tiny model."""
    return Path(str(resources.files("vla_server.policies").joinpath("assets", DEFAULT_MODEL)))


@dataclass(frozen=True)
class OnnxParams:
    """Parameters of `OnnxPolicy`.

    Attributes:
        path: the .onnx file (None: the shipped tiny model).
        image_input: name of the image input.
        state_input: name of the state input, or "" if the model takes none.
        output: name of the action output ("" = the first output).
        image_scale: 1 feeds pixels in [0, 1], 255 in [0, 255].
        intra_op_threads: onnxruntime intra-op threads.
    """

    path: str | None = None
    image_input: str = "image"
    state_input: str = "state"
    output: str = ""
    image_scale: float = 1.0
    intra_op_threads: int = 1

    def __post_init__(self) -> None:
        if self.image_scale not in (1.0, 255.0):
            raise ValueError(f"image_scale: expected 1 or 255, got {self.image_scale}")
        if self.intra_op_threads < 1:
            raise ValueError(f"intra_op_threads: expected >= 1, got {self.intra_op_threads}")


class OnnxPolicy(Policy):
    """An ONNX model as a policy; see the module docstring."""

    def __init__(self, params: OnnxParams | None = None) -> None:
        self.params = params or OnnxParams()
        self.path = Path(self.params.path) if self.params.path else default_model_path()
        self._session: Any = None
        self._image_hw: tuple[int, int] = (0, 0)
        self._state_dim = 0
        self._output = ""
        self._horizon = 1

    def info(self) -> PolicyInfo:
        return PolicyInfo(
            name=self.path.stem,
            backend="onnx",
            action_horizon=self._horizon,
            description=f"ONNX model {self.path.name} on onnxruntime (CPU)",
            extra={"path": str(self.path), "image_hw": list(self._image_hw), "state_dim": self._state_dim},
        )

    def load(self) -> None:
        if self._session is not None:
            return
        import onnxruntime as ort

        if not self.path.is_file():
            raise OnnxPolicyError(f"ONNX model not found: {self.path}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.params.intra_op_threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            sess = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise OnnxPolicyError(f"onnxruntime could not load {self.path}: {exc}") from exc
        inputs = {i.name: i for i in sess.get_inputs()}
        p = self.params
        if p.image_input not in inputs:
            raise OnnxPolicyError(f"{self.path.name}: no input {p.image_input!r}; inputs are {sorted(inputs)}")
        shape = inputs[p.image_input].shape
        if len(shape) != 4 or shape[1] != 3 or not all(isinstance(d, int) for d in shape[2:]):
            raise OnnxPolicyError(f"{self.path.name}: image input must be (1, 3, H, W) with fixed H, W, got {shape}")
        self._image_hw = (int(shape[2]), int(shape[3]))
        if p.state_input:
            if p.state_input not in inputs:
                raise OnnxPolicyError(f"{self.path.name}: no input {p.state_input!r}; inputs are {sorted(inputs)}")
            sshape = inputs[p.state_input].shape
            if len(sshape) != 2 or sshape[1] not in (6, 7):
                raise OnnxPolicyError(f"{self.path.name}: state input must be (1, 6) or (1, 7), got {sshape}")
            self._state_dim = int(sshape[1])
        extra = set(inputs) - {p.image_input, p.state_input}
        if extra:
            raise OnnxPolicyError(f"{self.path.name}: inputs {sorted(extra)} are not fed by this policy")
        outputs = [o.name for o in sess.get_outputs()]
        self._output = p.output or outputs[0]
        if self._output not in outputs:
            raise OnnxPolicyError(f"{self.path.name}: no output {self._output!r}; outputs are {outputs}")
        self._session = sess
        self._horizon = len(self._run(np.zeros((*self._image_hw, 3), np.uint8), None))

    def _feeds(self, image: np.ndarray, state: np.ndarray | None) -> dict[str, np.ndarray]:
        h, w = self._image_hw
        img = image if image.shape[:2] == (h, w) else np.asarray(
            Image.fromarray(image).resize((w, h), Image.Resampling.BILINEAR)
        )
        x = img.astype(np.float32).transpose(2, 0, 1)[None]
        if self.params.image_scale == 1.0:
            x /= 255.0
        feeds = {self.params.image_input: np.ascontiguousarray(x)}
        if self._state_dim:
            s = np.zeros((1, self._state_dim), np.float32)
            if state is not None:
                s[0, : min(len(state), self._state_dim)] = state[: self._state_dim]
            feeds[self.params.state_input] = s
        return feeds

    def _run(self, image: np.ndarray, state: np.ndarray | None) -> np.ndarray:
        out = np.asarray(self._session.run([self._output], self._feeds(image, state))[0], dtype=np.float64)
        if out.ndim == 3 and out.shape[0] == 1:
            out = out[0]
        elif out.ndim == 1:
            out = out[None]
        if out.ndim != 2 or out.shape[1] != ACTION_DIM or out.shape[0] < 1:
            raise OnnxPolicyError(f"{self.path.name}: output must be (1, 7), (1, H, 7) or (H, 7), got {out.shape}")
        if not np.all(np.isfinite(out)):
            raise OnnxPolicyError(f"{self.path.name}: non-finite action output {out.tolist()}")
        return np.stack([clip_action(row) for row in out])

    def infer(self, obs: Observation) -> np.ndarray:
        if self._session is None:
            self.load()
        image = np.asarray(obs.image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image: expected (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
        state = None
        if obs.robot_state is not None:
            g = obs.robot_state.gripper
            state = np.array([*obs.robot_state.pose, 0.0 if g is None else g], dtype=np.float32)
        return self._run(image, state)

    def close(self) -> None:
        self._session = None
