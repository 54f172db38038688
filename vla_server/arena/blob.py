"""The arena's state blob: the simulator's blob plus the episode runtime in its extension.

The base format (MuJoCo integration state, controller, step counter, scene hash, format version,
CRC) is `frankateach.sim.state_blob`, shared with the simulator, so a blob recorded from
`frankateach-sim` starts an arena episode and an arena blob continues one. The arena adds, in
the blob's extension (little-endian):

================  ====================================================================
field             content
================  ====================================================================
version           u16 `RUNTIME_VERSION`
RNG               PCG64: u128 state, u128 increment (each as two u64, high first),
                  u8 has_uint32, u32 uinteger — the episode RNG (latency jitter)
held              i64 observation step of the action in effect (−1 none), i64 number
                  of observations taken so far (the policy's frame counter)
in flight         u16 n, then per action: i64 apply step, i64 observation step,
                  7 f64 action, 3 f64 target position, 4 f64 target quaternion xyzw,
                  f64 gripper
policy memory     u32 length + bytes (for policies that export their session memory)
================  ====================================================================

A blob without an extension (from the simulator) starts a fresh runtime seeded by the episode.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from frankateach.sim import state_blob as SB
from frankateach.sim.state_blob import StateBlobError
from vla_server.arena.latency import PendingAction

RUNTIME_VERSION = 1
_RT_HEAD = struct.Struct("<HQQQQBIqqH")
_PENDING = struct.Struct("<qq7d3d4dd")
_U64 = (1 << 64) - 1

BlobError = StateBlobError  # one error type for every blob problem

__all__ = ["BlobError", "EpisodeRuntime", "blob_summary", "decode_blob", "encode_blob", "new_rng"]


def new_rng(seed: int) -> np.random.Generator:
    """The episode RNG for `seed` (PCG64)."""
    return np.random.Generator(np.random.PCG64(int(seed)))


@dataclass
class EpisodeRuntime:
    """Arena state beyond physics and controller.

    Attributes:
        rng: the episode RNG (PCG64).
        held_obs_step: observation step of the action in effect (−1 none).
        observations: observations taken so far (carried over split episodes).
        pending: actions in flight.
        policy_state: the policy's exported session memory (empty if it keeps none or cannot).
    """

    rng: np.random.Generator
    held_obs_step: int = -1
    observations: int = 0
    pending: list[PendingAction] = field(default_factory=list)
    policy_state: bytes = b""

    def to_bytes(self) -> bytes:
        st = self.rng.bit_generator.state
        if st.get("bit_generator") != "PCG64":
            raise BlobError(f"episode RNG must be PCG64, got {st.get('bit_generator')}")
        s, inc = int(st["state"]["state"]), int(st["state"]["inc"])
        parts = [_RT_HEAD.pack(
            RUNTIME_VERSION, s >> 64, s & _U64, inc >> 64, inc & _U64, int(st["has_uint32"]),
            int(st["uinteger"]), int(self.held_obs_step), int(self.observations), len(self.pending),
        )]
        for p in self.pending:
            parts.append(_PENDING.pack(
                int(p.apply_step), int(p.obs_step), *np.asarray(p.action, float),
                *np.asarray(p.target_pos, float), *np.asarray(p.target_quat_xyzw, float), float(p.gripper),
            ))
        parts.append(struct.pack("<I", len(self.policy_state)))
        parts.append(bytes(self.policy_state))
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, raw: bytes) -> EpisodeRuntime:
        if len(raw) < _RT_HEAD.size:
            raise BlobError(f"blob episode runtime truncated: {len(raw)} bytes, expected at least {_RT_HEAD.size}")
        (ver, s_hi, s_lo, i_hi, i_lo, has32, uint, held, nobs, n) = _RT_HEAD.unpack_from(raw, 0)
        if ver != RUNTIME_VERSION:
            raise BlobError(
                f"blob episode runtime version {ver} is not supported; this build reads version {RUNTIME_VERSION}"
            )
        off = _RT_HEAD.size
        need = off + n * _PENDING.size + 4
        if len(raw) < need:
            raise BlobError(f"blob episode runtime truncated: {len(raw)} bytes, expected at least {need}")
        pending = []
        for _ in range(n):
            v = _PENDING.unpack_from(raw, off)
            off += _PENDING.size
            vals = np.array(v[2:], dtype=float)
            if not np.all(np.isfinite(vals)):
                raise BlobError("blob episode runtime holds non-finite action values")
            pending.append(PendingAction(int(v[0]), int(v[1]), vals[0:7], vals[7:10], vals[10:14], float(vals[14])))
        (plen,) = struct.unpack_from("<I", raw, off)
        off += 4
        if len(raw) != off + plen:
            raise BlobError(f"blob episode runtime length: expected {off + plen} bytes, got {len(raw)}")
        bitgen = np.random.PCG64()
        try:
            bitgen.state = {
                "bit_generator": "PCG64",
                "state": {"state": (s_hi << 64) | s_lo, "inc": (i_hi << 64) | i_lo},
                "has_uint32": int(has32), "uinteger": int(uint),
            }
        except (ValueError, TypeError) as exc:
            raise BlobError(f"blob episode RNG state is invalid: {exc}") from None
        return cls(np.random.Generator(bitgen), int(held), int(nobs), pending, bytes(raw[off:off + plen]))


def encode_blob(snap: SB.SimSnapshot, runtime: EpisodeRuntime) -> str:
    """Blob text of a scene snapshot with the episode runtime in its extension."""
    return SB.encode(snap.with_extension(runtime.to_bytes()))


def decode_blob(text: str, scene_hash: bytes) -> tuple[SB.SimSnapshot, EpisodeRuntime | None]:
    """Parses blob text for a scene.

    Returns:
        (snapshot, runtime) — runtime is None for a simulator-made blob (no extension).

    Raises:
        BlobError: malformed, damaged, another format version, or another scene.
    """
    snap = SB.decode(text)
    SB.check_scene(snap, scene_hash)
    runtime = EpisodeRuntime.from_bytes(snap.extension) if snap.extension else None
    return snap, runtime


def blob_summary(text: str) -> dict[str, object]:
    """What a blob holds, for humans (no scene check)."""
    snap = SB.decode(text)
    rt = EpisodeRuntime.from_bytes(snap.extension) if snap.extension else None
    return {
        "format_version": SB.BLOB_VERSION,
        "scene_hash": snap.scene_hash.hex(),
        "sim_time_s": snap.time,
        "physics_step": snap.physics_step,
        "state_values": int(snap.state.size),
        "gripper_command": snap.controller.gripper,
        "made_by": "arena" if rt is not None else "simulator",
        "actions_in_flight": len(rt.pending) if rt else 0,
        "observations": rt.observations if rt else 0,
        "policy_state_bytes": len(rt.policy_state) if rt else 0,
        "chars": len(text.strip()),
        "binary_bytes": len(SB.to_bytes(snap)),
    }
