"""`teleop-replay info`: what a recording holds, how regular it is, and where it has gaps.

A topic declared sampled in `schemas` (``TopicSpec.sampled``: ``/sim/state``, VR, camera frames,
``/robot/ee_target``) keeps some of its source's sequence numbers by design: its skipped numbers are
reported as "1 of every N ... recorded, by design" or "N ... skipped, by design", never as missing.
On every other topic a skipped number is a message that was not recorded.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robot_formats.recording import schemas as S
from robot_formats.recording.reader import RecordingReader, TopicIndex

# Topics that are event-driven, not periodic: no rates or time gaps for them.
APERIODIC = {S.TOPIC_EVENTS, S.TOPIC_LOG}
MAX_LISTED_GAPS = 10
REPLAY_GAP_FACTOR = 2.5  # an interval longer than this × the median period is a gap


@dataclass
class TopicInfo:
    """Figures for one topic. Rates in Hz, times in seconds from the recording start."""

    topic: str
    schema: str
    encoding: str
    count: int
    first_s: float | None = None
    last_s: float | None = None
    rate_mean_hz: float | None = None
    rate_min_hz: float | None = None  # 1 / longest interval
    rate_median_hz: float | None = None  # 1 / median interval
    rate_max_hz: float | None = None  # 1 / shortest non-zero interval
    seq_missing: int = 0  # sequence numbers lost in total (topics that record every message; else 0)
    sampled: str = ""  # plain words: why this topic keeps only some of its source's numbers ("": all)
    sampled_unit: str = ""  # what those numbers count, e.g. "physics steps"
    seq_skipped: int = 0  # sampled topics: numbers skipped by design (not counted as missing)
    sample_every: float | None = None  # sampled topics: mean sequence step ("1 of every N")
    seq_gaps: list[dict[str, int]] = field(default_factory=list)  # largest: {"after": seq, "missing": n}
    seq_gap_count: int = 0
    seq_backwards: int = 0  # sequence went down (a source restarted)
    time_gaps: list[dict[str, float]] = field(default_factory=list)  # largest: {"at_s", "length_s"}
    time_gap_count: int = 0


def topic_info(ix: TopicIndex, t0_ns: int, gap_factor: float = REPLAY_GAP_FACTOR) -> TopicInfo:
    """Computes one topic's figures from its index.

    On a topic sampled by design (`schemas.TopicSpec.sampled`) skipped sequence numbers are
    sampling (`seq_skipped`, `sample_every`), never missing: what the recording itself lost shows in
    the tick sequence (``dropped_ticks``), on the topics that record every message and as time gaps.
    On every other topic each skipped number is a lost message (`seq_missing`, `seq_gaps`).
    """
    info = TopicInfo(ix.topic, ix.schema, ix.encoding, ix.count)
    spec = S.topic_spec(ix.topic)
    if spec is not None and spec.sampled is not None:
        info.sampled, info.sampled_unit = spec.sampled.why, spec.sampled.unit
    if ix.count == 0:
        return info
    by_time = np.argsort(ix.log_ns, kind="stable")
    t = (ix.log_ns.astype(np.int64)[by_time] - t0_ns) / 1e9
    info.first_s, info.last_s = float(t[0]), float(t[-1])
    periodic = ix.topic not in APERIODIC
    if ix.count >= 2 and periodic:
        dt = np.diff(t)
        span = t[-1] - t[0]
        if span > 0:
            info.rate_mean_hz = (ix.count - 1) / span
        pos = dt[dt > 0]
        if pos.size:
            med = float(np.median(pos))
            info.rate_median_hz = 1.0 / med
            info.rate_min_hz = 1.0 / float(pos.max())
            info.rate_max_hz = 1.0 / float(pos.min())
            if pos.size >= 3:
                big = np.nonzero(dt > gap_factor * med)[0]
                info.time_gap_count = int(big.size)
                order = big[np.argsort(-dt[big])][:MAX_LISTED_GAPS]
                info.time_gaps = [
                    {"at_s": round(float(t[i]), 4), "length_s": round(float(dt[i]), 4)} for i in sorted(order)
                ]
    if ix.sequence.size >= 2:
        seq = ix.sequence.astype(np.int64)
        if info.sampled:
            seq = seq[by_time]  # in the order it was recorded
        d = np.diff(seq)
        d = np.where(d < -(1 << 31), d + (1 << 32), d)  # uint32 wrap-around
        info.seq_backwards = int((d <= 0).sum()) if ix.topic not in APERIODIC else 0
        if info.sampled:
            ahead = d[d > 0]
            info.seq_skipped = int((ahead - 1).sum())
            info.sample_every = round(float(ahead.mean()), 2) if ahead.size else None
            return info
        gaps = np.nonzero(d > 1)[0]
        info.seq_missing = int((d[gaps] - 1).sum())
        info.seq_gap_count = int(gaps.size)
        order = gaps[np.argsort(-d[gaps])][:MAX_LISTED_GAPS]
        info.seq_gaps = [{"after": int(seq[i]), "missing": int(d[i] - 1)} for i in sorted(order)]
    return info


def _parse_json_values(meta: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in meta.items():
        try:
            out[k] = json.loads(v) if v[:1] in "{[" else v
        except ValueError:
            out[k] = v
    return out


def recording_info(path: Path | str, sequences: bool = True, gap_factor: float = REPLAY_GAP_FACTOR) -> dict[str, Any]:
    """Returns a JSON-able description of a finished recording.

    Keys: file, size_bytes, duration_s, start_ns, end_ns, messages, outcome, metadata (by record
    name), attachments, topics (list of TopicInfo dicts), dropped_ticks (recording ticks missing
    from the tick sequence), gaps_found (bool).

    Raises:
        RecordingError: the file is not a finished recording.
    """
    path = Path(path)
    with RecordingReader(path) as r:
        index = r.index(sequences=sequences)
        meta = r.metadata()
        topics = [topic_info(index[t], r.start_ns, gap_factor) for t in sorted(index)]
        end = meta.get("recording_end", {})
        tick = next((ti for ti in topics if ti.topic == S.TOPIC_MODE), None)
        return {
            "file": str(path),
            "size_bytes": path.stat().st_size,
            "duration_s": round(r.duration_s, 4),
            "start_ns": r.start_ns,
            "end_ns": r.end_ns,
            "messages": r.message_count,
            "chunks": len(r.summary.chunk_indexes),
            "outcome": end.get("outcome", "unknown (no recording_end record)"),
            "recovered": "recovery" in meta,
            "metadata": {name: _parse_json_values(m) for name, m in meta.items()},
            "attachments": [{"name": n, "media_type": m, "size_bytes": s} for n, m, s in r.attachments()],
            "topics": [asdict(ti) for ti in topics],
            "dropped_ticks": tick.seq_missing if tick else None,
            "gaps_found": any(ti.time_gap_count or ti.seq_missing for ti in topics),
        }


def _fmt(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def format_info(info: dict[str, Any], verbose: bool = False) -> str:
    """Renders `recording_info` output as text."""
    lines = [
        f"file      {info['file']}  ({info['size_bytes'] / 1e6:.2f} MB, {info['chunks']} chunks)",
        f"duration  {info['duration_s']:.2f} s   messages {info['messages']}",
        f"outcome   {info['outcome']}" + ("  (recovered after a crash)" if info["recovered"] else ""),
    ]
    if info["dropped_ticks"] is not None:
        lines.append(f"ticks     dropped {info['dropped_ticks']}")
    for name, meta in info["metadata"].items():
        lines.append(f"[{name}]")
        for k, v in meta.items():
            text = v if isinstance(v, str) else json.dumps(v)
            if len(text) > 100 and not verbose:
                text = text[:97] + "..."
            lines.append(f"  {k}: {text}")
    for a in info["attachments"]:
        lines.append(f"attachment {a['name']} ({a['media_type']}, {a['size_bytes']} bytes)")
    lines.append("")
    lines.append(f"{'topic':34} {'schema':28} {'count':>7} {'Hz min/med/max':>20} {'seq missing':>12} {'time gaps':>9}")
    for t in info["topics"]:
        rates = f"{_fmt(t['rate_min_hz'])}/{_fmt(t['rate_median_hz'])}/{_fmt(t['rate_max_hz'])}"
        lines.append(
            f"{t['topic']:34} {t['schema']:28} {t['count']:>7} {rates:>20} {t['seq_missing']:>12} "
            f"{t['time_gap_count']:>9}" + ("  sampled" if t.get("sampled") else "")
        )
    gap_lines = []
    for t in info["topics"]:
        for g in t["time_gaps"]:
            gap_lines.append(f"  {t['topic']}: no message for {g['length_s']:.3f} s after t={g['at_s']:.3f} s")
        for g in t["seq_gaps"]:
            gap_lines.append(f"  {t['topic']}: {g['missing']} sequence number(s) missing after {g['after']}")
    sampled_lines = [f"  {line}" for t in info["topics"] if (line := sampled_text(t))]
    if gap_lines:
        lines.append("")
        lines.append("gaps (largest first per topic):")
        lines.extend(gap_lines)
    if sampled_lines:
        lines.append("")
        lines.append("sampled by design (not data loss):")
        lines.extend(sampled_lines)
    return "\n".join(lines)


def sampled_text(t: dict[str, Any]) -> str:
    """One topic's sampling in plain words (from a `TopicInfo` dict), or "" if it is not sampled or
    skipped nothing by design; e.g. "/sim/state: 1 of every 500 physics steps recorded, by design:
    the simulator's state is recorded about once a second"."""
    every = t.get("sample_every")
    if not t.get("sampled") or not every or not t["seq_skipped"]:
        return ""
    share = f"1 of every {every:.0f} {t['sampled_unit']} recorded" if every >= 1.95 else (
        f"{t['seq_skipped']} {t['sampled_unit']} skipped")
    return f"{t['topic']}: {share}, by design: {t['sampled']}"
