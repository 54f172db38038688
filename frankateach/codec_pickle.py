"""The pickle wire format of NYU Franka-Teach (and Labelbox's fork), read safely and written so
that their unmodified code — on numpy 1.x or 2.x — can read it.

What their code does (NYU-robot-learning/Franka-Teach, ``frankateach/``):

* REQ/REP on 8901: the client sends ``pickle.dumps(FrankaAction, protocol=-1)`` or
  ``b"get_state"``; the server answers ``pickle.dumps(FrankaState)``, or ``b"state_error"`` when
  it has no state. Clients read the reply with ``pickle.loads`` and use ``.pos`` / ``.quat`` /
  ``.gripper`` at once, so every reply must be a state object: an error is answered with the
  current state plus an ``error`` attribute (their code ignores it; ours raises it), and with
  ``b"state_error"`` only when there is no state to send.
* PUB on 8900: ``b"robot_state " + pickle(FrankaState)``; on 8902: ``b"commanded_robot_state " +
  pickle(FrankaAction)``; subscribers filter on those topics and strip them.

Reading: `RestrictedUnpickler` resolves only the two record classes (under the name
``frankateach.messages``) and the numpy pieces needed to rebuild arrays (numpy-1 and numpy-2
names); anything else is refused, so decoding can never run code.

Writing: `dumps` emits protocol 4 with arrays as ``numpy.array(list, dtype)`` — the only globals
in our pickles are ``numpy.array`` and ``frankateach.messages.FrankaState/FrankaAction``, never
numpy's private modules (``numpy._core`` does not exist before numpy 1.26, and Labelbox pins
numpy < 2).
"""

from __future__ import annotations

import copyreg
import io
import pickle
from dataclasses import replace
from typing import Any

import numpy as np

from frankateach.constants import GET_STATE
from frankateach.errors import ProtocolError, RobotServerError
from frankateach.records import WIRE_MODULE, FrankaAction, FrankaState, Request
from frankateach.validation import (
    action_fields,
    check_size,
    preview,
    state_fields,
    validate_action,
    validate_state,
)

