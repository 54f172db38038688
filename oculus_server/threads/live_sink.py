"""Live-sink thread: hands the recording's mapped messages to the Foxglove WebSocket server.

The MCAP-writer thread maps each tick once (`TickMapper`) and `offer`s the messages here; this
thread alone talks to the `LiveServer`. `offer` never blocks: with nobody subscribed it returns
at once (nothing is even queued), and a full queue drops the batch and counts its messages
(`live_dropped`), so a slow viewer can never hold up the writer, let alone the loops. The thread
runs at normal priority, below every loop.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence

from oculus_server.errors import RecordingError
from oculus_server.recording.live import LiveServer
from oculus_server.recording.mapping import Message
from oculus_server.state import SharedState
from oculus_server.threads.base import DaemonThread, Supervisor

log = logging.getLogger(__name__)

LIVE_QUEUE_SIZE = 80  # batches (one per recording tick): 2 s at 40 Hz


class LiveSinkThread(DaemonThread):
    """Owns the `LiveServer` from `open` to stop; publishes what the writer thread offers.

    Args:
        server_factory: binds the server (called by `open`, before the threads start).
    """

    def __init__(self, server_factory: Callable[[], LiveServer], supervisor: Supervisor, state: SharedState,
                 queue_size: int = LIVE_QUEUE_SIZE) -> None:
        super().__init__("live-sink", supervisor, state, realtime_priority=0)
        self._factory = server_factory
        self.server: LiveServer | None = None
        self.error = ""
        self.queue: queue.Queue[Sequence[Message]] = queue.Queue(maxsize=queue_size)

    def open(self) -> bool:
        """Binds the server; False (the reason in `error`, logged) when it cannot serve."""
        try:
            self.server = self._factory()
        except RecordingError as exc:
            self.error = str(exc)
            log.error("%s", exc)
            return False
        log.info("live view: in Foxglove, Open connection -> %s (layout: configs/foxglove_layout.json)",
                 self.server.url)
        return True

    @property
    def wanted(self) -> bool:
        """A client is subscribed to something: worth mapping ticks for (a lock-free read)."""
        server = self.server
        return server is not None and server.wanted

    def offer(self, messages: Sequence[Message]) -> None:
        """Queues a batch for the clients; never blocks (a full queue drops it, counted)."""
        if not messages or not self.wanted:
            return
        try:
            self.queue.put_nowait(messages)
        except queue.Full:
            self.state.count("live_dropped", len(messages))

    def body(self) -> None:
        if self.server is None:
            raise RecordingError("the live view was started without a server (call open() first)")
        while not self.stop_event.is_set():
            try:
                batch = self.queue.get(timeout=0.1)
            except queue.Empty:
                batch = ()
            sent = self.server.publish(batch) if batch else 0
            if sent:
                self.state.count("live_messages", sent)
            self.state.set_queue_depth("live", self.queue.qsize())
            self.state.set_queue_depth("live_subscriptions", self.server.subscriptions)
            self.state.set_queue_depth("live_client_overflows", self.server.client_overflows)

    def cleanup(self) -> None:
        # The SDK's stop waits for each client's close handshake (seconds for one that stopped
        # reading): it finishes in a thread of its own so the daemon's shutdown never waits on it.
        if self.server is not None:
            stopper = threading.Thread(target=self.server.stop, name="live-stop", daemon=True)
            stopper.start()
            stopper.join(timeout=0.5)
