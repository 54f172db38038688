"""Topics and schemas of an episode recording (MCAP, Foxglove-native).

Every recording is one MCAP file. Data with a Foxglove well-known schema is written as protobuf
(``foxglove.*``, decodable with ``mcap_protobuf.decoder.DecoderFactory``); everything else is JSON
with a JSON Schema (schema encoding ``jsonschema``, message encoding ``json``), which Foxglove's
Plot, Raw Messages and State Transitions panels read directly.

Topics:

==============================  ==========================  ======================================
topic                           schema                      content (written when)
==============================  ==========================  ======================================
``/tf``                         foxglove.FrameTransforms    world→robot_base (static), robot_base→
                                                            ee (measured), robot_base→ee_target
                                                            (commanded), world→vr_head (display
                                                            only), vr_head→vr_right / vr_left,
                                                            robot_base or ee→camera_<name> (each
                                                            camera with a known mount; optical
                                                            frame) (every recording tick, 40 Hz)
``/robot/ee_pose``              foxglove.PoseInFrame        measured hand TCP pose, frame
                                                            robot_base, stamped with the
                                                            measurement time (each new state)
``/robot/ee_target``            foxglove.PoseInFrame        commanded hand TCP pose, frame
                                                            robot_base (each new command)
``/robot/joint_states``         teleop.JointStates          7 arm joints + 2 finger joints: rad /
                                                            m, velocities by finite difference
                                                            (each new robot state)
``/robot/command``              teleop.RobotCommand         the full FrankaAction sent (pos, xyzw,
                                                            gripper, reset), mode, engaged, send
                                                            counter (each command sent, once, in
                                                            send order; used by replay)
``/robot/latency``              teleop.RobotLatency         request round trip, state age at the
                                                            tick, measurement→receive delay, ms
                                                            (each new robot state)
``/action``                     teleop.Action               7-D policy action in [-1, 1]: lin_x…
                                                            rot_z, gripper (each new command)
``/control/mode``               teleop.ControlMode          REAL-TIME / PREDICTIVE, engaged, policy
                                                            gains, command/VR seqs (every tick)
``/vr/right/pose``              foxglove.PoseInFrame        head_T_controller, frame vr_head, app
``/vr/left/pose``                                           frame (OpenXR, y-up) (each new sample)
``/vr/buttons``                 teleop.VRButtons            buttons, trigger, grip, joystick per
                                                            side (each new VR sample)
``/camera/<name>/image``        foxglove.CompressedImage    JPEG, format "jpeg" (every frame)
``/camera/<name>/calibration``  foxglove.CameraCalibration  pinhole model from the vertical field
                                                            of view (first frame, then every
                                                            MCAP_CALIBRATION_PERIOD_S)
``/events``                     teleop.Event                kind, message, data (episode start /
                                                            stop / success, errors, link changes,
                                                            loop overruns, scheduling)
``/log``                        foxglove.Log                the same events, for the Log panel
``/timing``                     teleop.Timing               per-loop achieved Hz, jitter p50/p99/
                                                            max, missed/late ticks, queue depths
                                                            and drop counters (about 1 Hz)
``/sim/state``                  teleop.SimState             the simulator's state blob, sim time,
                                                            physics step, scene hash (``--debug``
                                                            only, about 1 Hz; starts VLA arena
                                                            episodes, registered on first use)
``/safety``                     teleop.Safety               what the command gate clamped,
                                                            limited, refused or held and why;
                                                            state faults (each intervention)
``/assist/action``              teleop.AssistAction         each VLA policy action received:
                                                            7-D action, safety score, latency,
                                                            round trip, the pose it answers
                                                            (assist only, registered on first use)
``/assist/blend``               teleop.AssistBlend          per control tick: α, state (on, stale,
                                                            released, ...), the operator's raw
                                                            action beside the policy's and the
                                                            blended one, action age, score
``/assist/status``              teleop.AssistStatus         service link, latency p50/p95, rates,
                                                            drops, reconnects (about 1 Hz)
``/scene``                      foxglove.SceneUpdate        the 3D view: the arm's links (frames
                                                            panda_link0 … panda_link7, fingers,
                                                            in /tf from the measured joints),
                                                            the commanded target, camera frusta,
                                                            the simulator's table and cubes
                                                            (about 1 Hz, and at each new sim
                                                            state; registered on first use)
==============================  ==========================  ======================================

Per message: ``log_time`` is when the daemon received the data (robot states: their receive wall
time; VR samples: their receive time mapped to wall clock; commands: the time they were sent;
tick-level data and camera frames: the recording tick's wall time), ``publish_time`` is when it
was captured or made (robot measurement time, camera capture time, command creation time), and
``sequence`` is the source's own counter where it has one (recording tick seq, VR sample seq,
the robot thread's send counter for commands, camera frame seq, physics step), else a per-topic
counter. A topic whose `TopicSpec.sampled` is set keeps only some of its source's numbers by
design (``/sim/state``: one physics step a second; VR: the newest sample per tick; camera frames:
the newest frame when they come faster than they are read; ``/robot/ee_target``: no target for a
reset); on every other topic a skipped number is a message that was not recorded.

JSON bodies never hold ``null``: a value that is not available (no round trip for a state from
the PUB feed, jitter before a loop's second tick, ...) is left out, and every JSON schema below
lists only optional fields for such values.

Metadata records: ``recording_start`` (caller's operator/task/robot/config/versions/rates, plus
writer settings; structured values such as ``config`` and ``cameras`` are JSON) and
``recording_end`` (outcome, duration, per-topic counts, achieved rates, drops, errors, reason).
Attachments: whatever the caller passes (the simulator's MJCF for a simulated robot only).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from foxglove_schemas_protobuf.CameraCalibration_pb2 import CameraCalibration
from foxglove_schemas_protobuf.CompressedImage_pb2 import CompressedImage
from foxglove_schemas_protobuf.FrameTransforms_pb2 import FrameTransforms
from foxglove_schemas_protobuf.Log_pb2 import Log
from foxglove_schemas_protobuf.PoseInFrame_pb2 import PoseInFrame
from foxglove_schemas_protobuf.SceneUpdate_pb2 import SceneUpdate
from mcap_protobuf.schema import build_file_descriptor_set

from robot_formats.recording.records import LEFT_BOOLS, RIGHT_BOOLS

SCHEMA_VERSION = "1"  # bump when a topic's content changes incompatibly

# --- Frame ids ------------------------------------------------------------------------------------
FRAME_WORLD = "world"
FRAME_BASE = "robot_base"
FRAME_EE = "ee"
FRAME_EE_TARGET = "ee_target"
FRAME_VR_HEAD = "vr_head"
FRAME_VR = {"r": "vr_right", "l": "vr_left"}

# --- Topic names ----------------------------------------------------------------------------------
TOPIC_TF = "/tf"
TOPIC_EE_POSE = "/robot/ee_pose"
TOPIC_EE_TARGET = "/robot/ee_target"
TOPIC_JOINT_STATES = "/robot/joint_states"
TOPIC_COMMAND = "/robot/command"
TOPIC_LATENCY = "/robot/latency"
TOPIC_ACTION = "/action"
TOPIC_MODE = "/control/mode"
TOPIC_VR_POSE = {"r": "/vr/right/pose", "l": "/vr/left/pose"}
TOPIC_VR_BUTTONS = "/vr/buttons"
TOPIC_EVENTS = "/events"
TOPIC_LOG = "/log"
TOPIC_TIMING = "/timing"
TOPIC_SIM_STATE = "/sim/state"
TOPIC_SAFETY = "/safety"
TOPIC_ASSIST_ACTION = "/assist/action"
TOPIC_ASSIST_BLEND = "/assist/blend"
TOPIC_ASSIST_STATUS = "/assist/status"
TOPIC_SCENE = "/scene"


def camera_image_topic(name: str) -> str:
    """Returns the image topic of camera `name`."""
    return f"/camera/{name}/image"


def camera_calibration_topic(name: str) -> str:
    """Returns the calibration topic of camera `name`."""
    return f"/camera/{name}/calibration"


def camera_name_from_topic(topic: str) -> str | None:
    """Returns the camera name of an image topic, or None if `topic` is not one."""
    parts = topic.split("/")
    if len(parts) == 4 and parts[0] == "" and parts[1] == "camera" and parts[3] == "image":
        return parts[2]
    return None


ARM_JOINT_NAMES = tuple(f"panda_joint{i}" for i in range(1, 8))
FINGER_JOINT_NAMES = ("panda_finger_joint1", "panda_finger_joint2")
JOINT_NAMES = ARM_JOINT_NAMES + FINGER_JOINT_NAMES
FINGER_MAX_M = 0.04  # one Panda finger's travel, metres (gripper -1 = open = 0.04 m each)
ACTION_FIELDS = ("lin_x", "lin_y", "lin_z", "rot_x", "rot_y", "rot_z", "gripper")

# --- JSON schemas ---------------------------------------------------------------------------------
# Written for Foxglove's JSON-schema reader: every object lists its "properties", every field has
# one "type" (no type lists, no additionalProperties-only maps), so every field can be plotted.
# A number that is not available is left out of the message (never null); such fields are optional.
# Maps with run-time keys (loops, counters, gains) are arrays of {"name": …} objects; plot them in
# Foxglove with a filter, e.g. ``/timing.loops[:]{name=="control"}.achieved_hz``.
_TIME = {
    "type": "object",
    "title": "time",
    "properties": {"sec": {"type": "integer", "minimum": 0}, "nsec": {"type": "integer", "minimum": 0}},
}
_NUM = {"type": "number"}
_INT = {"type": "integer"}
_BOOL = {"type": "boolean"}
_STR = {"type": "string"}
_NUMS = {"type": "array", "items": {"type": "number"}}
_VEC3 = {"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3}
_QUAT = {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4, "description": "x, y, z, w"}
_NAMED_VALUES = {
    "type": "array",
    "items": {"type": "object", "properties": {"name": _STR, "value": _NUM}},
}


def _obj(description: str, properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "description": description,
        "properties": properties,
        "required": list(required),
    }


def _side_buttons(booleans: tuple[str, ...]) -> dict[str, Any]:
    props: dict[str, Any] = {name: _BOOL for name in booleans}
    props.update(trigger=_NUM, grip=_NUM, joystick_x=_NUM, joystick_y=_NUM)
    return {"type": "object", "description": "one controller (oculus_reader button names)", "properties": props}


_LOOP = {
    "type": "object",
    "properties": {
        "name": _STR,
        "target_hz": _NUM,
        "achieved_hz": _NUM,
        "ticks": _INT,
        "missed": _INT,
        "late": _INT,
        "jitter_p50_ms": _NUM,
        "jitter_p99_ms": _NUM,
        "jitter_max_ms": _NUM,
        "work_p99_ms": _NUM,
        "run_hz": _NUM,
        "run_jitter_p99_ms": _NUM,
        "run_jitter_max_ms": _NUM,
    },
}

JSON_SCHEMAS: dict[str, dict[str, Any]] = {
    "teleop.JointStates": _obj(
        "Measured Panda joints: 7 arm joints (rad) then 2 finger joints (m). A robot server that "
        "does not report arm joints gives only the finger joints (name and position stay aligned).",
        {
            "timestamp": _TIME,
            "name": {"type": "array", "items": _STR},
            "position": _NUMS,
            "velocity": {**_NUMS, "description": "finite difference of consecutive states; empty at first"},
            "gripper": {**_NUM, "description": "-1 open … +1 closed"},
            "start_teleop": _BOOL,
        },
        ("timestamp", "name", "position"),
    ),
    "teleop.RobotCommand": _obj(
        "The FrankaAction target sent to the robot (base frame, metres, xyzw).",
        {
            "timestamp": _TIME,
            "seq": _INT,
            "position": _VEC3,
            "orientation": _QUAT,
            "gripper": {**_NUM, "description": "-1 open … +1 closed"},
            "reset": _BOOL,
            "mode": _STR,
            "engaged": _BOOL,
            "vr_seq": _INT,
            "send_seq": {**_INT, "description": "robot thread's send counter (consecutive; the message sequence)"},
            "age_ms": {**_NUM, "description": "send time − time the command was made"},
        },
        ("timestamp", "seq", "position", "orientation", "gripper", "reset"),
    ),
    "teleop.RobotLatency": _obj(
        "Robot link timing, milliseconds.",
        {
            "timestamp": _TIME,
            "rtt_ms": {**_NUM, "description": "round trip of the request that brought the state (absent for PUB)"},
            "state_age_ms": {**_NUM, "description": "tick time − receive time"},
            "transport_ms": {**_NUM, "description": "receive wall time − measurement time (clock offset included)"},
        },
        ("timestamp",),
    ),
    "teleop.Action": _obj(
        "Policy action, normalised to [-1, 1]: linear xyz, rotation xyz (Euler rates), gripper.",
        {"timestamp": _TIME, "seq": _INT, **{name: _NUM for name in ACTION_FIELDS}},
        ("timestamp", *ACTION_FIELDS),
    ),
    "teleop.ControlMode": _obj(
        "Control state at one recording tick.",
        {
            "timestamp": _TIME,
            "mode": {"type": "string", "enum": ["REAL-TIME", "PREDICTIVE"]},
            "predictive": _BOOL,
            "engaged": _BOOL,
            "command_seq": _INT,
            "vr_seq": _INT,
            "vr_to_command_ms": _NUM,
            "gains": _NAMED_VALUES,
        },
        ("timestamp", "mode", "predictive", "engaged"),
    ),
    "teleop.VRButtons": _obj(
        "Controller buttons and analog inputs per side (a side is absent when not tracked).",
        {"timestamp": _TIME, "seq": _INT, "right": _side_buttons(RIGHT_BOOLS), "left": _side_buttons(LEFT_BOOLS)},
        ("timestamp",),
    ),
    "teleop.Event": _obj(
        "Something that happened during the episode.",
        {
            "timestamp": _TIME,
            "kind": {**_STR, "description": "e.g. episode_start, episode_stop, success, error, robot_link, "
                     "control, safety_warning, assist; scheduling (no real-time scheduling: what it means, "
                     "the fix); loop_overrun (a loop's tick started more than a period late; data: loop, "
                     "late_ms, period_ms, ticks, skipped)"},
            "message": _STR,
            "data": {"type": "object", "description": "free-form fields of this kind of event", "properties": {}},
        },
        ("timestamp", "kind", "message"),
    ),
    "teleop.Safety": _obj(
        "One safety intervention of the command path (oculus_server.safety.kinds).",
        {
            "timestamp": _TIME,
            "kind": {**_STR, "description": "box, step_pos, step_rot, gripper, quat, refused_nonfinite, "
                     "refused_quat, hold_restore, outside_box, implausible_state, state_plausible, "
                     "expired, stale_link"},
            "message": _STR,
            "command_seq": {**_INT, "description": "the command it applies to; -1 if none left"},
            "source": {**_STR, "description": "policy, hold, reset, assist, robot_state"},
            "requested": {**_NUMS, "description": "position asked for, m (empty if none or not finite)"},
            "sent": {**_NUMS, "description": "position that left, m (empty if nothing left)"},
            "amount": {**_NUM, "description": "size of the change: m, rad, or 1 for a refusal"},
        },
        ("timestamp", "kind", "message", "command_seq", "source", "requested", "sent", "amount"),
    ),
    "teleop.Timing": _obj(
        "Per-loop timing and queue/drop counters, about once a second.",
        {
            "timestamp": _TIME,
            "loops": {"type": "array", "items": _LOOP},
            "counters": _NAMED_VALUES,
        },
        ("timestamp", "loops", "counters"),
    ),
    "teleop.SimState": _obj(
        "The simulator's state blob (frankateach.sim.state_blob): an exact, restorable state.",
        {
            "timestamp": _TIME,
            "sim_time": {**_NUM, "description": "sim time of the state, s"},
            "physics_step": _INT,
            "scene_hash": {**_STR, "description": "hex identity of the physics scene"},
            "blob": {**_STR, "description": "base64 state blob; vla-arena run --from-recording FILE --at S"},
        },
        ("timestamp", "sim_time", "blob"),
    ),
}

_ACTION7 = {"type": "object", "description": "7-D action (robot_formats.action_space)",
            "properties": {name: _NUM for name in ACTION_FIELDS}}
_MS = {**_NUM, "description": "milliseconds"}

JSON_SCHEMAS.update(
    {
        "teleop.AssistAction": _obj(
            "One action of the VLA policy as the daemon received it.",
            {
                "timestamp": _TIME,
                "seq": _INT,
                "frame_id": {**_INT, "description": "the frame (per service session) it answers"},
                "action": _ACTION7,
                "safety_score": {**_NUM, "description": "the service's score, 0..1"},
                "latency_ms": {**_MS, "description": "frame arrival -> action at the service, ms"},
                "rtt_ms": {**_MS, "description": "frame sent -> action received, ms"},
                "seen_position": {**_VEC3, "description": "pose sent with the frame it answers, m (base frame)"},
                "seen_orientation": _QUAT,
                "smoothed": _BOOL,
            },
            ("timestamp", "seq", "frame_id", "action", "safety_score", "latency_ms", "smoothed"),
        ),
        "teleop.AssistBlend": _obj(
            "What the control thread did with the policy on one tick: a = alpha*policy + (1-alpha)*operator "
            "on the six motion values; the gripper is not averaged.",
            {
                "timestamp": _TIME,
                "state": {
                    "type": "string",
                    "enum": ["on", "off", "no_link", "no_action", "stale", "low_score", "invalid", "released"],
                },
                "alpha": {**_NUM, "description": "policy share used this tick (0: operator only)"},
                "alpha_target": _NUM,
                "engaged": {**_BOOL, "description": "the operator holds the deadman (VR policy engaged)"},
                "operator": {**_ACTION7, "description": "the operator's raw action"},
                "policy": {
                    **_ACTION7,
                    "description": "the policy's action from this tick's reference (absent: none usable)",
                },
                "blended": {**_ACTION7, "description": "the action proposed to the command gate"},
                "action_seq": _INT,
                "age_ms": {**_MS, "description": "age of the newest policy action"},
                "safety_score": _NUM,
                "gripper_source": {"type": "string", "enum": ["operator", "policy", "keep"]},
                "command_seq": {**_INT, "description": "command the gate let out (-1: none)"},
                "reanchor": {**_BOOL, "description": "alpha fell to 0: one hold, operator origin re-anchored"},
            },
            ("timestamp", "state", "alpha", "engaged", "operator", "blended", "command_seq"),
        ),
        "teleop.AssistStatus": _obj(
            "The assist thread's link to the inference service and its figures.",
            {
                "timestamp": _TIME,
                "state": {"type": "string", "enum": ["off", "connecting", "on", "stale"]},
                "link": {"type": "string", "enum": ["connecting", "connected", "reconnecting", "failed", "closed"]},
                "model": _STR,
                "url": _STR,
                "detail": _STR,
                "frames_sent": _INT,
                "frames_skipped": _INT,
                "actions_received": _INT,
                "actions_unmatched": _INT,
                "client_frames_dropped": _INT,
                "client_actions_dropped": _INT,
                "server_frames_dropped": _INT,
                "server_drop_rate_percent": _NUM,
                "server_errors": _INT,
                "reconnects": _INT,
                "latency_ms_p50": _MS,
                "latency_ms_p95": _MS,
                "rtt_ms_p50": _MS,
                "rtt_ms_p95": _MS,
                "send_hz": _NUM,
                "action_hz": _NUM,
            },
            ("timestamp", "state", "link", "model", "frames_sent", "actions_received"),
        ),
    }
)

PROTO_CLASSES: dict[str, Any] = {
    cls.DESCRIPTOR.full_name: cls
    for cls in (FrameTransforms, PoseInFrame, CompressedImage, CameraCalibration, Log, SceneUpdate)
}


@dataclass(frozen=True)
class Sampling:
    """Why a topic's sequence numbers skip by design: it records some of a source's numbered items.

    `unit` names what the numbers count (plural, e.g. "physics steps"); `why` says in plain words
    which of them are recorded.
    """

    unit: str
    why: str


SIM_STATE_SAMPLING = Sampling("physics steps", "the simulator's state is recorded about once a second")
VR_SAMPLING = Sampling("headset samples", "each recording tick keeps the newest sample; the headset sends faster")
CAMERA_SAMPLING = Sampling("camera frames", "the newest frame is kept when frames arrive faster than they are read")
EE_TARGET_SAMPLING = Sampling("commands sent", "a reset command has no target pose")


@dataclass(frozen=True)
class TopicSpec:
    """How a topic is encoded: `schema` names a key of JSON_SCHEMAS or PROTO_CLASSES.

    `sampled` is set when the topic's sequence numbers skip by design (see `Sampling`); when None,
    every number of the sequence is recorded, so a skipped one is a lost message.
    """

    topic: str
    schema: str
    sampled: Sampling | None = None

    @property
    def encoding(self) -> str:
        """The MCAP message encoding: "protobuf" or "json"."""
        return "protobuf" if self.schema in PROTO_CLASSES else "json"


FIXED_TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(TOPIC_TF, "foxglove.FrameTransforms"),
    TopicSpec(TOPIC_EE_POSE, "foxglove.PoseInFrame"),
    TopicSpec(TOPIC_EE_TARGET, "foxglove.PoseInFrame", EE_TARGET_SAMPLING),
    TopicSpec(TOPIC_JOINT_STATES, "teleop.JointStates"),
    TopicSpec(TOPIC_COMMAND, "teleop.RobotCommand"),
    TopicSpec(TOPIC_LATENCY, "teleop.RobotLatency"),
    TopicSpec(TOPIC_ACTION, "teleop.Action"),
    TopicSpec(TOPIC_MODE, "teleop.ControlMode"),
    TopicSpec(TOPIC_VR_POSE["r"], "foxglove.PoseInFrame", VR_SAMPLING),
    TopicSpec(TOPIC_VR_POSE["l"], "foxglove.PoseInFrame", VR_SAMPLING),
    TopicSpec(TOPIC_VR_BUTTONS, "teleop.VRButtons", VR_SAMPLING),
    TopicSpec(TOPIC_EVENTS, "teleop.Event"),
    TopicSpec(TOPIC_LOG, "foxglove.Log"),
    TopicSpec(TOPIC_TIMING, "teleop.Timing"),
    TopicSpec(TOPIC_SAFETY, "teleop.Safety"),
)


OPTIONAL_TOPICS: tuple[TopicSpec, ...] = (  # registered when their first message comes
    TopicSpec(TOPIC_SIM_STATE, "teleop.SimState", SIM_STATE_SAMPLING),
    TopicSpec(TOPIC_ASSIST_ACTION, "teleop.AssistAction"),
    TopicSpec(TOPIC_ASSIST_BLEND, "teleop.AssistBlend"),
    TopicSpec(TOPIC_ASSIST_STATUS, "teleop.AssistStatus"),
    TopicSpec(TOPIC_SCENE, "foxglove.SceneUpdate"),
)


def camera_topics(name: str) -> tuple[TopicSpec, TopicSpec]:
    """Returns the (image, calibration) topic specs of camera `name`."""
    return (
        TopicSpec(camera_image_topic(name), "foxglove.CompressedImage", CAMERA_SAMPLING),
        TopicSpec(camera_calibration_topic(name), "foxglove.CameraCalibration"),
    )


def topic_spec(topic: str) -> TopicSpec | None:
    """Returns the spec of a fixed, optional or camera topic, or None if `topic` is not a recording topic."""
    for spec in (*FIXED_TOPICS, *OPTIONAL_TOPICS):
        if spec.topic == topic:
            return spec
    parts = topic.split("/")
    if len(parts) == 4 and parts[0] == "" and parts[1] == "camera" and parts[2]:
        image, calibration = camera_topics(parts[2])
        return {"image": image, "calibration": calibration}.get(parts[3])
    return None


def schema_record(schema: str) -> tuple[str, str, bytes]:
    """Returns (name, schema encoding, schema data) of the MCAP Schema record for `schema`.

    Raises:
        KeyError: `schema` is neither a known JSON schema nor a Foxglove protobuf class.
    """
    if schema in PROTO_CLASSES:
        fds = build_file_descriptor_set(PROTO_CLASSES[schema])
        return schema, "protobuf", fds.SerializeToString()
    return schema, "jsonschema", json.dumps(JSON_SCHEMAS[schema], separators=(",", ":")).encode()
