"""Codec and schema tests for frankateach.messages (no network)."""

from __future__ import annotations

import math
import os
import pickle
import pickletools
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from frankateach.constants import GET_STATE, MAX_MESSAGE_BYTES
from frankateach.errors import FrankaTeachError, ProtocolError, RobotServerError
from frankateach.messages import (
    CameraFrame,
    FrankaAction,
    FrankaState,
    MsgpackCodec,
    PickleCodec,
    RestrictedUnpickler,
    decode_camera_frame,
    encode_camera_frame,
    make_codec,
)

CODECS = [MsgpackCodec(), PickleCodec()]
CODEC_IDS = ["msgpack", "pickle"]
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def action(**overrides: Any) -> FrankaAction:
    fields = dict(
        pos=np.array([0.4, -0.1, 0.3]),
        quat=np.array([1.0, 0.0, 0.0, 0.0]),
        gripper=-1.0,
        reset=False,
        timestamp=12.5,
    )
    fields.update(overrides)
    return FrankaAction(**fields)


def state(**overrides: Any) -> FrankaState:
    fields = dict(
        pos=np.array([0.5, 0.0, 0.2]),
        quat=np.array([0.0, 0.0, 0.0, 1.0]),
        gripper=0.25,
        timestamp=99.0,
        start_teleop=True,
        joint_positions=np.arange(7) * 0.1,
    )
    fields.update(overrides)
    return FrankaState(**fields)


def action_map(**overrides: Any) -> dict:
    m = {"pos": [0.4, -0.1, 0.3], "quat": [1.0, 0.0, 0.0, 0.0], "gripper": -1.0, "reset": False,
         "timestamp": 12.5}
    m.update(overrides)
    return m


def raw_action(fields: dict) -> FrankaAction:
    """A FrankaAction instance holding exactly `fields` (bypassing the dataclass __init__)."""
    obj = object.__new__(FrankaAction)
    obj.__dict__.update(fields)
    return obj


def assert_actions_equal(a: FrankaAction, b: FrankaAction) -> None:
    np.testing.assert_array_equal(a.pos, b.pos)
    np.testing.assert_allclose(a.quat, b.quat, rtol=0, atol=1e-15)
    assert (a.gripper, a.reset, a.timestamp) == (b.gripper, b.reset, b.timestamp)


# --------------------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_action_and_state_round_trip(codec):
    a = action(gripper=0.3, reset=True)
    decoded = codec.decode_request(codec.encode(a))
    assert isinstance(decoded, FrankaAction)
    assert_actions_equal(decoded, a)
    s = state()
    back = codec.decode_reply(codec.encode(s))
    np.testing.assert_array_equal(back.pos, s.pos)
    np.testing.assert_array_equal(back.joint_positions, s.joint_positions)
    assert (back.gripper, back.timestamp, back.start_teleop) == (0.25, 99.0, True)


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_get_state_is_recognised(codec):
    assert codec.decode_request(GET_STATE) == GET_STATE
    assert codec.decode_request(bytearray(GET_STATE)) == GET_STATE


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_error_reply_raises_robot_server_error(codec):
    with pytest.raises(RobotServerError, match="workspace exploded"):
        codec.decode_reply(codec.encode_error("workspace exploded", state()))


def test_error_replies_without_a_state():
    with pytest.raises(RobotServerError, match="workspace exploded"):
        MsgpackCodec().decode_reply(MsgpackCodec().encode_error("workspace exploded"))
    # Franka-Teach's own form when there is no state to carry the message.
    assert PickleCodec().encode_error("no robot") == b"state_error"
    with pytest.raises(RobotServerError, match="state_error"):
        PickleCodec().decode_reply(PickleCodec().encode_error("no robot"))


def test_make_codec_and_unknown_codec():
    assert isinstance(make_codec("msgpack"), MsgpackCodec)
    assert isinstance(make_codec("pickle"), PickleCodec)
    with pytest.raises(ProtocolError, match="unknown codec 'json'"):
        make_codec("json")


