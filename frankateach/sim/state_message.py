"""`SimStateSample`: the simulator's state blob as published on its sim-state port (MuJoCo-free).

``frankateach-sim --sim-state-port PORT`` publishes one about every `SIM_STATE_PERIOD_S` (JSON):
``{"sim_time": s, "physics_step": int, "wall_time": unix s, "scene_hash": hex, "blob": text}``.
The daemon records them on ``/sim/state`` in debug recordings, so an arena episode can start at
any moment of a human demo (``vla-arena run --from-recording FILE --at SECONDS``). The blob's
format is `frankateach.sim.state_blob`; this module only moves it (and imports no MuJoCo, so the
daemon can decode it without loading the simulator).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

from frankateach.errors import ProtocolError

MAX_SIM_STATE_BYTES = 256 * 1024  # a blob is ~1 kB; anything near this is not one


@dataclass(frozen=True)
class SimStateSample:
    """One published simulator state.

    Attributes:
        sim_time: sim time of the state, s.
        physics_step: physics steps since the simulator started.
        wall_time: when it was taken, Unix s (the simulator's clock).
        scene_hash: hex identity of the physics scene the blob belongs to.
        blob: the state blob (base64 text).
    """

    sim_time: float
    physics_step: int
    wall_time: float
    scene_hash: str
    blob: str

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()


def decode_sim_state(data: bytes) -> SimStateSample:
    """Parses a published sample.

    Raises:
        ProtocolError: too large, not JSON, or a field missing or of the wrong type.
    """
    if len(data) > MAX_SIM_STATE_BYTES:
        raise ProtocolError(f"sim state message of {len(data)} bytes exceeds {MAX_SIM_STATE_BYTES}")
    try:
        d = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"sim state message is not JSON: {exc}") from None
    if not isinstance(d, dict):
        raise ProtocolError(f"sim state message: expected an object, got {type(d).__name__}")
    try:
        sample = SimStateSample(float(d["sim_time"]), int(d["physics_step"]), float(d["wall_time"]),
                                str(d["scene_hash"]), d["blob"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"sim state message: missing or bad field ({exc!r}); got keys {sorted(d)}") from None
    if not isinstance(sample.blob, str) or not sample.blob:
        raise ProtocolError("sim state message: 'blob' must be non-empty text")
    if not (math.isfinite(sample.sim_time) and math.isfinite(sample.wall_time)):
        raise ProtocolError("sim state message: times must be finite")
    return sample
