"""DROID observation keys and joint-velocity chunks → our action space; Panda kinematics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from frankateach.sim.controller import CartesianController
from frankateach.sim.model import build_model
from robot_formats.action_space import action_to_target
from robot_formats.droid import (
    MAX_JOINT_DELTA_RAD,
    DroidMappingError,
    chunk_to_actions,
    droid_to_gripper,
    gripper_to_droid,
    joint_velocity_to_delta,
    make_request,
    resize_with_pad,
)
from robot_formats.kinematics import PandaKinematics


@pytest.fixture(scope="module")
def kin() -> PandaKinematics:
    return PandaKinematics()


def test_fk_agrees_with_the_sim_controller(kin: PandaKinematics) -> None:
    ctl = CartesianController(build_model(cameras=False))
    rng = np.random.default_rng(0)
    for _ in range(5):
        q = kin.clip(kin.home + rng.uniform(-0.5, 0.5, 7))
        pos, quat = kin.forward(q)
        cpos, cquat_wxyz = ctl.forward(q)
        np.testing.assert_allclose(pos, cpos, atol=1e-12)
        assert abs(abs(float(np.dot(quat, np.r_[cquat_wxyz[1:], cquat_wxyz[0]]))) - 1.0) < 1e-12


def test_jacobian_matches_finite_differences(kin: PandaKinematics) -> None:
    q = kin.home.copy()
    jac = kin.jacobian(q)
    eps = 1e-6
    for i in range(7):
        dq = np.zeros(7)
        dq[i] = eps
        p1, _ = kin.forward(q + dq)
        p0, _ = kin.forward(q - dq)
        np.testing.assert_allclose(jac[:3, i], (p1 - p0) / (2 * eps), atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-0.6, 0.6), min_size=7, max_size=7))
@example([0.0, -0.5, 0.0, -0.59375, 0.5, 0.0, 0.0])  # joint 4 at its limit (fc17): clipped steps stalled
def test_ik_recovers_reachable_poses(kin: PandaKinematics, offsets: list[float]) -> None:
    q_true = kin.clip(kin.home + np.array(offsets))
    pos, quat = kin.forward(q_true)
    res = kin.solve_ik(pos, quat, seed=kin.home, iterations=200)
    got_pos, got_quat = kin.forward(res.q)
    assert res.converged, res
    assert np.linalg.norm(got_pos - pos) < 1e-3
    assert abs(float(np.dot(got_quat, quat))) > np.cos(0.01 / 2)
    assert np.all(res.q >= kin.lower) and np.all(res.q <= kin.upper)


def test_resize_with_pad_keeps_aspect_and_centres() -> None:
    img = np.full((240, 320, 3), 200, np.uint8)
    out = resize_with_pad(img, 224, 224)
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    # 320×240 → 224×168, centred: 28 black rows above and below.
    assert np.all(out[:28] == 0) and np.all(out[-28:] == 0)
    assert np.all(out[28:196] == 200)
    tall = resize_with_pad(np.full((300, 100, 3), 9, np.uint8), 224, 224)
    # 100×300 → 74×224, 75 black columns left, 75 right (openpi: int((224 − 74) / 2)).
    assert np.all(tall[:, :75] == 0) and np.all(tall[:, 75:149] == 9) and np.all(tall[:, 149:] == 0)
    same = np.zeros((224, 224, 3), np.uint8)
    assert resize_with_pad(same, 224, 224) is same


def test_gripper_conventions() -> None:
    assert gripper_to_droid(-1.0) == 0.0 and gripper_to_droid(1.0) == 1.0 and gripper_to_droid(0.0) == 0.5
    assert droid_to_gripper(0.7) == 1.0 and droid_to_gripper(0.3) == -1.0
    assert droid_to_gripper(0.75, binarize=False) == pytest.approx(0.5)
    assert droid_to_gripper(5.0, binarize=False) == 1.0


def test_request_has_droid_keys_types_and_shapes() -> None:
    req = make_request(np.zeros((240, 320, 3), np.uint8), None, np.arange(7.0), 1.0, "pick up the red cube")
    assert set(req) == {"observation/exterior_image_1_left", "observation/wrist_image_left",
                        "observation/joint_position", "observation/gripper_position", "prompt"}
    for key in ("observation/exterior_image_1_left", "observation/wrist_image_left"):
        assert req[key].shape == (224, 224, 3) and req[key].dtype == np.uint8  # type: ignore[attr-defined]
    np.testing.assert_array_equal(req["observation/joint_position"], np.arange(7.0))
    np.testing.assert_array_equal(req["observation/gripper_position"], [1.0])
    assert req["prompt"] == "pick up the red cube"


def test_joint_velocity_clipped_and_scaled() -> None:
    np.testing.assert_allclose(joint_velocity_to_delta(np.full(7, 0.5)), np.full(7, 0.5 * MAX_JOINT_DELTA_RAD))
    np.testing.assert_allclose(joint_velocity_to_delta(np.r_[3.0, np.zeros(6)])[0], MAX_JOINT_DELTA_RAD)


def test_chunk_integrates_through_forward_kinematics(kin: PandaKinematics) -> None:
    rng = np.random.default_rng(3)
    chunk = np.c_[rng.uniform(-0.15, 0.15, (10, 7)), np.r_[np.zeros(5), np.ones(5)]]
    q0 = kin.home.copy()
    actions, q_end = chunk_to_actions(chunk, q0, kin)
    assert actions.shape == (10, 7) and np.all(np.abs(actions) <= 1.0)
    np.testing.assert_allclose(q_end, kin.clip(q0 + chunk[:, :7].sum(axis=0) * MAX_JOINT_DELTA_RAD), atol=1e-12)
    # Applying our actions one after another from FK(q0) ends at FK(q_end) (small steps: no saturation).
    pos, quat = kin.forward(q0)
    for a in actions:
        pos, quat, _ = action_to_target(pos, quat, a)
    end_pos, end_quat = kin.forward(q_end)
    assert np.linalg.norm(pos - end_pos) < 1e-6
    assert abs(float(np.dot(quat, end_quat))) > 1 - 1e-9
    np.testing.assert_array_equal(actions[:, 6], [-1] * 5 + [1] * 5)


@pytest.mark.parametrize(("chunk", "message"), [
    (np.zeros((10, 7)), r"shape \(H, 8\)"),
    (np.zeros((2, 3, 8)), r"shape \(H, 8\)"),
    (np.full((4, 8), np.nan), "non-finite"),
    ("actions", "numeric"),
    (np.zeros((0, 8)), r"shape \(H, 8\)"),
])
def test_bad_chunks(kin: PandaKinematics, chunk: object, message: str) -> None:
    with pytest.raises(DroidMappingError, match=message):
        chunk_to_actions(chunk, kin.home, kin)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.floats(-1e6, 1e6), min_size=8, max_size=8), min_size=1, max_size=12))
def test_any_finite_chunk_maps_into_the_action_space(kin: PandaKinematics, rows: list[list[float]]) -> None:
    actions, q_end = chunk_to_actions(np.array(rows), kin.home, kin)
    assert actions.shape == (len(rows), 7) and np.all(np.isfinite(actions)) and np.all(np.abs(actions) <= 1.0)
    assert np.all(q_end >= kin.lower) and np.all(q_end <= kin.upper)