def test_quaternion_within_tolerance_is_renormalised():
    got = MsgpackCodec().decode_request(msgpack.packb(action_map(quat=[0, 0, 0, 1.005])))
    assert np.linalg.norm(got.quat) == pytest.approx(1.0, abs=1e-12)


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
unit_quat = (
    st.lists(st.floats(-1, 1, allow_nan=False), min_size=4, max_size=4)
    .map(np.array)
    .filter(lambda q: np.linalg.norm(q) > 1e-3)
    .map(lambda q: q / np.linalg.norm(q))
)
valid_actions = st.builds(
    FrankaAction,
    pos=st.lists(finite, min_size=3, max_size=3).map(np.array),
    quat=unit_quat,
    gripper=st.floats(-1, 1),
    reset=st.booleans(),
    timestamp=finite,
)


@FUZZ
@given(a=valid_actions)
def test_valid_actions_round_trip_in_both_codecs(a):
    for codec in CODECS:
        assert_actions_equal(codec.decode_request(codec.encode(a)), a)


# --------------------------------------------------------------------------------------------
# Schema validation
# --------------------------------------------------------------------------------------------

nan, inf = float("nan"), float("inf")
BAD_FIELDS = [
    # (overrides of a valid field map, words the error must contain)
    ({"pos": "0.4,0,0.3"}, ["'pos'", "expected", "str"]),
    ({"pos": [0.4, 0.0]}, ["'pos'", "expected", "3", "2"]),
    ({"pos": [0.4, 0.0, 0.3, 0.1]}, ["'pos'", "4"]),
    ({"pos": [0.4, "x", 0.3]}, ["'pos[1]'", "number", "str"]),
    ({"pos": [0.4, True, 0.3]}, ["'pos[1]'", "bool"]),
    ({"pos": [0.4, [0.0], 0.3]}, ["'pos[1]'", "list"]),
    ({"pos": [nan, 0.0, 0.3]}, ["'pos[0]'", "finite", "nan"]),
    ({"pos": [0.4, 0.0, inf]}, ["'pos[2]'", "finite", "inf"]),
    ({"pos": {"x": 1}}, ["'pos'", "dict"]),
    ({"pos": None}, ["'pos'", "NoneType"]),
    ({"quat": [0.0, 0.0, 0.0, 0.0]}, ["'quat'", "unit quaternion", "norm 0"]),
    ({"quat": [1.0, 1.0, 0.0, 0.0]}, ["'quat'", "unit quaternion", "1.41"]),
    ({"quat": [0.0, 0.0, 0.0, 0.9]}, ["'quat'", "norm 0.9"]),
    ({"quat": [0.0, 0.0, nan, 1.0]}, ["'quat[2]'", "finite"]),
    ({"quat": [0.0, 0.0, 1.0]}, ["'quat'", "4", "3"]),
    ({"gripper": 1.5}, ["'gripper'", "[-1, 1]", "1.5"]),
    ({"gripper": -1.0001}, ["'gripper'", "[-1, 1]"]),
    ({"gripper": nan}, ["'gripper'", "finite"]),
    ({"gripper": -inf}, ["'gripper'", "finite"]),
    ({"gripper": "open"}, ["'gripper'", "number", "str"]),
    ({"gripper": [0.5]}, ["'gripper'", "number", "list"]),
    ({"reset": 1}, ["'reset'", "bool", "int"]),
    ({"reset": "yes"}, ["'reset'", "bool", "str"]),
    ({"timestamp": inf}, ["'timestamp'", "finite"]),
    ({"timestamp": None}, ["'timestamp'", "number", "NoneType"]),
    ({"timestamp": "now"}, ["'timestamp'", "number"]),
]


@pytest.mark.parametrize("overrides,words", BAD_FIELDS)
def test_msgpack_rejects_bad_field_values(overrides, words):
    with pytest.raises(ProtocolError) as err:
        MsgpackCodec().decode_request(msgpack.packb(action_map(**overrides)))
    for w in words:
        assert w in str(err.value), (w, str(err.value))


@pytest.mark.parametrize("overrides,words", BAD_FIELDS)
def test_pickle_rejects_bad_field_values(overrides, words):
    payload = pickle.dumps(raw_action(action_map(**overrides)), protocol=4)
    with pytest.raises(ProtocolError) as err:
        PickleCodec().decode_request(payload)
    for w in words:
        assert w in str(err.value), (w, str(err.value))


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_missing_and_unknown_fields_are_named(codec):
    missing = action_map()
    del missing["gripper"]
    unknown = action_map(speed=3.0)
    for fields, words in ((missing, ["missing ['gripper']"]), (unknown, ["unknown ['speed']"])):
        payload = (
            msgpack.packb(fields) if codec.name == "msgpack" else pickle.dumps(raw_action(fields))
        )
        with pytest.raises(ProtocolError) as err:
            codec.decode_request(payload)
        assert "FrankaAction: expected fields" in str(err.value)
        for w in words:
            assert w in str(err.value)


