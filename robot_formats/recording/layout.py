"""The Foxglove layout shipped in ``configs/foxglove_layout.json`` (the live view and replays alike).

Panels: the 3D scene (arm, target, cameras' frusta, table and cubes, following ``robot_base``),
both cameras, plots of the measured end-effector position against the commanded target, of the
loops' achieved rates, of the assist blend, and the log. The file is made by this module
(``python -m robot_formats.recording.layout > configs/foxglove_layout.json``); a test keeps the
shipped file equal to it and every topic and field it names among those the recording writes.
In Foxglove: Layouts → Import from file… → configs/foxglove_layout.json.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from frankateach.constants import SIM_CAMERAS
from robot_formats.recording import schemas as S

LOOPS = ("vr", "control", "recording", "robot")


def _series(path: str, label: str) -> dict[str, Any]:
    return {"value": path, "enabled": True, "timestampMethod": "receiveTime", "label": label}


def _ee_vs_target() -> list[dict[str, Any]]:
    out = []
    for axis in "xyz":
        out.append(_series(f"{S.TOPIC_EE_POSE}.pose.position.{axis}", f"ee {axis}"))
        out.append(_series(f"{S.TOPIC_EE_TARGET}.pose.position.{axis}", f"target {axis}"))
    return out


def foxglove_layout(cameras: tuple[str, ...] = tuple(SIM_CAMERAS)) -> dict[str, Any]:
    """The layout as Foxglove's layout JSON (configById + the mosaic tree)."""
    config: dict[str, Any] = {
        "3D!scene": {
            "followTf": S.FRAME_BASE,
            "followMode": "follow-none",
            "scene": {"transforms": {"showLabel": False, "axisScale": 0.5}},
            "cameraState": {"distance": 2.2, "perspective": True, "phi": 60, "thetaOffset": 135,
                            "targetOffset": [0.35, 0, 0.2], "target": [0, 0, 0], "fovy": 45, "near": 0.01, "far": 50},
            "topics": {S.TOPIC_SCENE: {"visible": True}, S.TOPIC_EE_TARGET: {"visible": True},
                       S.TOPIC_EE_POSE: {"visible": True}},
            "layers": {"grid": {"layerId": "foxglove.Grid", "visible": True, "frameId": S.FRAME_BASE, "size": 2,
                                "divisions": 20}},
        },
        "Plot!ee": {"title": "EE vs target (m, robot_base)", "paths": _ee_vs_target(), "xAxisVal": "timestamp",
                    "showLegend": True, "followingViewWidth": 20},
        "Plot!rates": {
            "title": "loop rates (Hz)",
            "paths": [_series(f'{S.TOPIC_TIMING}.loops[:]{{name=="{loop}"}}.achieved_hz', loop) for loop in LOOPS],
            "xAxisVal": "timestamp", "showLegend": True,
        },
        "Plot!assist": {
            "title": "assist blend",
            "paths": [_series(f"{S.TOPIC_ASSIST_BLEND}.alpha", "alpha"),
                      _series(f"{S.TOPIC_ASSIST_BLEND}.alpha_target", "alpha target")],
            "xAxisVal": "timestamp", "showLegend": True, "followingViewWidth": 20,
        },
        "RosOut!log": {"searchTerms": [], "minLogLevel": 1, "topicToRender": S.TOPIC_LOG},
    }
    images = []
    for name in cameras:
        key = f"Image!{name}"
        images.append(key)
        config[key] = {"imageMode": {"imageTopic": S.camera_image_topic(name),
                                     "calibrationTopic": S.camera_calibration_topic(name)}}
    cams: Any = images[0] if len(images) == 1 else {"direction": "column", "first": images[0],
                                                     "second": images[1], "splitPercentage": 50}
    plots = {"direction": "column", "first": "Plot!ee",
             "second": {"direction": "column", "first": "Plot!rates",
                        "second": {"direction": "column", "first": "Plot!assist", "second": "RosOut!log"}},
             "splitPercentage": 35}
    return {
        "configById": config,
        "globalVariables": {},
        "userNodes": {},
        "playbackConfig": {"speed": 1},
        "layout": {"direction": "row", "first": {"direction": "column", "first": "3D!scene", "second": cams,
                                                 "splitPercentage": 55},
                   "second": plots, "splitPercentage": 55},
    }


def topics_in(layout: dict[str, Any]) -> dict[str, set[str]]:
    """Topic → first fields the layout reads from it (for checking it against the schemas)."""
    out: dict[str, set[str]] = {}
    for panel in layout["configById"].values():
        for series in panel.get("paths", []):
            path = series["value"]
            topic, _, rest = path.partition(".")
            out.setdefault(topic, set()).add(rest.split(".")[0].split("[")[0])
        for topic in panel.get("topics", {}):
            out.setdefault(topic, set())
        mode = panel.get("imageMode", {})
        for key in ("imageTopic", "calibrationTopic"):
            if key in mode:
                out.setdefault(mode[key], set())
        if "topicToRender" in panel:
            out.setdefault(panel["topicToRender"], set())
    return out


def main() -> int:
    sys.stdout.write(json.dumps(foxglove_layout(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
