#!/usr/bin/env python3
"""Writes the small ONNX policy shipped as ``vla_server/policies/assets/tiny_policy.onnx``.

    python tools/make_onnx_policy.py [--out PATH] [--seed 0]

What the network computes (weights drawn from a fixed seed, never trained — it exercises a real
runtime, loading, memory accounting and eviction, not manipulation skill):

    image (1, 3, 96, 96) float32 RGB in [0, 1], NCHW
      → Conv 5×5 stride 2, 16 ch, ReLU → Conv 3×3 s2, 32 ch, ReLU → Conv 3×3 s2, 32 ch, ReLU
      → Flatten (32·12·12 = 4608) → Gemm 128, ReLU                      (image features)
    state (1, 7) float32 [x, y, z, roll, pitch, yaw, gripper]
    concat(features, state) (1, 135) → Gemm 64, ReLU → Gemm 28 → Tanh → Reshape
      → action (1, 4, 7): a chunk of 4 actions in [−1, 1] (`robot_formats.action_space`)

About 0.6 M parameters (2.4 MB of float32). Initialisation: He-normal for the hidden layers,
N(0, 0.5/fan_in) for the last layer (outputs mostly inside tanh's linear range), zero biases
except a small seeded one on the last layer. Opset 17, IR version 8 (read by onnxruntime ≥ 1.14).
The same seed gives the same weights on every machine (NumPy's PCG64 generator).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "vla_server" / "policies" / "assets" / "tiny_policy.onnx"
IMAGE_SIZE = 96
STATE_DIM = 7
HORIZON = 4
ACTION_DIM = 7
OPSET = 17
IR_VERSION = 8


def _he(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def build_model(seed: int = 0) -> onnx.ModelProto:
    """Builds the network described in the module docstring with weights from `seed`."""
    rng = np.random.default_rng(seed)
    w = {
        "conv1_w": _he(rng, (16, 3, 5, 5), 3 * 25), "conv1_b": np.zeros(16, np.float32),
        "conv2_w": _he(rng, (32, 16, 3, 3), 16 * 9), "conv2_b": np.zeros(32, np.float32),
        "conv3_w": _he(rng, (32, 32, 3, 3), 32 * 9), "conv3_b": np.zeros(32, np.float32),
        "fc1_w": _he(rng, (4608, 128), 4608), "fc1_b": np.zeros(128, np.float32),
        "fc2_w": _he(rng, (128 + STATE_DIM, 64), 128 + STATE_DIM), "fc2_b": np.zeros(64, np.float32),
        "fc3_w": (rng.standard_normal((64, HORIZON * ACTION_DIM)) * np.sqrt(0.5 / 64)).astype(np.float32),
        "fc3_b": (rng.standard_normal(HORIZON * ACTION_DIM) * 0.05).astype(np.float32),
        "out_shape": np.array([-1, HORIZON, ACTION_DIM], dtype=np.int64),
    }
    inits = [numpy_helper.from_array(v, name=k) for k, v in w.items()]
    nodes = [
        helper.make_node("Conv", ["image", "conv1_w", "conv1_b"], ["c1"], kernel_shape=[5, 5],
                         strides=[2, 2], pads=[2, 2, 2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "conv2_w", "conv2_b"], ["c2"], kernel_shape=[3, 3],
                         strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Conv", ["r2", "conv3_w", "conv3_b"], ["c3"], kernel_shape=[3, 3],
                         strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c3"], ["r3"]),
        helper.make_node("Flatten", ["r3"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc1_w", "fc1_b"], ["g1"]),
        helper.make_node("Relu", ["g1"], ["feat"]),
        helper.make_node("Concat", ["feat", "state"], ["joint"], axis=1),
        helper.make_node("Gemm", ["joint", "fc2_w", "fc2_b"], ["g2"]),
        helper.make_node("Relu", ["g2"], ["h2"]),
        helper.make_node("Gemm", ["h2", "fc3_w", "fc3_b"], ["g3"]),
        helper.make_node("Tanh", ["g3"], ["t3"]),
        helper.make_node("Reshape", ["t3", "out_shape"], ["action"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_policy",
        inputs=[
            helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, IMAGE_SIZE, IMAGE_SIZE]),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, [1, STATE_DIM]),
        ],
        outputs=[helper.make_tensor_value_info("action", TensorProto.FLOAT, [1, HORIZON, ACTION_DIM])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="franka-vr-teleop/tools/make_onnx_policy.py",
    )
    model.ir_version = IR_VERSION
    model.doc_string = "Untrained seeded conv net: image (1,3,96,96) + state (1,7) -> action chunk (1,4,7) in [-1,1]"
    helper.set_model_props(model, {"seed": str(seed), "image_range": "0..1", "state": "x,y,z,roll,pitch,yaw,gripper"})
    onnx.checker.check_model(model, full_check=True)
    return model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    model = build_model(args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data = model.SerializeToString()
    args.out.write_bytes(data)
    n_params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    print(f"wrote {args.out} ({len(data) / 1e6:.2f} MB, {n_params} parameters, seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
