"""Small, fast rotation helpers for the teleoperation policy.

The policy runs at 20–40 Hz and must take well under a millisecond per step, while
`scipy.spatial.transform.Rotation` costs tens of µs per call (its `from_matrix` alone is ~50 µs).
These helpers implement the *same conventions* as scipy on plain Python floats, and
``tests/test_rotations.py`` checks them against scipy:

* quaternions are ``(x, y, z, w)`` tuples (scipy's scalar-last order);
* ``quat_mul(a, b)`` is the rotation ``R(a) · R(b)`` (scipy ``Rotation(a) * Rotation(b)``);
* Euler angles are scipy's lower-case ``"xyz"``: *extrinsic* rotations about the fixed x, then
  y, then z axes, i.e. ``R = Rz(γ) · Ry(β) · Rx(α)`` for ``(α, β, γ)``, radians. In gimbal lock
  (β = ±π/2) the third angle is set to zero, as scipy does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Quat = tuple[float, float, float, float]  # (x, y, z, w)
Vec3 = tuple[float, float, float]
Floats = Sequence[float] | np.ndarray  # a short vector: a tuple, a list or a 1-D array

# Below this value of cos(β) the xyz decomposition is treated as gimbal-locked (scipy: ~1e-7 rad).
_GIMBAL_EPS = 1e-7
_NAN_QUAT: Quat = (math.nan, math.nan, math.nan, math.nan)


def vec_to_reorder_mat(vec: Sequence[int]) -> np.ndarray:
    """Builds DROID's signed axis-permutation matrix.

    Args:
        vec: n signed 1-based axis indices, e.g. ``(-2, -1, -3, 4)``.

    Returns:
        (n, n) matrix ``G`` with ``G[i, |vec[i]| - 1] = sign(vec[i])`` and zeros elsewhere, so
        row i of ``G @ x`` is ``sign(vec[i]) * x[|vec[i]| - 1]``.
    """
    n = len(vec)
    g = np.zeros((n, n))
    for i, v in enumerate(vec):
        g[i, int(abs(v)) - 1] = float(np.sign(v))
    return g


def quat_from_matrix(m: Sequence[Sequence[float]] | np.ndarray, w_positive: bool = False) -> Quat:
    """Returns the unit quaternion (xyzw) of the rotation in the top-left 3×3 of `m`.

    Shepperd's method: branches on the largest of trace and diagonal, whose square-root argument
    is always ≥ 1, so any finite input of sane magnitude gives a finite result (NaNs otherwise;
    it never raises). For an orthonormal `m` this is the same rotation as scipy's
    ``Rotation.from_matrix``. The package's one matrix → quaternion conversion.

    Args:
        m: (3, 3) or (4, 4) nested sequence (or array); only the top-left 3×3 is read.
        w_positive: return the sign with w ≥ 0 (the recordings' convention). Otherwise the sign
            is the one Shepperd's branch gives (the policy's DROID arithmetic relies on it).
    """
    m00, m01, m02 = m[0][0], m[0][1], m[0][2]
    m10, m11, m12 = m[1][0], m[1][1], m[1][2]
    m20, m21, m22 = m[2][0], m[2][1], m[2][2]
    tr = m00 + m11 + m22
    if tr >= m00 and tr >= m11 and tr >= m22:
        branch, arg = 3, 1.0 + tr
    elif m00 >= m11 and m00 >= m22:
        branch, arg = 0, 1.0 + m00 - m11 - m22
    elif m11 >= m22:
        branch, arg = 1, 1.0 + m11 - m00 - m22
    else:
        branch, arg = 2, 1.0 + m22 - m00 - m11
    if not 0.5 <= arg < math.inf:  # ≥ 1 in exact arithmetic; less only for NaN/overflowed input
        return _NAN_QUAT
    s = 2.0 * math.sqrt(arg)  # 4 × the largest component
    if branch == 3:
        x, y, z, w = (m21 - m12) / s, (m02 - m20) / s, (m10 - m01) / s, 0.25 * s
    elif branch == 0:
        x, y, z, w = 0.25 * s, (m01 + m10) / s, (m02 + m20) / s, (m21 - m12) / s
    elif branch == 1:
        x, y, z, w = (m01 + m10) / s, 0.25 * s, (m12 + m21) / s, (m02 - m20) / s
    else:
        x, y, z, w = (m02 + m20) / s, (m12 + m21) / s, 0.25 * s, (m10 - m01) / s
    q = quat_normalize((x, y, z, w))
    if w_positive and q[3] < 0.0:
        return (-q[0], -q[1], -q[2], -q[3])
    return q


def quat_normalize(q: Sequence[float]) -> Quat:
    """Returns q / ‖q‖ (xyzw). A zero or non-finite norm gives NaNs, for the caller to catch."""
    x, y, z, w = q
    n = math.sqrt(x * x + y * y + z * z + w * w)
    if n == 0.0 or not math.isfinite(n):
        return _NAN_QUAT
    return (x / n, y / n, z / n, w / n)


def quat_mul(a: Sequence[float], b: Sequence[float]) -> Quat:
    """Hamilton product ``a ⊗ b`` (xyzw): the rotation ``R(a) · R(b)``."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return (
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    )


