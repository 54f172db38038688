"""Reads the Quest app's poses and buttons from ``adb logcat``, without a helper thread.

`QuestReader` runs ``adb [-s SERIAL] logcat -T 0`` as a child process and reads its stdout through
a non-blocking pipe inside `poll()` (partial lines wait in a buffer for the next poll), parses every
complete line with `oculus_server.vr.parser` and returns the newest valid one.

Network mode (``ip=...``) first runs ``adb connect IP:5555`` and then addresses the headset as
``-s IP:5555``; ``start_app=True`` runs ``adb shell am start -n com.rail.oculus.teleop/.MainActivity``
before logcat. These steps run as child processes too, checked on each poll, so `poll()` never
waits on them.

When logcat exits (cable pulled, headset rebooted, adb server killed) or prints no app line for
`silent_restart_s`, the reader kills it and starts over after an exponential backoff
(`backoff_initial_s` doubling up to `backoff_max_s`; reset by the first sample of a connection).

States: WAITING (steps or logcat running, no sample yet), CONNECTED (last sample younger than
`stale_timeout_s`), STALE (older), DISCONNECTED (no process; reconnecting). Note that logcat treats
``-T 0`` like ``-T 1``: the newest buffered line is printed at start, so the first sample of a
connection may be old.

The ``adb`` command is injectable (`adb` may be a list, e.g. the fake headset's command line, which
understands the same sub-commands), so tests run this exact code against a real child process.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence

from oculus_server.constants import (
    QUEST_ADB_PORT,
    QUEST_ADB_STEP_TIMEOUT_S,
    QUEST_APP_ACTIVITY,
    QUEST_LOG_TAG,
    QUEST_RECONNECT_INITIAL_S,
    QUEST_RECONNECT_MAX_S,
    QUEST_SILENT_RESTART_S,
    VR_LINK_TIMEOUT_S,
)
from oculus_server.errors import ConfigError, VRSourceError
from oculus_server.vr.linereader import NonBlockingLines
from oculus_server.vr.parser import ParsedLine, Rejection, parse_line
from oculus_server.vr.source import SourceState, SourceStatus, VRSample, VRSource

log = logging.getLogger(__name__)
EXIT_GRACE_S = 0.05  # at EOF, wait this long for logcat's exit code (once per lost link)

_TAG = QUEST_LOG_TAG.encode("ascii")
_KILL_AFTER_S = 1.0  # a terminated child still alive after this long is killed
_STDERR_KEEP = 5  # stderr lines remembered for error messages
ADB_INSTALL_HINT = "install it with `sudo apt-get install adb` (Debian/Ubuntu) or pass its path with adb=..."


class _Step:
    """A short adb command (connect / am start) running as a child, checked without blocking."""

    def __init__(self, kind: str, argv: list[str], deadline: float) -> None:
        self.kind = kind
        self.argv = argv
        self.deadline = deadline
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
        assert self.proc.stdout is not None
        self.out = NonBlockingLines(self.proc.stdout.fileno())
        self.lines: list[str] = []

    def collect(self) -> None:
        self.lines += [b.decode("utf-8", "replace").strip() for b in self.out.read()]

    def text(self) -> str:
        self.collect()
        partial = self.out.take_partial().decode("utf-8", "replace").strip()
        return " / ".join(s for s in [*self.lines, partial] if s)


class QuestReader(VRSource):
    """The real headset, through ``adb logcat`` (USB or network).

    Args:
        serial: adb serial of the headset (``-s``); default: the only device, or ``IP:PORT`` in
            network mode.
        ip: headset IP address for network mode (runs ``adb connect IP:PORT`` first).
        port: adb TCP port for network mode.
        adb: the adb command: an executable name/path or an argv prefix (tests pass the fake
            headset's command line).
        start_app: launch the app (``adb shell am start``) before each logcat (re)start.
        stale_timeout_s: no sample for longer than this -> STALE.
        silent_restart_s: logcat up but no app line for this long -> restart it (None: never).
        backoff_initial_s: first reconnect delay; doubles after each failed attempt ...
        backoff_max_s: ... up to this.
        step_timeout_s: `adb connect` / `am start` give up after this long.
        clock: monotonic clock, seconds (default `time.monotonic`).
        name: source name shown on the dashboard.
    """

    def __init__(
        self,
        *,
        serial: str | None = None,
        ip: str | None = None,
        port: int = QUEST_ADB_PORT,
        adb: str | Sequence[str] = "adb",
        start_app: bool = False,
        stale_timeout_s: float = VR_LINK_TIMEOUT_S,
        silent_restart_s: float | None = QUEST_SILENT_RESTART_S,
        backoff_initial_s: float = QUEST_RECONNECT_INITIAL_S,
        backoff_max_s: float = QUEST_RECONNECT_MAX_S,
        step_timeout_s: float = QUEST_ADB_STEP_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
        name: str = "quest",
    ) -> None:
        self._adb = [adb] if isinstance(adb, str) else list(adb)
        if not self._adb or not all(isinstance(a, str) and a for a in self._adb):
            raise ConfigError(f"adb command must be a non-empty executable name or argv list, got {adb!r}")
        if not (backoff_initial_s > 0 and backoff_max_s >= backoff_initial_s):
            raise ConfigError(
                f"expected 0 < backoff_initial_s <= backoff_max_s, got {backoff_initial_s!r}, {backoff_max_s!r}"
            )
        if not stale_timeout_s > 0:
            raise ConfigError(f"stale_timeout_s must be > 0, got {stale_timeout_s!r}")
        self.name = name
        self.ip = ip
        self.port = int(port)
        self.serial = serial or (f"{ip}:{self.port}" if ip else None)
        self.start_app = start_app
        self.stale_timeout_s = float(stale_timeout_s)
        self.silent_restart_s = silent_restart_s
        self.backoff_initial_s = float(backoff_initial_s)
        self.backoff_max_s = float(backoff_max_s)
        self.step_timeout_s = float(step_timeout_s)
        self._clock = clock
        self._lock = threading.Lock()

        self._stage = "idle"  # idle | step | logcat | backoff | closed
        self._steps: list[tuple[str, list[str]]] = []
        self._step: _Step | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._out: NonBlockingLines | None = None
        self._err: NonBlockingLines | None = None
        self._stderr_tail: list[str] = []
        self._dying: list[tuple[subprocess.Popen[bytes], float]] = []
        self._backoff = self.backoff_initial_s
        self._restart_at = 0.0
        self._started_at = 0.0  # when the current logcat was started
        self._last_sample_t: float | None = None
        self._last_line_t = 0.0  # last app line (valid or not) of the current logcat
        self._conn_lines = 0  # app lines (valid or not) of the current logcat

        self._samples = 0
        self._rejected = 0
        self._ignored = 0
        self._reconnects = 0
        self._reasons: dict[str, int] = {}
        self._last_error = ""

    # --- commands -----------------------------------------------------------------------------
    def _target(self) -> list[str]:
        return ["-s", self.serial] if self.serial else []

    def connect_command(self) -> list[str]:
        """argv of ``adb connect IP:PORT`` (network mode only)."""
        return [*self._adb, "connect", f"{self.ip}:{self.port}"]

    def start_app_command(self) -> list[str]:
        """argv that launches the Quest app."""
        return [*self._adb, *self._target(), "shell", "am", "start", "-n", QUEST_APP_ACTIVITY]

    def logcat_command(self) -> list[str]:
        """argv of the logcat stream."""
        return [*self._adb, *self._target(), "logcat", "-T", "0"]

    # --- VRSource -----------------------------------------------------------------------------
    def start(self) -> None:
        """Checks that adb exists and starts the first connection attempt.

        Raises:
            VRSourceError: the adb executable is not found.
        """
        exe = self._adb[0]
        if shutil.which(exe) is None:
            raise VRSourceError(f"adb executable {exe!r} not found on PATH; {ADB_INSTALL_HINT}")
        with self._lock:
            if self._stage == "idle":
                self._launch(self._clock(), reconnect=False)

    def poll(self) -> VRSample | None:
        """Reads what logcat printed since the last call; returns the newest valid sample or None."""
        with self._lock:
            now = self._clock()
            self._reap()
            if self._stage == "backoff" and now >= self._restart_at:
                self._launch(now, reconnect=True)
            if self._stage == "step":
                self._advance_step(now)
            if self._stage != "logcat":
                return None
            return self._read_logcat(now)

    def status(self) -> SourceStatus:
        """A copy of the link state and counters."""
        with self._lock:
            now = self._clock()
            state, detail = self._state(now)
            return SourceStatus(
                state=state,
                samples=self._samples,
                rejected=self._rejected,
                reconnects=self._reconnects,
                last_error=self._last_error,
                detail=detail,
                reject_reasons=dict(self._reasons),
            )

    def close(self) -> None:
        """Stops the child processes (terminate, then kill after 1 s). Idempotent."""
        with self._lock:
            self._stage = "closed"
            self._stop_children()
            procs = [p for p, _ in self._dying]
            self._dying.clear()
        for proc in procs:
            try:
                proc.wait(timeout=_KILL_AFTER_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    # --- internals (called with the lock held) --------------------------------------------------
    def _state(self, now: float) -> tuple[SourceState, str]:
        if self._stage in ("idle", "closed"):
            return SourceState.DISCONNECTED, "not started" if self._stage == "idle" else "closed"
        if self._stage == "backoff":
            return SourceState.DISCONNECTED, f"reconnecting in {max(0.0, self._restart_at - now):.1f} s"
        if self._stage == "step":
            what = self._step.kind if self._step else "starting"
            return SourceState.WAITING, what
        counts = f"{self._samples} samples, {self._rejected} rejected, {self._ignored} other lines"
        if self._last_sample_t is None or self._last_sample_t < self._started_at:
            said = f"; adb says: {self._stderr_tail[-1]}" if self._stderr_tail else ""
            return SourceState.WAITING, f"logcat running, no app line yet ({counts}){said}"
        age = now - self._last_sample_t
        if age > self.stale_timeout_s:
            return SourceState.STALE, f"no sample for {age:.1f} s ({counts})"
        return SourceState.CONNECTED, counts

    def _launch(self, now: float, reconnect: bool) -> None:
        if reconnect:
            self._reconnects += 1
        self._steps = []
        if self.ip:
            self._steps.append((f"adb connect {self.ip}:{self.port}", self.connect_command()))
        if self.start_app:
            self._steps.append(("starting the app", self.start_app_command()))
        self._stage = "step"
        self._next_step(now)

    def _next_step(self, now: float) -> None:
        try:
            if self._steps:
                kind, argv = self._steps.pop(0)
                self._step = _Step(kind, argv, now + self.step_timeout_s)
                return
            self._step = None
            proc = subprocess.Popen(
                self.logcat_command(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            self._fail(now, f"could not run adb ({' '.join(self._adb)}): {exc}")
            return
        assert proc.stdout is not None and proc.stderr is not None
        self._proc = proc
        self._out = NonBlockingLines(proc.stdout.fileno())
        self._err = NonBlockingLines(proc.stderr.fileno())
        self._stderr_tail = []
        self._conn_lines = 0
        self._stage = "logcat"
        self._started_at = now
        self._last_line_t = now
        log.info("%s: started %s", self.name, " ".join(self.logcat_command()))

    def _advance_step(self, now: float) -> None:
        step = self._step
        if step is None:
            self._next_step(now)
            return
        step.collect()
        rc = step.proc.poll()
        if rc is None:
            if now > step.deadline:
                self._fail(now, f"{step.kind}: no answer within {self.step_timeout_s:g} s")
            return
        text = step.text()
        self._retire(step.proc)
        self._step = None
        ok = rc == 0
        if step.argv[len(self._adb):][:1] == ["connect"]:
            ok = ok and "connected to" in text
        elif "Error" in text or "error:" in text:
            ok = False
        if not ok:
            self._fail(now, f"{step.kind} failed (exit {rc}): {text or 'no output'}")
            return
        log.info("%s: %s: %s", self.name, step.kind, text)
        self._next_step(now)

    def _read_logcat(self, now: float) -> VRSample | None:
        assert self._out is not None and self._err is not None and self._proc is not None
        newest: ParsedLine | None = None
        for line in self._out.read():
            parsed = self._count(parse_line(line), now)
            if parsed is not None:
                newest = parsed
        self._read_stderr()
        if self._out.overlong:
            self._bump("line_too_long", self._out.overlong)
            self._rejected += self._out.overlong
            self._out.overlong = 0
        sample = None
        if newest is not None:
            sample = newest.to_sample(now, self._samples - 1)
            self._last_sample_t = now
            self._backoff = self.backoff_initial_s
        if self._out.eof:
            partial = self._out.take_partial()
            if _TAG in partial:
                self._bump("truncated")
                self._rejected += 1
            self._read_stderr(final=True)
            try:  # its output ends a moment before the process does: give it that moment
                rc: int | None = self._proc.wait(timeout=EXIT_GRACE_S)
            except subprocess.TimeoutExpired:
                rc = None
            why = f"logcat exited (code {rc})" if rc is not None else "logcat closed its output"
            tail = " / ".join(self._stderr_tail)
            self._fail(now, f"{why}: {tail}" if tail else why)
        elif self._silent_too_long(now):
            self._fail(now, f"no app line for {now - self._last_line_t:.1f} s; restarting logcat")
        return sample

    def _silent_too_long(self, now: float) -> bool:
        """True when logcat has been quiet long enough that restarting it may help.

        A restart re-runs ``adb connect`` / ``am start`` in network / start-app mode, and recovers
        a stream that stopped after lines had flowed. A USB logcat that never printed an app line
        is left alone: adb itself waits for the device, and the status shows what it printed.
        """
        if self.silent_restart_s is None or now - self._last_line_t <= self.silent_restart_s:
            return False
        return bool(self.ip or self.start_app or self._conn_lines)

    def _read_stderr(self, final: bool = False) -> None:
        assert self._err is not None
        lines = self._err.read()
        if final:
            lines.append(self._err.take_partial())
        for line in lines:
            text = line.decode("utf-8", "replace").strip()
            if text:
                self._stderr_tail = (self._stderr_tail + [text])[-_STDERR_KEEP:]

    def _count(self, outcome: ParsedLine | Rejection | None, now: float) -> ParsedLine | None:
        """Updates the counters for one line; returns the line when it is a valid sample."""
        if outcome is None:
            self._ignored += 1
            return None
        self._last_line_t = now
        self._conn_lines += 1
        if isinstance(outcome, Rejection):
            self._rejected += 1
            self._bump(outcome.reason)
            return None
        for dropped in outcome.dropped:
            self._bump("side_" + dropped.reason)
        self._samples += 1
        return outcome

    def _bump(self, reason: str, n: int = 1) -> None:
        self._reasons[reason] = self._reasons.get(reason, 0) + n

    def _fail(self, now: float, error: str) -> None:
        """Drops the connection and schedules a reconnect after the backoff."""
        if self._stage == "closed":
            return
        self._last_error = error
        log.warning("%s: %s; reconnecting in %.1f s", self.name, error, self._backoff)
        self._stop_children()
        self._stage = "backoff"
        self._restart_at = now + self._backoff
        self._backoff = min(self._backoff * 2.0, self.backoff_max_s)

    def _stop_children(self) -> None:
        if self._step is not None:
            self._retire(self._step.proc)
            self._step = None
        if self._proc is not None:
            self._retire(self._proc)
            self._proc = None
        self._out = self._err = None

    def _retire(self, proc: subprocess.Popen[bytes]) -> None:
        """Closes a child's pipes and asks it to stop; `_reap` kills it if it lingers."""
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        if proc.poll() is None:
            try:
                proc.terminate()
            except OSError:
                pass
            self._dying.append((proc, time.monotonic() + _KILL_AFTER_S))

    def _reap(self) -> None:
        now = time.monotonic()  # real time: these are real processes, whatever `clock` is
        alive = []
        for proc, deadline in self._dying:
            if proc.poll() is not None:
                continue
            if now > deadline:
                proc.kill()
            alive.append((proc, deadline))
        self._dying = alive


def adb_available(adb: str = "adb") -> bool:
    """True when the adb executable is on PATH."""
    return shutil.which(adb) is not None


def parse_adb_devices(text: str) -> list[str]:
    """Serials of the devices ``adb devices`` lists as ready ("device"; not offline/unauthorized)."""
    serials = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1] == "device":
            serials.append(fields[0])
    return serials


def headset_present(
    serial_or_ip: str | None = None, adb: str = "adb", timeout_s: float = QUEST_ADB_STEP_TIMEOUT_S
) -> bool:
    """True if adb exists and lists a ready device — `serial_or_ip` if given (a serial, or an IP
    matching a network device ``IP:PORT``), otherwise any."""
    if not adb_available(adb):
        return False
    try:
        out = subprocess.run([adb, "devices"], check=False, capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.SubprocessError):
        return False
    serials = parse_adb_devices(out.stdout)
    if serial_or_ip is None:
        return bool(serials)
    return any(s == serial_or_ip or s.split(":", 1)[0] == serial_or_ip for s in serials)


__all__ = ["ADB_INSTALL_HINT", "QuestReader", "adb_available", "headset_present", "parse_adb_devices"]
