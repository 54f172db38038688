"""openpi wire codec: byte fixtures, strict decoding, round trips and a decoder fuzz.

How the fixture bytes were derived: openpi's ``openpi_client/msgpack_numpy.py`` (commit 15a9616 of
Physical-Intelligence/openpi) packs with ``msgpack.Packer(default=pack_array)`` (msgpack >= 1.0, so
``use_bin_type=True``); ``pack_array`` turns an ndarray into the dict
``{b"__ndarray__": True, b"data": arr.tobytes(), b"dtype": arr.dtype.str, b"shape": arr.shape}``
and a numpy scalar into ``{b"__npgeneric__": True, b"data": x.item(), b"dtype": x.dtype.str}``.
The bytes below are assembled by hand from the msgpack spec for those dicts (bytes keys are
``bin 8`` = ``c4 len``, str values ``fixstr`` = ``a0|len``, the tuple shape a ``fixarray``
``90|len``, True ``c3``, a float ``float 64`` = ``cb``); the same bytes were then checked once
against openpi's own ``packb`` run from a scratch copy of that file, and the slow test in
``test_openpi_client_compat.py`` compares them with the real ``openpi-client`` 0.1.2 package.
"""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from robot_formats.openpi_codec import OpenPICodecError, packb, unpackb


def _bin(s: bytes) -> bytes:
    return b"\xc4" + bytes([len(s)]) + s


def _fixstr(s: str) -> bytes:
    return bytes([0xA0 | len(s)]) + s.encode()


ND = _bin(b"__ndarray__") + b"\xc3"
GEN = _bin(b"__npgeneric__") + b"\xc3"

# np.array([1, 2, 3], dtype="<i4"): fixmap of 4 in insertion order __ndarray__, data, dtype, shape
INT32_VEC = (
    b"\x84" + ND + _bin(b"data") + _bin(bytes.fromhex("010000000200000003000000"))
    + _bin(b"dtype") + _fixstr("<i4") + _bin(b"shape") + b"\x91\x03"
)
# {"actions": np.zeros((2, 3), float32), "server_timing": {"infer_ms": 1.5}}: str keys are fixstr
REPLY = (
    b"\x82"
    + _fixstr("actions")
    + b"\x84"
    + ND
    + _bin(b"data")
    + _bin(bytes(24))
    + _bin(b"dtype")
    + _fixstr("<f4")
    + _bin(b"shape")
    + b"\x92\x02\x03"
    + _fixstr("server_timing")
    + b"\x81"
    + _fixstr("infer_ms")
    + b"\xcb"
    + bytes.fromhex("3ff8000000000000")
)
# np.int64(7): __npgeneric__ with data = 7 (positive fixint)
INT64_SCALAR = b"\x83" + GEN + _bin(b"data") + b"\x07" + _bin(b"dtype") + _fixstr("<i8")
# np.float32(1.5): data = float(1.5) as float 64
FLOAT32_SCALAR = (
    b"\x83" + GEN + _bin(b"data") + b"\xcb" + bytes.fromhex("3ff8000000000000") + _bin(b"dtype") + _fixstr("<f4")
)
# np.bool_(True): data = True, dtype "|b1"
BOOL_SCALAR = b"\x83" + GEN + _bin(b"data") + b"\xc3" + _bin(b"dtype") + _fixstr("|b1")
# np.array(["ab", "c"]): "<U2", UTF-32LE code points, shape (2,)
STR_VEC = (
    b"\x84" + ND + _bin(b"data") + _bin(bytes.fromhex("61000000620000006300000000000000"))
    + _bin(b"dtype") + _fixstr("<U2") + _bin(b"shape") + b"\x91\x02"
)
# np.array(3.0): 0-d, shape () is an empty fixarray
SCALAR_0D = (
    b"\x84" + ND + _bin(b"data") + _bin(bytes.fromhex("0000000000000840"))
    + _bin(b"dtype") + _fixstr("<f8") + _bin(b"shape") + b"\x90"
)

