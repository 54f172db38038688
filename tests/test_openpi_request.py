"""openpi requests → `Observation` (native and DROID keys) and chunks → replies, through the codec."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from robot_formats.openpi_codec import packb, unpackb
from robot_formats.openpi_request import (
    OpenPIObservationError,
    native_request,
    parse_request,
    reply_from_chunk,
)
from robot_formats.robot_state import RobotStateIn

IMG = np.arange(24 * 32 * 3, dtype=np.uint8).reshape(24, 32, 3)


def test_native_request_round_trips_through_the_wire() -> None:
    state = RobotStateIn(pose=(0.5, 0.0, 0.3, 3.1, 0.0, 0.1), gripper=1.0)
    wire = packb(native_request(IMG, "pick up the red cube", state, wrist_image=IMG[::-1]))
    obs = parse_request(unpackb(wire))
    assert np.array_equal(obs.image, IMG) and np.array_equal(obs.wrist_image, IMG[::-1])  # type: ignore[arg-type]
    assert obs.instruction == "pick up the red cube"
    assert obs.robot_state == state


def test_state_without_gripper_and_no_state() -> None:
    obs = parse_request({"observation/image": IMG, "observation/state": np.zeros(6)})
    assert obs.robot_state == RobotStateIn(pose=(0.0,) * 6, gripper=None) and obs.instruction == ""
    assert parse_request({"image": IMG, "prompt": "x"}).robot_state is None


def test_droid_keys_through_forward_kinematics() -> None:
    from robot_formats.kinematics import PandaKinematics

    kin = PandaKinematics()
    req = {
        "observation/exterior_image_1_left": IMG,
        "observation/wrist_image_left": IMG,
        "observation/joint_position": kin.home,
        "observation/gripper_position": np.array([1.0]),
        "prompt": "pick",
    }
    obs = parse_request(unpackb(packb(req)), fk=kin.forward)
    pos, _ = kin.forward(kin.home)
    assert obs.robot_state is not None and np.allclose(obs.robot_state.pose[:3], pos)
    assert obs.robot_state.gripper == 1.0 and obs.wrist_image is not None


@pytest.mark.parametrize(
    "req, fragment",
    [
        ({"prompt": "x"}, "missing image"),
        ({"observation/image": IMG.astype(np.float32)}, "uint8"),
        ({"observation/image": IMG[..., 0]}, "uint8"),
        ({"observation/image": "jpeg?"}, "got str"),
        ({"observation/image": np.zeros((1, 5000, 3), np.uint8)}, "sides must be"),
        ({"observation/image": IMG, "observation/state": np.zeros(5)}, "6 or 7"),
        ({"observation/image": IMG, "observation/state": np.array([np.nan] * 6)}, "finite"),
        ({"observation/image": IMG, "observation/state": "up"}, "6 or 7"),
        ({"observation/image": IMG, "prompt": 3}, "prompt"),
        ({"observation/image": IMG, "prompt": "x" * 5000}, "at most"),
        ({"observation/image": IMG, "observation/joint_position": np.zeros(7)}, "forward kinematics"),
    ],
)
def test_bad_requests_name_the_key(req: dict[str, Any], fragment: str) -> None:
    with pytest.raises(OpenPIObservationError, match=fragment):
        parse_request(req)


def test_reply_from_chunk() -> None:
    r = reply_from_chunk(np.zeros((4, 7)))
    assert r["actions"].dtype == np.float32 and r["actions"].shape == (4, 7)
    assert reply_from_chunk(np.zeros(7))["actions"].shape == (1, 7)
    for bad in (np.zeros((4, 8)), np.full((2, 7), np.inf), np.zeros((0, 7))):
        with pytest.raises(ValueError, match="finite"):
            reply_from_chunk(bad)
