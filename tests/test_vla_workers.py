"""Model workers: the wire format, and real worker processes (infer, ping while busy, policy
errors, load failures, SIGKILL, parent death)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time

import msgpack
import numpy as np
import pytest

from robot_formats.robot_state import RobotStateIn
from vla_server.models import ModelSpec
from vla_server.policies.base import Observation
from vla_server.workers import wire
from vla_server.workers.errors import (
    WorkerBadInput,
    WorkerCrashed,
    WorkerRequestError,
    WorkerStartError,
)
from vla_server.workers.memory import rss_mb
from vla_server.workers.process import WorkerProcess, describe_returncode, device_env

OBS = Observation(image=np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3), instruction="pick up the red cube",
                  robot_state=RobotStateIn(pose=(0.5, 0, 0.3, 3.1, 0, 0), velocity=(0.0,) * 6, gripper=-1.0),
                  session="s1", step=7, timestamp=12.5, seed=3)


def _spec(**params: object) -> ModelSpec:
    return ModelSpec(id="w", backend="scripted", params=params)


# ---- wire ----------------------------------------------------------------------------------------


def test_observation_round_trips_over_the_wire() -> None:
    framed = wire.pack({"op": "infer", "id": 1, "obs": wire.observation_to_wire(OBS)})
    assert int.from_bytes(framed[:4], "big") == len(framed) - 4
    msg = wire.unpack(framed[4:])
    back = wire.observation_from_wire(msg["obs"])
    np.testing.assert_array_equal(back.image, OBS.image)
    assert (back.instruction, back.robot_state, back.session, back.step, back.timestamp, back.seed) == (
        OBS.instruction, OBS.robot_state, OBS.session, OBS.step, OBS.timestamp, OBS.seed)


def test_wire_refuses_what_is_not_plain_data() -> None:
    with pytest.raises(wire.WireError, match="dtype"):
        wire.pack({"op": "x", "a": np.array([object()], dtype=object)})
    with pytest.raises(TypeError):
        wire.pack({"op": "x", "a": {1, 2}})
    bad_dtype = msgpack.packb({"op": "r", "a": {"__nd__": 1, "dtype": "|O", "shape": [1], "data": b"\0" * 8}})
    with pytest.raises(wire.WireError, match="not allowed"):
        wire.unpack(bad_dtype)
    short = msgpack.packb({"op": "r", "a": {"__nd__": 1, "dtype": "<f8", "shape": [2], "data": b"\0" * 8}})
    with pytest.raises(wire.WireError, match="needs 16 bytes"):
        wire.unpack(short)
    with pytest.raises(wire.WireError):
        wire.unpack(b"\xc1garbage")
    with pytest.raises(wire.WireError, match="string 'op'"):
        wire.unpack(msgpack.packb([1, 2]))
    with pytest.raises(wire.WireError, match="obs.image"):
        wire.observation_from_wire({"image": np.zeros((2, 2), np.uint8), "instruction": ""})


def test_describe_returncode_and_device_env() -> None:
    assert describe_returncode(-9) == "killed by SIGKILL" and describe_returncode(2) == "exited with code 2"
    assert device_env("cuda:1")["CUDA_VISIBLE_DEVICES"] == "1" and device_env("cpu")["CUDA_VISIBLE_DEVICES"] == ""


# ---- processes -----------------------------------------------------------------------------------


def test_worker_serves_infer_ping_and_policy_errors() -> None:
    async def main() -> None:
        w = await WorkerProcess.start(_spec(sequence=[[0.1, 0, 0, 0, 0, 0, 1], [0.2, 0, 0, 0, 0, 0, -1]], horizon=3,
                                            fail_instruction="explode", reject_instruction="juggle"))
        try:
            assert w.info["backend"] == "scripted" and w.info["action_horizon"] == 3 and w.alive
            assert w.info["extra"] == {"memory_mb": 0.0, "infer_ms": 0.0}  # the backend's own fields
            actions, model_ms = await w.infer(OBS, timeout_s=10)
            assert actions.shape == (3, 7) and actions.dtype == np.float64 and model_ms >= 0
            np.testing.assert_allclose(actions[:, 0], [0.2, 0.1, 0.2])  # step 7 -> sequence[1], [0], [1]
            assert await w.ping(2.0) >= 0
            with pytest.raises(WorkerRequestError, match="scripted failure requested"):
                await w.infer(Observation(image=OBS.image, instruction="explode"), timeout_s=10)
            assert w.alive and (await w.infer(OBS, 10))[0].shape == (3, 7)  # still serving
            # the request's fault (an instruction the policy does not know), not the model's
            with pytest.raises(WorkerBadInput, match="BadInput: instruction 'juggle the cubes' is not one"):
                await w.infer(Observation(image=OBS.image, instruction="juggle the cubes"), timeout_s=10)
            assert w.alive and (await w.infer(OBS, 10))[0].shape == (3, 7)
            assert (w.rss_mb() or 0) > 10
        finally:
            exit_info = await w.stop()
        assert exit_info.returncode == 0 and rss_mb(w.pid) is None

    asyncio.run(main())


def test_ping_is_answered_while_the_model_is_busy() -> None:
    async def main() -> None:
        w = await WorkerProcess.start(_spec(infer_ms=1500))
        try:
            busy = asyncio.ensure_future(w.infer(OBS, timeout_s=10))
            await asyncio.sleep(0.3)
            await w.ping(timeout_s=0.8)  # would time out if pings queued behind the 1.5 s inference
            assert not busy.done()
            await busy
        finally:
            await w.stop()

    asyncio.run(main())


def test_jpeg_observations_are_decoded_in_the_worker() -> None:
    from robot_formats.image import encode_jpeg_data_url, parse_data_url

    jpeg = parse_data_url(encode_jpeg_data_url(np.full((24, 32, 3), 90, np.uint8)), "image")

    async def main() -> None:
        w = await WorkerProcess.start(_spec(action=[0.3, 0, 0, 0, 0, 0, 1]))
        try:
            enc = wire.EncodedObservation(jpeg=jpeg, instruction="x", session="s", step=2)
            actions, _ = await w.infer(enc, timeout_s=10)
            assert actions[0, 0] == pytest.approx(0.3)
            with pytest.raises(WorkerBadInput, match="frame.image: (JPEG does not decode|not a readable JPEG)"):
                await w.infer(wire.EncodedObservation(jpeg=jpeg[: len(jpeg) // 2], instruction="x"), timeout_s=10)
            assert w.alive
        finally:
            await w.stop()

    asyncio.run(main())
    back = wire.observation_from_wire(wire.unpack(wire.pack({"op": "infer", "obs": wire.observation_to_wire(
        wire.EncodedObservation(jpeg=jpeg, instruction="y", wrist_jpeg=jpeg))})[4:])["obs"])
    assert back.image.shape == (24, 32, 3) and back.wrist_image is not None and back.instruction == "y"


def test_sigkill_fails_pending_requests_and_reports_the_exit() -> None:
    async def main() -> None:
        exits = []
        w = await WorkerProcess.start(_spec(infer_ms=3000), on_exit=lambda proc, ex: exits.append(ex))
        pending = asyncio.ensure_future(w.infer(OBS, timeout_s=10))
        await asyncio.sleep(0.2)
        os.kill(w.pid, signal.SIGKILL)
        with pytest.raises(WorkerCrashed, match="killed by SIGKILL"):
            await pending
        await asyncio.sleep(0.05)
        assert [e.reason for e in exits] == ["killed by SIGKILL"] and not w.alive
        with pytest.raises(WorkerCrashed):
            await w.infer(OBS, 1.0)

    asyncio.run(main())


def test_load_failures_are_reported_with_the_reason(tmp_path) -> None:
    async def main() -> None:
        with pytest.raises(WorkerStartError, match="loading failed: RuntimeError: weights missing"):
            await WorkerProcess.start(_spec(load_error="weights missing"), log_dir=tmp_path)
        assert "weights missing" in (tmp_path / "w.log").read_text()
        with pytest.raises(WorkerStartError, match="cannot start worker"):
            await WorkerProcess.start(ModelSpec(id="w", backend="scripted", python=str(tmp_path / "no-python")))
        with pytest.raises(WorkerStartError, match="not ready within"):
            await WorkerProcess.start(_spec(load_ms=5000), load_timeout_s=1.0)

    asyncio.run(main())


@pytest.mark.slow
def test_worker_dies_with_its_parent(tmp_path) -> None:
    """SIGKILL the service process: its worker must not outlive it (PR_SET_PDEATHSIG)."""
    script = textwrap.dedent("""
        import asyncio, sys
        from vla_server.models import ModelSpec
        from vla_server.workers.process import WorkerProcess
        async def main():
            w = await WorkerProcess.start(ModelSpec(id="orphan", backend="scripted"))
            print(w.pid, flush=True)
            await asyncio.sleep(60)
        asyncio.run(main())
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              cwd=os.path.dirname(os.path.dirname(__file__)))
    try:
        line = parent.stdout.readline()  # type: ignore[union-attr]
        worker_pid = int(line)
        assert rss_mb(worker_pid) is not None
        parent.kill()
        parent.wait(timeout=5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _alive(worker_pid):
            time.sleep(0.05)
        assert not _alive(worker_pid), "worker outlived its parent"
    finally:
        parent.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