def quat_inv(q: Sequence[float]) -> Quat:
    """Inverse rotation of a unit quaternion (its conjugate), xyzw."""
    x, y, z, w = q
    return (-x, -y, -z, w)


def quat_diff(a: Sequence[float], b: Sequence[float]) -> Quat:
    """DROID's ``quat_diff(target, source)``: ``R(a) · R(b)⁻¹`` for unit quaternions, xyzw."""
    return quat_mul(a, quat_inv(b))


def quat_to_euler_xyz(q: Sequence[float]) -> Vec3:
    """scipy ``as_euler("xyz")`` of a unit quaternion: extrinsic x-y-z angles, radians.

    Returns (α, β, γ) with α, γ in [-π, π] and β in [-π/2, π/2]; in gimbal lock γ = 0.
    """
    x, y, z, w = q
    r20 = 2.0 * (x * z - y * w)
    r21 = 2.0 * (y * z + x * w)
    r22 = 1.0 - 2.0 * (x * x + y * y)
    r00 = 1.0 - 2.0 * (y * y + z * z)
    r10 = 2.0 * (x * y + z * w)
    cos_b = math.hypot(r00, r10)
    beta = math.atan2(-r20, cos_b)
    if cos_b > _GIMBAL_EPS:
        return (math.atan2(r21, r22), beta, math.atan2(r10, r00))
    # Gimbal lock: only α ∓ γ is defined; set γ = 0 and read α from the remaining block.
    r11 = 1.0 - 2.0 * (x * x + z * z)
    r12 = 2.0 * (y * z - x * w)
    return (math.atan2(-r12, r11), beta, 0.0)


def euler_xyz_to_quat(e: Sequence[float]) -> Quat:
    """scipy ``from_euler("xyz", e).as_quat()``: ``Rz(γ) · Ry(β) · Rx(α)`` as xyzw (w ≥ 0 not enforced)."""
    ha, hb, hc = 0.5 * e[0], 0.5 * e[1], 0.5 * e[2]
    ca, sa = math.cos(ha), math.sin(ha)
    cb, sb = math.cos(hb), math.sin(hb)
    cc, sc = math.cos(hc), math.sin(hc)
    return (
        sa * cb * cc - ca * sb * sc,
        ca * sb * cc + sa * cb * sc,
        ca * cb * sc - sa * sb * cc,
        ca * cb * cc + sa * sb * sc,
    )


def quat_to_matrix(q: Sequence[float]) -> np.ndarray:
    """(3, 3) rotation matrix of a unit quaternion (xyzw)."""
    x, y, z, w = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def quat_xyzw_to_wxyz(q: Sequence[float]) -> np.ndarray:
    """Reorders a quaternion from xyzw (this package, scipy) to wxyz (MuJoCo)."""
    return np.array([q[3], q[0], q[1], q[2]], dtype=np.float64)


def quat_wxyz_to_xyzw(q: Sequence[float]) -> np.ndarray:
    """Reorders a quaternion from wxyz (MuJoCo) to xyzw (this package, scipy)."""
    return np.array([q[1], q[2], q[3], q[0]], dtype=np.float64)