PICKLE_PROTOCOL = 4  # readable by every Python 3.4+; Franka-Teach's own -1 needs 3.8
FRANKA_TEACH_STATE_ERROR = b"state_error"  # what a Franka-Teach server sends when it has no state
TOPIC_ROBOT_STATE = b"robot_state "  # Franka-Teach's topic prefix on the state PUB (8900)
TOPIC_COMMANDED_STATE = b"commanded_robot_state "  # ... and on the commanded PUB (8902)
ERROR_FIELD = "error"  # extra attribute of a state sent as an error reply
# A reduction through this makes pickle write NEWOBJ (cls.__new__(cls), then the state dict).
_NEWOBJ = copyreg.__newobj__  # type: ignore[attr-defined]  # (missing from typeshed)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that can only build the protocol's records and plain numeric numpy arrays."""

    MESSAGES = {"FrankaAction": FrankaAction, "FrankaState": FrankaState}
    NUMPY = {
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.multiarray", "scalar"),
        # Pickle protocol 5 (`protocol=-1`, what Franka-Teach uses) rebuilds arrays this way.
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if module == WIRE_MODULE and name in self.MESSAGES:
            return self.MESSAGES[name]
        if (module, name) == ("numpy", "array"):  # what our own `dumps` writes
            return _numeric_array
        if (module, name) in self.NUMPY:
            return _bounded(name, _numpy_attr(module, name))
        if (module, name) == ("_codecs", "encode"):
            # Protocols 0-2 store array bytes as latin-1 text re-encoded on load.
            return _latin1_encode
        raise ProtocolError(f"pickle: refusing to load {module}.{name} (only protocol messages)")


def _numeric_array(values: Any, dtype: Any = None) -> np.ndarray:
    """``numpy.array`` limited to a flat list of numbers and a numeric dtype."""
    if not isinstance(values, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    ):
        raise ProtocolError("pickle: numpy.array expects a flat list of numbers")
    try:
        dt = np.dtype(dtype) if isinstance(dtype, str) or dtype is None else None
    except TypeError:
        dt = None
    if dt is None or dt.kind not in "fiu":
        raise ProtocolError(f"pickle: numpy.array with dtype {dtype!r} refused (numeric only)")
    return np.array(values, dtype=dt)


MAX_ARRAY_BYTES = 1 << 20  # an array a control message may carry (messages are <= 64 KiB anyway)


def _plain_dtype(dtype: Any) -> np.dtype:
    """A plain numeric or bool dtype (no object, void, fields or subarrays), else ProtocolError."""
    try:
        dt = np.dtype(dtype)
    except Exception as exc:  # noqa: BLE001 - any failure is bad input
        raise ProtocolError(f"pickle: bad dtype {dtype!r} ({exc.__class__.__name__})") from None
    if dt.kind not in "biuf" or dt.subdtype is not None or dt.fields is not None or dt.itemsize > 16:
        raise ProtocolError(f"pickle: dtype {dt!r} refused (plain numbers only)")
    return dt


def _bounded(name: str, func: Any) -> Any:
    """Wraps numpy's array constructors so a pickle cannot make them allocate more than
    `MAX_ARRAY_BYTES` (a 30-byte pickle naming a shape of 2**34 would otherwise take gigabytes)."""
    if name not in ("_reconstruct", "ndarray"):
        return func

    def build(*args: Any) -> Any:
        if name == "_reconstruct":  # _reconstruct(subtype, shape, dtype)
            if len(args) != 3 or not (args[0] is np.ndarray or getattr(args[0], "is_ndarray", False)):
                raise ProtocolError("pickle: _reconstruct only of numpy.ndarray")
            args = (np.ndarray, *args[1:])
            shape, dtype = args[1], args[2]
        else:  # ndarray(shape, dtype=float)
            if not 1 <= len(args) <= 2:
                raise ProtocolError("pickle: numpy.ndarray(shape[, dtype]) only")
            shape, dtype = args[0], args[1] if len(args) == 2 else float
        dt = _plain_dtype(dtype)
        dims = (shape,) if isinstance(shape, int) else shape
        if not isinstance(dims, tuple) or not all(isinstance(d, int) and d >= 0 for d in dims):
            raise ProtocolError(f"pickle: bad array shape {shape!r}")
        count = 1
        for d in dims:
            count *= d
        if count * dt.itemsize > MAX_ARRAY_BYTES:
            raise ProtocolError(f"pickle: array of {count * dt.itemsize} bytes refused (at most {MAX_ARRAY_BYTES})")
        return func(*args[:1], dims, dt) if name == "_reconstruct" else func(dims, dt)

    build.is_ndarray = name == "ndarray"  # type: ignore[attr-defined]  # the subtype _reconstruct takes
    return build


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """`_codecs.encode` as old pickle protocols call it, limited to the latin-1 byte round trip."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise ProtocolError(f"pickle: refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin-1")


def _numpy_attr(module: str, name: str) -> Any:
    """Resolves a numpy internal under its numpy-2 name first, then its numpy-1 name."""
    from importlib import import_module

    tail = module.split(".", 2)[-1]  # "multiarray" or "numpy"
    candidates = [module] if module == "numpy" else [f"numpy._core.{tail}", f"numpy.core.{tail}"]
    for mod in candidates:
        try:
            return getattr(import_module(mod), name)
        except (ImportError, AttributeError):
            continue
    raise ProtocolError(f"pickle: numpy has no {module}.{name}")


def safe_loads(data: bytes) -> Any:
    """Unpickles `data` through `RestrictedUnpickler`; any failure is a `ProtocolError`."""
    try:
        return RestrictedUnpickler(io.BytesIO(bytes(data))).load()
    except ProtocolError:
        raise
    except Exception as exc:  # noqa: BLE001 - a pickle can fail in many ways; all are bad input
        raise ProtocolError(
            f"not a valid pickle message: got {preview(data)} ({exc.__class__.__name__}: {exc})"
        ) from None


class _WirePickler(pickle.Pickler):
    """Writes arrays as ``numpy.array(list, dtype)`` and records in Franka-Teach's field layout."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            if obj.dtype.kind not in "fiub" or obj.ndim != 1:
                raise pickle.PicklingError(f"wire arrays are flat and numeric, got {obj.dtype} {obj.shape}")
            return (np.array, (obj.tolist(), obj.dtype.str))
        if isinstance(obj, np.generic):
            raise pickle.PicklingError(f"numpy scalar {obj!r} in a wire message: convert it to a Python number")
        if isinstance(obj, FrankaState):
            return (_NEWOBJ, (FrankaState,), wire_state(obj, vars(obj).get(ERROR_FIELD)))
        if isinstance(obj, FrankaAction):
            return (_NEWOBJ, (FrankaAction,), wire_action(obj))
        return NotImplemented


def dumps(obj: Any) -> bytes:
    """Pickles a record (or a plain structure) the way Franka-Teach peers can read it."""
    buf = io.BytesIO()
    _WirePickler(buf, protocol=PICKLE_PROTOCOL).dump(obj)
    return buf.getvalue()


def wire_state(msg: FrankaState, error: str | None = None) -> dict[str, Any]:
    """A state's attributes as Franka-Teach's FrankaState has them (+ Labelbox's joints)."""
    f = state_fields(msg)
    out: dict[str, Any] = {
        "pos": np.asarray(f["pos"], dtype=np.float64),
        "quat": np.asarray(f["quat"], dtype=np.float64),
        "gripper": f["gripper"],
        "timestamp": f["timestamp"],
        "start_teleop": f["start_teleop"],
        # Labelbox's field: None when the robot did not report joints (NYU ignores it).
        "joint_positions": np.asarray(f["joint_positions"]) if "joint_positions" in f else None,
    }
    if error is not None:
        out[ERROR_FIELD] = str(error)
    return out


def wire_action(msg: FrankaAction) -> dict[str, Any]:
    """An action's attributes as Franka-Teach's FrankaAction has them."""
    f = action_fields(msg)
    return {**f, "pos": np.asarray(f["pos"]), "quat": np.asarray(f["quat"])}


def _attributes(obj: Any, cls: type) -> dict:
    if isinstance(obj, cls):
        return dict(vars(obj))
    raise ProtocolError(f"expected a pickled {cls.__name__}, got {type(obj).__name__}")


def _strip_topic(data: bytes, topic: bytes) -> bytes:
    data = bytes(data)
    if data.startswith(topic):
        return data[len(topic):]
    raise ProtocolError(f"expected a message on topic {topic!r}, got {preview(data)}")


class PickleCodec:
    """Franka-Teach's pickle protocol (see the module docstring); decoding is restricted and
    schema-checked exactly like msgpack."""

    name = "pickle"

    def encode(self, msg: FrankaAction | FrankaState) -> bytes:
        return dumps(msg)

    def encode_error(self, message: str, state: FrankaState | None = None) -> bytes:
        """The current `state` carrying an ``error`` attribute (their clients read it as a
        state), or Franka-Teach's ``b"state_error"`` when there is no state."""
        if state is None:
            return FRANKA_TEACH_STATE_ERROR
        reply = replace(state)  # a copy that carries the message as one more attribute
        object.__setattr__(reply, ERROR_FIELD, str(message))
        return dumps(reply)

    def _load(self, data: bytes, expected: str) -> Any:
        check_size(data)
        try:
            return safe_loads(data)
        except ProtocolError as exc:
            raise ProtocolError(f"{exc} (expected {expected})") from None

    def decode_request(self, data: bytes) -> Request:
        if bytes(data) == GET_STATE:
            return GET_STATE
        obj = self._load(data, "a pickled FrankaAction or b'get_state'")
        return validate_action(_attributes(obj, FrankaAction))

    def decode_reply(self, data: bytes) -> FrankaState:
        if bytes(data) == FRANKA_TEACH_STATE_ERROR:
            raise RobotServerError(
                "robot server replied b'state_error': it has no robot state yet "
                "(is the arm connected?)"
            )
        obj = self._load(data, "a pickled FrankaState")
        if isinstance(obj, dict) and set(obj) == {ERROR_FIELD}:  # this project's older servers
            raise RobotServerError(f"robot server replied with an error: {obj[ERROR_FIELD]}")
        fields = _attributes(obj, FrankaState)
        if ERROR_FIELD in fields:
            raise RobotServerError(f"robot server replied with an error: {fields[ERROR_FIELD]}")
        return validate_state(fields)

    def encode_state_feed(self, state: FrankaState) -> bytes:
        return TOPIC_ROBOT_STATE + dumps(state)

    def decode_state_feed(self, data: bytes) -> FrankaState:
        check_size(data)
        return validate_state(_attributes(safe_loads(_strip_topic(data, TOPIC_ROBOT_STATE)), FrankaState))

    def encode_commanded_feed(self, state: FrankaState) -> bytes:
        """Franka-Teach publishes the commanded *action*: the target as a non-reset action."""
        action = FrankaAction(pos=state.pos, quat=state.quat, gripper=state.gripper, reset=False,
                              timestamp=state.timestamp)
        return TOPIC_COMMANDED_STATE + dumps(action)

    def decode_commanded_feed(self, data: bytes) -> FrankaState:
        check_size(data)
        obj = safe_loads(_strip_topic(data, TOPIC_COMMANDED_STATE))
        if isinstance(obj, FrankaState):
            return validate_state(_attributes(obj, FrankaState))
        a = validate_action(_attributes(obj, FrankaAction))
        return FrankaState(pos=a.pos, quat=a.quat, gripper=a.gripper, timestamp=a.timestamp)