def test_pickle_rejects_values_only_pickle_can_carry():
    cases = [
        ({"gripper": 10**400}, "too large"),
        ({"timestamp": -(10**309)}, "too large"),
        ({"pos": np.array(0.5)}, "shape ()"),
        ({"pos": np.zeros((3, 1))}, "shape (3, 1)"),
        ({"pos": {0.1, 0.2, 0.3}}, "set"),
        ({"quat": np.array([0, 0, 0, 1], dtype=complex)}, "'quat[0]'"),
        ({"gripper": np.array([0.1, 0.2])}, "'gripper'"),
    ]
    for overrides, words in cases:
        with pytest.raises(ProtocolError, match=None) as err:
            PickleCodec().decode_request(pickle.dumps(raw_action(action_map(**overrides))))
        assert words in str(err.value), (overrides, str(err.value))


@pytest.mark.parametrize("codec", CODECS, ids=CODEC_IDS)
def test_oversized_messages_are_rejected_unread(codec):
    for payload in (
        b"\x00" * (MAX_MESSAGE_BYTES + 1),
        msgpack.packb(action_map(pad="x" * MAX_MESSAGE_BYTES)),
        pickle.dumps(raw_action(action_map(pad="x" * MAX_MESSAGE_BYTES))),
    ):
        with pytest.raises(ProtocolError, match=f"exceeds the {MAX_MESSAGE_BYTES}-byte limit"):
            codec.decode_request(payload)
        with pytest.raises(ProtocolError, match="exceeds"):
            codec.decode_reply(payload)


def test_unknown_commands_and_wrong_types_are_rejected():
    mc = MsgpackCodec()
    with pytest.raises(ProtocolError, match="not a msgpack message"):
        mc.decode_request(b"get_status")
    with pytest.raises(ProtocolError, match="expected a FrankaAction map or b'get_state', got str"):
        mc.decode_request(msgpack.packb("get_state"))
    with pytest.raises(ProtocolError, match="got list"):
        mc.decode_request(msgpack.packb([1, 2, 3]))
    with pytest.raises(ProtocolError, match="reply: expected a FrankaState map, got int"):
        mc.decode_reply(msgpack.packb(7))
    with pytest.raises(ProtocolError, match="expected bytes, got str"):
        mc.decode_reply("get_state")
    pc = PickleCodec()
    with pytest.raises(ProtocolError, match="not a valid pickle message"):
        pc.decode_request(b"reset_robot")
    with pytest.raises(ProtocolError, match="expected a pickled FrankaAction, got FrankaState"):
        pc.decode_request(pickle.dumps(state()))
    with pytest.raises(ProtocolError, match="expected a pickled FrankaState, got FrankaAction"):
        pc.decode_reply(pickle.dumps(action()))
    with pytest.raises(ProtocolError, match="expected a pickled FrankaAction, got dict"):
        pc.decode_request(pickle.dumps({"pos": [0, 0, 0]}))


def test_state_validation_and_optional_fields():
    mc = MsgpackCodec()
    minimal = {"pos": [0.1, 0.2, 0.3], "quat": [0, 0, 0, 1], "gripper": 0, "timestamp": 5}
    s = mc.decode_reply(msgpack.packb(minimal))
    assert s.start_teleop is False and s.joint_positions.shape == (7,)
    # Not reported means missing (NaN, flagged), never zeros.
    assert not s.has_joint_positions and np.isnan(s.joint_positions).all()
    assert "joint_positions" not in msgpack.unpackb(mc.encode(s))
    assert mc.decode_reply(msgpack.packb({**minimal, "joint_positions": None})).has_joint_positions is False
    assert mc.decode_reply(mc.encode(state())).has_joint_positions
    with pytest.raises(ProtocolError, match="'joint_positions'.*expected .*7"):
        mc.decode_reply(msgpack.packb({**minimal, "joint_positions": [0.0] * 6}))
    with pytest.raises(ProtocolError, match="'start_teleop'.*bool"):
        mc.decode_reply(msgpack.packb({**minimal, "start_teleop": "true"}))
    with pytest.raises(ProtocolError, match="FrankaState: expected fields"):
        mc.decode_reply(msgpack.packb({**minimal, "reset": False}))


