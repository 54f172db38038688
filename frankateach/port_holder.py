"""Who holds a TCP port? Names the process behind an "Address already in use".

Reads the kernel's socket tables (``/proc/net/tcp``, ``/proc/net/tcp6``) for listening sockets on
the port, then finds the processes whose ``/proc/<pid>/fd`` link to those socket inodes. Linux
only; elsewhere (or for processes of other users) the holder is reported as unknown, with the
command that finds it.
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from frankateach.errors import FrankaTeachError

TCP_LISTEN = "0A"  # st column of /proc/net/tcp for a listening socket
PROC = Path("/proc")


class PortInUseError(FrankaTeachError):
    """A port this process must bind is held by another process (the message names it)."""


@dataclass(frozen=True)
class PortHolder:
    """A process listening on a port.

    Attributes:
        pid: its process id.
        command: its command line, space-joined ("" if unreadable).
    """

    pid: int
    command: str


def _listening_inodes(port: int, proc: Path = PROC) -> set[str]:
    """Socket inodes listening on `port` (any address), from /proc/net/tcp and tcp6."""
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != TCP_LISTEN:
                continue
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[9] != "0":
                inodes.add(fields[9])
    return inodes


def _command_line(pid: int, proc: Path = PROC) -> str:
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)


def port_holders(port: int, proc: Path = PROC) -> list[PortHolder]:
    """The processes (that this user may inspect) listening on TCP `port`, by pid."""
    inodes = _listening_inodes(port, proc)
    if not inodes:
        return []
    targets = {f"socket:[{inode}]" for inode in inodes}
    holders: list[PortHolder] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:  # gone, or another user's
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in targets:
                    holders.append(PortHolder(int(entry.name), _command_line(int(entry.name), proc)))
                    break
            except OSError:
                continue
    return sorted(holders, key=lambda h: h.pid)


def describe_port_in_use(host: str, port: int, role: str = "") -> str:
    """A message saying that `port` is taken, by whom, and how to free it."""
    what = f"port {port}{f' ({role})' if role else ''} on {host}"
    holders = port_holders(port)
    if not holders:
        return (
            f"{what} is already in use by a process this user cannot see; find it with "
            f"`ss -ltnp 'sport = :{port}'` (or `sudo lsof -i :{port}`) and stop it, or choose "
            "other ports"
        )
    listed = "; ".join(f"pid {h.pid} ({h.command or 'command line unreadable'})" for h in holders)
    pids = " ".join(str(h.pid) for h in holders)
    hint = ""
    if any("frankateach" in h.command for h in holders):
        hint = " It looks like a simulator or robot server left by an earlier run."
    return f"{what} is already in use by {listed}.{hint} Free it with `kill {pids}`, or choose other ports."


def is_address_in_use(exc: BaseException) -> bool:
    """True if `exc` (an OSError or a zmq.ZMQError) is EADDRINUSE."""
    return getattr(exc, "errno", None) == errno.EADDRINUSE


def check_ports_free(host: str, ports: dict[str, int]) -> None:
    """Raises `PortInUseError` naming the holder of the first of `ports` (role -> port) in use.

    A port counts as free when a TCP socket can bind it on `host` (with SO_REUSEADDR, as ZMQ
    binds), so sockets in TIME_WAIT do not count.
    """
    for role, port in ports.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError as exc:
                if is_address_in_use(exc):
                    raise PortInUseError(describe_port_in_use(host, port, role)) from None
                raise
