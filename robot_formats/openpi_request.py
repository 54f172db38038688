"""openpi requests and replies: what our openpi endpoint accepts and answers, for both ends.

A request (msgpack map, decoded by `robot_formats.openpi_codec`) may use our *native* keys or DROID's:

==================================  =============================================================
``observation/image``               (H, W, 3) uint8 RGB front frame (or DROID's
                                    ``observation/exterior_image_1_left``, or ``image``)
``observation/wrist_image``         optional (H, W, 3) uint8 (or ``observation/wrist_image_left``)
``observation/state``               optional (6,) or (7,) float: TCP pose x, y, z (m), roll,
                                    pitch, yaw (rad, Euler xyz), base frame, then the gripper
                                    (−1 open … +1 closed)
``observation/joint_position``      DROID alternative to ``observation/state``: (7,) joints, rad,
                                    turned into the TCP pose by the Panda's forward kinematics;
                                    ``observation/gripper_position`` (1,) 0 open … 1 closed
``prompt``                          the instruction (str; "" when absent)
==================================  =============================================================

The reply is ``{"actions": (H, 7) float32}`` in *our* action space (`robot_formats.action_space`),
not DROID's joint velocities: a client that needs DROID's must map them itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from robot_formats.action_space import ACTION_DIM, GRIPPER_CLOSED, GRIPPER_OPEN
from robot_formats.openpi_keys import (  # defined once there (numpy-free)
    DROID_GRIPPER_KEY,
    IMAGE_KEYS,
    JOINTS_KEY,
    PROMPT_KEY,
    STATE_KEY,
    WRIST_KEYS,
)
from robot_formats.robot_state import RobotStateIn, pos_quat_to_pose
from robot_formats.stream.limits import MAX_IMAGE_SIDE_PX, MAX_INSTRUCTION_CHARS

ForwardKinematics = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""(7,) joints, rad → ((3,) position m, (4,) quaternion xyzw) of the TCP, base frame."""


@dataclass(frozen=True)
class OpenPIRequest:
    """A decoded openpi request.

    Attributes:
        image: (H, W, 3) uint8 RGB front frame.
        instruction: the prompt ("" when absent).
        robot_state: the reported state (from ``observation/state`` or DROID's joints), or None.
        wrist_image: (H, W, 3) uint8 RGB wrist frame, or None.
    """

    image: np.ndarray
    instruction: str
    robot_state: RobotStateIn | None = None
    wrist_image: np.ndarray | None = None


class OpenPIObservationError(ValueError):
    """A request the endpoint cannot turn into an observation; the message names the key."""


def _image(obs: Mapping[str, Any], keys: tuple[str, ...], required: bool) -> np.ndarray | None:
    key = next((k for k in keys if k in obs), None)
    if key is None:
        if required:
            raise OpenPIObservationError(f"missing image: expected one of {list(keys)}; got keys {sorted(obs)[:12]}")
        return None
    img = obs[key]
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        got = f"{img.dtype} {img.shape}" if isinstance(img, np.ndarray) else type(img).__name__
        raise OpenPIObservationError(f"{key}: expected an (H, W, 3) uint8 RGB array, got {got}")
    if not (1 <= img.shape[0] <= MAX_IMAGE_SIDE_PX and 1 <= img.shape[1] <= MAX_IMAGE_SIDE_PX):
        raise OpenPIObservationError(
            f"{key}: image is {img.shape[1]}x{img.shape[0]} px; sides must be 1..{MAX_IMAGE_SIDE_PX}"
        )
    return np.ascontiguousarray(img)


