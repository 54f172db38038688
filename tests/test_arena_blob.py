"""State blobs: exact continuation, compact size, refusal of other scenes/versions, fuzzed decoding."""

from __future__ import annotations

import base64
import struct
import zlib

import mujoco
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frankateach.messages import FrankaAction
from frankateach.sim import state_blob as SB
from frankateach.sim.backend import SimBackend
from vla_server.arena.blob import (
    BlobError,
    EpisodeRuntime,
    blob_summary,
    decode_blob,
    encode_blob,
    new_rng,
)
from vla_server.arena.latency import PendingAction
from vla_server.arena.scene import ArenaScene, physics_model


@pytest.fixture(scope="module")
def moving_backend() -> SimBackend:
    """A simulator backend mid-motion (arm moving, gripper closing)."""
    b = SimBackend(physics_model())
    b.apply_action(FrankaAction(np.array([0.5, 0.05, 0.12]), np.array([1.0, 0.0, 0.0, 0.0]), 1.0, False, 0.0))
    b.step(301)  # odd: the controller's phase is mid-period
    return b


def test_simulator_blob_continues_bit_exactly(moving_backend: SimBackend) -> None:
    blob = SB.encode(SB.capture(moving_backend))
    other = SimBackend(physics_model())
    SB.restore(other, SB.decode(blob))
    ref = SimBackend(physics_model())
    SB.restore(ref, SB.decode(blob))  # a copy of the original's state to advance uninterrupted
    ref.step(555)
    other.step(200)
    other2 = SimBackend(physics_model())
    SB.restore(other2, SB.decode(SB.encode(SB.capture(other))))
    other2.step(355)
    assert SB.encode(SB.capture(ref)) == SB.encode(SB.capture(other2))
    assert np.array_equal(ref.data.qpos, other2.data.qpos) and np.array_equal(ref.data.qvel, other2.data.qvel)


def test_qpos_qvel_time_alone_is_not_exact(moving_backend: SimBackend) -> None:
    """Why the blob carries warm start, ctrl and the controller: without them the runs diverge."""
    snap = SB.capture(moving_backend)
    full = SimBackend(physics_model())
    SB.restore(full, snap)
    partial = SimBackend(physics_model())
    m = physics_model()
    spec = int(mujoco.mjtState.mjSTATE_PHYSICS) | int(mujoco.mjtState.mjSTATE_TIME)
    state = np.empty(mujoco.mj_stateSize(m, spec))
    mujoco.mj_getState(m, moving_backend.data, state, spec)
    mujoco.mj_setState(m, partial.data, state, spec)
    partial.steps = moving_backend.steps
    full.step(100)
    partial.step(100)
    assert not np.array_equal(full.data.qpos, partial.data.qpos)


def test_blob_is_compact_and_summarised(moving_backend: SimBackend) -> None:
    rt = EpisodeRuntime(new_rng(7), held_obs_step=250, observations=5, pending=[
        PendingAction(400, 300, np.linspace(-1, 1, 7), np.array([0.5, 0.0, 0.2]), np.array([1.0, 0, 0, 0]), 1.0)])
    blob = encode_blob(SB.capture(moving_backend), rt)
    info = blob_summary(blob)
    assert info["made_by"] == "arena" and info["actions_in_flight"] == 1 and info["observations"] == 5
    assert info["state_values"] == 205  # mjSTATE_INTEGRATION of this scene
    assert len(blob) < 1500, f"blob grew to {len(blob)} characters"
    _, rt2 = decode_blob(blob, SB.backend_scene_hash(moving_backend))
    assert rt2 is not None and rt2.held_obs_step == 250 and rt2.pending[0].apply_step == 400
    assert np.array_equal(rt2.pending[0].action, rt.pending[0].action)
    assert rt2.rng.integers(0, 2**62) == rt.rng.integers(0, 2**62)  # RNG state carried exactly


def test_another_scene_is_refused(moving_backend: SimBackend) -> None:
    snap = SB.capture(moving_backend)
    foreign = SB.SimSnapshot(b"\x01" * 16, snap.state_spec, snap.state, snap.physics_step, snap.controller,
                             snap.reported_quat_xyzw)
    with pytest.raises(BlobError, match="is for scene 01010101.* but this simulator runs scene"):
        ArenaScene().restore(SB.decode(SB.encode(foreign)))
    with pytest.raises(BlobError, match="another model, MuJoCo version or controller"):
        decode_blob(SB.encode(foreign), SB.backend_scene_hash(moving_backend))


def test_other_format_version_and_damage_are_refused(moving_backend: SimBackend) -> None:
    raw = bytearray(SB.to_bytes(SB.capture(moving_backend)))
    v2 = bytearray(raw)
    struct.pack_into("<H", v2, 4, 2)
    body = bytes(v2[:-4])
    v2[-4:] = struct.pack("<I", zlib.crc32(body))
    with pytest.raises(BlobError, match="format version 2 is not supported"):
        SB.decode(base64.b64encode(zlib.compress(bytes(v2))).decode())
    bad = bytearray(raw)
    bad[40] ^= 0xFF
    with pytest.raises(BlobError, match="CRC"):
        SB.decode(base64.b64encode(zlib.compress(bytes(bad))).decode())
    with pytest.raises(BlobError, match="not valid base64"):
        SB.decode("this is not a blob!")
    with pytest.raises(BlobError, match="not zlib"):
        SB.decode(base64.b64encode(b"hello world").decode())


def test_runtime_version_is_checked() -> None:
    raw = bytearray(EpisodeRuntime(new_rng(1)).to_bytes())
    struct.pack_into("<H", raw, 0, 9)
    with pytest.raises(BlobError, match="runtime version 9"):
        EpisodeRuntime.from_bytes(bytes(raw))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=600))
def test_decode_random_bytes_only_raises_blob_error(data: bytes) -> None:
    for text in (base64.b64encode(data).decode(), base64.b64encode(zlib.compress(data)).decode()):
        try:
            snap = SB.decode(text)
        except BlobError:
            continue
        assert isinstance(snap, SB.SimSnapshot)


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=0, max_value=255))
def test_decode_mutated_blob_only_raises_blob_error(pos: int, value: int) -> None:
    raw = bytearray(_REFERENCE_RAW)
    raw[pos % len(raw)] = value
    try:
        snap = SB.from_bytes(bytes(raw))
    except BlobError:
        return
    assert snap.state.shape == (205,)
    if snap.extension:
        try:
            EpisodeRuntime.from_bytes(snap.extension)
        except BlobError:
            pass


def _reference_raw() -> bytes:
    b = SimBackend(physics_model())
    return SB.to_bytes(SB.capture(b, EpisodeRuntime(new_rng(3)).to_bytes()))


_REFERENCE_RAW = _reference_raw()
