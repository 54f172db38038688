"""The onnx backend: the shipped model, its generator, and models that do not fit a policy."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from robot_formats.robot_state import RobotStateIn
from vla_server.policies.base import Observation
from vla_server.policies.onnx_policy import (
    OnnxParams,
    OnnxPolicy,
    OnnxPolicyError,
    default_model_path,
)

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("make_onnx_policy", ROOT / "tools" / "make_onnx_policy.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _obs(h: int = 240, w: int = 320, seed: int = 0, state: bool = True) -> Observation:
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    rs = RobotStateIn(pose=(0.45, 0.0, 0.3, np.pi, 0.0, 0.0), gripper=-1.0) if state else None
    return Observation(image=img, instruction="anything", robot_state=rs)


def _save(model: onnx.ModelProto, path: Path) -> str:
    path.write_bytes(model.SerializeToString())
    return str(path)


def test_shipped_model_is_what_the_generator_makes(tmp_path: Path) -> None:
    shipped = default_model_path()
    assert shipped.is_file()
    assert 1e6 < shipped.stat().st_size < 5e6  # a few MB: memory accounting sees it
    regenerated = _save(_tool().build_model(seed=0), tmp_path / "again.onnx")
    a, b = OnnxPolicy(), OnnxPolicy(OnnxParams(path=regenerated))
    for seed in range(3):
        obs = _obs(seed=seed)
        np.testing.assert_array_equal(a.infer(obs), b.infer(obs))
    other_seed = OnnxPolicy(OnnxParams(path=_save(_tool().build_model(seed=1), tmp_path / "s1.onnx")))
    assert not np.allclose(a.infer(_obs()), other_seed.infer(_obs()))


def test_runs_the_network_on_any_frame_size() -> None:
    p = OnnxPolicy()
    p.load()
    info = p.info()
    assert info.action_horizon == 4 and info.extra["image_hw"] == [96, 96]
    outs = [p.infer(_obs(h, w)) for h, w in ((240, 320), (96, 96), (480, 640))]
    for out in outs:
        assert out.shape == (4, 7) and np.all(np.abs(out) <= 1.0)
    # It is a function of the image and the state, not a constant.
    assert not np.allclose(outs[0], p.infer(_obs(seed=9)))
    assert not np.allclose(outs[0], p.infer(_obs(state=False)))


def _linear_model(out_shape: list[int], value: float = 0.5, state_dim: int = 7,
                  image: list[int] | None = None) -> onnx.ModelProto:
    """image (1,3,8,8) [+ state] → constant-ish output of `out_shape` = value + 0·mean(image)."""
    image = image or [1, 3, 8, 8]
    n = int(np.prod(out_shape))
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["m"], keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Add", ["z", "base"], ["flat"]),
        helper.make_node("Reshape", ["flat", "shape"], ["action"]),
    ]
    inits = [
        numpy_helper.from_array(np.zeros(1, np.float32), "zero"),
        numpy_helper.from_array(np.full(n, value, np.float32), "base"),
        numpy_helper.from_array(np.array(out_shape, np.int64), "shape"),
    ]
    inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, image)]
    if state_dim:
        inputs.append(helper.make_tensor_value_info("state", TensorProto.FLOAT, [1, state_dim]))
        nodes.insert(0, helper.make_node("Identity", ["state"], ["unused_state"]))
    graph = helper.make_graph(nodes, "t", inputs, [helper.make_tensor_value_info("action", TensorProto.FLOAT, None)],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_outputs_are_clipped_to_the_action_space(tmp_path: Path) -> None:
    p = OnnxPolicy(OnnxParams(path=_save(_linear_model([1, 7], value=3.0), tmp_path / "big.onnx")))
    out = p.infer(_obs())
    assert out.shape == (1, 7)
    assert np.linalg.norm(out[0, :3]) == pytest.approx(1.0) and out[0, 6] == 1.0


def test_flat_output_and_pose_only_state(tmp_path: Path) -> None:
    p = OnnxPolicy(OnnxParams(path=_save(_linear_model([3, 7], value=0.1, state_dim=6), tmp_path / "m.onnx")))
    out = p.infer(_obs())
    assert out.shape == (3, 7) and np.allclose(out, 0.1)
    assert p.info().extra["state_dim"] == 6


def test_no_state_input(tmp_path: Path) -> None:
    path = _save(_linear_model([1, 7], state_dim=0), tmp_path / "nostate.onnx")
    p = OnnxPolicy(OnnxParams(path=path, state_input=""))
    assert p.infer(_obs()).shape == (1, 7)
    with pytest.raises(OnnxPolicyError, match="no input 'state'"):
        OnnxPolicy(OnnxParams(path=path)).load()


@pytest.mark.parametrize(("model", "message"), [
    (_linear_model([1, 6]), r"output must be \(1, 7\)"),
    (_linear_model([1, 7], value=float("nan")), "non-finite"),
    (_linear_model([1, 7], image=[1, 3, "h", "w"]), "fixed H, W"),  # type: ignore[list-item]
    (_linear_model([1, 7], state_dim=5), r"state input must be \(1, 6\) or \(1, 7\)"),
])
def test_models_that_do_not_fit_are_refused(tmp_path: Path, model: onnx.ModelProto, message: str) -> None:
    with pytest.raises(OnnxPolicyError, match=message):
        OnnxPolicy(OnnxParams(path=_save(model, tmp_path / "bad.onnx"))).load()


def test_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(OnnxPolicyError, match="not found"):
        OnnxPolicy(OnnxParams(path=str(tmp_path / "nope.onnx"))).load()
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(OnnxPolicyError, match="could not load"):
        OnnxPolicy(OnnxParams(path=str(junk))).load()


def test_params_and_bad_images() -> None:
    with pytest.raises(ValueError, match="image_scale"):
        OnnxParams(image_scale=2.0)
    with pytest.raises(ValueError, match="uint8"):
        OnnxPolicy().infer(Observation(image=np.zeros((8, 8, 3), np.float32), instruction=""))
