"""openpi's wire codec: msgpack with NumPy arrays and scalars, written from openpi's source.

Format (``openpi_client/msgpack_numpy.py``, packed with ``msgpack.Packer(use_bin_type=True)``):

* an ``np.ndarray`` becomes a map, in this key order, with *binary* (msgpack ``bin``) keys::

      {b"__ndarray__": True, b"data": arr.tobytes(), b"dtype": arr.dtype.str, b"shape": [d0, d1, ...]}

  ``data`` is C-order raw bytes, ``dtype`` the array-protocol string (``"<f4"``, ``"|u1"``,
  ``"<U4"``), ``shape`` a msgpack array of ints;
* a NumPy scalar that msgpack cannot pack natively (``np.int64``, ``np.float32``, ``np.bool_`` …;
  ``np.float64`` and ``np.str_`` subclass ``float``/``str`` and go out as plain msgpack values)
  becomes ``{b"__npgeneric__": True, b"data": scalar.item(), b"dtype": scalar.dtype.str}``;
* everything else is plain msgpack (str as ``str``, bytes as ``bin``, dict, list, int, float, bool,
  nil).

Decoding is strict where openpi's is not: only plain numeric and string dtypes are accepted
(kinds ``b i u f U S``: no object, void/structured, complex or datetime), the dtype string is
parsed before NumPy sees it, the byte count must match the shape, msgpack extension types are
refused, and nothing is ever unpickled. Every failure raises `OpenPICodecError`. Decoded arrays
are read-only views of the received message (as openpi's).
"""

from __future__ import annotations

import math
import re
from typing import Any

import msgpack
import numpy as np

NDARRAY_KEY = b"__ndarray__"
NPGENERIC_KEY = b"__npgeneric__"
_DATA, _DTYPE, _SHAPE = b"data", b"dtype", b"shape"

ALLOWED_KINDS = frozenset("biufUS")  # bool, signed/unsigned int, float, unicode, bytes
MAX_NDIM = 32
MAX_DEPTH = 64  # nesting of maps and lists accepted on decode
# byte order, kind, item size: "<f4", "|u1", "|b1", "<U12", "|S5", "f8"
_DTYPE_RE = re.compile(r"^([<>|=]?)([biufUS])([0-9]{1,9})$")


class OpenPICodecError(ValueError):
    """A message that is not valid openpi msgpack-numpy, or a value that cannot be sent as such."""


_DTYPES: dict[object, np.dtype] = {}  # dtype strings already accepted (a handful: "<f4", "|u1", …)
_MAX_CACHED_DTYPES = 256


def _check_dtype(raw: object) -> np.dtype:
    """Parses an array-protocol dtype string, refusing anything but plain numbers and strings."""
    known = _DTYPES.get(raw) if isinstance(raw, (str, bytes)) else None
    if known is not None:
        return known
    dt = _parse_dtype(raw)
    if len(_DTYPES) < _MAX_CACHED_DTYPES:
        _DTYPES[raw] = dt
    return dt


def _parse_dtype(raw: object) -> np.dtype:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise OpenPICodecError(f"dtype: expected an ASCII string like '<f4', got {raw!r}") from exc
    if not isinstance(raw, str):
        raise OpenPICodecError(f"dtype: expected a string like '<f4', got {type(raw).__name__}")
    m = _DTYPE_RE.match(raw)
    if m is None:
        raise OpenPICodecError(
            f"dtype: expected a plain numeric or string dtype (kinds {''.join(sorted(ALLOWED_KINDS))},"
            f" e.g. '<f4', '|u1', '<U8'), got {raw!r}"
        )
    try:
        dt = np.dtype(raw)
    except TypeError as exc:  # e.g. "<f3": a kind/size pair NumPy does not have
        raise OpenPICodecError(f"dtype: NumPy has no dtype {raw!r}") from exc
    if dt.kind not in ALLOWED_KINDS or dt.itemsize == 0 or dt.hasobject or dt.fields is not None:
        raise OpenPICodecError(f"dtype: expected a plain numeric or non-empty string dtype, got {raw!r}")
    if dt.kind in "biuf" and dt.itemsize > 8:  # long double: not portable, not what openpi sends
        raise OpenPICodecError(f"dtype: numbers wider than 8 bytes are not accepted, got {raw!r}")
    return dt


def _field(obj: dict, key: bytes) -> Any:
    """`obj[key]`, accepting the key as msgpack bin (openpi) or str (lenient)."""
    if key in obj:
        return obj[key]
    skey = key.decode("ascii")
    if skey in obj:
        return obj[skey]
    raise OpenPICodecError(f"numpy map: missing key {skey!r}; got keys {sorted(map(repr, obj))}"[:300])