FIXTURES = [
    pytest.param(np.array([1, 2, 3], dtype="<i4"), INT32_VEC, id="int32-vector"),
    pytest.param({"actions": np.zeros((2, 3), np.float32), "server_timing": {"infer_ms": 1.5}}, REPLY, id="reply"),
    pytest.param(np.int64(7), INT64_SCALAR, id="int64-scalar"),
    pytest.param(np.float32(1.5), FLOAT32_SCALAR, id="float32-scalar"),
    pytest.param(np.bool_(True), BOOL_SCALAR, id="bool-scalar"),
    pytest.param(np.array(["ab", "c"]), STR_VEC, id="str-vector"),
    pytest.param(np.array(3.0), SCALAR_0D, id="0d-array"),
    # np.float64 and np.str_ subclass float/str: msgpack packs them natively, as openpi's does
    pytest.param(np.float64(2.5), b"\xcb" + bytes.fromhex("4004000000000000"), id="float64-native"),
    pytest.param(np.str_("ab"), _fixstr("ab"), id="str-native"),
]


def _same(a: object, b: object) -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, (np.ndarray, np.generic)):
        assert isinstance(b, (np.ndarray, np.generic)), type(b)
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b)
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    else:
        assert type(a) is type(b) and a == b


@pytest.mark.parametrize("value, wire", FIXTURES)
def test_packs_exactly_the_fixture_bytes(value: object, wire: bytes) -> None:
    assert packb(value) == wire


@pytest.mark.parametrize("value, wire", FIXTURES)
def test_unpacks_fixture_bytes(value: object, wire: bytes) -> None:
    native = isinstance(value, (np.float64, np.str_))  # sent as plain msgpack, decoded as float/str
    _same(value.item() if isinstance(value, np.generic) and native else value, unpackb(wire))


def test_decoded_array_is_a_read_only_view_with_right_values() -> None:
    arr = unpackb(INT32_VEC)
    assert arr.tolist() == [1, 2, 3] and arr.dtype == np.dtype("<i4")
    assert not arr.flags.writeable


def test_str_keys_are_accepted_too() -> None:
    wire = msgpack.packb({"__ndarray__": True, "data": b"\x01\x02", "dtype": "|u1", "shape": [2]})
    assert unpackb(wire).tolist() == [1, 2]


def _nd(dtype: object, data: object = b"", shape: object = (0,)) -> bytes:
    return msgpack.packb({b"__ndarray__": True, b"data": data, b"dtype": dtype, b"shape": shape}, use_bin_type=True)


@pytest.mark.parametrize(
    "wire, fragment",
    [
        pytest.param(_nd("|O8", bytes(8), [1]), "plain numeric or string", id="object"),
        pytest.param(_nd("|V4", bytes(4), [1]), "plain numeric or string", id="void"),
        pytest.param(_nd("[('a', '<i4')]", bytes(4), [1]), "plain numeric or string", id="structured"),
        pytest.param(_nd("<i4,<f8", bytes(12), [1]), "plain numeric or string", id="structured-comma"),
        pytest.param(_nd("<c16", bytes(16), [1]), "plain numeric or string", id="complex"),
        pytest.param(_nd("<M8[s]", bytes(8), [1]), "plain numeric or string", id="datetime"),
        pytest.param(_nd("<f16", bytes(16), [1]), "wider than 8 bytes", id="longdouble"),
        pytest.param(_nd("<f3", bytes(3), [1]), "no dtype", id="no-such-dtype"),
        pytest.param(_nd("|S0", b"", [5]), "non-empty", id="zero-itemsize"),
        pytest.param(_nd("<f4", bytes(7), [2]), "needs 8 bytes, got 7", id="short-data"),
        pytest.param(_nd("<f4", bytes(8), [-2]), "non-negative", id="negative-shape"),
        pytest.param(_nd("<f4", bytes(8), "2"), "shape", id="shape-not-list"),
        pytest.param(_nd("<f4", "abcdefgh", [2]), "expected bytes", id="data-not-bytes"),
        pytest.param(_nd(4, bytes(4), [1]), "dtype", id="dtype-not-str"),
        pytest.param(msgpack.packb({b"__ndarray__": True, b"dtype": "<f4"}), "missing key 'data'", id="missing"),
        pytest.param(
            msgpack.packb({b"__npgeneric__": True, b"data": 1000, b"dtype": "|i1"}), "cannot make", id="overflow"
        ),
        pytest.param(
            msgpack.packb({b"__npgeneric__": True, b"data": [1], b"dtype": "<i4"}), "plain scalar", id="gen-list"
        ),
        pytest.param(msgpack.packb(msgpack.ExtType(5, b"x")), "extension type 5", id="ext"),
        pytest.param(b"\x92\x01", "not a valid msgpack", id="truncated"),
        pytest.param(b"\x01\x02", "not a valid msgpack", id="extra-data"),
        pytest.param(b"\xc1", "not a valid msgpack", id="reserved-byte"),
        pytest.param(msgpack.packb({1: 2}), "not a valid msgpack", id="int-key"),
    ],
)
def test_refuses_bad_messages_with_a_clear_error(wire: bytes, fragment: str) -> None:
    with pytest.raises(OpenPICodecError, match=fragment):
        unpackb(wire)


