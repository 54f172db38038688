"""The simulator's state blob: everything needed to continue a simulation bit for bit.

A blob is text (standard base64) of a zlib-compressed binary record, little-endian:

==========================  ======================================================================
field                       content
==========================  ======================================================================
magic, version              ``b"VLAB"``, u16 format version (`BLOB_VERSION`), u16 flags (0)
scene hash                  16 bytes: `scene_hash` of the physics model + controller settings
MuJoCo state                u32 state spec (``mjSTATE_INTEGRATION``), u32 n, n × f64 from
                            ``mj_getState``: time, qpos, qvel, act, history, warm-start
                            accelerations, ctrl, applied forces, eq_active, mocap, userdata
physics step                i64: physics steps since the scene was reset (sets the controller's
                            phase: it runs on every `CONTROL_EVERY`-th step)
controller                  7 × f64 commanded joints, 3 × f64 target position (m, base frame),
                            4 × f64 target quaternion (wxyz), f64 gripper (−1 open … +1 closed),
                            u8 resetting
reported quaternion         4 × f64: the last reported TCP quaternion (xyzw), the sign reference
                            that keeps reported orientations continuous
extension                   u32 length + bytes owned by the producer (the arena keeps its
                            episode runtime there: RNG, actions in flight, policy memory)
crc                         u32 CRC-32 of everything above
==========================  ======================================================================

The scene hash covers the compiled physics model (`mj_saveModel` bytes, so MuJoCo's own version,
meshes, masses, friction and solver options), the controller gains, the home joints, the
workspace box and the control phase; a blob from any other scene version is refused with
`StateBlobError`. Cameras and offscreen buffer sizes are not physics and are not hashed (hash the
model built with ``cameras=False``).

Capture and restore work on a `SimBackend` (the same object `frankateach-sim` serves), so a blob
published by the simulator and one made by the arena are the same thing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
import zlib
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

import numpy as np

from frankateach.constants import HOME_JOINTS, ROBOT_WORKSPACE_MAX, ROBOT_WORKSPACE_MIN
from frankateach.errors import FrankaTeachError

if TYPE_CHECKING:
    import mujoco

    from frankateach.sim.backend import SimBackend
    from frankateach.sim.controller import ControllerGains

BLOB_MAGIC = b"VLAB"
BLOB_VERSION = 1
# MuJoCo is imported only where a model is used (capture, restore, scene_hash), so a blob can be
# decoded without it (the daemon's live view reads cube poses from it). mjtState bits, checked
# against MuJoCo's enum in tests/test_state_blob.py:
STATE_TIME = 1  # mjSTATE_TIME: the state starts with the time, then qpos (mjSTATE_QPOS = 2)
STATE_SPEC = 0x7FFF  # mjSTATE_INTEGRATION
SCENE_HASH_BYTES = 16
MAX_BLOB_CHARS = 1 << 20  # a blob is ~1-2 kB; anything this large is not one
MAX_RAW_BYTES = 1 << 22  # decompressed size limit (zip-bomb guard)

_HEAD = struct.Struct("<4sHH16sII")  # magic, version, flags, scene hash, state spec, n state
_CTRL = struct.Struct("<q7d3d4ddB4d")  # physics step, q_cmd, target pos, target wxyz, gripper, resetting, quat


class StateBlobError(FrankaTeachError):
    """A state blob that cannot be used: malformed, damaged, another format or another scene."""


@dataclass(frozen=True)
class ControllerState:
    """The Cartesian controller's own state (`frankateach.sim.controller.CartesianController`).

    Attributes:
        q_cmd: (7,) commanded arm joints, rad.
        target_pos: (3,) TCP target position, m, base frame.
        target_quat_wxyz: (4,) TCP target orientation.
        gripper: gripper command, −1 open … +1 closed.
        resetting: a move back to the home joints is in progress.
    """

    q_cmd: np.ndarray
    target_pos: np.ndarray
    target_quat_wxyz: np.ndarray
    gripper: float
    resetting: bool


@dataclass(frozen=True)
class SimSnapshot:
    """A decoded blob.

    Attributes:
        scene_hash: 16 bytes identifying the physics scene and controller settings.
        state_spec: the ``mjtState`` bit mask of `state`.
        state: (n,) float64 ``mj_getState`` vector.
        physics_step: physics steps since the scene was reset.
        controller: the controller's state.
        reported_quat_xyzw: (4,) sign reference of reported TCP orientations.
        extension: producer-owned bytes (empty when the simulator made the blob).
    """

    scene_hash: bytes
    state_spec: int
    state: np.ndarray
    physics_step: int
    controller: ControllerState
    reported_quat_xyzw: np.ndarray
    extension: bytes = field(default=b"")

    @property
    def time(self) -> float:
        """Sim time of the snapshot, s (the first entry of an mjSTATE_TIME-bearing state)."""
        return float(self.state[0]) if self.state_spec & STATE_TIME else float("nan")

    def with_extension(self, extension: bytes) -> SimSnapshot:
        """The same snapshot carrying `extension` instead."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["extension"] = bytes(extension)
        return SimSnapshot(**values)