def quat_to_rotvec(q: Sequence[float]) -> Vec3:
    """Rotation vector (axis · angle, rad, angle in [0, π]) of a unit quaternion (xyzw), the short way."""
    x, y, z, w = q
    if w < 0.0:
        x, y, z, w = -x, -y, -z, -w
    s = math.sqrt(x * x + y * y + z * z)  # sin(angle / 2)
    if s < 1e-12:
        return (2.0 * x, 2.0 * y, 2.0 * z)  # small-angle limit: angle ≈ 2 s
    k = 2.0 * math.atan2(s, w) / s
    return (x * k, y * k, z * k)


def rotvec_to_quat(v: Sequence[float]) -> Quat:
    """Unit quaternion (xyzw, w ≥ 0 for angles ≤ π) of a rotation vector (axis · angle, rad)."""
    vx, vy, vz = float(v[0]), float(v[1]), float(v[2])
    angle = math.sqrt(vx * vx + vy * vy + vz * vz)
    if angle < 1e-12:
        return quat_normalize((0.5 * vx, 0.5 * vy, 0.5 * vz, 1.0))
    k = math.sin(0.5 * angle) / angle
    return (vx * k, vy * k, vz * k, math.cos(0.5 * angle))


def rotation_error(target: Sequence[float], current: Sequence[float]) -> Vec3:
    """Rotation vector (rad, base frame) that turns unit quaternion `current` into `target` (xyzw),
    the short way: ``rotvec(R(target) · R(current)⁻¹)``."""
    return quat_to_rotvec(quat_diff(target, current))


def angle_between(a: Sequence[float], b: Sequence[float]) -> float:
    """Rotation angle from unit quaternion `a` to unit quaternion `b`, radians in [0, π]."""
    dot = abs(a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3])
    return 2.0 * math.acos(min(1.0, dot))


def turn_toward(start: Quat, goal: Quat, max_angle: float) -> tuple[Quat, bool]:
    """The orientation at most `max_angle` from `start` on the shortest way to `goal` (slerp).

    Both unit quaternions (xyzw). Returns (orientation, True if it was limited).
    """
    angle = angle_between(start, goal)
    if angle <= max_angle:
        return goal, False
    # relative rotation r = goal · start⁻¹ on the short side, scaled to max_angle about its axis
    sx, sy, sz, sw = start
    r = quat_mul(goal, (-sx, -sy, -sz, sw))
    if r[3] < 0.0:
        r = (-r[0], -r[1], -r[2], -r[3])
    s = math.sqrt(r[0] * r[0] + r[1] * r[1] + r[2] * r[2])  # = sin(angle / 2)
    if s < 1e-12:  # acos noise made equal orientations look ~1e-8 rad apart: nothing to limit
        return goal, False
    half = 0.5 * max_angle
    k = math.sin(half) / s
    step = (r[0] * k, r[1] * k, r[2] * k, math.cos(half))
    return quat_normalize(quat_mul(step, start)), True


def rot_x(angle: float) -> np.ndarray:
    """(3, 3) rotation about x by `angle` rad."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(angle: float) -> np.ndarray:
    """(3, 3) rotation about y by `angle` rad."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(angle: float) -> np.ndarray:
    """(3, 3) rotation about z by `angle` rad."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def quats_to_euler_xyz(quats: np.ndarray) -> np.ndarray:
    """`quat_to_euler_xyz` over rows: (n, 4) unit quaternions xyzw → (n, 3) extrinsic x-y-z angles,
    rad (scipy's ``as_euler("xyz")``; in gimbal lock the third angle is 0)."""
    q = np.asarray(quats, dtype=np.float64).reshape(-1, 4)
    x, y, z, w = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    r20 = 2.0 * (x * z - y * w)
    r21 = 2.0 * (y * z + x * w)
    r22 = 1.0 - 2.0 * (x * x + y * y)
    r00 = 1.0 - 2.0 * (y * y + z * z)
    r10 = 2.0 * (x * y + z * w)
    cos_b = np.hypot(r00, r10)
    beta = np.arctan2(-r20, cos_b)
    free = cos_b > _GIMBAL_EPS
    r11 = 1.0 - 2.0 * (x * x + z * z)
    r12 = 2.0 * (y * z - x * w)
    alpha = np.where(free, np.arctan2(r21, r22), np.arctan2(-r12, r11))
    gamma = np.where(free, np.arctan2(r10, r00), 0.0)
    return np.stack([alpha, beta, gamma], axis=1)
