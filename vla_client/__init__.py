"""Clients of VLA policy services: `/v1/stream` (`VLAStreamingClient`) and openpi servers
(`OpenPIClient`), with one interface, typed errors and a thread-safe blocking wrapper
(`SyncVLAStreamingClient`) for callers outside asyncio (the daemon's assist thread);
`make_client(url)` picks the client from the URL (``ws://…/v1/stream`` or ``openpi://HOST:PORT``).

Ten lines::

    from vla_client import SyncVLAStreamingClient
    with SyncVLAStreamingClient("ws://127.0.0.1:8000/v1/stream", api_key) as client:
        client.connect("color-reach", target_fps=10)
        for image, pose in camera():
            client.send_frame(image, "pick up the red cube", {"pose": pose})
            action = client.receive_action(timeout=1.0).action  # (7,) see robot_formats.action_space

Installable on its own (a robot PC needs the client, not the service): it imports only the shared
contract `robot_formats` (which brings `frankateach`'s constants) and these third-party packages:
``numpy``, ``websockets`` (≥ 13), ``msgpack`` (openpi codec) and ``pillow`` (JPEG frames). Never
`vla_server` or `oculus_server` (import-linter checks it). The Panda kinematics the DROID adapter
needs are `robot_formats.kinematics` (numpy, no MuJoCo).
"""

from vla_client.backoff import Backoff
from vla_client.chunks import ChunkScheduler
from vla_client.errors import (
    AuthError,
    ConnectionLost,
    ModelNotFound,
    NotConnected,
    ProtocolViolation,
    RateLimitError,
    ServerError,
    SessionRejected,
    Timeout,
    UnsupportedRobot,
    VLAClientError,
)
from vla_client.factory import make_client
from vla_client.openpi_adapters import DroidAdapter, NativeAdapter, OpenPIAdapter
from vla_client.openpi_client import OpenPIClient
from vla_client.stream_client import DEFAULT_URL, VLAStreamingClient
from vla_client.sync_client import SyncVLAStreamingClient
from vla_client.types import ClientState, ClientStats, ReceivedAction

__all__ = [
    "DEFAULT_URL",
    "AuthError",
    "Backoff",
    "ChunkScheduler",
    "ClientState",
    "ClientStats",
    "ConnectionLost",
    "DroidAdapter",
    "ModelNotFound",
    "NativeAdapter",
    "NotConnected",
    "OpenPIAdapter",
    "OpenPIClient",
    "ProtocolViolation",
    "RateLimitError",
    "ReceivedAction",
    "ServerError",
    "SessionRejected",
    "SyncVLAStreamingClient",
    "Timeout",
    "UnsupportedRobot",
    "VLAClientError",
    "VLAStreamingClient",
    "make_client",
]