def scene_hash(model: mujoco.MjModel, gains: ControllerGains, control_every: int) -> bytes:
    """16-byte identity of a physics scene and its controller settings (see module doc).

    Args:
        model: the physics model (build it with ``cameras=False``: cameras are not physics).
        gains: the controller's tuning.
        control_every: the controller runs every this many physics steps.
    """
    import mujoco

    buf = np.zeros(mujoco.mj_sizeModel(model), dtype=np.uint8)
    mujoco.mj_saveModel(model, None, buf)
    h = hashlib.sha256()
    h.update(b"frankateach-sim-scene/1\0")
    h.update(buf.tobytes())
    h.update(repr(sorted((f.name, float(getattr(gains, f.name))) for f in fields(gains))).encode())
    for arr in (HOME_JOINTS, ROBOT_WORKSPACE_MIN, ROBOT_WORKSPACE_MAX):
        h.update(np.asarray(arr, dtype="<f8").tobytes())
    h.update(struct.pack("<i", int(control_every)))
    return h.digest()[:SCENE_HASH_BYTES]


def backend_scene_hash(backend: SimBackend) -> bytes:
    """`scene_hash` of a backend's model and controller, computed once and cached on it."""
    cached = getattr(backend, "_scene_hash", None)
    if cached is None:
        cached = scene_hash(backend.model, backend.controller.gains, backend.control_every)
        backend._scene_hash = cached  # type: ignore[attr-defined]
    return cached


def capture(backend: SimBackend, extension: bytes = b"", quat_xyzw: np.ndarray | None = None) -> SimSnapshot:
    """Takes a snapshot of a backend (safe while its real-time thread runs: taken under its lock).

    Args:
        backend: the simulated arm.
        extension: producer bytes to carry.
        quat_xyzw: sign reference to store (default: the backend's own).
    """
    import mujoco

    h = backend_scene_hash(backend)
    with backend._lock:
        state = np.empty(mujoco.mj_stateSize(backend.model, STATE_SPEC))
        mujoco.mj_getState(backend.model, backend.data, state, STATE_SPEC)
        c = backend.controller
        ctrl = ControllerState(
            q_cmd=c.q_cmd.copy(), target_pos=c.target_pos.copy(),
            target_quat_wxyz=c.target_quat_wxyz.copy(), gripper=float(c.gripper),
            resetting=bool(c.resetting),
        )
        ref = backend._quat_prev if quat_xyzw is None else quat_xyzw
        return SimSnapshot(h, STATE_SPEC, state, int(backend.steps), ctrl,
                           np.array(ref, dtype=float), bytes(extension))


def restore(backend: SimBackend, snap: SimSnapshot) -> None:
    """Puts a backend into the snapshot's state (positions, velocities, warm start, controller).

    Raises:
        StateBlobError: the snapshot is from another scene, or its state vector does not fit.
        SimBackendError: the backend's real-time thread is running.
    """
    import mujoco

    from frankateach.sim.backend import SimBackendError

    if backend.running:
        raise SimBackendError("restore() needs a stopped simulator (headless), its real-time thread is running")
    check_scene(snap, backend_scene_hash(backend))
    size = mujoco.mj_stateSize(backend.model, snap.state_spec)
    if snap.state.shape != (size,):
        raise StateBlobError(f"state vector: expected {size} values for spec {snap.state_spec}, got {snap.state.shape}")
    with backend._lock:
        mujoco.mj_setState(backend.model, backend.data, snap.state, snap.state_spec)
        c, s = backend.controller, snap.controller
        c.q_cmd = s.q_cmd.copy()
        c.target_pos = s.target_pos.copy()
        c.target_quat_wxyz = s.target_quat_wxyz.copy()
        c.gripper = float(s.gripper)
        c.resetting = bool(s.resetting)
        backend.steps = int(snap.physics_step)
        backend._quat_prev = snap.reported_quat_xyzw.copy()
        # Derived quantities (positions of bodies and sites) for readers; the next mj_step
        # recomputes everything from the state, so this changes nothing that is integrated.
        mujoco.mj_forward(backend.model, backend.data)


def check_scene(snap: SimSnapshot, expected_hash: bytes) -> None:
    """Raises `StateBlobError` unless the snapshot belongs to the scene `expected_hash`."""
    if snap.scene_hash != expected_hash:
        raise StateBlobError(
            f"the state blob is for scene {snap.scene_hash.hex()} but this simulator runs scene "
            f"{expected_hash.hex()} (another model, MuJoCo version or controller setting); "
            "make a new blob with this version (e.g. start from a named scene)"
        )


