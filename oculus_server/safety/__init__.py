"""Safety of the command path: one gate before the robot, plausibility of measured state.

* `config`: `SafetyConfig` (the ``safety:`` section of the daemon config).
* `gate`: `CommandGate` — clamps, limits, refuses, holds; the only maker of `GatedCommand`.
* `plausibility`: `StateCheck` — which measured states may serve as a reference.
* `pose`: pure pose helpers (box clamp, step limits).
* `kinds`: names of the interventions (`SafetyRecord.kind`, counters ``safety_<kind>``).
"""

from oculus_server.safety.config import SafetyConfig
from oculus_server.safety.gate import (
    CommandGate,
    GatedCommand,
    GateResult,
    Proposal,
    RobotView,
    check_gated,
)
from oculus_server.safety.plausibility import StateCheck, Verdict

__all__ = [
    "CommandGate",
    "GateResult",
    "GatedCommand",
    "Proposal",
    "RobotView",
    "SafetyConfig",
    "StateCheck",
    "Verdict",
    "check_gated",
]
