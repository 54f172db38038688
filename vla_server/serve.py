"""Runs the service: the main app (HTTP + ``/v1/stream``, uvicorn) and the openpi-compatible
endpoint on a second port (a `websockets` server, no ASGI stack), in one process and one event
loop (so they share the registry).

Shutdown (SIGINT / SIGTERM, or one listener failing): every stream session gets an `error` and a
close (1001, "server shutting down"), both servers stop accepting and finish, then the app's
lifespan stops the workers. A second signal forces the exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import socket
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from websockets.asyncio.server import Server as WebSocketServer

from vla_server.app import create_app
from vla_server.config import ServiceConfig
from vla_server.openpi.server import OpenPIApp
from vla_server.openpi_endpoint import create_openpi_endpoint

log = logging.getLogger("vla_server.serve")


class PortInUse(OSError):
    """A listening port is taken; the message names it."""


class _Server(uvicorn.Server):
    """uvicorn server whose signal handling is left to `run_service` (two servers, one process)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket; raises `PortInUse` with a hint when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise PortInUse(f"cannot listen on {host}:{port}: {exc.strerror}; is another vla-server running? "
                        f"(choose another with --port / --openpi-port)") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


async def run_service(config: ServiceConfig, *, ready: Callable[[dict[str, int]], None] | None = None,
                      stop: asyncio.Event | None = None) -> int:
    """Serves until a signal (or `stop`); returns the exit code.

    Args:
        config: the configuration.
        ready: called with ``{"port": .., "openpi_port": ..}`` (actual ports) once both listen.
        stop: an event that stops the service when set (tests); signals always do.
    """
    app = create_app(config)
    main_sock = bind(config.server.host, config.server.port)
    socks = [main_sock]
    ws_max = config.transport_max_bytes
    main = _Server(uvicorn.Config(app, log_config=None, ws="websockets-sansio", ws_max_size=ws_max,
                                  lifespan="on",
                                  timeout_graceful_shutdown=math.ceil(config.server.shutdown_timeout_s)))
    servers: list[tuple[_Server, socket.socket]] = [(main, main_sock)]
    ports = {"port": main_sock.getsockname()[1], "openpi_port": None}
    bridge: OpenPIApp | None = None
    if config.server.openpi_port is not None:
        model = config.server.openpi_model or next(iter(app.state.catalog), None)
        if model is None or model not in app.state.catalog:
            main_sock.close()
            raise ValueError(f"server.openpi_model: {model!r} is not in the catalog {sorted(app.state.catalog)}")
        bridge = create_openpi_endpoint(app.state.registry, app.state.keystore, model, ws_max,
                                        config.registry.infer_timeout_s, sessions=app.state.sessions,
                                        max_frame_pixels=config.stream.max_frame_pixels, ws_max_size=ws_max,
                                        handover=config.server.openpi_handover)
        try:
            openpi_sock = bind(config.server.host, config.server.openpi_port)
        except PortInUse:
            main_sock.close()
            raise
        socks.append(openpi_sock)
        ports["openpi_port"] = openpi_sock.getsockname()[1]
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        log.info("signal", extra={"event": "signal", "signal": signal.Signals(signum).name})
        if signals > 1:
            for srv, _ in servers:
                srv.force_exit = True
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal, sig)
    tasks = [loop.create_task(srv.serve(sockets=[sock]), name=f"uvicorn-{sock.getsockname()[1]}")
             for srv, sock in servers]
    openpi_server: WebSocketServer | None = None
    try:
        while not all(srv.started for srv, _ in servers):
            if any(t.done() for t in tasks) or stop.is_set():
                break
            await asyncio.sleep(0.02)
        else:
            if bridge is not None:  # the openpi endpoint: a websockets server in this loop, once the app is up
                openpi_server = await bridge.serve(openpi_sock, ws_max)
            log.info("listening", extra={"event": "listening", "host": config.server.host, **ports})
            if ready is not None:
                ready(dict(ports))  # type: ignore[arg-type]
        stopper = loop.create_task(stop.wait())
        await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        await app.state.sessions.close_all("server shutting down", timeout_s=config.server.shutdown_timeout_s)
        for srv, _ in servers:
            srv.should_exit = True
        if openpi_server is not None:
            openpi_server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(openpi_server.wait_closed(), 2.0)
        results: list[Any] = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        for sock in socks:
            sock.close()
    failed = [r for r in results if isinstance(r, BaseException)]
    for r in failed:
        log.error("server failed", extra={"event": "server_failed", "error": repr(r)})
    return 1 if failed or not main.started else 0
