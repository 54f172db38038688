"""The interface both async clients implement (`/v1/stream` and openpi), so the synchronous
wrapper and the daemon's assist thread work with either."""

from __future__ import annotations

from typing import Any, Protocol

from robot_formats.stream.messages import ConnectedMessage, StatsMessage
from vla_client.frames import ImageLike, RobotStateLike
from vla_client.types import ClientState, ClientStats, ReceivedAction


class AsyncStreamingClient(Protocol):
    """A streaming policy client (asyncio); see `VLAStreamingClient` for the semantics."""

    connect_timeout_s: float
    send_timeout_s: float

    @property
    def state(self) -> ClientState: ...

    async def connect(
        self,
        model: str,
        robot_type: str = "franka_panda",
        target_fps: float = 10.0,
        enable_smoothing: bool = True,
        enable_safety: bool = True,
        smoothing_alpha: float | None = None,
        *,
        wait_s: float = 0.0,
    ) -> ConnectedMessage: ...

    def prepare_frame(self, image: ImageLike, instruction: str, robot_state: RobotStateLike | None = None) -> Any:
        """Encodes a frame; pure, callable from any thread."""

    @property
    def session_number(self) -> int:
        """How many sessions this client has opened (0 before the first); a reconnect to
        `/v1/stream` opens a new one (frame ids restart at 0), so (session_number, frame_id)
        names a frame for good."""

    async def send_prepared(self, prepared: Any) -> int:
        """Sends (queues) a frame made by `prepare_frame`; returns its frame id."""

    async def send_frame(
        self, image: ImageLike, instruction: str, robot_state: RobotStateLike | None = None
    ) -> int:
        """Sends one frame; returns the frame id the actions answering it will carry."""

    async def receive_action(self, timeout: float = 1.0, latest: bool = False) -> ReceivedAction: ...

    async def get_stats(self, timeout: float = 1.0) -> StatsMessage: ...

    def client_stats(self) -> ClientStats: ...

    async def close(self, timeout: float = 2.0) -> None: ...
