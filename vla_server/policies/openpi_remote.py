"""`openpi-remote`: forwards observations to a real openpi policy server (e.g. ``pi05_droid``).

Wire format: openpi's (``openpi_client.WebsocketClientPolicy``): a WebSocket to the server's
root, a msgpack metadata frame on connect, then one msgpack-numpy request per `infer` answered by
a map with ``"actions"`` (and ``server_timing``); a text frame instead means a server error
(openpi then closes with 1011). An ``Authorization: Api-Key <key>`` header is sent when a key is
configured. Codec: `robot_formats.openpi_codec` (strict; never pickle).

Mapping (`robot_formats.droid`): our front frame, wrist frame and state become DROID's observation
keys; the server's joint-velocity chunk becomes our (H, 7) actions through the Panda's forward
kinematics. Our clients report the TCP pose, not the joints, so the joints sent are an IK
solution of the reported pose (`robot_formats.kinematics.PandaKinematics`, seeded with the session's previous
solution, so it is continuous and deterministic). Without ``robot_state`` the session's last
joints (home at first) are sent. The gripper sent is the reported one, else the session's last
commanded one, else open.

Connection: opened in `load` (or the first `infer`); a connection lost between calls is reopened
once per call. Every blocking step has a timeout. Over ``wss://`` the socket's reads and writes
take turns (`vla_server.policies.serial_tls`): the client reads in a thread of its own, and OpenSSL
allows one thread per connection at a time.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from robot_formats.action_space import GRIPPER_OPEN
from robot_formats.droid import (
    IMAGE_SIZE,
    DroidMappingError,
    chunk_to_actions,
    make_request,
)
from robot_formats.kinematics import PandaKinematics
from robot_formats.openpi_codec import OpenPICodecError, packb, unpackb
from robot_formats.robot_state import pose_to_pos_quat
from vla_server.policies.base import Observation, Policy, PolicyInfo
from vla_server.policies.serial_tls import serial_tls_context
from vla_server.policies.session_blob import decode_session, encode_session
from vla_server.policies.session_memory import SessionMemory

log = logging.getLogger(__name__)
SESSION_FORMAT = 1  # version of `export_session`'s bytes
MAX_SESSIONS = 256


class OpenPIRemoteError(RuntimeError):
    """The openpi server could not be reached, refused us, failed, or answered something unusable."""


@dataclass(frozen=True)
class OpenPIRemoteParams:
    """Parameters of `OpenPIRemotePolicy`.

    Attributes:
        url: the server, ``ws://HOST:PORT`` (openpi serves at the root path).
        api_key: key sent as ``Authorization: Api-Key <key>`` (prefer `api_key_env`).
        api_key_env: environment variable holding the key ("" = none).
        connect_timeout_s: WebSocket opening handshake and metadata frame, s.
        infer_timeout_s: wait for one reply, s.
        image_size: side of the square images sent, px (DROID models: 224).
        binarize_gripper: threshold the gripper at 0.5 as DROID's example does.
        action_horizon: rows expected per chunk (reported before the first reply).
        max_message_mb: largest reply accepted, MiB.
    """

    url: str | None = None
    api_key: str | None = None
    api_key_env: str = ""
    connect_timeout_s: float = 10.0
    infer_timeout_s: float = 30.0
    image_size: int = IMAGE_SIZE
    binarize_gripper: bool = True
    action_horizon: int = 10
    max_message_mb: float = 64.0

    def __post_init__(self) -> None:
        if not self.url or not self.url.startswith(("ws://", "wss://")):
            raise ValueError(f"url: expected 'ws://HOST:PORT' of an openpi policy server, got {self.url!r}")
        for name in ("connect_timeout_s", "infer_timeout_s", "max_message_mb"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected > 0, got {getattr(self, name)}")
        if not 16 <= self.image_size <= 1024 or self.action_horizon < 1:
            raise ValueError(f"image_size 16..1024 and action_horizon >= 1 expected, got {self.image_size}, "
                             f"{self.action_horizon}")


@dataclass
class _Session:
    q: np.ndarray | None = None  # (7,) last joints sent, rad
    gripper: float = GRIPPER_OPEN  # last gripper commanded, −1 … +1


def _session_from_doc(doc: dict[str, Any]) -> _Session:
    """A `_Session` from `export_session`'s fields (ValueError/KeyError/TypeError on a bad one)."""
    q = None if doc["q"] is None else np.array([float(v) for v in doc["q"]])
    if q is not None and q.shape != (7,):
        raise ValueError(f"joints: expected 7, got {q.shape}")
    return _Session(q=q, gripper=float(doc["gripper"]))


