"""`AssistChannel`: what the assist thread, the control thread, the recorder and the dashboard
share about assist (one lock; immutable values in and out). It lives in `SharedState.assist`.

======================  =============  ============================================================
value                   written by     read by
======================  =============  ============================================================
newest `AssistAction`   assist thread  control thread (blender)
`AssistStatus`          assist thread  control thread (link up?), dashboard, recorder (~1 Hz)
`BlendRecord` s         control        recorder (each once), dashboard (the newest)
======================  =============  ============================================================
"""

from __future__ import annotations

import threading
from collections import deque

from robot_formats.recording.records import AssistAction, AssistStatus, AssistTick, BlendRecord

LOG_SLOTS = 4096  # actions / blend records kept for the recorder (~100 s at 40 Hz)


class AssistChannel:
    """Thread-safe exchange of assist values; every method returns at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._action: AssistAction | None = None
        self._status: AssistStatus | None = None
        self._blend: BlendRecord | None = None
        self._actions: deque[AssistAction] = deque(maxlen=LOG_SLOTS)
        self._blends: deque[BlendRecord] = deque(maxlen=LOG_SLOTS)
        self._status_pending: AssistStatus | None = None

    # -- assist thread ---------------------------------------------------------------------------
    def publish_action(self, action: AssistAction) -> None:
        """Makes `action` the newest (and queues it for the recording)."""
        action.action.flags.writeable = False
        with self._lock:
            self._action = action
            self._actions.append(action)

    def set_status(self, status: AssistStatus, record: bool = False) -> None:
        """Publishes the link and figures; `record` also queues them for `/assist/status`."""
        with self._lock:
            self._status = status
            if record:
                self._status_pending = status

    # -- control thread --------------------------------------------------------------------------
    def action(self) -> AssistAction | None:
        """The newest policy action (None before the first)."""
        with self._lock:
            return self._action

    def status(self) -> AssistStatus | None:
        """The newest link status (None: no assist thread)."""
        with self._lock:
            return self._status

    def add_blend(self, record: BlendRecord) -> None:
        """One control tick's blend (for the recording and the dashboard)."""
        with self._lock:
            self._blend = record
            self._blends.append(record)

    # -- dashboard / recorder --------------------------------------------------------------------
    def blend(self) -> BlendRecord | None:
        """The newest blend record."""
        with self._lock:
            return self._blend

    @property
    def active(self) -> bool:
        """Anything was ever published (assist configured and running)."""
        with self._lock:
            return self._status is not None or self._blend is not None

    def take(self) -> AssistTick | None:
        """Returns and forgets what came since the previous call (None: nothing)."""
        with self._lock:
            if not (self._actions or self._blends or self._status_pending):
                return None
            tick = AssistTick(tuple(self._actions), tuple(self._blends), self._status_pending)
            self._actions.clear()
            self._blends.clear()
            self._status_pending = None
        return tick
