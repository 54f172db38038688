"""Parser of the Quest app's logcat lines (rail-berkeley ``oculus_reader`` APK, com.rail.oculus.teleop).

The app logs one line per frame under the tag ``wE9ryARX``; the payload is the text after
``"wE9ryARX: "``::

    r:<16 numbers> |l:<16 numbers> &R,A,RG,rightJS 0.000000 0.000000,rightTrig 0.500000,...

* Poses: ``|``-separated ``<side>:<matrix>`` items, side ``r`` or ``l`` in either order, either
  possibly absent. A matrix is 16 ``%g`` numbers, row-major, space-separated (with a trailing
  space): the (4, 4) transform ``head⁻¹ · hand`` of the controller relative to the *headset*,
  metres, in the app's y-up frame (forward is −z). Moving the head moves the pose.
* ``&`` then the buttons, comma-separated: per side a marker (``R`` / ``L``), the names of the
  pressed booleans (right: A B RTr RG RThU RJ; left: X Y LTr LG LThU LJ), then the analog values
  ``rightJS x y``, ``rightTrig v``, ``rightGrip v`` (left: ``leftJS``, ``leftTrig``,
  ``leftGrip``), written by the app with ``std::to_string`` (``%f``: ``0.500000``); any float
  syntax is accepted. Booleans of a present side default to False.

Differences from ``oculus_reader``'s own dict: analog triggers/grips are plain floats here (it
exposes 1-tuples such as ``(0.5,)``); joysticks are ``(x, y)`` tuples in both.

Validation is stricter than ``oculus_reader``'s (which keeps whatever parses): every number must be
finite; a pose must be rigid (bottom row 0 0 0 1, rotation orthonormal within
`VR_RIGID_TOL`, det +1) and within `VR_MAX_HAND_DISTANCE_M` of the head; a present button side must
carry its three analog fields (this catches truncated lines); unknown button tokens are refused.
A bad pose drops that side only (the drop is reported in `ParsedLine.dropped`); the line is
rejected when no valid pose is left, or when the button section is bad.

`parse_line` never raises: it returns None for an unrelated log line, a `ParsedLine`, or a
`Rejection` whose `reason` is a short key (for a histogram) and whose `detail` says what was
expected and what came.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from oculus_server.constants import (
    QUEST_LOG_TAG,
    VR_ANALOG_SLACK,
    VR_BOTTOM_ROW_TOL,
    VR_MAX_HAND_DISTANCE_M,
    VR_RIGID_TOL,
)
from oculus_server.vr.source import (
    LEFT_ANALOG,
    LEFT_BOOLS,
    RIGHT_ANALOG,
    RIGHT_BOOLS,
    ButtonValue,
    VRSample,
)
from robot_formats.recording.records import analog_value

TAG_PREFIX = QUEST_LOG_TAG + ": "
_TAG_BYTES = QUEST_LOG_TAG.encode("ascii")
_TAG_PREFIX_BYTES = TAG_PREFIX.encode("ascii")
SIDES = ("r", "l")
_MAX_DIST_SQ = VR_MAX_HAND_DISTANCE_M * VR_MAX_HAND_DISTANCE_M
_PREVIEW = 60  # characters of offending text quoted in a rejection detail

# Button grammar. Side markers, the booleans each marker owns, and analog name -> (side, arity).
_MARKER_OF_BOOL = {**{b: "R" for b in RIGHT_BOOLS}, **{b: "L" for b in LEFT_BOOLS}}
_BOOLS_OF_MARKER = {"R": RIGHT_BOOLS, "L": LEFT_BOOLS}
_ANALOG = {
    "rightJS": ("R", 2),
    "rightTrig": ("R", 1),
    "rightGrip": ("R", 1),
    "leftJS": ("L", 2),
    "leftTrig": ("L", 1),
    "leftGrip": ("L", 1),
}
_ANALOG_OF_MARKER = {"R": ("rightJS", *RIGHT_ANALOG), "L": ("leftJS", *LEFT_ANALOG)}


@dataclass(frozen=True)
class Rejection:
    """Why a line (or one pose in it) was refused.

    Attributes:
        reason: short key, e.g. "value_count", "not_rigid", "missing_analog" (histogram bucket).
        detail: human-readable explanation: what was expected and what came.
    """

    reason: str
    detail: str


@dataclass(frozen=True)
class ParsedLine:
    """A valid app line.

    Attributes:
        poses: side ("r"/"l") -> (4, 4) head_T_controller, metres, app frame (y-up, −z forward).
        buttons: button map as described in the module docstring (only the sides present).
        dropped: per-side pose rejections; the line was kept because another side was valid.
    """

    poses: Mapping[str, np.ndarray]
    buttons: Mapping[str, ButtonValue]
    dropped: tuple[Rejection, ...] = field(default=())

    def to_sample(self, t_recv: float, seq: int) -> VRSample:
        """Wraps this line into a `VRSample` received at `t_recv` (monotonic s) with number `seq`."""
        return VRSample(poses=self.poses, buttons=self.buttons, t_recv=t_recv, seq=seq)


ParseOutcome = ParsedLine | Rejection | None


def _preview(text: str) -> str:
    return repr(text if len(text) <= _PREVIEW else text[:_PREVIEW] + "…")


def parse_line(line: str | bytes | bytearray) -> ParseOutcome:
    """Parses one logcat line (any prefix; trailing newline allowed).

    Returns:
        None if the line does not contain the app tag (an unrelated log line), else a
        `ParsedLine` or a `Rejection`.
    """
    if isinstance(line, (bytes, bytearray)):
        start = line.find(_TAG_BYTES)
        if start < 0:
            return None
        if line.find(_TAG_PREFIX_BYTES, start) != start:
            return Rejection(
                "no_payload",
                f"expected {TAG_PREFIX!r} then the payload; got {_preview(line[start:].decode('utf-8', 'replace'))}",
            )
        return parse_payload(line[start + len(_TAG_PREFIX_BYTES):].decode("utf-8", "replace"))
    if not isinstance(line, str):
        return Rejection("not_text", f"expected str or bytes, got {type(line).__name__}")
    start = line.find(QUEST_LOG_TAG)
    if start < 0:
        return None
    if not line.startswith(TAG_PREFIX, start):
        return Rejection("no_payload", f"expected {TAG_PREFIX!r} then the payload; got {_preview(line[start:])}")
    return parse_payload(line[start + len(TAG_PREFIX):])


def parse_payload(payload: str) -> ParsedLine | Rejection:
    """Parses the text after ``"wE9ryARX: "`` (see the module docstring for the grammar)."""
    payload = payload.strip()
    if not payload:
        return Rejection("empty", "expected '<poses>&<buttons>' after the tag; got nothing")
    poses_text, sep, buttons_text = payload.partition("&")
    if not sep:
        return Rejection("no_separator", f"expected '&' between poses and buttons; got {_preview(payload)}")
    if "&" in buttons_text:
        return Rejection("extra_separator", f"expected one '&'; got more in {_preview(payload)}")

    buttons = parse_buttons(buttons_text)
    if isinstance(buttons, Rejection):
        return buttons

    poses: dict[str, np.ndarray] = {}
    dropped: list[Rejection] = []
    seen: set[str] = set()
    for segment in poses_text.split("|"):
        if not segment or segment.isspace():
            continue
        side_text, colon, numbers = segment.partition(":")
        side = side_text.strip()
        if not colon or side not in SIDES:
            return Rejection("bad_pose_item", f"expected 'r:<16 numbers>' or 'l:<16 numbers>'; got {_preview(segment)}")
        if side in seen:
            return Rejection("duplicate_side", f"expected each side at most once; got {side!r} twice")
        seen.add(side)
        pose = parse_matrix(numbers)
        if isinstance(pose, Rejection):
            dropped.append(Rejection(pose.reason, f"pose {side!r}: {pose.detail}"))
        else:
            poses[side] = pose
    if dropped and not poses:
        first = dropped[0]
        return Rejection(first.reason, first.detail)
    if not poses and not buttons:
        return Rejection("empty", "expected at least one pose or button side; got neither")
    return ParsedLine(poses=poses, buttons=buttons, dropped=tuple(dropped))


def parse_matrix(numbers: str) -> np.ndarray | Rejection:
    """Parses 16 space-separated numbers (row-major) into a validated rigid (4, 4) transform."""
    words = numbers.split()
    if len(words) != 16:
        return Rejection("value_count", f"expected 16 numbers, got {len(words)}")
    try:
        values = list(map(float, words))
    except ValueError:
        bad = next((w for w in words if not _is_float(w)), "?")
        return Rejection("not_a_number", f"expected 16 numbers; {_preview(bad)} is not a number")
    problem = rigid_problem(values)
    if problem is not None:
        return problem
    return np.array(values, dtype=float).reshape(4, 4)


def _is_float(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def rigid_problem(values: Sequence[float]) -> Rejection | None:
    """Checks 16 row-major numbers of a homogeneous transform; returns None when it is rigid.

    Rigid means: all finite, bottom row (0, 0, 0, 1) within `VR_BOTTOM_ROW_TOL`, rotation rows
    orthonormal within `VR_RIGID_TOL`, determinant +1 within `VR_RIGID_TOL` (not a reflection),
    and the translation within `VR_MAX_HAND_DISTANCE_M`. The one rigidity rule of the package:
    sources, replays and the policy use it.
    """
    a, b, c, x, d, e, f, y, g, h, i, z, p, q, r, s = values
    if not math.isfinite(a + b + c + x + d + e + f + y + g + h + i + z + p + q + r + s):
        bad = next((v for v in values if not math.isfinite(v)), None)
        if bad is None:  # the sum overflowed although every entry is finite
            return Rejection("not_rigid", "expected a rigid transform; entries are too large")
        return Rejection("non_finite", f"expected finite numbers; got {bad!r}")
    tol = VR_BOTTOM_ROW_TOL
    if not (-tol <= p <= tol and -tol <= q <= tol and -tol <= r <= tol and -tol <= s - 1.0 <= tol):
        return Rejection("bottom_row", f"expected bottom row 0 0 0 1; got {p:g} {q:g} {r:g} {s:g}")
    tol = VR_RIGID_TOL
    n0 = a * a + b * b + c * c - 1.0
    n1 = d * d + e * e + f * f - 1.0
    n2 = g * g + h * h + i * i - 1.0
    o01 = a * d + b * e + c * f
    o02 = a * g + b * h + c * i
    o12 = d * g + e * h + f * i
    if not (
        -tol <= n0 <= tol
        and -tol <= n1 <= tol
        and -tol <= n2 <= tol
        and -tol <= o01 <= tol
        and -tol <= o02 <= tol
        and -tol <= o12 <= tol
    ):
        worst = max(abs(n0), abs(n1), abs(n2), abs(o01), abs(o02), abs(o12))
        return Rejection(
            "not_rigid", f"expected an orthonormal rotation (|RRᵀ − I| ≤ {tol:g}); got deviation {worst:.3g}"
        )
    det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
    if det < 0.0:
        return Rejection("reflection", f"expected det(R) = +1; got {det:.3g}")
    if not -tol <= det - 1.0 <= tol:
        return Rejection("not_rigid", f"expected det(R) = 1 ± {tol:g}; got {det:.4g}")
    if x * x + y * y + z * z > _MAX_DIST_SQ:
        dist = math.sqrt(x * x + y * y + z * z)
        return Rejection(
            "out_of_reach", f"expected the controller within {VR_MAX_HAND_DISTANCE_M:g} m of the head; got {dist:.3g} m"
        )
    return None


def _side_pattern(marker: str, bools: Sequence[str], js: str, trig: str, grip: str) -> str:
    pressed = "".join(f"({b},)?" for b in bools)
    return rf"{marker},{pressed}{js} (\S+) (\S+),{trig} (\S+),{grip} (\S+)"


_RIGHT_RE = _side_pattern("R", RIGHT_BOOLS, "rightJS", *RIGHT_ANALOG)
_LEFT_RE = _side_pattern("L", LEFT_BOOLS, "leftJS", *LEFT_ANALOG)
_FAST_RIGHT_LEFT = re.compile(rf"{_RIGHT_RE}(?:,{_LEFT_RE})?")
_FAST_LEFT = re.compile(_LEFT_RE)
_JS_LO, _JS_HI = -1.0 - VR_ANALOG_SLACK, 1.0 + VR_ANALOG_SLACK
_AX_LO, _AX_HI = -VR_ANALOG_SLACK, 1.0 + VR_ANALOG_SLACK


def _fast_side(
    out: dict[str, ButtonValue], groups: Sequence[str | None], bools: Sequence[str], names: Sequence[str]
) -> bool:
    """Fills one side from regex groups (6 booleans, 4 numbers); False if a value is out of spec."""
    try:
        jx, jy, trig, grip = float(groups[6]), float(groups[7]), float(groups[8]), float(groups[9])  # type: ignore[arg-type]
    except ValueError:
        return False
    # Chained comparisons are False for NaN, so non-finite values fail here too.
    if not (
        _JS_LO <= jx <= _JS_HI and _JS_LO <= jy <= _JS_HI and _AX_LO <= trig <= _AX_HI and _AX_LO <= grip <= _AX_HI
    ):
        return False
    for name, group in zip(bools, groups):
        out[name] = group is not None
    out[names[0]] = (jx, jy)
    out[names[1]] = trig
    out[names[2]] = grip
    return True


_RIGHT_NAMES = ("rightJS", *RIGHT_ANALOG)
_LEFT_NAMES = ("leftJS", *LEFT_ANALOG)


def parse_buttons(text: str) -> dict[str, ButtonValue] | Rejection:
    """Parses the button section (text after ``&``) into a button map, or a `Rejection`.

    Lines in the app's exact layout take a regular-expression fast path; anything else (other
    token order, spaces, errors) goes through the token-by-token parser, which gives the reasons.
    """
    out: dict[str, ButtonValue] = {}
    m = _FAST_RIGHT_LEFT.fullmatch(text)
    if m is not None:
        g = m.groups()
        if _fast_side(out, g[:10], RIGHT_BOOLS, _RIGHT_NAMES) and (
            g[16] is None or _fast_side(out, g[10:], LEFT_BOOLS, _LEFT_NAMES)
        ):
            return out
    else:
        m = _FAST_LEFT.fullmatch(text)
        if m is not None and _fast_side(out, m.groups(), LEFT_BOOLS, _LEFT_NAMES):
            return out
    return parse_buttons_tokens(text)


def parse_buttons_tokens(text: str) -> dict[str, ButtonValue] | Rejection:
    """The general button parser: any token order and spacing, with a reason for each error."""
    markers: list[str] = []
    pressed: list[str] = []
    analog: dict[str, ButtonValue] = {}
    for raw in text.split(","):
        token = raw.strip()
        if not token:
            continue
        if token in _BOOLS_OF_MARKER:
            if token in markers:
                return Rejection("duplicate_button", f"expected side marker {token!r} once; got it twice")
            markers.append(token)
            continue
        if token in _MARKER_OF_BOOL:
            if token in pressed:
                return Rejection("duplicate_button", f"expected button {token!r} at most once; got it twice")
            pressed.append(token)
            continue
        name, _, rest = token.partition(" ")
        spec = _ANALOG.get(name)
        if spec is None:
            return Rejection("unknown_button", f"expected a known button token; got {_preview(token)}")
        if name in analog:
            return Rejection("duplicate_button", f"expected {name!r} at most once; got it twice")
        words = rest.split()
        if len(words) != spec[1]:
            return Rejection("analog_count", f"expected {name} with {spec[1]} number(s); got {_preview(token)}")
        try:
            nums = [float(w) for w in words]
        except ValueError:
            return Rejection("not_a_number", f"expected numbers after {name}; got {_preview(token)}")
        low = -1.0 if spec[1] == 2 else 0.0
        for v in nums:
            if not math.isfinite(v):
                return Rejection("non_finite", f"expected finite {name}; got {v!r}")
            if v < low - VR_ANALOG_SLACK or v > 1.0 + VR_ANALOG_SLACK:
                return Rejection("analog_range", f"expected {name} in [{low:g}, 1]; got {v:g}")
        analog[name] = (nums[0], nums[1]) if spec[1] == 2 else nums[0]

    for name in pressed:
        if _MARKER_OF_BOOL[name] not in markers:
            return Rejection(
                "button_without_side", f"expected side marker {_MARKER_OF_BOOL[name]!r} before {name!r}; got none"
            )
    for name in analog:
        if _ANALOG[name][0] not in markers:
            return Rejection(
                "button_without_side", f"expected side marker {_ANALOG[name][0]!r} before {name!r}; got none"
            )
    if not markers:
        return Rejection("no_buttons", f"expected a button section with 'R' and/or 'L'; got {_preview(text)}")

    buttons: dict[str, ButtonValue] = {}
    for marker in markers:
        for name in _ANALOG_OF_MARKER[marker]:
            if name not in analog:
                return Rejection(
                    "missing_analog", f"expected {name} after side marker {marker!r} (truncated line?); got none"
                )
        for name in _BOOLS_OF_MARKER[marker]:
            buttons[name] = False
    for name in pressed:
        buttons[name] = True
    buttons.update(analog)
    return buttons


def normalize_buttons(buttons: Mapping[str, object]) -> dict[str, ButtonValue]:
    """Converts an ``oculus_reader``-style button map to this package's convention.

    1-tuples/lists of analog values become plain floats, joystick sequences become ``(x, y)``
    tuples, booleans stay booleans. Unknown keys are kept as they are.
    """
    out: dict[str, ButtonValue] = {}
    for key, value in buttons.items():
        if isinstance(value, (bool, np.bool_)):
            out[key] = bool(value)
        elif key in _ANALOG and _ANALOG[key][1] == 1 and isinstance(value, (tuple, list, np.ndarray)):
            out[key] = analog_value(value)
        elif key in _ANALOG and _ANALOG[key][1] == 2:
            arr = np.asarray(value, dtype=float).reshape(-1)
            out[key] = (float(arr[0]), float(arr[1]))
        elif isinstance(value, (int, float, np.floating, np.integer)):
            out[key] = float(value)
        else:
            out[key] = value  # type: ignore[assignment]
    return out


__all__ = [
    "ParsedLine",
    "ParseOutcome",
    "Rejection",
    "TAG_PREFIX",
    "normalize_buttons",
    "parse_buttons",
    "parse_line",
    "parse_matrix",
    "parse_payload",
    "rigid_problem",
]
