"""Resampling an episode onto its recording ticks (40 Hz), as learning datasets want it.

At each tick the values are what the daemon knew then: the newest measured state received at or
before the tick (sample-and-hold on receive time), the newest command and the newest camera frame.
Ticks before the first measured robot state are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robot_formats.recording.episode import Episode, hold_index
from robot_formats.recording.errors import RecordingError
from robot_formats.rotations import quats_to_euler_xyz


def gripper01(g: np.ndarray) -> np.ndarray:
    """Maps the protocol's −1 open … +1 closed to DROID's 0 open … 1 closed."""
    return np.clip((np.asarray(g, dtype=float) + 1.0) / 2.0, 0.0, 1.0)


@dataclass
class TickTable:
    """Episode values on the tick grid; every array has N rows."""

    t: np.ndarray  # (N,) tick wall time, s
    t_rel: np.ndarray  # (N,) s since the first kept tick
    ee_pos: np.ndarray  # (N, 3) m
    ee_quat: np.ndarray  # (N, 4) xyzw
    ee_euler: np.ndarray  # (N, 3) rad
    gripper: np.ndarray  # (N,) 0 open … 1 closed
    joints: np.ndarray  # (N, 7) rad
    robot_meas_t: np.ndarray  # (N,) measurement time of the state used
    robot_recv_t: np.ndarray  # (N,) receive time of the state used
    target_pos: np.ndarray  # (N, 3)
    target_quat: np.ndarray  # (N, 4)
    target_euler: np.ndarray  # (N, 3)
    target_gripper: np.ndarray  # (N,) 0 … 1
    action: np.ndarray  # (N, 7) policy action (zeros before the first command)
    predictive: np.ndarray  # (N,) bool
    engaged: np.ndarray  # (N,) bool
    frame_index: dict[str, np.ndarray]  # camera -> (N,) index of the frame shown at each tick
    frame_capture_t: dict[str, np.ndarray]  # camera -> (N,) its capture time
    robot_index: np.ndarray | None = None  # (N,) index of the measured state used, into the Episode's arrays
    frame_log_t: dict[str, np.ndarray] | None = None  # camera -> (N,) when the frame shown was recorded

    def __len__(self) -> int:
        return int(self.t.size)


def tick_table(ep: Episode) -> TickTable:
    """Resamples `ep` onto its ticks.

    Raises:
        RecordingError: the recording has no ticks with a measured robot state.
    """
    ridx = hold_index(ep.robot_t, ep.tick_t)
    keep = ridx >= 0
    if not keep.any():
        raise RecordingError(f"{ep.path}: no recording tick has a measured robot state; nothing to export")
    t = ep.tick_t[keep]
    ridx = ridx[keep]
    ee_pos, ee_quat = ep.ee_pos[ridx], ep.ee_quat[ridx]
    grip = gripper01(ep.gripper[ridx])
    cidx = hold_index(ep.cmd_t, t)
    has_cmd = cidx >= 0
    c = np.clip(cidx, 0, None)
    if ep.cmd_t.size:
        tpos = np.where(has_cmd[:, None], ep.target_pos[c], ee_pos)
        tquat = np.where(has_cmd[:, None], ep.target_quat[c], ee_quat)
        tgrip = np.where(has_cmd, gripper01(ep.target_gripper[c]), grip)
    else:
        tpos, tquat, tgrip = ee_pos.copy(), ee_quat.copy(), grip.copy()
    aidx = hold_index(ep.action_t, t)
    action = np.zeros((t.size, 7))
    if ep.action_t.size:
        action[aidx >= 0] = ep.action[aidx[aidx >= 0]]
    frame_index: dict[str, np.ndarray] = {}
    frame_t: dict[str, np.ndarray] = {}
    frame_log_t: dict[str, np.ndarray] = {}
    for name, cam in ep.cameras.items():
        if cam.log_t.size == 0:
            continue
        f = np.clip(hold_index(cam.log_t, t), 0, None)  # before the first frame: show the first
        frame_index[name] = f
        frame_t[name] = cam.capture_t[f]
        frame_log_t[name] = cam.log_t[f]
    return TickTable(
        t=t,
        t_rel=t - t[0],
        ee_pos=ee_pos,
        ee_quat=ee_quat,
        ee_euler=quats_to_euler_xyz(ee_quat),
        gripper=grip,
        joints=ep.joints[ridx],
        robot_meas_t=ep.robot_meas_t[ridx],
        robot_recv_t=ep.robot_t[ridx],
        target_pos=tpos,
        target_quat=tquat,
        target_euler=quats_to_euler_xyz(tquat),
        target_gripper=tgrip,
        action=action,
        predictive=ep.tick_predictive[keep],
        engaged=ep.tick_engaged[keep],
        frame_index=frame_index,
        frame_capture_t=frame_t,
        robot_index=ridx,
        frame_log_t=frame_log_t,
    )
