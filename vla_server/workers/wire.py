"""The service ↔ worker wire format: length-prefixed msgpack over a local stream socket.

A frame is a 4-byte big-endian length followed by a msgpack map. numpy arrays travel as
``{"__nd__": 1, "dtype": "<f8", "shape": [..], "data": <bytes>}`` with the dtype restricted to
plain numbers (`ALLOWED_DTYPES`); nothing is ever unpickled. `Observation` ↔ map is defined here
once. Requests carry an integer ``id`` that the reply repeats.

Parent → worker ops: ``infer`` (``obs``), ``end_session`` (``session``), ``ping``, ``shutdown``.
Worker → parent ops: ``ready`` (``pid``, ``info``, ``load_ms``) or ``load_failed`` (``error``)
once at start; then ``result`` (``actions``, ``model_ms``), ``error`` (``error``; ``kind``
``bad_input`` when the observation itself was bad, e.g. a JPEG that does not decode), ``pong``
(``busy``), ``ok``.

Images travel either decoded (``image``: (H, W, 3) uint8) or as the client's JPEG
(``image_jpeg``: bytes, an `EncodedObservation`): stream sessions send the JPEG, so the copy is
~20× smaller and the decode runs in the worker process, off the service's event loop.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgpack

from vla_server.constants import WIRE_MAX_FRAME_BYTES
from vla_server.workers.shm import ImageSlots, ShmError

if TYPE_CHECKING:  # numpy is imported where arrays are (the service's control messages need none)
    import numpy as np

    from robot_formats.robot_state import RobotStateIn
    from vla_server.policies.base import Observation

# numpy's ``dtype.str`` of u1 i1 u2 i2 u4 i4 u8 i8 f2 f4 f8 bool, little-endian
ALLOWED_DTYPES = frozenset(("|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f2", "<f4", "<f8", "|b1"))
_HEADER = struct.Struct(">I")


class WireError(ValueError):
    """A frame that does not decode into an allowed message."""


class BadObservation(WireError):
    """A well-formed request whose observation is unusable (its JPEG does not decode)."""


@dataclass(frozen=True)
class EncodedObservation:
    """An `Observation` whose images are still the client's JPEG bytes (decoded in the worker).

    Attributes: as `Observation`, with `jpeg` / `wrist_jpeg` instead of the decoded images.
    """

    jpeg: bytes
    instruction: str
    robot_state: RobotStateIn | None = None
    session: str = ""
    step: int = 0
    timestamp: float = 0.0
    wrist_jpeg: bytes | None = None
    seed: int = 0


def _default(obj: object) -> Any:
    import numpy as np

    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        if arr.dtype.str not in ALLOWED_DTYPES:
            raise WireError(
                f"array dtype {arr.dtype.str} not allowed on the worker wire; allowed {sorted(ALLOWED_DTYPES)}"
            )
        return {"__nd__": 1, "dtype": arr.dtype.str, "shape": list(arr.shape), "data": arr.tobytes()}
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot send {type(obj).__name__} to a worker")


def _hook(d: dict[str, Any]) -> Any:
    if d.get("__nd__") != 1:
        return d
    dtype, shape, data = d.get("dtype"), d.get("shape"), d.get("data")
    if dtype not in ALLOWED_DTYPES:
        raise WireError(f"array dtype {dtype!r} not allowed on the worker wire")
    if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise WireError(f"array shape must be a list of non-negative ints, got {shape!r}")
    if not isinstance(data, bytes):
        raise WireError("array data must be bytes")
    import numpy as np

    dt = np.dtype(dtype)
    if int(np.prod(shape, dtype=np.int64)) * dt.itemsize != len(data):
        raise WireError(
            f"array of shape {shape} and dtype {dtype} needs {int(np.prod(shape)) * dt.itemsize} bytes, got {len(data)}"
        )
    return np.frombuffer(data, dtype=dt).reshape(shape)


def pack(msg: dict[str, Any]) -> bytes:
    """One framed message (header + msgpack body)."""
    body = msgpack.packb(msg, default=_default, use_bin_type=True)
    if len(body) > WIRE_MAX_FRAME_BYTES:
        raise WireError(f"message of {len(body)} bytes exceeds the worker wire limit {WIRE_MAX_FRAME_BYTES}")
    return _HEADER.pack(len(body)) + body


def unpack(body: bytes | bytearray) -> dict[str, Any]:
    """Decodes one message body; raises `WireError`."""
    try:
        msg = msgpack.unpackb(body, object_hook=_hook, raw=False, strict_map_key=True, use_list=True)
    except WireError:
        raise
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise WireError(f"undecodable worker message: {exc}") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("op"), str):
        raise WireError(f"expected a map with a string 'op', got {type(msg).__name__}")
    return msg


async def read_message(reader: asyncio.StreamReader) -> dict[str, Any]:
    """Reads one message; raises `asyncio.IncompleteReadError` at EOF, `WireError` on bad data."""
    header = await reader.readexactly(_HEADER.size)
    (length,) = _HEADER.unpack(header)
    if length > WIRE_MAX_FRAME_BYTES:
        raise WireError(f"frame length {length} exceeds the worker wire limit {WIRE_MAX_FRAME_BYTES}")
    return unpack(await reader.readexactly(length))


def _recv_exact(sock: socket.socket, n: int) -> bytearray:
    """Exactly `n` bytes, received in place (no chunk list, no final copy)."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if not k:
            raise EOFError("peer closed the worker socket")
        got += k
    return buf


