"""Start an episode at a moment of a teleop recording: the simulator's state blob recorded there.

Debug recordings (``oculus-server --debug``) carry the simulator's state blob on ``/sim/state``
about once a second (published by ``frankateach-sim --sim-state-port``). ``--at SECONDS`` (from the
recording's first message) picks the newest blob at or before that moment; the blob's own time is
reported, so the start is exact to the blob, within a second of the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from robot_formats.recording import schemas as S
from robot_formats.recording.errors import RecordingError
from robot_formats.recording.reader import RecordingReader


class RecordingStartError(ValueError):
    """No usable simulator state in the recording at the requested time."""


@dataclass(frozen=True)
class RecordingStart:
    """A start state taken from a recording.

    Attributes:
        blob: the simulator's state blob.
        at_s: the requested time, s from the recording's start.
        blob_at_s: when the blob was recorded, s from the recording's start.
        sim_time_s: the blob's sim time, s.
        task: the recording's task text ("" if none).
    """

    blob: str
    at_s: float
    blob_at_s: float
    sim_time_s: float
    task: str


def start_from_recording(path: Path | str, at_s: float) -> RecordingStart:
    """The newest ``/sim/state`` blob at or before `at_s` seconds into the recording.

    Raises:
        RecordingStartError: not a finished recording, no simulator state in it, or none that early.
    """
    if not at_s >= 0:
        raise RecordingStartError(f"--at: expected seconds >= 0 from the recording's start, got {at_s}")
    try:
        reader = RecordingReader(path)
    except RecordingError as exc:
        raise RecordingStartError(str(exc)) from None
    with reader:
        t0 = reader.start_ns
        counts = reader.topic_counts()
        if not counts.get(S.TOPIC_SIM_STATE):
            raise RecordingStartError(
                f"{path} has no simulator state ({S.TOPIC_SIM_STATE}); only debug recordings made with "
                "`oculus-server --debug` (frankateach-sim publishing its state) can start an arena episode")
        limit = t0 + round(at_s * 1e9) + 1
        best = None
        first_s = None
        for _topic, log_ns, _pub, _seq, msg in reader.messages([S.TOPIC_SIM_STATE]):
            if first_s is None:
                first_s = (log_ns - t0) / 1e9
            if log_ns >= limit:
                break
            best = (log_ns, msg)
        task = reader.metadata().get("recording_start", {}).get("task", "")
    if best is None:
        raise RecordingStartError(
            f"{path}: no simulator state at or before {at_s:.3f} s; the first is at {first_s:.3f} s")
    log_ns, msg = best
    blob = msg.get("blob") if isinstance(msg, dict) else None
    if not isinstance(blob, str) or not blob:
        raise RecordingStartError(f"{path}: the {S.TOPIC_SIM_STATE} message at {(log_ns - t0) / 1e9:.3f} s has no blob")
    return RecordingStart(blob, float(at_s), (log_ns - t0) / 1e9, float(msg.get("sim_time", float("nan"))), task)