class OpenPIRemotePolicy(Policy):
    """A remote openpi policy; see the module docstring.

    Args:
        params: server and mapping parameters.
        kinematics: Panda kinematics (built in `load` when None).
    """

    def __init__(self, params: OpenPIRemoteParams, kinematics: PandaKinematics | None = None) -> None:
        self.params = params
        self.kin = kinematics
        self._ws: Any = None
        self._stack: contextlib.ExitStack | None = None
        self.metadata: dict[str, Any] = {}
        self.last_server_timing: dict[str, Any] = {}
        self._horizon = params.action_horizon
        self._sessions: SessionMemory[_Session] = SessionMemory(_Session, MAX_SESSIONS)

    def info(self) -> PolicyInfo:
        return PolicyInfo(
            name="openpi-remote",
            backend="openpi-remote",
            action_horizon=self._horizon,
            description=f"openpi policy server at {self.params.url} (DROID keys, joint velocities via FK)",
            extra={"url": self.params.url, "server_metadata": dict(self.metadata)},
        )

    def _api_key(self) -> str | None:
        if self.params.api_key_env:
            key = os.environ.get(self.params.api_key_env)
            if not key:
                raise OpenPIRemoteError(f"environment variable {self.params.api_key_env} (the API key) is not set")
            return key
        return self.params.api_key

    def _connect(self) -> None:
        from websockets.exceptions import InvalidStatus, WebSocketException
        from websockets.sync.client import connect

        key = self._api_key()
        headers = {"Authorization": f"Api-Key {key}"} if key else None
        url = str(self.params.url)  # validated: ws:// or wss://
        stack = contextlib.ExitStack()  # a connection is a context manager (websockets >= 17)
        try:
            ws = stack.enter_context(connect(
                url, open_timeout=self.params.connect_timeout_s, close_timeout=2.0, compression=None,
                max_size=int(self.params.max_message_mb * 1024 * 1024), additional_headers=headers,
                ssl=serial_tls_context() if url.startswith("wss://") else None,
            ))
        except InvalidStatus as exc:
            code = exc.response.status_code
            raise OpenPIRemoteError(
                f"openpi server {url} refused the connection: HTTP {code}"
                + (" (wrong or missing API key)" if code in (401, 403) else "")
            ) from exc
        except (OSError, TimeoutError, WebSocketException) as exc:
            raise OpenPIRemoteError(f"cannot connect to the openpi server {url}: {type(exc).__name__}: {exc}") from exc
        try:
            meta = self._decode(ws.recv(timeout=self.params.connect_timeout_s), "metadata")
        except TimeoutError as exc:
            stack.close()
            raise OpenPIRemoteError(f"openpi server {url} sent no metadata within "
                                    f"{self.params.connect_timeout_s} s") from exc
        except BaseException:
            stack.close()
            raise
        self.metadata = meta if isinstance(meta, dict) else {"metadata": meta}
        self._ws, self._stack = ws, stack
        log.info("connected to openpi server %s (metadata keys %s)", url, sorted(self.metadata))

    def _decode(self, frame: object, what: str) -> Any:
        if isinstance(frame, str):
            raise OpenPIRemoteError(f"openpi server error ({what}): {frame[:2000]}")
        try:
            return unpackb(frame)  # type: ignore[arg-type]
        except OpenPICodecError as exc:
            raise OpenPIRemoteError(f"openpi server sent an undecodable {what} frame: {exc}") from exc

    def load(self) -> None:
        if self.kin is None:
            self.kin = PandaKinematics()
        if self._ws is None:
            self._connect()

    def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        """Sends one request and returns the decoded reply, reconnecting once if the link dropped."""
        from websockets.exceptions import ConnectionClosed

        data = packb(request)
        for attempt in (1, 2):
            if self._ws is None:
                self._connect()
            try:
                self._ws.send(data)
                frame = self._ws.recv(timeout=self.params.infer_timeout_s)
            except ConnectionClosed as exc:
                self.close()
                if attempt == 2:
                    raise OpenPIRemoteError(f"openpi server {self.params.url} closed the connection: {exc}") from exc
                log.warning("openpi connection lost (%s); reconnecting once", exc)
                continue
            except TimeoutError as exc:
                self.close()  # the reply may still come: never pair it with the next request
                raise OpenPIRemoteError(
                    f"openpi server {self.params.url} did not answer within {self.params.infer_timeout_s} s"
                ) from exc
            if isinstance(frame, str):
                self.close()  # openpi closes after an error frame
            reply = self._decode(frame, "reply")
            if not isinstance(reply, dict) or "actions" not in reply:
                keys = sorted(reply) if isinstance(reply, dict) else type(reply).__name__
                raise OpenPIRemoteError(f"openpi reply: expected a map with 'actions', got {keys}")
            return reply
        raise AssertionError("unreachable")

    def infer(self, obs: Observation) -> np.ndarray:
        if self.kin is None or self._ws is None:
            self.load()
        kin = self.kin
        assert kin is not None
        image = np.asarray(obs.image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image: expected (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
        s = self._sessions.use(obs.session)
        q = s.q if s.q is not None else kin.home
        gripper = s.gripper
        if obs.robot_state is not None:
            pos, quat = pose_to_pos_quat(obs.robot_state.pose)
            ik = kin.solve_ik(pos, quat, seed=q)
            if not ik.converged:
                log.debug("IK residual %.4f m / %.4f rad for the reported pose", ik.pos_err, ik.rot_err)
            q = ik.q
            if obs.robot_state.gripper is not None:
                gripper = float(obs.robot_state.gripper)
        request = make_request(image, obs.wrist_image, q, gripper, obs.instruction, self.params.image_size)
        reply = self._call(request)
        try:
            actions, _ = chunk_to_actions(reply["actions"], q, kin, self.params.binarize_gripper)
        except DroidMappingError as exc:
            raise OpenPIRemoteError(f"openpi reply: {exc}") from exc
        timing = reply.get("server_timing")
        self.last_server_timing = dict(timing) if isinstance(timing, dict) else {}
        self._horizon = len(actions)
        s.q = q
        s.gripper = float(actions[0, 6])
        return actions

    def end_session(self, session: str) -> None:
        self._sessions.pop(session)

    def export_session(self, session: str) -> bytes:
        """The session's last joints and gripper as JSON bytes (b"" when there is none)."""
        s = self._sessions.get(session)
        if s is None:
            return b""
        q = None if s.q is None else [float(v) for v in s.q]
        return encode_session(SESSION_FORMAT, {"q": q, "gripper": s.gripper})

    def import_session(self, session: str, data: bytes) -> None:
        """Restores what `export_session` returned (b"": forget the session).

        Raises:
            ValueError: bytes that are not an exported openpi-remote session.
        """
        if not data:
            self._sessions.pop(session)
            return
        s = decode_session(data, SESSION_FORMAT, "openpi-remote", _session_from_doc)
        self._sessions.put(session, s)

    def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                ws.close()
            except Exception:
                log.debug("closing the openpi connection failed", exc_info=True)
