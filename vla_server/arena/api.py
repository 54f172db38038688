"""The arena's HTTP API: `create_arena_router(runtime, require_reader, require_admin)`.

All routes are under ``/v1/arena``; reading needs any key (`require_reader`), anything that runs
or changes something the admin tier (`require_admin`). Errors are JSON ``{"detail": "..."}`` with
400 (bad request), 404 (unknown id), 409 (wrong state) or 422 (invalid body).

==========  ==========================================  =======================================
method      path                                        what
==========  ==========================================  =======================================
GET         /v1/arena/status                            counts per state, executor, workers
GET         /v1/arena/models                            models the arena runs (default latency)
POST        /v1/arena/episodes                          new episode (body: `EpisodeSpec` fields,
                                                        plus ``from_recording`` + ``at_s``, and
                                                        ``live``: true to watch it in Foxglove)
GET         /v1/arena/episodes                          list (``model``, ``status``, ``success``,
                                                        ``battle_id``, ``limit``, ``offset``)
GET         /v1/arena/episodes/{id}                     status, progress (step of total), spec,
                                                        metrics, files, urls, ``live`` (state,
                                                        ws:// url, Foxglove links) while it runs
GET         /v1/arena/episodes/{id}/log                 log lines from ``offset``
GET         /v1/arena/episodes/{id}/events              server-sent events: ``progress``,
                                                        ``log``, then ``end`` with the status
GET         /v1/arena/episodes/{id}/video               MP4 (H.264), range requests
GET         /v1/arena/episodes/{id}/thumbnail           JPEG
GET         /v1/arena/episodes/{id}/trajectory          MCAP (teleop topics)
GET         /v1/arena/episodes/{id}/blob                final state blob (text)
GET         /v1/arena/episodes/{id}/start_blob          start state blob (text)
POST        /v1/arena/episodes/{id}/cancel              cancel a queued or running episode
POST        /v1/arena/episodes/{id}/rerun               run a finished episode again (same id)
POST        /v1/arena/battles                           new battle (body: `EpisodeSpec` fields
                                                        with ``model_a``, ``model_b``,
                                                        ``outcome_by`` "metric" or "vote")
GET         /v1/arena/battles                           list (``status``, ``limit``, ``offset``)
GET         /v1/arena/battles/{id}                      battle with both episodes
POST        /v1/arena/battles/{id}/vote                 ``{"winner": "a" | "b" | "tie"}``
GET         /v1/arena/leaderboard                       Bradley–Terry table (``rounds``)
==========  ==========================================  =======================================

Browsers cannot send headers with ``<video src>`` or ``EventSource``; the auth dependencies also
accept the key as ``?api_key=`` (see `vla_server.auth.deps`).

An episode posted with ``"live": true`` is served while it runs by the process that runs it (a
thread of the service, or its pool worker) on a Foxglove WebSocket server at 127.0.0.1 (config
``server.arena_live_port`` or the next free port), paced to real time; Ray tasks run on other
machines, whose loopback nobody here can open, so the Ray executor refuses it.
"""

# No `from __future__ import annotations`: FastAPI reads the dependency annotations at run time.
import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, status
from fastapi.responses import FileResponse, PlainTextResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from vla_server.arena.battles import BattleError
from vla_server.arena.blob import BlobError
from vla_server.arena.config import EpisodeSpec, SpecError
from vla_server.arena.live import LiveOptions
from vla_server.arena.models import ModelNotFound
from vla_server.arena.recording_start import RecordingStartError
from vla_server.arena.runtime import ArenaConfig, ArenaRuntime, spec_with_start
from vla_server.arena.store import StoreError
from vla_server.arena.work import FINISHED

PREFIX = "/v1/arena"
SSE_POLL_S = 0.25
SSE_HEARTBEAT_S = 10.0
MAX_LIST = 500
UNPROCESSABLE = 422  # the body is well-formed JSON but not a valid request

_FILES = {
    "video": ("video.mp4", "video/mp4"),
    "thumbnail": ("thumb.jpg", "image/jpeg"),
    "trajectory": ("trajectory.mcap", "application/octet-stream"),
    "blob": ("final.blob", "text/plain"),
    "start_blob": ("start.blob", "text/plain"),
}


def _urls(eid: str) -> dict[str, str]:
    return {k: f"{PREFIX}/episodes/{eid}/{k}" for k in (*_FILES, "log", "events")}


def _with_urls(ep: dict[str, Any]) -> dict[str, Any]:
    return ep | {"urls": _urls(ep["id"])}


def _bad(exc: Exception) -> HTTPException:
    return HTTPException(status.HTTP_400_BAD_REQUEST, str(exc))


def _voter(key: Any) -> str:
    return str(getattr(key, "name", "") or "")


