"""RealtimeKit (rtkit): real-time scheduling for a user without privileges, asked over D-Bus.

Desktop Linux (Debian, Ubuntu, Fedora, Arch: wherever PipeWire or PulseAudio runs) ships rtkit, a
system service that puts a thread of an ordinary user's process under ``SCHED_RR`` at a priority
up to its ``MaxRealtimePriority`` (20 by default) when polkit allows it
(``org.freedesktop.RealtimeKit1.acquire-real-time``: granted to a user's local session, active or
not; refused over SSH unless a polkit rule says otherwise). Its conditions:

* the process's hard ``RLIMIT_RTTIME`` is at most ``RTTimeUSecMax`` µs (200 ms by default): a
  real-time thread that runs that long without sleeping is killed by the kernel (at the soft limit
  it gets ``SIGXCPU`` first);
* at most 25 threads per user, and 25 requests per user in 20 s.

`RealtimeKit.connect` finds the service on the system bus (``DBUS_SYSTEM_BUS_ADDRESS``, else
``/run/dbus/system_bus_socket``; the bus starts rtkit on first use) and reads those limits;
`make_realtime` asks for one thread of this process. Every call has a timeout.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from jeepney import DBusAddress, DBusErrorResponse, new_method_call
from jeepney.io.blocking import DBusConnection, open_dbus_connection
from jeepney.wrappers import unwrap_msg

BUS_NAME = "org.freedesktop.RealtimeKit1"
OBJECT_PATH = "/org/freedesktop/RealtimeKit1"
CALL_TIMEOUT_S = 5.0  # the first call may start the service (bus activation)
_NOT_THERE = {"org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner"}


class RtkitError(RuntimeError):
    """rtkit is not there, or refused; the message says which and why."""


@dataclass(frozen=True)
class RtkitLimits:
    """What this rtkit grants: the highest SCHED_RR priority, and the RLIMIT_RTTIME it requires, µs."""

    max_priority: int
    rttime_usec_max: int


class RealtimeKit:
    """A connection to rtkit on the system bus (thread-safe; `close` it when done)."""

    def __init__(self, conn: DBusConnection, timeout_s: float = CALL_TIMEOUT_S) -> None:
        self._conn = conn
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._kit = DBusAddress(OBJECT_PATH, bus_name=BUS_NAME, interface=BUS_NAME)
        self._props = DBusAddress(OBJECT_PATH, bus_name=BUS_NAME, interface="org.freedesktop.DBus.Properties")
        self.limits = RtkitLimits(self._property("MaxRealtimePriority"), self._property("RTTimeUSecMax"))

    @classmethod
    def connect(cls, timeout_s: float = CALL_TIMEOUT_S) -> RealtimeKit:
        """Connects to the system bus and reads rtkit's limits; RtkitError if either is missing."""
        try:
            conn = open_dbus_connection(bus="SYSTEM", auth_timeout=timeout_s)
        except (OSError, KeyError, ValueError, TimeoutError) as exc:
            raise RtkitError(f"no D-Bus system bus ({type(exc).__name__}: {exc})") from exc
        try:
            return cls(conn, timeout_s)
        except BaseException:
            conn.close()
            raise

    def make_realtime(self, tid: int, priority: int) -> None:
        """Puts thread `tid` of this process under SCHED_RR at `priority`; RtkitError if refused."""
        self._call(new_method_call(self._kit, "MakeThreadRealtime", "tu", (tid, priority)))

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _property(self, name: str) -> int:
        (variant,) = self._call(new_method_call(self._props, "Get", "ss", (BUS_NAME, name)))
        _signature, value = variant
        if not isinstance(value, int):
            raise RtkitError(f"rtkit's {name}: expected an integer, got {value!r}")
        return value

    def _call(self, msg: Any) -> tuple[Any, ...]:
        with self._lock:
            try:
                reply = self._conn.send_and_get_reply(msg, timeout=self._timeout_s)
            except TimeoutError as exc:
                raise RtkitError(f"rtkit did not answer within {self._timeout_s:.0f} s") from exc
            except OSError as exc:
                raise RtkitError(f"the D-Bus system bus went away ({exc})") from exc
        try:
            return tuple(unwrap_msg(reply))
        except DBusErrorResponse as exc:
            detail = exc.data[0] if exc.data else ""
            if exc.name in _NOT_THERE:
                raise RtkitError(f"rtkit is not on the system bus ({exc.name})") from exc
            raise RtkitError(f"rtkit refused: {exc.name}" + (f": {detail}" if detail else "")) from exc
