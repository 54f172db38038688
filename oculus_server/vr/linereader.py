"""Non-blocking line splitting of a pipe: read what is there, keep the partial tail for later."""

from __future__ import annotations

import os

from oculus_server.constants import QUEST_MAX_LINE_BYTES, QUEST_MAX_READ_BYTES

_CHUNK = 65536


class NonBlockingLines:
    """Reads complete lines from a pipe's file descriptor without ever blocking.

    The descriptor is switched to non-blocking mode. Each `read` drains what the pipe holds (up to
    `max_read` bytes), returns the complete lines (without their ``\\n``) and keeps a partial last
    line for the next call. Lines longer than `max_line` bytes are dropped and counted in
    `overlong` (the rest of such a line, up to its newline, is skipped too).

    Args:
        fd: readable file descriptor (the caller keeps ownership and closes it).
        max_line: longest line kept, bytes.
        max_read: most bytes read per call, bytes.
    """

    def __init__(self, fd: int, max_line: int = QUEST_MAX_LINE_BYTES, max_read: int = QUEST_MAX_READ_BYTES) -> None:
        self.fd = fd
        self.max_line = max_line
        self.max_read = max_read
        self.eof = False
        self.overlong = 0
        self._partial = b""
        self._skipping = False  # inside an overlong line: drop bytes up to the next newline
        os.set_blocking(fd, False)

    def read(self) -> list[bytes]:
        """Returns the complete lines available now; sets `eof` once the writer has closed."""
        if self.eof:
            return []
        chunks: list[bytes] = []
        total = 0
        while total < self.max_read:
            try:
                data = os.read(self.fd, _CHUNK)
            except BlockingIOError:
                break
            except OSError:  # EBADF/EIO: the pipe is gone
                self.eof = True
                break
            if not data:
                self.eof = True
                break
            chunks.append(data)
            total += len(data)
        if not chunks:
            return []
        lines = (self._partial + b"".join(chunks)).split(b"\n")
        self._partial = lines.pop()
        if self._skipping and lines:
            lines.pop(0)  # the end of the overlong line
            self._skipping = False
        if self._skipping:
            self._partial = b""
        elif len(self._partial) > self.max_line:
            self.overlong += 1
            self._partial = b""
            self._skipping = True
        kept = [line for line in lines if len(line) <= self.max_line]
        self.overlong += len(lines) - len(kept)
        return kept

    def take_partial(self) -> bytes:
        """Returns and forgets the incomplete last line (e.g. at EOF)."""
        partial, self._partial = self._partial, b""
        return partial
