"""Our observations to DROID's policy inputs, and DROID's joint-velocity chunks to our actions.

Inputs, as openpi's DROID example (``examples/droid/main.py``) sends them to a ``pi0*_droid``
server:

* ``observation/exterior_image_1_left``: (224, 224, 3) uint8 — our front frame, resized with
  padding (aspect kept, black bars, bilinear), as openpi's ``image_tools.resize_with_pad``;
* ``observation/wrist_image_left``: (224, 224, 3) uint8 — the wrist frame the same way, black
  when the client sent none;
* ``observation/joint_position``: (7,) float64 joint angles, rad;
* ``observation/gripper_position``: (1,) float64, 0 open … 1 closed;
* ``prompt``: the instruction.

Output: ``actions`` (H, ≥ 8): per row 7 joint velocities in DROID's normalised joint-velocity
action space and a gripper position (0 open … 1 closed). DROID (``RobotIKSolver``) turns a row
into a joint delta per 15 Hz step: the row is clipped to [−1, 1], then ``Δq = v · 0.2 rad``.
Here the chunk is integrated through the Panda's forward kinematics:
``q_k = clip(q_{k-1} + Δq_k)``, ``T_k = FK(q_k)``, and row k of our chunk is the action that
moves ``T_{k-1}`` to ``T_k`` (`action_space.target_to_action`, which saturates at 0.075 m and
0.15 rad per step). DROID's step is 1/15 s, so a consumer applying one row per 1/10 s plays the
chunk at 2/3 speed. The gripper is binarised at 0.5 as DROID's example does (optional).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from robot_formats.action_space import (
    ACTION_DIM,
    GRIPPER_CLOSED,
    GRIPPER_OPEN,
    target_to_action,
    validate_chunk,
)
from robot_formats.kinematics import PandaKinematics

IMAGE_SIZE = 224
MAX_JOINT_DELTA_RAD = 0.2  # DROID RobotIKSolver.max_joint_delta: joint motion per step at |v| = 1
KEY_EXTERIOR = "observation/exterior_image_1_left"
KEY_WRIST = "observation/wrist_image_left"
KEY_JOINTS = "observation/joint_position"
KEY_GRIPPER = "observation/gripper_position"
KEY_PROMPT = "prompt"


class DroidMappingError(ValueError):
    """A reply that is not a DROID action chunk."""


def resize_with_pad(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resizes an (H, W, 3) uint8 image into (height, width, 3), keeping its aspect ratio.

    The image is scaled by ``1 / max(W / width, H / height)`` (bilinear) and centred on black.
    """
    img = np.asarray(image)
    if img.shape[:2] == (height, width):
        return img
    h, w = img.shape[:2]
    ratio = max(w / width, h / height)
    new_w, new_h = int(w / ratio), int(h / ratio)
    resized = np.asarray(Image.fromarray(img).resize((new_w, new_h), Image.Resampling.BILINEAR))
    out = np.zeros((height, width, img.shape[2]), dtype=img.dtype)
    top, left = max(0, (height - new_h) // 2), max(0, (width - new_w) // 2)
    out[top: top + new_h, left: left + new_w] = resized
    return out


def gripper_to_droid(gripper: float) -> float:
    """Our gripper (−1 open … +1 closed) as DROID's position (0 open … 1 closed)."""
    return float(np.clip((gripper - GRIPPER_OPEN) / (GRIPPER_CLOSED - GRIPPER_OPEN), 0.0, 1.0))


def droid_to_gripper(position: float, binarize: bool = True) -> float:
    """DROID's gripper position (0 open … 1 closed) as ours (−1 … +1), optionally binarised at 0.5."""
    p = float(np.clip(position, 0.0, 1.0))
    if binarize:
        p = 1.0 if p > 0.5 else 0.0
    return GRIPPER_OPEN + p * (GRIPPER_CLOSED - GRIPPER_OPEN)


def make_request(
    image: np.ndarray,
    wrist_image: np.ndarray | None,
    joints: np.ndarray,
    gripper: float,
    prompt: str,
    image_size: int = IMAGE_SIZE,
) -> dict[str, object]:
    """The DROID observation dict (see the module docstring); `gripper` in our −1 … +1 range."""
    ext = resize_with_pad(np.asarray(image, dtype=np.uint8), image_size, image_size)
    if wrist_image is None:
        wrist = np.zeros((image_size, image_size, 3), dtype=np.uint8)
    else:
        wrist = resize_with_pad(np.asarray(wrist_image, dtype=np.uint8), image_size, image_size)
    return {
        KEY_EXTERIOR: np.ascontiguousarray(ext),
        KEY_WRIST: np.ascontiguousarray(wrist),
        KEY_JOINTS: np.asarray(joints, dtype=np.float64).reshape(7),
        KEY_GRIPPER: np.array([gripper_to_droid(gripper)], dtype=np.float64),
        KEY_PROMPT: str(prompt),
    }


def joint_velocity_to_delta(velocity: np.ndarray) -> np.ndarray:
    """DROID's joint-velocity action (7,) → joint delta (7,) rad for one step.

    As DROID's example and solver: clipped to [−1, 1] per joint, scaled so the largest |v| ≤ 1
    (a no-op after the clip, kept for the solver's semantics), times `MAX_JOINT_DELTA_RAD`.
    """
    v = np.clip(np.asarray(velocity, dtype=np.float64), -1.0, 1.0)
    peak = float(np.max(np.abs(v)))
    if peak > 1.0:
        v = v / peak
    return v * MAX_JOINT_DELTA_RAD


def chunk_to_actions(
    chunk: object, q0: np.ndarray, kin: PandaKinematics, binarize_gripper: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Maps a DROID chunk (H, ≥ 8) from joints `q0` to our actions.

    Returns:
        (H, 7) actions and the (7,) joints at the end of the chunk.

    Raises:
        DroidMappingError: not a finite (H, ≥ 8) numeric array.
    """
    arr = validate_chunk(chunk, 8, at_least=True, meaning=" (joint velocities + gripper)", error=DroidMappingError)
    q = kin.clip(q0)
    pos, quat = kin.forward(q)
    out = np.zeros((len(arr), ACTION_DIM))
    for k, row in enumerate(arr):
        q = kin.clip(q + joint_velocity_to_delta(row[:7]))
        nxt_pos, nxt_quat = kin.forward(q)
        action = target_to_action(pos, quat, nxt_pos, nxt_quat, droid_to_gripper(row[7], binarize_gripper))
        if action is None:
            raise DroidMappingError(f"row {k}: the integrated pose is not finite")
        out[k] = action
        pos, quat = nxt_pos, nxt_quat
    return out, q