def test_franka_teach_state_error_reply_is_a_server_error():
    with pytest.raises(RobotServerError, match="state_error"):
        PickleCodec().decode_reply(b"state_error")


# --------------------------------------------------------------------------------------------
# Restricted unpickler
# --------------------------------------------------------------------------------------------


class _Exploit:
    """Pickles to a call of `func(*args)` at load time (the classic pickle attack)."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _helper_function(x):  # a plain function: pickles by reference to this module
    return x


@dataclass
class FrankaStateLookalike:  # same fields, another module: must not be accepted
    pos: Any
    quat: Any
    gripper: Any
    timestamp: Any


def _malicious_payloads(marker: Path) -> dict[str, bytes]:
    write = f"open({str(marker)!r}, 'w').write('pwned')"
    return {
        "os.system": pickle.dumps(_Exploit(os.system, f"touch {marker}")),
        "builtins.eval": pickle.dumps(_Exploit(eval, write)),
        "builtins.exec": pickle.dumps(_Exploit(exec, write)),
        "subprocess.call": pickle.dumps(_Exploit(subprocess.call, ["touch", str(marker)])),
        "subprocess.Popen": pickle.dumps(_Exploit(subprocess.Popen, ["touch", str(marker)])),
        "nested in a field": pickle.dumps(
            raw_action(action_map(pos=_Exploit(os.system, f"touch {marker}")))
        ),
        "protocol 0 text": f"cos\nsystem\n(S'touch {marker}'\ntR.".encode(),
        "function": pickle.dumps(_helper_function),
        "class from another module": pickle.dumps(
            FrankaStateLookalike([0, 0, 0], [0, 0, 0, 1], 0.0, 1.0)
        ),
        "other name in messages": b"cfrankateach.messages\npickle\n.",
        "other numpy function": pickle.dumps(_Exploit(np.save, str(marker), np.zeros(1))),
        "codecs with another encoding": pickle.dumps(
            _Exploit(__import__("_codecs").encode, "x", "rot13")
        ),
    }


@pytest.mark.parametrize("name", list(_malicious_payloads(Path("/nonexistent"))))
def test_restricted_unpickler_refuses_and_never_executes(name, tmp_path):
    marker = tmp_path / "pwned"
    payload = _malicious_payloads(marker)[name]
    globals_seen = [a for op, a, _ in pickletools.genops(payload) if "GLOBAL" in op.name]
    assert globals_seen or name in ("nested in a field",), "payload must reference a global"
    codec = PickleCodec()
    for decode in (codec.decode_request, codec.decode_reply):
        with pytest.raises(ProtocolError) as err:
            decode(payload)
        assert "pickle:" in str(err.value) or "pickled" in str(err.value)
    with pytest.raises(ProtocolError):
        RestrictedUnpickler(__import__("io").BytesIO(payload)).load()
    assert not marker.exists(), "a refused payload ran code"


def test_restricted_unpickler_error_names_the_refused_global(tmp_path):
    with pytest.raises(ProtocolError, match=r"refusing to load (posix|os)\.system"):
        PickleCodec().decode_request(pickle.dumps(_Exploit(os.system, "true")))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_genuine_pickles_with_numpy_arrays_and_scalars_are_accepted(protocol):
    # Franka-Teach pickles with protocol=-1 (5), float32 arrays and numpy scalars.
    a = FrankaAction(
        pos=np.array([0.4, 0.1, 0.3], dtype=np.float32),
        quat=np.array([0.0, 0.0, 0.0, 1.0], dtype=np.float32),
        gripper=np.float32(1.0),
        reset=np.bool_(False),
        timestamp=np.float64(3.5),
    )
    got = PickleCodec().decode_request(pickle.dumps(a, protocol=protocol))
    np.testing.assert_allclose(got.pos, [0.4, 0.1, 0.3], rtol=1e-6)
    assert got.gripper == 1.0 and got.reset is False and got.timestamp == 3.5
    s = FrankaState(
        pos=np.array([0.5, 0.0, 0.2], dtype=np.float32),
        quat=np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32),
        gripper=np.array([-1.0]),
        timestamp=7.0,
        start_teleop=np.bool_(True),
        joint_positions=np.linspace(-1, 1, 7),
    )
    back = PickleCodec().decode_reply(pickle.dumps(s, protocol=protocol))
    assert back.gripper == -1.0 and back.start_teleop is True
    np.testing.assert_array_equal(back.joint_positions, np.linspace(-1, 1, 7))


def test_franka_teach_state_without_optional_fields_is_accepted():
    obj = object.__new__(FrankaState)  # Franka-Teach's FrankaState has only these four fields
    obj.__dict__.update(
        pos=np.zeros(3, np.float32),
        quat=np.array([0, 0, 0, 1], np.float32),
        gripper=0,
        timestamp=1.0,
    )
    s = PickleCodec().decode_reply(pickle.dumps(obj, protocol=-1))
    assert s.start_teleop is False and s.gripper == 0.0


# --------------------------------------------------------------------------------------------
# Fuzzing
# --------------------------------------------------------------------------------------------


def _only_protocol_errors(fn, data: bytes) -> None:
    try:
        fn(data)
    except (ProtocolError, RobotServerError):
        pass


@FUZZ
@given(data=st.binary(max_size=512))
def test_arbitrary_bytes_only_raise_protocol_errors(data):
    for codec in CODECS:
        _only_protocol_errors(codec.decode_request, data)
        _only_protocol_errors(codec.decode_reply, data)


def _mutations(seed: bytes) -> st.SearchStrategy[bytes]:
    """Corruptions of a genuine message: byte flips, truncation, insertion."""

    @st.composite
    def mutate(draw):
        data = bytearray(seed)
        for _ in range(draw(st.integers(1, 4))):
            kind = draw(st.sampled_from(["flip", "cut", "insert"]))
            i = draw(st.integers(0, max(0, len(data) - 1)))
            if kind == "flip" and data:
                data[i] = draw(st.integers(0, 255))
            elif kind == "cut":
                del data[i:]
            else:
                data[i:i] = draw(st.binary(min_size=1, max_size=8))
        return bytes(data)

    return mutate()


_SEEDS = [
    MsgpackCodec().encode(action()),
    MsgpackCodec().encode(state()),
    pickle.dumps(action(), protocol=5),
    pickle.dumps(state(), protocol=2),
    pickle.dumps(state(gripper=np.float32(0.5)), protocol=4),
]


@FUZZ
@given(data=st.one_of(*[_mutations(s) for s in _SEEDS]))
def test_corrupted_genuine_messages_only_raise_protocol_errors(data):
    for codec in CODECS:
        _only_protocol_errors(codec.decode_request, data)
        _only_protocol_errors(codec.decode_reply, data)


# Random field maps checked against an independent statement of the schema.
junk = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**63), 2**64 - 1),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
    st.binary(max_size=5),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=6),
    st.lists(st.one_of(st.integers(-5, 5), st.text(max_size=2), st.none()), max_size=5),
)
# Unit quaternions scaled by 0.985 … 1.015: both sides of the 1e-2 norm tolerance.
near_unit_quat = st.tuples(unit_quat, st.floats(0.985, 1.015)).map(
    lambda qs: [float(x) for x in qs[0] * qs[1]]
)


def _mostly(valid: st.SearchStrategy, bad: st.SearchStrategy) -> st.SearchStrategy:
    """Valid about 4 times in 5, so whole maps are often valid too."""
    return st.integers(0, 4).flatmap(lambda i: bad if i == 0 else valid)



def _is_number(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v)


def _pose_valid(m: dict) -> bool:
    pos, quat = m["pos"], m["quat"]
    if not (isinstance(pos, list) and len(pos) == 3 and all(map(_is_number, pos))):
        return False
    if not (isinstance(quat, list) and len(quat) == 4 and all(map(_is_number, quat))):
        return False
    return abs(math.hypot(*map(float, quat)) - 1.0) <= 1e-2


def _expected_valid(m: dict) -> bool:
    if set(m) != {"pos", "quat", "gripper", "reset", "timestamp"}:
        return False
    if m["reset"] is True:  # a reset is accepted whatever its (ignored) pose fields hold
        g = m["gripper"]
        return _is_number(g) and -1 <= g <= 1 and _is_number(m["timestamp"])
    pos, quat = m["pos"], m["quat"]
    if not (isinstance(pos, list) and len(pos) == 3 and all(map(_is_number, pos))):
        return False
    if not (isinstance(quat, list) and len(quat) == 4 and all(map(_is_number, quat))):
        return False
    if abs(math.hypot(*map(float, quat)) - 1.0) > 1e-2:
        return False
    g = m["gripper"]
    if not (_is_number(g) and -1 <= g <= 1):
        return False
    return type(m["reset"]) is bool and _is_number(m["timestamp"])


field_maps = st.fixed_dictionaries(
    {
        "pos": _mostly(st.lists(st.floats(-2, 2), min_size=3, max_size=3), junk),
        "quat": _mostly(near_unit_quat, junk),
        "gripper": _mostly(st.one_of(st.floats(-1.2, 1.2), st.integers(-2, 2)), junk),
        "reset": _mostly(st.booleans(), junk),
        "timestamp": _mostly(st.floats(0, 1e9), junk),
    }
).flatmap(
    lambda m: _mostly(
        st.just(m),
        st.one_of(
            st.sampled_from(sorted(m)).map(lambda k: {f: v for f, v in m.items() if f != k}),
            st.tuples(st.text(max_size=6), junk).map(lambda kv: {**m, kv[0]: kv[1]}),
        ),
    )
)


@FUZZ
@given(m=field_maps)
@example(m={"pos": [0.0, 0.0, 0.0], "quat": [0.0, 0.0, 0.0, 1.3407807929942597e154], "gripper": None,
            "reset": 0.0, "timestamp": 0.0})  # a component whose square overflows a float (found by a run)
def test_random_msgpack_maps_are_validated_like_the_schema_says(m):
    payload = msgpack.packb(m, use_bin_type=True)
    try:
        got = MsgpackCodec().decode_request(payload)
    except ProtocolError as exc:
        assert not _expected_valid(m), f"valid map rejected: {exc}"
        assert "expected" in str(exc)
        return
    assert _expected_valid(m), f"invalid map accepted: {m}"
    if _pose_valid(m):
        np.testing.assert_array_equal(got.pos, np.array(m["pos"], dtype=float))
    else:  # a reset with a junk pose: the ignored pose is replaced by a neutral one
        assert got.reset is True and got.pos.tolist() == [0, 0, 0] and got.quat.tolist() == [0, 0, 0, 1]
    assert got.gripper == m["gripper"] and got.reset is m["reset"]
    assert abs(np.linalg.norm(got.quat) - 1.0) < 1e-12


# --------------------------------------------------------------------------------------------
# Camera frames
# --------------------------------------------------------------------------------------------


def test_camera_frame_round_trip_and_rejections():
    f = CameraFrame(
        camera_id=1, name="wrist", seq=42, timestamp=3.25, width=4, height=2, jpeg=b"\xff\xd8x"
    )
    assert decode_camera_frame(encode_camera_frame(f)) == f
    bad = msgpack.packb({**encode_and_load(f), "seq": -1}, use_bin_type=True)
    with pytest.raises(ProtocolError, match="'seq'"):
        decode_camera_frame(bad)
    with pytest.raises(ProtocolError, match="expected a map"):
        decode_camera_frame(msgpack.packb([1]))
    with pytest.raises(FrankaTeachError):
        decode_camera_frame(b"\xc1")


def encode_and_load(f: CameraFrame) -> dict:
    return msgpack.unpackb(encode_camera_frame(f), raw=False)


@pytest.mark.parametrize(
    "payload",
    [
        # _reconstruct(ndarray, (2**27,), b"b"): a 60-byte pickle asking numpy for 128 MiB
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nJ\x00\x00\x00\x08\x85C\x01b\x87R.",
        # ndarray((2**27,)) of float64: 1 GiB
        b"\x80\x02cnumpy\nndarray\nJ\x00\x00\x00\x08\x85\x85R.",
        # _reconstruct with an object dtype
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x01\x85C\x01O\x87R.",
    ],
    ids=["reconstruct 128 MiB", "ndarray 1 GiB", "object dtype"],
)
def test_restricted_unpickler_refuses_array_allocation_bombs(payload: bytes) -> None:
    # A fuzzed message once made the pytest process grow to 24 GB: array shapes come from the bytes.
    from frankateach.codec_pickle import safe_loads

    with pytest.raises(ProtocolError, match="refused|only|bad"):
        safe_loads(payload)
