"""A private RealtimeKit for tests and benchmarks: its own D-Bus system bus, polkitd and rtkit-daemon.

The peers are Debian's own (packages dbus-daemon, polkitd, rtkit: `tools/install_debs.sh`, which
``run_tests.sh`` runs when root), started as root on a bus socket in a temporary folder. polkit
grants rtkit's two actions to the users named, by a rule file bind-mounted over
``/etc/polkit-1/rules.d`` in polkitd's own mount namespace: the machine's configuration is not
touched. (On a desktop polkit grants them to the user's local session; there is none here.) A
process reaches it with ``DBUS_SYSTEM_BUS_ADDRESS`` = the address `rtkit_sandbox` yields.
"""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jeepney import DBusAddress, new_method_call
from jeepney.io.blocking import open_dbus_connection

from frankateach.lifeline import set_parent_death_signal

DBUS_DAEMON = "/usr/bin/dbus-daemon"
POLKITD = ("/usr/lib/polkit-1/polkitd", "/usr/libexec/polkitd")
RTKIT_DAEMON = ("/usr/libexec/rtkit-daemon", "/usr/lib/rtkit/rtkit-daemon")
START_TIMEOUT_S = 15.0
INSTALL_HINT = ("apt-get install -y dbus-daemon polkitd rtkit   "
                "(or: sudo tools/install_debs.sh rtkit rtkit dbus-daemon polkitd)")

_BUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""

_RULE = """polkit.addRule(function(action, subject) {{
  if (action.id.indexOf("org.freedesktop.RealtimeKit1.") == 0 && {users}.indexOf(subject.user) >= 0) {{
    return polkit.Result.YES;
  }}
}});
"""


_PR_CAPBSET_DROP, _CAP_SYS_NICE = 24, 23  # prctl(2), capability(7)


def drop_sys_nice() -> None:
    """In a child before exec (a `preexec_fn`): as root, takes CAP_SYS_NICE from the program it
    runs, which then may not ask for SCHED_FIFO itself, as an operator who is not root."""
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_CAPBSET_DROP, _CAP_SYS_NICE, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP, CAP_SYS_NICE)")


def _first(paths: tuple[str, ...]) -> str | None:
    return next((p for p in paths if os.access(p, os.X_OK)), None)


def missing() -> str:
    """Why a sandbox cannot start here ("" if it can)."""
    if os.geteuid() != 0:
        return "needs root (to start dbus-daemon, polkitd and rtkit-daemon)"
    if not sys.platform.startswith("linux"):
        return "needs Linux"
    absent = [name for name, found in (("dbus-daemon", os.access(DBUS_DAEMON, os.X_OK)),
                                        ("polkitd", _first(POLKITD)), ("rtkit-daemon", _first(RTKIT_DAEMON)),
                                        ("unshare", shutil.which("unshare"))) if not found]
    if absent:
        return f"missing {', '.join(absent)}: {INSTALL_HINT}"
    return _mount_namespace_error()


@functools.cache
def _mount_namespace_error() -> str:
    """Why polkitd's private mount namespace cannot be made here ("" if it can): a container
    without CAP_SYS_ADMIN refuses ``unshare --mount``."""
    try:
        proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot make a mount namespace for polkitd: {exc}"
    return "" if proc.returncode == 0 else f"cannot make a mount namespace for polkitd: {proc.stderr.strip()}"


def _spawn(cmd: list[str], **kw: object) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True,  # type: ignore[call-overload]
                            preexec_fn=lambda: set_parent_death_signal(signal.SIGKILL), **kw)


def _wait_for_name(address: str, name: str, procs: list[subprocess.Popen], timeout_s: float) -> None:
    """Waits until `name` has an owner on the bus at `address` (RuntimeError if a process died or time ran out)."""
    deadline = time.monotonic() + timeout_s
    bus = DBusAddress("/org/freedesktop/DBus", bus_name="org.freedesktop.DBus", interface="org.freedesktop.DBus")
    with open_dbus_connection(bus=address) as conn:
        while time.monotonic() < deadline:
            reply = conn.send_and_get_reply(new_method_call(bus, "NameHasOwner", "s", (name,)), timeout=2.0)
            if reply.body[0]:
                return
            dead = [p.args[0] for p in procs if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{', '.join(map(str, dead))} exited before {name} was on the bus")
            time.sleep(0.05)
    raise RuntimeError(f"{name} not on the private bus within {timeout_s:.0f} s")


@contextmanager
def rtkit_sandbox(tmp: Path, users: tuple[str, ...] = ("root",), rtkit: bool = True,
                  rtkit_args: tuple[str, ...] = ()) -> Iterator[str]:
    """Starts a private system bus with polkitd and rtkit-daemon (rtkit granted to `users`, with
    `rtkit_args`, e.g. ``--threads-per-user-max=2``; with `rtkit` false, the bus alone); yields the
    bus address; stops them all (SIGKILL to each one's process group) on exit. (polkit authorizes
    root whatever the rules say: a refusal for root comes from rtkit's own limits.)"""
    why = missing()
    if why:
        raise RuntimeError(f"cannot start a private rtkit: {why}")
    tmp.mkdir(parents=True, exist_ok=True)
    # the bus socket where every user can reach it (polkitd runs as its own user): not under
    # `tmp`, whose parents may be private (pytest's are)
    sockdir = Path(tempfile.mkdtemp(prefix="rtkit-bus-"))
    sockdir.chmod(0o755)
    socket = sockdir / "system_bus_socket"
    conf = tmp / "bus.conf"
    conf.write_text(_BUS_CONF.format(socket=socket))
    rules = tmp / "rules.d"
    rules.mkdir(exist_ok=True)
    (rules / "50-rtkit-sandbox.rules").write_text(_RULE.format(users=list(users)).replace("'", '"'))
    address = f"unix:path={socket}"
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=address)
    procs: list[subprocess.Popen] = []
    try:
        procs.append(_spawn([DBUS_DAEMON, f"--config-file={conf}", "--nofork", "--nopidfile"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + START_TIMEOUT_S
        while not socket.exists():
            if procs[0].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the private dbus-daemon did not start")
            time.sleep(0.02)
        socket.chmod(0o777)  # every user may connect (the bus policy above decides the rest)
        if not rtkit:
            yield address
            return
        polkitd = _first(POLKITD)
        procs.append(_spawn(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                             'mount --bind "$0" /etc/polkit-1/rules.d && exec "$1" --no-debug', str(rules),
                             str(polkitd)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _wait_for_name(address, "org.freedesktop.PolicyKit1", procs, START_TIMEOUT_S)
        # --no-limit-resources: rtkit otherwise caps the processes of its user at 3, which a second
        # instance (a parallel test, or the machine's own rtkit) exceeds at its first thread
        procs.append(_spawn([str(_first(RTKIT_DAEMON)), "--no-limit-resources", *rtkit_args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _wait_for_name(address, "org.freedesktop.RealtimeKit1", procs, START_TIMEOUT_S)
        yield address
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            p.wait(5)
        shutil.rmtree(sockdir, ignore_errors=True)