def test_refuses_msgpack_timestamps() -> None:
    import datetime

    wire = msgpack.packb(datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC), datetime=True)
    with pytest.raises(OpenPICodecError):
        unpackb(wire)


def test_refuses_non_binary_input() -> None:
    with pytest.raises(OpenPICodecError, match="binary"):
        unpackb("text")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value", [np.zeros(2, dtype=object), np.zeros(2, dtype="V4"), np.zeros(2, np.complex64), object()]
)
def test_pack_refuses_what_openpi_refuses(value: object) -> None:
    with pytest.raises(OpenPICodecError):
        packb({"x": value})


_DTYPES = st.sampled_from(
    ["|b1", "|i1", "<i2", ">i4", "<i8", "|u1", "<u2", "<u4", "<u8", "<f2", "<f4", ">f8", "<U3", "|S2"]
)


@settings(max_examples=150, deadline=None)
@given(arr=_DTYPES.flatmap(lambda dt: hnp.arrays(np.dtype(dt), hnp.array_shapes(min_dims=0, max_dims=4, max_side=5))))
def test_arrays_round_trip(arr: np.ndarray) -> None:
    out = unpackb(packb({"obs": arr, "n": [arr]}))
    for got in (out["obs"], out["n"][0]):
        assert got.dtype == arr.dtype and got.shape == arr.shape
        assert np.array_equal(got, arr, equal_nan=arr.dtype.kind == "f")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=256))
def test_decoder_fuzz_raises_only_codec_errors(data: bytes) -> None:
    try:
        unpackb(data)
    except OpenPICodecError:
        pass


_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=8), st.binary(max_size=16)
)
_field_value = st.one_of(_scalar, st.lists(_scalar, max_size=4), st.lists(st.integers(-3, 2**40), max_size=5))


@st.composite
def _numpy_maps(draw: st.DrawFn) -> dict:
    marker = draw(st.sampled_from([b"__ndarray__", b"__npgeneric__", "__ndarray__"]))
    keys = draw(st.lists(st.sampled_from([b"data", b"dtype", b"shape", "data", "dtype"]), unique=True))
    d: dict = {marker: True}
    for k in keys:
        d[k] = draw(
            st.one_of(_field_value, st.sampled_from(["<f4", "|u1", "<U2", "|O", "<c8", "V3", "<i4,<i4", "f", "=b1"]))
        )
    return d


@settings(max_examples=400, deadline=None)
@given(
    st.recursive(
        _numpy_maps() | _scalar,
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3),
        max_leaves=8,
    )
)
def test_decoder_fuzz_structured_raises_only_codec_errors(value: object) -> None:
    try:
        wire = msgpack.packb(value, use_bin_type=True)
    except (TypeError, ValueError, OverflowError):
        return  # not representable in msgpack at all (int beyond 64 bits)
    try:
        unpackb(wire)
    except OpenPICodecError:
        pass
