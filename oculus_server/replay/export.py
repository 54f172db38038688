"""`teleop-replay export --to mp4`: one MP4 per camera (HDF5: see `oculus_server.replay.droid`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from oculus_server.replay.droid import export_hdf5
from oculus_server.replay.video import decode_jpeg, write_jpegs
from robot_formats.recording.episode import Episode
from robot_formats.recording.errors import RecordingError

__all__ = ["export_hdf5", "export_mp4"]

Progress = Callable[[int, int], None]


def export_mp4(ep: Episode, out_dir: Path, progress: Progress | None = None) -> dict[str, Path]:
    """Writes one MP4 per camera, every recorded frame at its capture time (variable frame rate).

    Files: ``<out_dir>/<stem>.<camera>.mp4`` and ``<stem>.<camera>.frames.json`` (per frame:
    seq, capture and log time), where ``<stem>`` is the recording's name.

    Raises:
        RecordingError: no camera frames, images not loaded, or an output exists.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = ep.path.name[:-5] if ep.path.name.endswith(".mcap") else ep.path.stem
    if not ep.cameras:
        raise RecordingError(f"{ep.path} has no camera frames")
    written: dict[str, Path] = {}
    for name, cam in ep.cameras.items():
        if len(cam.jpeg) != cam.log_t.size:
            raise RecordingError(f"camera {name}: images were not loaded (load the episode with images=True)")
        if not cam.jpeg:
            continue
        path = out_dir / f"{stem}.{name}.mp4"
        if path.exists():
            raise RecordingError(f"{path} already exists; refusing to overwrite it")
        first = decode_jpeg(cam.jpeg[0])
        h, w = first.shape[:2]
        t = cam.capture_t - cam.capture_t[0]
        if np.any(np.diff(t) <= 0):  # capture clock unusable: fall back to the recording clock
            t = cam.log_t - cam.log_t[0]
        dt = np.diff(t)
        fps = 1.0 / float(np.median(dt[dt > 0])) if np.any(dt > 0) else 15.0
        codec, frames = write_jpegs(path, cam.jpeg, t, w, h, fps, progress, len(cam.jpeg))
        sidecar = {
            "camera": name,
            "codec": codec,
            "frames": frames,
            "width": w - w % 2,
            "height": h - h % 2,
            "nominal_fps": fps,
            "seq": cam.seq.tolist(),
            "capture_t": cam.capture_t.tolist(),
            "log_t": cam.log_t.tolist(),
        }
        (out_dir / f"{stem}.{name}.frames.json").write_text(json.dumps(sidecar))
        written[name] = path
    return written
