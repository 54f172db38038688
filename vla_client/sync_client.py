"""`SyncVLAStreamingClient`: a thread-safe blocking wrapper around either async client.

It owns an event loop in a daemon thread ("vla-client-loop") and runs the async client's
coroutines there; every method blocks the calling thread at most its timeout (plus a small
margin) and re-raises the async client's typed errors. Frames are encoded (JPEG) in the caller's
thread, so the loop only moves bytes. Any number of threads may call it at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, Self, TypeVar

from robot_formats.stream.messages import ConnectedMessage, StatsMessage
from vla_client.base import AsyncStreamingClient
from vla_client.errors import NotConnected, Timeout
from vla_client.frames import ImageLike, RobotStateLike
from vla_client.stream_client import VLAStreamingClient
from vla_client.types import ClientState, ClientStats, ReceivedAction

T = TypeVar("T")
MARGIN_S = 2.0  # beyond a call's own timeout, how long the caller waits for the loop thread


class SyncVLAStreamingClient:
    """Blocking, thread-safe client; wraps a `VLAStreamingClient` (default) or an `OpenPIClient`.

    Args:
        client: the async client to drive; when None, one is built as
            ``VLAStreamingClient(url, api_key, **kwargs)``.
        url, api_key, kwargs: passed to `VLAStreamingClient` when `client` is None.
    """

    def __init__(
        self, url: str | None = None, api_key: str = "", *, client: AsyncStreamingClient | None = None, **kwargs: Any
    ) -> None:
        if client is None:
            client = (
                VLAStreamingClient(url, api_key, **kwargs) if url else VLAStreamingClient(api_key=api_key, **kwargs)
            )
        elif url is not None or kwargs:
            raise ValueError("give either a client or url/api_key/options, not both")
        self.client = client
        self._loop = asyncio.new_event_loop()
        self._closed = False
        self._thread = threading.Thread(target=self._run_loop, name="vla-client-loop", daemon=True)
        self._thread.start()

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def _call(self, coro: Coroutine[Any, Any, T], timeout_s: float) -> T:
        if self._closed:
            coro.close()
            raise NotConnected("the client was closed")
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        # wait, then read the result: the async client's own `Timeout` is a TimeoutError too and
        # must reach the caller as it is, not as "the loop did not answer"
        done, _ = concurrent.futures.wait([fut], timeout_s + MARGIN_S)
        if not done:
            fut.cancel()
            raise Timeout(f"the client's event loop did not answer within {timeout_s + MARGIN_S:.1f} s")
        return fut.result()

    @property
    def state(self) -> ClientState:
        """The async client's state (a plain read; safe from any thread)."""
        return self.client.state

    def connect(
        self,
        model: str,
        robot_type: str = "franka_panda",
        target_fps: float = 10.0,
        enable_smoothing: bool = True,
        enable_safety: bool = True,
        smoothing_alpha: float | None = None,
        *,
        wait_s: float = 0.0,
    ) -> ConnectedMessage:
        """See `VLAStreamingClient.connect`; blocks up to the connect timeout (+ `wait_s`)."""
        budget = self.client.connect_timeout_s * 2 + wait_s
        return self._call(
            self.client.connect(
                model, robot_type, target_fps, enable_smoothing, enable_safety, smoothing_alpha, wait_s=wait_s
            ),
            budget,
        )

    def send_frame(self, image: ImageLike, instruction: str, robot_state: RobotStateLike | None = None) -> int:
        """Encodes the frame in this thread, then sends it; returns its frame id (see
        `VLAStreamingClient.send_frame`)."""
        prepared = self.client.prepare_frame(image, instruction, robot_state)
        return int(self._call(self.client.send_prepared(prepared), self.client.send_timeout_s))

    @property
    def session_number(self) -> int:
        """The current session's number (with a frame id, names a frame; see `ReceivedAction`)."""
        return self.client.session_number

    def receive_action(self, timeout: float = 1.0, latest: bool = False) -> ReceivedAction:
        """See `VLAStreamingClient.receive_action`."""
        return self._call(self.client.receive_action(timeout, latest), timeout)

    def get_stats(self, timeout: float = 1.0) -> StatsMessage:
        """See `VLAStreamingClient.get_stats`."""
        return self._call(self.client.get_stats(timeout), timeout)

    def client_stats(self) -> ClientStats:
        """Client-side counters (read on the loop thread for a consistent snapshot)."""
        async def snap() -> ClientStats:
            return self.client.client_stats()

        return self._call(snap(), 1.0)

    def close(self, timeout: float = 2.0) -> None:
        """Closes the session and stops the loop thread. Idempotent."""
        if self._closed:
            return
        try:
            self._call(self.client.close(timeout), timeout)
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout + MARGIN_S)
            if not self._thread.is_alive():
                self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