def recv_message_sync(sock: socket.socket) -> dict[str, Any]:
    """Blocking read of one message (the worker side); honours the socket's timeout."""
    (length,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size))
    if length > WIRE_MAX_FRAME_BYTES:
        raise WireError(f"frame length {length} exceeds the worker wire limit {WIRE_MAX_FRAME_BYTES}")
    return unpack(_recv_exact(sock, length))


# ---- Observation <-> map --------------------------------------------------------------------


def observation_to_wire(obs: Observation | EncodedObservation,
                        shm_refs: list[list[int]] | None = None) -> dict[str, Any]:
    """The map sent in an ``infer`` request. `shm_refs`: where `ImageSlots.put` wrote the decoded
    image (and the wrist image) — sent instead of the pixels."""
    state = None
    if obs.robot_state is not None:
        rs = obs.robot_state
        state = {
            "pose": list(rs.pose),
            "velocity": None if rs.velocity is None else list(rs.velocity),
            "gripper": rs.gripper,
        }
    out: dict[str, Any] = {
        "instruction": obs.instruction,
        "robot_state": state,
        "session": obs.session,
        "step": int(obs.step),
        "timestamp": float(obs.timestamp),
        "seed": int(obs.seed),
    }
    if isinstance(obs, EncodedObservation):
        out["image_jpeg"] = bytes(obs.jpeg)
        out["wrist_jpeg"] = None if obs.wrist_jpeg is None else bytes(obs.wrist_jpeg)
    elif shm_refs is not None:
        out["image_shm"] = shm_refs[0]
        out["wrist_shm"] = shm_refs[1] if len(shm_refs) > 1 else None
    else:
        import numpy as np

        out["image"] = np.asarray(obs.image, dtype=np.uint8)
        out["wrist_image"] = None if obs.wrist_image is None else np.asarray(obs.wrist_image, dtype=np.uint8)
    return out


def _decode(data: object, path: str) -> np.ndarray:
    from robot_formats.image import decode_jpeg
    from robot_formats.stream.errors import BadImage

    if not isinstance(data, bytes):
        raise WireError(f"obs.{path}: expected JPEG bytes")
    try:
        return decode_jpeg(data, f"frame.{path}")
    except BadImage as exc:
        raise BadObservation(str(exc)) from None


def _from_slots(slots: ImageSlots | None, ref: object, path: str) -> np.ndarray:
    if slots is None:
        raise WireError(f"obs.{path}: a shared-memory image, but this worker has no shared memory")
    try:
        return slots.take(ref)
    except ShmError as exc:
        raise WireError(f"obs.{path}: {exc}") from None


def observation_from_wire(d: dict[str, Any], slots: ImageSlots | None = None) -> Observation:
    """Inverse of `observation_to_wire` (JPEGs decoded here, shared-memory images copied out of
    `slots`); raises `WireError` on a malformed map, `BadObservation` on a JPEG that does not decode."""
    import numpy as np

    from robot_formats.robot_state import RobotStateIn
    from vla_server.policies.base import Observation

    try:
        if "image_jpeg" in d:
            image = _decode(d["image_jpeg"], "image")
        elif "image_shm" in d:
            image = _from_slots(slots, d["image_shm"], "image")
            if d.get("wrist_shm") is not None:
                d = {**d, "wrist_image": _from_slots(slots, d["wrist_shm"], "wrist_image")}
        else:
            image = d["image"]
        if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
            raise WireError("obs.image: expected an (H, W, 3) uint8 array")
        wrist = _decode(d["wrist_jpeg"], "wrist_image") if d.get("wrist_jpeg") is not None else d.get("wrist_image")
        if wrist is not None and not (isinstance(wrist, np.ndarray) and wrist.dtype == np.uint8 and wrist.ndim == 3):
            raise WireError("obs.wrist_image: expected an (H, W, 3) uint8 array")
        rs = d.get("robot_state")
        state = None
        if rs is not None:
            vel = rs.get("velocity")
            state = RobotStateIn(
                pose=tuple(float(v) for v in rs["pose"]),  # type: ignore[arg-type]
                velocity=None if vel is None else tuple(float(v) for v in vel),  # type: ignore[arg-type]
                gripper=None if rs.get("gripper") is None else float(rs["gripper"]),
            )
        return Observation(
            image=image,
            instruction=str(d["instruction"]),
            robot_state=state,
            session=str(d.get("session", "")),
            step=int(d.get("step", 0)),
            timestamp=float(d.get("timestamp", 0.0)),
            wrist_image=wrist,
            seed=int(d.get("seed", 0)),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, WireError):
            raise
        raise WireError(f"malformed observation: {type(exc).__name__}: {exc}") from None
