"""HTTP API of the teleop recordings folder (the UI's Recordings page), under ``/v1/recordings``.

    GET  /v1/recordings                          list (newest first): id, outcome, duration, task, cameras…
    GET  /v1/recordings/{id}/info                `teleop-replay info --json`, plus "text" as the CLI prints it
    GET  /v1/recordings/{id}/plot.png            `teleop-replay plot` (made on first request, cached)
    GET  /v1/recordings/{id}/video               MP4 job status: missing / queued / running / done / failed
    POST /v1/recordings/{id}/video               start making the MP4s (one per camera); 202 + status
    GET  /v1/recordings/{id}/video/{camera}.mp4  a finished MP4
    GET  /v1/recordings/{id}/file                the MCAP itself (download)

``{id}`` is the path inside the folder, e.g. ``success/ep_001.mcap``. Every route needs a key of
any tier (`reader` dependency): making an MP4 only derives a cached file from data the key may
already read, and one job runs at a time with a bounded queue. Errors: 400 bad id, 404 no such
recording / camera / video yet, 422 unreadable recording, 503 job queue full.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse, JSONResponse

from robot_formats.recording.errors import RecordingError
from vla_server.web.recordings import (
    BadRecordingId,
    RecordingLibrary,
    RecordingNotFound,
)

PREFIX = "/v1/recordings"


def _call(fn: Callable[[], Any]) -> Any:
    """Runs `fn`, turning library errors into HTTP errors with the library's message."""
    try:
        return fn()
    except BadRecordingId as exc:
        raise HTTPException(400, str(exc)) from None
    except RecordingNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except RecordingError as exc:
        raise HTTPException(422, f"cannot read the recording: {exc}") from None


def recordings_router(library: RecordingLibrary, reader: Callable[..., Any]) -> APIRouter:
    """The router; `reader` is the service's dependency that admits a key of any tier."""
    r = APIRouter(prefix=PREFIX, tags=["recordings"], dependencies=[Depends(reader)])

    @r.get("")
    def list_recordings() -> dict[str, Any]:
        items = library.list()
        return {"folder": library.root.name, "count": len(items), "recordings": [s.to_dict() for s in items]}

    @r.get("/{rid:path}/info")
    def recording_info(rid: str) -> dict[str, Any]:
        return _call(lambda: library.info(rid))  # type: ignore[no-any-return]

    @r.get("/{rid:path}/plot.png")
    def recording_plot(rid: str) -> FileResponse:
        path = _call(lambda: library.plot(rid))
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    @r.get("/{rid:path}/video")
    def video_status(rid: str) -> dict[str, Any]:
        return _call(lambda: library.video_status(rid))  # type: ignore[no-any-return]

    @r.post("/{rid:path}/video", status_code=202)
    def start_video(rid: str) -> JSONResponse:
        try:
            status = _call(lambda: library.start_video(rid))
        except RuntimeError as exc:
            raise HTTPException(503, str(exc)) from None
        return JSONResponse(status, status_code=200 if status["state"] == "done" else 202)

    @r.get("/{rid:path}/video/{camera}.mp4")
    def video_file(rid: str, camera: str) -> FileResponse:
        vids = _call(lambda: library.videos(rid))
        if camera not in vids:
            have = sorted(vids) or "none yet (POST …/video to make them)"
            raise HTTPException(404, f"no video for camera {camera!r} of {rid!r}; videos: {have}")
        path = vids[camera]
        return FileResponse(path, media_type="video/mp4", filename=path.name)

    @r.get("/{rid:path}/file")
    def recording_file(rid: str) -> FileResponse:
        path = _call(lambda: library.resolve(rid))
        return FileResponse(path, media_type="application/octet-stream", filename=path.name)

    return r
