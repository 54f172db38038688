"""Task metrics from the simulator's own state, and the episode's latency and staleness figures.

Tasks (from the instruction, or given explicitly):

* ``lift:<cube>`` — success when the cube's bottom is at least `LIFT_SUCCESS_M` above the table.
  Progress 0–100 = 30 · reach + 20 · held + 50 · lift, where reach goes from 0 at the starting
  distance (grasp point → cube centre) to 1 within 2 cm, held is 1 when the cube centre is within
  `GRASP_RADIUS_M` of the grasp point with the fingers closed on it, and lift = height / 5 cm.
* ``place:<cube>:<base>`` — success when the cube rests on the base cube (centres within half a
  cube plus `PLACE_TOLERANCE_M` in x/y, one cube height ± tolerance apart in z) and is released.
  Progress = 20 · reach + 15 · held + 15 · lift + 50 · closeness of the cube to its place.

Success is judged on the final state (`success`), and the first control step where it held is
kept (`success_step`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from frankateach.sim.model import CUBE_HALF_SIZE, CUBES, TABLE_TOP_Z
from vla_server.arena.config import (
    GRASP_RADIUS_M,
    LIFT_SUCCESS_M,
    PLACE_TOLERANCE_M,
    PROGRESS_MARGIN,
    SUCCESS_STEP_MARGIN,
)
from vla_server.arena.scene import Kinematics

COLOURS = tuple(sorted(n.removesuffix("_cube") for n in CUBES))
_PLACE_WORDS = re.compile(r"\b(on|onto|on top of|stack|place|put)\b")


class TaskError(ValueError):
    """A task that names no known cube."""


@dataclass(frozen=True)
class Task:
    """What the episode is judged on: ``kind`` "lift" or "place", the cube, the base cube."""

    kind: str
    cube: str
    base: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.cube}" + (f":{self.base}" if self.base else "")


def parse_task(task: str, instruction: str) -> Task | None:
    """The task of an episode: explicit (``lift:red_cube``) or read from the instruction.

    Returns None when `task` is "auto" and the instruction names no cube colour (no metric).

    Raises:
        TaskError: an explicit task names an unknown cube.
    """
    if task != "auto":
        parts = task.split(":")
        cubes = parts[1:]
        for c in cubes:
            if c not in CUBES:
                raise TaskError(f"task {task!r}: unknown cube {c!r}; expected one of {sorted(CUBES)}")
        return Task(parts[0], cubes[0], cubes[1] if len(cubes) > 1 else None)
    text = instruction.lower()
    found = sorted((m.start(), c) for c in COLOURS for m in re.finditer(rf"\b{c}\b", text))
    colours = list(dict.fromkeys(c for _, c in found))
    if not colours:
        return None
    if len(colours) >= 2 and _PLACE_WORDS.search(text):
        return Task("place", f"{colours[0]}_cube", f"{colours[1]}_cube")
    return Task("lift", f"{colours[0]}_cube")


@dataclass(frozen=True)
class TaskState:
    """One evaluation: success, progress 0–100 and its parts."""

    success: bool
    progress: float
    reach_m: float
    held: bool
    lift_m: float


class TaskEvaluator:
    """Judges states against a task; distances are relative to the episode's start state."""

    def __init__(self, task: Task, start: Kinematics) -> None:
        self.task = task
        self._d0 = max(self._reach(start), 0.05)
        if task.base is not None:
            self._p0 = max(self._place_error(start), 0.05)

    def _reach(self, k: Kinematics) -> float:
        return float(np.linalg.norm(k.cubes[self.task.cube] - k.grasp_point))

    def _place_error(self, k: Kinematics) -> float:
        assert self.task.base is not None
        goal = k.cubes[self.task.base] + np.array([0.0, 0.0, 2 * CUBE_HALF_SIZE])
        return float(np.linalg.norm(k.cubes[self.task.cube] - goal))

    def evaluate(self, k: Kinematics) -> TaskState:
        cube = k.cubes[self.task.cube]
        reach = self._reach(k)
        reach_score = 1.0 - float(np.clip((reach - 0.02) / max(self._d0 - 0.02, 1e-6), 0.0, 1.0))
        held = reach <= GRASP_RADIUS_M and 0.004 < k.finger_opening < 0.036 and k.gripper > -0.9
        lift = float(cube[2] - CUBE_HALF_SIZE - TABLE_TOP_Z)
        lift_score = float(np.clip(lift / LIFT_SUCCESS_M, 0.0, 1.0))
        if self.task.kind == "lift":
            success = lift >= LIFT_SUCCESS_M
            progress = 30 * reach_score + 20 * float(held) + 50 * lift_score
        else:
            assert self.task.base is not None
            base = k.cubes[self.task.base]
            dxy = float(np.linalg.norm(cube[:2] - base[:2]))
            dz = float(cube[2] - base[2])
            on_top = dxy <= CUBE_HALF_SIZE + PLACE_TOLERANCE_M and abs(dz - 2 * CUBE_HALF_SIZE) <= PLACE_TOLERANCE_M
            success = on_top and not held
            close = 1.0 - float(np.clip((self._place_error(k) - 0.01) / self._p0, 0.0, 1.0))
            progress = 20 * reach_score + 15 * float(held) + 15 * (1.0 if on_top else lift_score) + 50 * close
        if success:
            progress = 100.0
        return TaskState(bool(success), round(float(progress), 3), reach, bool(held), lift)


def battle_outcome(a: dict, b: dict, margin: float = PROGRESS_MARGIN) -> str:
    """Outcome of a battle by metric: "a", "b" or "tie".

    A success beats a failure; between two successes the faster wins (first successful control
    step earlier by `SUCCESS_STEP_MARGIN` or more); between two failures progress decides if it
    differs by `margin` points or more; else it is a tie.
    """
    sa, sb = bool(a.get("success")), bool(b.get("success"))
    if sa != sb:
        return "a" if sa else "b"
    ka, kb = a.get("success_step"), b.get("success_step")
    if sa and sb and ka is not None and kb is not None and abs(int(ka) - int(kb)) >= SUCCESS_STEP_MARGIN:
        return "a" if ka < kb else "b"
    pa, pb = float(a.get("progress") or 0.0), float(b.get("progress") or 0.0)
    if abs(pa - pb) >= margin and not (sa and sb):
        return "a" if pa > pb else "b"
    return "tie"