def create_arena_router(runtime: ArenaRuntime, require_reader: Callable[..., Any],
                        require_admin: Callable[..., Any]) -> APIRouter:
    """The arena's routes on `runtime` (see module doc), guarded by the given auth dependencies."""
    router = APIRouter(prefix=PREFIX, tags=["arena"])
    jobs, store, battles = runtime.jobs, runtime.store, runtime.battles
    reader = [Depends(require_reader)]

    def episode_or_404(eid: str) -> dict[str, Any]:
        try:
            return jobs.status(eid)
        except StoreError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None

    def parse_spec(body: dict[str, Any]) -> EpisodeSpec:
        body = dict(body)
        rec, at = body.pop("from_recording", None), body.pop("at_s", None)
        try:
            spec = EpisodeSpec.from_dict(body)
            if rec is not None:
                if not isinstance(rec, str) or (at is not None and not isinstance(at, (int, float))):
                    raise SpecError("from_recording: expected a recording name and at_s: seconds")
                spec, _ = spec_with_start(spec, runtime.recording_path(rec), None if at is None else float(at))
            return spec
        except (SpecError, RecordingStartError, BlobError) as exc:
            raise HTTPException(UNPROCESSABLE, str(exc)) from None
        except TypeError as exc:
            raise HTTPException(UNPROCESSABLE, f"episode spec: {exc}") from None

    @router.get("/status", dependencies=reader)
    def arena_status() -> dict[str, Any]:
        return {"episodes": store.counts(), "executor": runtime.executor.describe(),
                "capacity": runtime.executor.capacity, "data_dir": str(Path(runtime.config.data_dir))}

    @router.get("/models", dependencies=reader)
    def arena_models() -> dict[str, Any]:
        return {"models": jobs.models()}

    def parse_live(body: dict[str, Any], spec: EpisodeSpec) -> LiveOptions | None:
        want = body.get("live", False)
        if not isinstance(want, bool):
            raise HTTPException(UNPROCESSABLE, f"live: expected true or false, got {want!r}")
        if not want:
            return None
        if runtime.executor.name == "ray":
            raise HTTPException(UNPROCESSABLE, "live: episodes on the Ray executor run on other machines, whose "
                                "127.0.0.1 cannot be opened here; serve with --arena-executor local or inline")
        if not spec.trajectory:
            raise HTTPException(UNPROCESSABLE, "live: the live view publishes the trajectory's topics; "
                                "drop trajectory: false")
        return LiveOptions(port=runtime.config.live_port)

    @router.post("/episodes", status_code=status.HTTP_201_CREATED)
    def create_episode(
        body: Annotated[dict[str, Any], Body()], key: Annotated[Any, Depends(require_admin)]
    ) -> dict[str, Any]:
        body = dict(body)
        want_live = {"live": body.pop("live")} if "live" in body else {}
        spec = parse_spec(body)
        live = parse_live(want_live, spec)
        try:
            eid = jobs.submit(spec, live=live)
        except ModelNotFound as exc:
            raise HTTPException(UNPROCESSABLE, str(exc)) from None
        store.append_log(eid, f"requested by {_voter(key) or 'an admin key'}" + (" (watched live)" if live else ""))
        return _with_urls(jobs.status(eid))

    @router.get("/episodes", dependencies=reader)
    def list_episodes(model: str | None = None, status_: str | None = Query(None, alias="status"),
                      success: bool | None = None, battle_id: str | None = None,
                      limit: int = Query(50, ge=1, le=MAX_LIST), offset: int = Query(0, ge=0)) -> dict[str, Any]:
        eps = store.list_episodes(model, status_, success, battle_id, limit, offset)
        return {"episodes": [_with_urls(e) for e in eps], "total": store.count_episodes()}

    @router.get("/episodes/{eid}", dependencies=reader)
    def get_episode(eid: str) -> dict[str, Any]:
        return _with_urls(episode_or_404(eid))

    @router.get("/episodes/{eid}/log", dependencies=reader)
    def get_log(eid: str, offset: int = Query(0, ge=0)) -> dict[str, Any]:
        episode_or_404(eid)
        lines = jobs.log_lines(eid, offset)
        return {"lines": lines, "next_offset": offset + len(lines)}

    @router.get("/episodes/{eid}/events", dependencies=reader)
    async def episode_events(eid: str, request: Request, offset: int = Query(0, ge=0)) -> StreamingResponse:
        await run_in_threadpool(episode_or_404, eid)

        async def stream() -> AsyncIterator[bytes]:
            sent = offset
            last_progress: tuple[Any, ...] | None = None
            quiet = 0.0
            while True:
                ep = await run_in_threadpool(jobs.status, eid)
                lines = await run_in_threadpool(jobs.log_lines, eid, sent)
                for line in lines:
                    yield _sse("log", {"line": line, "n": sent})
                    sent += 1
                prog = (ep["status"], ep["step"], ep["total"], json.dumps(ep.get("live")))
                if prog != last_progress:
                    last_progress = prog
                    yield _sse("progress", {"status": ep["status"], "step": ep["step"], "total": ep["total"]}
                               | ({"live": ep["live"]} if "live" in ep else {}))
                    quiet = 0.0
                if ep["status"] in FINISHED:
                    yield _sse("end", _with_urls(ep))
                    return
                if await request.is_disconnected() or _stopping(request):
                    return  # at shutdown the stream ends at once (the page reconnects to the next start)
                await asyncio.sleep(SSE_POLL_S)
                quiet += SSE_POLL_S
                if quiet >= SSE_HEARTBEAT_S:
                    quiet = 0.0
                    yield b": keep-alive\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    def _stopping(request: Request) -> bool:
        sessions = getattr(request.app.state, "sessions", None)
        return sessions is not None and not getattr(sessions, "accepting", True)

    def file_route(kind: str) -> None:
        name, media = _FILES[kind]

        @router.get(f"/episodes/{{eid}}/{kind}", dependencies=reader, name=f"episode_{kind}")
        def get_file(eid: str) -> Any:
            episode_or_404(eid)
            path = store.file_path(eid, name)
            if path is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"episode {eid} has no {kind} (yet)")
            if media == "text/plain":
                return PlainTextResponse(path.read_text())
            return FileResponse(path, media_type=media, filename=f"{eid}-{name}")

    for kind in _FILES:
        file_route(kind)

    @router.post("/episodes/{eid}/cancel", dependencies=[Depends(require_admin)])
    def cancel_episode(eid: str) -> dict[str, Any]:
        episode_or_404(eid)
        if not jobs.cancel(eid):
            raise HTTPException(status.HTTP_409_CONFLICT, f"episode {eid} has already finished")
        return _with_urls(jobs.status(eid))

    @router.post("/episodes/{eid}/rerun", dependencies=[Depends(require_admin)])
    def rerun_episode(eid: str) -> dict[str, Any]:
        ep = episode_or_404(eid)
        if ep["status"] not in FINISHED:
            raise HTTPException(status.HTTP_409_CONFLICT, f"episode {eid} is {ep['status']}; wait for it to finish")
        try:
            jobs.rerun(eid)
        except StoreError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        return _with_urls(jobs.status(eid))

    @router.post("/battles", status_code=status.HTTP_201_CREATED, dependencies=[Depends(require_admin)])
    def create_battle(body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        body = dict(body)
        model_a, model_b = body.pop("model_a", None), body.pop("model_b", None)
        outcome_by = body.pop("outcome_by", "metric")
        if not isinstance(model_a, str) or not isinstance(model_b, str):
            raise HTTPException(UNPROCESSABLE, "battle: model_a and model_b are required")
        spec = parse_spec(body | {"model": model_a})
        try:
            bid = battles.create(spec, model_b, outcome_by)
        except (BattleError, ModelNotFound) as exc:
            raise HTTPException(UNPROCESSABLE, str(exc)) from None
        return _battle(bid)

    def _battle(bid: str) -> dict[str, Any]:
        try:
            b = battles.get(bid)
        except StoreError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
        b["episodes"] = {s: _with_urls(e) if e else None for s, e in b["episodes"].items()}
        return b

    @router.get("/battles", dependencies=reader)
    def list_battles(status_: str | None = Query(None, alias="status"), limit: int = Query(50, ge=1, le=MAX_LIST),
                     offset: int = Query(0, ge=0)) -> dict[str, Any]:
        return {"battles": [_battle(b["id"]) for b in store.list_battles(limit, offset, status_)]}

    @router.get("/battles/{bid}", dependencies=reader)
    def get_battle(bid: str) -> dict[str, Any]:
        return _battle(bid)

    @router.post("/battles/{bid}/vote")
    def vote(
        bid: str, body: Annotated[dict[str, Any], Body()], key: Annotated[Any, Depends(require_admin)]
    ) -> dict[str, Any]:
        _battle(bid)
        winner = body.get("winner")
        try:
            battles.vote(bid, str(winner), _voter(key))
        except BattleError as exc:
            code = UNPROCESSABLE if "expected winner" in str(exc) else status.HTTP_409_CONFLICT
            raise HTTPException(code, str(exc)) from None
        return _battle(bid)

    @router.get("/leaderboard", dependencies=reader)
    def get_leaderboard(rounds: int = Query(200, ge=0, le=2000)) -> dict[str, Any]:
        rows = runtime.leaderboard(rounds)
        return {"rows": [r.to_dict() for r in rows], "battles": len(store.decided_battles()), "rounds": rounds,
                "method": "Bradley-Terry MLE (ties = half a win each), Elo scale, bootstrap 95% CI"}

    return router


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def mount_arena(app: Any, config: ArenaConfig) -> ArenaRuntime:
    """Creates the arena for a service app and mounts its routes (auth: the service's key store).

    The app keeps it in ``app.state.arena``; call ``app.state.arena.close()`` at shutdown (it
    stops the worker pool; unfinished episodes become "cancelled" and can be rerun).
    """
    from vla_server.auth.deps import require_admin, require_reader

    runtime = ArenaRuntime(config)
    app.state.arena = runtime
    app.include_router(create_arena_router(runtime, require_reader, require_admin))
    return runtime
