"""Link quality of the WebXR page's stream: drops out-of-order and late frames, measures rate and delay.

The page and the daemon may run on different clocks (a headset and a PC), so lateness is judged
relative to the best delay seen: each frame carries the page's wall clock at sending (``sent``,
ms); ``delay = t_recv_wall − sent`` includes an unknown clock offset, but the offset is the same
for every frame of a connection, so ``delay − min(delay over the last `window` frames)`` is how much
later than the quickest recent frame this one arrived. A frame more than `late_after_s` behind
that is dropped as *late*; a frame whose ``seq`` is not above the last accepted one is dropped as
*out of order* (a duplicate included). On loopback (one clock) the raw delay is the page → daemon
latency; `latency_s` reports it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

LATE_AFTER_S = 0.1  # a frame 100 ms behind the quickest recent one is dropped (50 Hz control: 5 periods)
DELAY_WINDOW = 256  # frames over which the quickest delay is taken
RATE_WINDOW_S = 1.0  # accepted frames per second, over this window
DELAY_STATS = 1000  # accepted frames whose delays give the percentiles


@dataclass(frozen=True)
class LinkFigures:
    """What the link did so far.

    Attributes:
        accepted: frames passed on.
        out_of_order: frames dropped because their seq was not above the last accepted one.
        late: frames dropped for arriving more than `late_after_s` behind the quickest recent one.
        rate_hz: accepted frames per second over the last second.
        delay_s: raw delay of the last accepted frame (receive wall clock − send wall clock), s;
            the page → daemon latency when both run on one clock (loopback).
        delay_p50_s, delay_p99_s: the same over the last `DELAY_STATS` accepted frames.
    """

    accepted: int = 0
    out_of_order: int = 0
    late: int = 0
    rate_hz: float = 0.0
    delay_s: float = float("nan")
    delay_p50_s: float = float("nan")
    delay_p99_s: float = float("nan")


class LinkFilter:
    """Decides, frame by frame, whether a frame is passed on (one instance per connection).

    Args:
        late_after_s: frames arriving this much later than the quickest recent one are dropped.
        window: number of recent frames whose quickest delay is the reference.
    """

    def __init__(self, late_after_s: float = LATE_AFTER_S, window: int = DELAY_WINDOW) -> None:
        if not late_after_s > 0:
            raise ValueError(f"late_after_s must be > 0, got {late_after_s!r}")
        self.late_after_s = float(late_after_s)
        self._delays: deque[float] = deque(maxlen=max(1, int(window)))
        self._accepted_at: deque[float] = deque()
        self._accepted_delays: deque[float] = deque(maxlen=DELAY_STATS)
        self._last_seq = -1
        self.accepted = 0
        self.out_of_order = 0
        self.late = 0
        self.delay_s = float("nan")

    def offer(self, seq: int, sent_s: float, recv_wall_s: float, recv_mono_s: float) -> str | None:
        """Judges one frame; returns None when it is accepted, else "out_of_order" or "late".

        Args:
            seq: the page's frame counter.
            sent_s: the page's wall clock at sending, s.
            recv_wall_s: the daemon's wall clock at receipt, s.
            recv_mono_s: the daemon's monotonic clock at receipt, s (for the rate).
        """
        if seq <= self._last_seq:
            self.out_of_order += 1
            return "out_of_order"
        delay = recv_wall_s - sent_s
        self._delays.append(delay)
        if delay - min(self._delays) > self.late_after_s:
            self.late += 1
            self._last_seq = seq  # older frames than this one are out of order, too
            return "late"
        self._last_seq = seq
        self.accepted += 1
        self.delay_s = delay
        self._accepted_delays.append(delay)
        self._accepted_at.append(recv_mono_s)
        while self._accepted_at and self._accepted_at[0] < recv_mono_s - RATE_WINDOW_S:
            self._accepted_at.popleft()
        return None

    def figures(self, now_mono_s: float) -> LinkFigures:
        """A copy of the counters; the rate counts accepted frames within the last second."""
        recent = sum(1 for t in self._accepted_at if t >= now_mono_s - RATE_WINDOW_S)
        p50 = p99 = float("nan")
        if self._accepted_delays:
            ordered = sorted(self._accepted_delays)
            p50 = ordered[(len(ordered) - 1) // 2]
            p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        return LinkFigures(self.accepted, self.out_of_order, self.late, recent / RATE_WINDOW_S, self.delay_s, p50, p99)


__all__ = ["DELAY_WINDOW", "LATE_AFTER_S", "LinkFigures", "LinkFilter"]