def _vector(obs: Mapping[str, Any], key: str, sizes: tuple[int, ...]) -> np.ndarray:
    v = obs[key]
    try:
        arr = np.asarray(v, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise OpenPIObservationError(
            f"{key}: expected {' or '.join(map(str, sizes))} numbers, got {type(v).__name__}"
        ) from exc
    if arr.size not in sizes:
        raise OpenPIObservationError(f"{key}: expected {' or '.join(map(str, sizes))} numbers, got {arr.size}")
    if not np.isfinite(arr).all():
        raise OpenPIObservationError(f"{key}: expected finite numbers, got {arr.tolist()}")
    return arr


def _state(obs: Mapping[str, Any], fk: ForwardKinematics | None) -> RobotStateIn | None:
    if STATE_KEY in obs:
        s = _vector(obs, STATE_KEY, (6, 7))
        gripper = min(max(float(s[6]), GRIPPER_OPEN), GRIPPER_CLOSED) if s.size == 7 else None  # finite: checked
        return RobotStateIn(pose=tuple(float(x) for x in s[:6]), gripper=gripper)  # type: ignore[arg-type]
    if JOINTS_KEY in obs:
        if fk is None:
            raise OpenPIObservationError(
                f"{JOINTS_KEY}: joint states need forward kinematics, which this endpoint lacks"
            )
        q = _vector(obs, JOINTS_KEY, (7,))
        pos, quat = fk(q)
        gripper = None
        if DROID_GRIPPER_KEY in obs:
            g = min(max(float(_vector(obs, DROID_GRIPPER_KEY, (1,))[0]), 0.0), 1.0)
            gripper = GRIPPER_OPEN + g * (GRIPPER_CLOSED - GRIPPER_OPEN)
        return RobotStateIn(pose=pos_quat_to_pose(pos, quat), gripper=gripper)
    return None


def parse_request(obs: Mapping[str, Any], fk: ForwardKinematics | None = None) -> OpenPIRequest:
    """Reads a decoded openpi request (keys in the module docstring).

    Raises:
        OpenPIObservationError: a missing image, a wrong type or shape, a non-finite state.
    """
    if not isinstance(obs, Mapping):
        raise OpenPIObservationError(f"expected the observation as a map, got {type(obs).__name__}")
    image = _image(obs, IMAGE_KEYS, required=True)
    assert image is not None
    prompt = obs.get(PROMPT_KEY, "")
    if isinstance(prompt, np.ndarray) and prompt.dtype.kind == "U" and prompt.size == 1:
        prompt = str(prompt.reshape(()))
    if not isinstance(prompt, str):
        raise OpenPIObservationError(f"{PROMPT_KEY}: expected a string, got {type(prompt).__name__}")
    if len(prompt) > MAX_INSTRUCTION_CHARS:
        raise OpenPIObservationError(
            f"{PROMPT_KEY}: expected at most {MAX_INSTRUCTION_CHARS} characters, got {len(prompt)}"
        )
    return OpenPIRequest(
        image=image,
        instruction=prompt,
        robot_state=_state(obs, fk),
        wrist_image=_image(obs, WRIST_KEYS, required=False),
    )


def native_request(
    image: np.ndarray, instruction: str, state: RobotStateIn | None = None, wrist_image: np.ndarray | None = None
) -> dict[str, Any]:
    """The request our own clients send (native keys); inverse of `parse_request`."""
    req: dict[str, Any] = {IMAGE_KEYS[0]: np.ascontiguousarray(image, dtype=np.uint8), PROMPT_KEY: instruction}
    if wrist_image is not None:
        req[WRIST_KEYS[0]] = np.ascontiguousarray(wrist_image, dtype=np.uint8)
    if state is not None:
        vals = list(state.pose) + ([state.gripper] if state.gripper is not None else [])
        req[STATE_KEY] = np.asarray(vals, dtype=np.float64)
    return req


def reply_from_chunk(actions: np.ndarray) -> dict[str, Any]:
    """``{"actions": (H, 7) float32}`` from a policy's chunk.

    Raises:
        ValueError: not a finite (H, 7) array.
    """
    arr = np.asarray(actions, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != ACTION_DIM or arr.shape[0] < 1 or not np.isfinite(arr).all():
        raise ValueError(f"policy chunk: expected a finite (H, {ACTION_DIM}) array, got shape {arr.shape}")
    return {"actions": arr.astype(np.float32)}
