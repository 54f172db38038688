"""`frankateach.port_holder`: a port in use is reported with the process holding it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import zmq

from frankateach.errors import FrankaTeachError
from frankateach.network import Publisher
from frankateach.port_holder import (
    PortHolder,
    PortInUseError,
    check_ports_free,
    describe_port_in_use,
    port_holders,
)
from tests.robot_fakes import free_port_block

linux_only = pytest.mark.skipif(not os.path.isdir("/proc/net"), reason="reads /proc")


def _listen(port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen()
    return s


@linux_only
def test_a_port_held_by_another_process_names_its_pid_and_command() -> None:
    port = free_port_block(1)
    code = (
        f"import socket, time; s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); "
        "print('up', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "up"
        (found,) = port_holders(port)
        assert found.pid == holder.pid and "socket.socket()" in found.command
        with pytest.raises(PortInUseError) as err:
            check_ports_free("127.0.0.1", {"robot control": port})
        msg = str(err.value)
        assert f"port {port} (robot control) on 127.0.0.1" in msg
        assert f"pid {holder.pid}" in msg and f"kill {holder.pid}" in msg
        assert isinstance(err.value, FrankaTeachError)
    finally:
        holder.kill()
        holder.wait(5)
    check_ports_free("127.0.0.1", {"robot control": port})  # free again: no error


@linux_only
def test_zmq_publisher_on_a_taken_port_raises_a_named_error() -> None:
    port = free_port_block(1)
    sock = _listen(port)
    try:
        with pytest.raises(PortInUseError, match=rf"port {port} \(state\).*pid {os.getpid()}"):
            Publisher("127.0.0.1", port, role="state")
    finally:
        sock.close()
    pub = Publisher("127.0.0.1", port, role="state")  # the failed attempt left nothing bound
    pub.close()


def test_free_ports_pass_and_other_errors_propagate() -> None:
    port = free_port_block(2)
    check_ports_free("127.0.0.1", {"a": port, "b": port + 1})
    with pytest.raises(OSError):
        check_ports_free("203.0.113.7", {"a": port})  # not an address of this machine


def test_holders_are_read_from_the_socket_tables_and_fd_links(tmp_path: Path) -> None:
    # A fake /proc: port 8901 (0x22C5) listening on IPv4 (inode 111) and IPv6 (inode 222),
    # held by pids 40 and 41; pid 42 only has a connected (not listening) socket on it.
    proc = tmp_path
    (proc / "net").mkdir()
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    (proc / "net" / "tcp").write_text(
        header
        + "   0: 0100007F:22C5 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000 0 111 1\n"
        + "   1: 0100007F:22C5 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1000 0 333 1\n"
    )
    (proc / "net" / "tcp6").write_text(
        header + "   0: 00000000000000000000000000000000:22C5 00000000000000000000000000000000:0000 0A "
        "00000000:00000000 00:00000000 00000000  1000 0 222 1\n"
    )
    for pid, inode, cmd in ((40, 111, b"python\0-m\0frankateach.sim.server\0"), (41, 222, b"other\0"),
                            (42, 333, b"client\0")):
        (proc / str(pid) / "fd").mkdir(parents=True)
        os.symlink(f"socket:[{inode}]", proc / str(pid) / "fd" / "3")
        (proc / str(pid) / "cmdline").write_bytes(cmd)
    (proc / "self").mkdir()
    holders = port_holders(8901, proc=proc)
    assert holders == [PortHolder(40, "python -m frankateach.sim.server"), PortHolder(41, "other")]
    assert port_holders(8902, proc=proc) == []


def test_unknown_holder_message_says_how_to_find_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import frankateach.port_holder as ph

    monkeypatch.setattr(ph, "port_holders", lambda port: [])
    msg = describe_port_in_use("127.0.0.1", 8901, "robot control")
    assert "cannot see" in msg and "ss -ltnp 'sport = :8901'" in msg
    monkeypatch.setattr(ph, "port_holders", lambda port: [PortHolder(7, "python -m frankateach.sim.server")])
    msg = describe_port_in_use("127.0.0.1", 8901)
    assert "pid 7 (python -m frankateach.sim.server)" in msg and "earlier run" in msg and "kill 7" in msg


def test_zmq_error_is_recognised_as_address_in_use() -> None:
    from frankateach.port_holder import is_address_in_use

    assert is_address_in_use(zmq.ZMQError(zmq.EADDRINUSE))
    assert not is_address_in_use(zmq.ZMQError(zmq.EINVAL))