def to_bytes(snap: SimSnapshot) -> bytes:
    """The uncompressed binary record (see module doc), CRC included."""
    state = np.ascontiguousarray(snap.state, dtype="<f8")
    c = snap.controller
    parts = [
        _HEAD.pack(BLOB_MAGIC, BLOB_VERSION, 0, snap.scene_hash, snap.state_spec, state.size),
        state.tobytes(),
        _CTRL.pack(
            int(snap.physics_step), *np.asarray(c.q_cmd, float), *np.asarray(c.target_pos, float),
            *np.asarray(c.target_quat_wxyz, float), float(c.gripper), int(bool(c.resetting)),
            *np.asarray(snap.reported_quat_xyzw, float),
        ),
        struct.pack("<I", len(snap.extension)),
        bytes(snap.extension),
    ]
    body = b"".join(parts)
    return body + struct.pack("<I", zlib.crc32(body))


def from_bytes(raw: bytes) -> SimSnapshot:
    """Parses `to_bytes` output.

    Raises:
        StateBlobError: wrong magic or version, truncated, trailing bytes, or a CRC mismatch.
    """
    if len(raw) < _HEAD.size + 4:
        raise StateBlobError(f"state blob too short: {len(raw)} bytes, expected at least {_HEAD.size + 4}")
    body, (crc,) = raw[:-4], struct.unpack("<I", raw[-4:])
    magic, version, _flags, shash, spec, n = _HEAD.unpack_from(body, 0)
    if magic != BLOB_MAGIC:
        raise StateBlobError(f"not a simulator state blob: expected magic {BLOB_MAGIC!r}, got {magic!r}")
    if version != BLOB_VERSION:
        raise StateBlobError(
            f"state blob format version {version} is not supported; this build reads version {BLOB_VERSION}"
        )
    if zlib.crc32(body) != crc:
        raise StateBlobError("state blob is damaged: CRC mismatch")
    off = _HEAD.size
    need = off + 8 * n + _CTRL.size + 4
    if n > MAX_RAW_BYTES // 8 or len(body) < need:
        raise StateBlobError(f"state blob truncated: {len(body)} bytes, expected at least {need}")
    state = np.frombuffer(body, dtype="<f8", count=n, offset=off).astype(np.float64)
    off += 8 * n
    v = _CTRL.unpack_from(body, off)
    off += _CTRL.size
    (ext_len,) = struct.unpack_from("<I", body, off)
    off += 4
    if len(body) != off + ext_len:
        raise StateBlobError(f"state blob length: expected {off + ext_len} bytes before the CRC, got {len(body)}")
    values = np.array(v[1:16], dtype=float)
    if not np.all(np.isfinite(state)) or not np.all(np.isfinite(values)) or not np.all(np.isfinite(v[17:21])):
        raise StateBlobError("state blob holds non-finite numbers")
    ctrl = ControllerState(
        q_cmd=values[0:7], target_pos=values[7:10], target_quat_wxyz=values[10:14],
        gripper=float(values[14]), resetting=bool(v[16]),
    )
    return SimSnapshot(bytes(shash), int(spec), state, int(v[0]), ctrl, np.array(v[17:21], dtype=float),
                       bytes(body[off:off + ext_len]))


def encode(snap: SimSnapshot) -> str:
    """The blob text: base64 of the zlib-compressed record."""
    return base64.b64encode(zlib.compress(to_bytes(snap), 9)).decode("ascii")


def decode(blob: str | bytes) -> SimSnapshot:
    """Parses blob text.

    Raises:
        StateBlobError: not base64, not zlib, too large, or a bad record (see `from_bytes`).
    """
    if isinstance(blob, str):
        try:
            blob = blob.strip().encode("ascii")
        except UnicodeEncodeError:
            raise StateBlobError("state blob must be base64 text (ASCII)") from None
    if len(blob) > MAX_BLOB_CHARS:
        raise StateBlobError(f"state blob too large: {len(blob)} characters (limit {MAX_BLOB_CHARS})")
    try:
        packed = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise StateBlobError(f"state blob is not valid base64: {exc}") from None
    try:
        d = zlib.decompressobj()
        raw = d.decompress(packed, MAX_RAW_BYTES)
        if d.unconsumed_tail:
            raise StateBlobError(f"state blob decompresses to more than {MAX_RAW_BYTES} bytes")
        if not d.eof:
            raise StateBlobError("state blob is truncated (incomplete zlib stream)")
        if d.unused_data:
            raise StateBlobError(f"state blob has {len(d.unused_data)} stray bytes after its data")
    except zlib.error as exc:
        raise StateBlobError(f"state blob is not zlib-compressed data: {exc}") from None
    return from_bytes(raw)