def _decode_ndarray(obj: dict) -> np.ndarray:
    dt = _check_dtype(_field(obj, _DTYPE))
    data = _field(obj, _DATA)
    if not isinstance(data, (bytes, bytearray)):
        raise OpenPICodecError(f"__ndarray__ data: expected bytes (msgpack bin), got {type(data).__name__}")
    shape = _field(obj, _SHAPE)
    if not isinstance(shape, (list, tuple)) or len(shape) > MAX_NDIM:
        raise OpenPICodecError(f"__ndarray__ shape: expected a list of at most {MAX_NDIM} ints, got {shape!r}"[:200])
    if not all(type(d) is int and d >= 0 for d in shape):
        raise OpenPICodecError(f"__ndarray__ shape: expected non-negative ints, got {shape!r}"[:200])
    count = math.prod(shape)
    if count * dt.itemsize != len(data):
        raise OpenPICodecError(
            f"__ndarray__: shape {tuple(shape)} of {dt.str} needs {count * dt.itemsize} bytes, got {len(data)}"
        )
    return np.frombuffer(data, dtype=dt, count=count).reshape(shape)


def _decode_npgeneric(obj: dict) -> np.generic:
    dt = _check_dtype(_field(obj, _DTYPE))
    data = _field(obj, _DATA)
    if type(data) not in (bool, int, float, str, bytes):
        raise OpenPICodecError(f"__npgeneric__ data: expected a plain scalar, got {type(data).__name__}")
    try:
        value = dt.type(data)
    except (OverflowError, ValueError, TypeError) as exc:
        raise OpenPICodecError(f"__npgeneric__: cannot make a {dt.str} from {data!r}"[:200]) from exc
    return value


def _object_hook(obj: dict) -> Any:
    if NDARRAY_KEY in obj or "__ndarray__" in obj:
        return _decode_ndarray(obj)
    if NPGENERIC_KEY in obj or "__npgeneric__" in obj:
        return _decode_npgeneric(obj)
    return obj


def _ext_hook(code: int, data: bytes) -> Any:
    raise OpenPICodecError(f"msgpack extension type {code} is not part of the openpi format")


def _check_tree(value: Any, depth: int = 0) -> None:
    """Refuses anything the object hook did not produce from plain msgpack (e.g. Timestamp)."""
    if depth > MAX_DEPTH:
        raise OpenPICodecError(f"message nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for v in value.values():
            _check_tree(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check_tree(v, depth + 1)
    elif not isinstance(value, (str, bytes, int, float, bool, np.ndarray, np.generic)) and value is not None:
        raise OpenPICodecError(f"unsupported value of type {type(value).__name__} in message")


def unpackb(data: bytes | bytearray | memoryview | str) -> Any:
    """Decodes one openpi message (a whole WebSocket binary frame).

    Raises:
        OpenPICodecError: not msgpack, trailing bytes, a refused dtype or extension type, a
            malformed ``__ndarray__``/``__npgeneric__`` map.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise OpenPICodecError(f"expected a binary message, got {type(data).__name__}")
    try:
        out = msgpack.unpackb(
            data, object_hook=_object_hook, ext_hook=_ext_hook, raw=False, strict_map_key=True
        )
    except OpenPICodecError:
        raise
    except RecursionError as exc:
        raise OpenPICodecError("message nested too deeply") from exc
    except Exception as exc:  # msgpack raises ValueError, TypeError, ExtraData, FormatError, StackError
        raise OpenPICodecError(f"not a valid msgpack message: {type(exc).__name__}: {exc}"[:300]) from exc
    _check_tree(out)
    return out


def _pack_default(obj: Any) -> Any:
    if isinstance(obj, (np.ndarray, np.generic)) and (obj.dtype.kind not in ALLOWED_KINDS or obj.dtype.hasobject):
        raise OpenPICodecError(f"cannot send dtype {obj.dtype} (kind {obj.dtype.kind!r}); allowed kinds: biufUS")
    if isinstance(obj, np.ndarray):
        return {
            NDARRAY_KEY: True,
            _DATA: obj.tobytes(),  # C order
            _DTYPE: obj.dtype.str,
            _SHAPE: list(obj.shape),
        }
    if isinstance(obj, np.generic):
        return {NPGENERIC_KEY: True, _DATA: obj.item(), _DTYPE: obj.dtype.str}
    raise OpenPICodecError(f"cannot send a value of type {type(obj).__name__}")


def packb(obj: Any) -> bytes:
    """Encodes `obj` byte-for-byte as openpi's ``msgpack_numpy.packb`` does.

    Raises:
        OpenPICodecError: a value msgpack cannot carry or a refused dtype.
    """
    try:
        return msgpack.packb(obj, default=_pack_default, use_bin_type=True)
    except OpenPICodecError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise OpenPICodecError(f"cannot encode message: {exc}") from exc
