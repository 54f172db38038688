"""`SerialTLSSocket`: a TLS socket whose reads and writes never run at the same time.

websockets' sync client (what `OpenPIRemotePolicy` and openpi's own client use) reads a
connection in a background thread while the caller writes on it. On plain TCP that is fine; on
TLS it is not: OpenSSL forbids two threads in one connection at once, and Python's `ssl` module
does not serialize them. TLS 1.3 servers send their session tickets just after the handshake, so
the background thread is inside ``SSL_read`` handling them exactly when the caller writes its
upgrade request; measured against a ticket-sending server on a loaded 2-core machine, 11 of 650
such connections then hung without an answer.

Here every TLS operation holds one lock, and no thread holds it while waiting for the network: a
read is tried without blocking, and if the bytes are not there yet the reader waits for the
socket to become readable (``select``, honouring the socket's timeout) with the lock released,
so a writer is never kept waiting by a reader. Use it through `serial_tls_context`.
"""

from __future__ import annotations

import select
import ssl
import threading
import time
from typing import Any


class SerialTLSSocket(ssl.SSLSocket):
    """An `ssl.SSLSocket` whose TLS operations take turns (see the module docstring)."""

    def _serial(self) -> threading.Lock:
        lock: threading.Lock = self.__dict__.setdefault("_serial_lock", threading.Lock())
        return lock

    def _wanted(self) -> float | None:
        """The timeout the socket's users set (the socket's own is 0 while a read is tried)."""
        return self.__dict__.get("_wanted_timeout", super().gettimeout())

    def settimeout(self, value: float | None) -> None:
        with self._serial():
            self.__dict__["_wanted_timeout"] = value
            super().settimeout(value)

    def setblocking(self, flag: bool) -> None:
        self.settimeout(None if flag else 0.0)

    def gettimeout(self) -> float | None:
        return self._wanted()

    def read(self, len: int = 1024, buffer: Any = None) -> Any:  # noqa: A002 - ssl.SSLSocket's names
        """`ssl.SSLSocket.read`, one TLS operation at a time; waits for the network unlocked."""
        timeout = self._wanted()  # this read's; a later settimeout applies to later reads
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._serial():
                if self.__dict__.get("_sslobj") is None:  # shut down by another thread while this one waited
                    return 0 if buffer is not None else b""
                wanted = self._wanted()
                if wanted == 0.0:  # a non-blocking socket: its own behaviour
                    return super().read(len, buffer)
                super().settimeout(0.0)
                try:
                    return super().read(len, buffer)
                except ssl.SSLWantReadError:
                    wait_write = False
                except ssl.SSLWantWriteError:
                    wait_write = True
                finally:
                    super().settimeout(wanted)
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError("The read operation timed out")
            try:
                watched = [self]
                select.select([] if wait_write else watched, watched if wait_write else [], [], remaining)
            except (ValueError, OSError):  # closed by another thread: the next try says how
                if self.fileno() < 0:
                    return 0 if buffer is not None else b""

    def send(self, data: Any, flags: int = 0) -> int:
        with self._serial():
            return super().send(data, flags)

    def shutdown(self, how: int) -> None:
        with self._serial():
            super().shutdown(how)

    def unwrap(self) -> Any:
        with self._serial():
            return super().unwrap()


def serial_tls_context(cafile: str | None = None) -> ssl.SSLContext:
    """A client context with the system's trust store (or `cafile`) whose sockets are
    `SerialTLSSocket`s: pass it as ``ssl=`` to websockets' sync ``connect``."""
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.sslsocket_class = SerialTLSSocket
    return ctx


__all__ = ["SerialTLSSocket", "serial_tls_context"]
