"""Loop overruns: a fixed-rate loop whose tick started more than one period after its deadline.

On a busy machine without real-time scheduling a loop can be starved (other processes, or other
threads holding the GIL). Every such tick is counted (``loop_overruns``) and reported as a
``loop_overrun`` event — shown on the dashboard and written to the recording's ``/events`` —
naming the loop and by how much it was late: the first one of a loop at once, then at most one
summary per loop every `REPORT_PERIOD_S` (a starved machine must not flood the recording).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from frankateach.timing import MONOTONIC, Clock, Ticker
from oculus_server.state import Counters, EventLog

log = logging.getLogger(__name__)

KIND = "loop_overrun"  # the /events kind
REPORT_PERIOD_S = 1.0  # at most one report (event) per loop this often
LOG_PERIOD_S = 10.0  # at most one log warning per loop this often (the events carry every report)


@dataclass
class _Pending:
    count: int = 0  # overruns since the last report
    worst_s: float = 0.0  # the largest lag among them, seconds
    skipped: int = 0  # ticks skipped among them
    last_report: float = float("-inf")
    last_log: float = float("-inf")
    unlogged: int = 0  # overruns reported since the last log line


class OverrunReporter:
    """Turns late ticks of the rate loops into counted, rate-limited ``loop_overrun`` events.

    Args:
        events, counters: the daemon's.
        clock: the loops' clock (virtual in tests).
        period_s: minimum time between two reports for one loop, seconds.
    """

    def __init__(self, events: EventLog, counters: Counters, clock: Clock = MONOTONIC,
                 period_s: float = REPORT_PERIOD_S) -> None:
        self.events, self.counters, self.clock, self.period_s = events, counters, clock, period_s
        self._lock = threading.Lock()  # one reporter serves every loop thread
        self._pending: dict[str, _Pending] = {}

    def check(self, loop: str, ticker: Ticker) -> None:
        """Called by `loop` right after `ticker.wait` returned: reports the tick if it overran."""
        if ticker.last_lag <= ticker.period:
            # On time: nothing to do unless overruns wait for their summary. Only `loop`'s own
            # thread changes its entry, so reading it without the lock is safe; the common tick
            # takes neither the lock nor the clock.
            p = self._pending.get(loop)
            if p is not None and p.count:
                self._flush(loop, ticker.period)
            return
        self.counters.count("loop_overruns")
        with self._lock:
            p = self._pending.setdefault(loop, _Pending())
            p.count += 1
            p.worst_s = max(p.worst_s, ticker.last_lag)
            p.skipped += ticker.last_skipped
        self._flush(loop, ticker.period)

    def _flush(self, loop: str, period_s: float) -> None:
        now = self.clock.now()
        with self._lock:
            p = self._pending.get(loop)
            if p is None or not p.count or now - p.last_report < self.period_s:
                return
            count, worst, skipped = p.count, p.worst_s, p.skipped
            p.count, p.worst_s, p.skipped, p.last_report = 0, 0.0, 0, now
            p.unlogged += count
            logged = now - p.last_log >= LOG_PERIOD_S
            if logged:
                since, p.unlogged, p.last_log = p.unlogged, 0, now
        late_ms, period_ms = worst * 1e3, period_s * 1e3
        what = "a tick" if count == 1 else f"{count} ticks"
        message = (f"{loop} loop overran: {what} started up to {late_ms:.1f} ms late "
                   f"({late_ms / period_ms:.1f} periods of {period_ms:.1f} ms; {skipped} ticks skipped)")
        if logged:
            log.warning("%s%s", message, f" ({since} overruns since the last warning)" if since > count else "")
        self.events.add(KIND, message, loop=loop, late_ms=round(late_ms, 3), period_ms=round(period_ms, 3),
                        ticks=count, skipped=skipped)
