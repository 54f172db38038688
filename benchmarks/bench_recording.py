"""Recording benchmark: writer throughput and CPU, chunk compression choice, and `info` read speed.

    .venv/bin/python benchmarks/bench_recording.py [--seconds 30] [--info-minutes 10]

Writer runs: robot state at 40 Hz plus 0 or 2 cameras (15 Hz each, frames pre-encoded), written
as fast as possible with a flush + fsync every 0.5 s of *recording* time (as in real use), so
"CPU per recorded second" is the share of one core the MCAP-writer thread needs in real time.
The `info` run generates a long synthetic file faster than real time and times `recording_info`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from oculus_server.recording.synthetic import SyntheticEpisode
from robot_formats.recording.info import recording_info
from robot_formats.recording.writer import EpisodeWriter

HZ = 40.0


def write_run(
    directory: Path, name: str, cameras: dict[str, tuple[int, int]], seconds: float, compression: str
) -> dict[str, float]:
    """Writes `seconds` of ticks; returns throughput and CPU figures."""
    ep = SyntheticEpisode(hz=HZ, cameras=cameras, jpeg_pool=12)
    ticks = list(ep.ticks(int(seconds * HZ)))  # built before timing: only the writer is measured
    path = directory / f"{name}-{compression}.mcap"
    w = EpisodeWriter(path, {"bench": name}, cameras={n: (a, b, 45.0) for n, (a, b) in cameras.items()},
                      flush_period_s=1e9, compression=compression)
    per_tick: list[float] = []
    flush_every = int(HZ * 0.5)
    cpu0, thr0, wall0 = time.process_time(), time.thread_time(), time.perf_counter()
    for i, tick in enumerate(ticks):
        t = time.perf_counter()
        w.write(tick)
        if (i + 1) % flush_every == 0:
            w.flush()
        per_tick.append(time.perf_counter() - t)
    messages = w.messages
    w.close("success")
    wall = time.perf_counter() - wall0
    cpu, thr = time.process_time() - cpu0, time.thread_time() - thr0
    size = path.stat().st_size
    per_tick.sort()
    return {
        "messages": messages,
        "msgs_per_s": messages / wall,
        "MB_per_s": size / 1e6 / wall,
        "file_MB": size / 1e6,
        "MB_per_rec_s": size / 1e6 / seconds,
        "cpu_per_rec_s": cpu / seconds,
        "thread_cpu_per_rec_s": thr / seconds,
        "tick_p50_ms": per_tick[len(per_tick) // 2] * 1e3,
        "tick_p99_ms": per_tick[int(len(per_tick) * 0.99)] * 1e3,
        "tick_max_ms": per_tick[-1] * 1e3,
    }


def compressor_run(seconds_each: float = 1.0) -> list[tuple[str, str, float, float]]:
    """Chunk compressors alone on realistic chunk contents: (data, codec, MB/s, size ratio)."""
    import lz4.frame
    import zstandard

    from oculus_server.recording.synthetic import make_jpeg

    ep = SyntheticEpisode(hz=HZ, cameras={})
    with tempfile.TemporaryDirectory() as d:
        w = EpisodeWriter(Path(d) / "s.mcap", {}, flush_period_s=1e9, compression="none")
        for tick in ep.ticks(200):
            w.write(tick)
        state_bytes = w.close("success").read_bytes()
    samples = {
        "state msgs": state_bytes,
        "JPEG 320x240": b"".join(make_jpeg(320, 240, i) for i in range(16)),
        "JPEG 640x480": b"".join(make_jpeg(640, 480, i) for i in range(16)),
    }
    out = []
    for label, data in samples.items():
        for codec, fn in (("zstd", zstandard.compress), ("lz4", lz4.frame.compress)):
            n, t0 = 0, time.process_time()
            while time.process_time() - t0 < seconds_each:
                packed = fn(data)
                n += 1
            out.append((label, codec, len(data) * n / (time.process_time() - t0) / 1e6, len(packed) / len(data)))
    return out


def info_run(directory: Path, minutes: float) -> dict[str, float]:
    """Generates a `minutes`-long recording (2 cameras 320×240) and times `recording_info`."""
    ep = SyntheticEpisode(hz=HZ, cameras={"front": (320, 240), "wrist": (320, 240)}, jpeg_pool=12)
    path = directory / "long.mcap"
    w = EpisodeWriter(path, {"bench": "info"}, flush_period_s=1e9)
    t = time.perf_counter()
    for i in range(int(minutes * 60 * HZ)):
        w.write(ep.tick(i))
        if (i + 1) % 20 == 0:
            w.flush()
    w.close("success")
    gen = time.perf_counter() - t
    times_seq, times_fast = [], []
    for _ in range(3):
        t = time.perf_counter()
        info = recording_info(path)
        times_seq.append(time.perf_counter() - t)
        t = time.perf_counter()
        recording_info(path, sequences=False)
        times_fast.append(time.perf_counter() - t)
    return {
        "recorded_s": info["duration_s"],
        "messages": info["messages"],
        "file_MB": path.stat().st_size / 1e6,
        "generate_s": gen,
        "info_s": statistics.median(times_seq),
        "info_no_seq_s": statistics.median(times_fast),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=30.0, help="recorded seconds per writer run")
    p.add_argument("--info-minutes", type=float, default=10.0)
    p.add_argument("--compressions", default="zstd,lz4,none")
    p.add_argument("--dir", type=Path, default=None, help="where to write (default: a temporary folder)")
    args = p.parse_args()
    configs = {
        "state only": {},
        "2 cams 320x240": {"front": (320, 240), "wrist": (320, 240)},
        "2 cams 640x480": {"front": (640, 480), "wrist": (640, 480)},
    }
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        directory = Path(d)
        print(f"writer: {args.seconds:g} s of recording per run, 40 Hz ticks, cameras 15 Hz, flush+fsync every 0.5 s")
        header = (
            f"{'config':16} {'comp':5} {'msgs':>6} {'msgs/s':>9} {'MB/s':>7} {'MB/rec-s':>8} {'CPU/rec-s':>9} "
            f"{'thread':>7} {'tick p50':>8} {'p99':>6} {'max':>6} ms"
        )
        print(header)
        for name, cams in configs.items():
            for comp in args.compressions.split(","):
                r = write_run(directory, name.replace(" ", "_"), cams, args.seconds, comp)
                print(
                    f"{name:16} {comp:5} {r['messages']:>6.0f} {r['msgs_per_s']:>9.0f} {r['MB_per_s']:>7.1f} "
                    f"{r['MB_per_rec_s']:>8.3f} {r['cpu_per_rec_s'] * 100:>8.2f}% "
                    f"{r['thread_cpu_per_rec_s'] * 100:>6.2f}% "
                    f"{r['tick_p50_ms']:>8.3f} {r['tick_p99_ms']:>6.2f} {r['tick_max_ms']:>6.1f}"
                )
        print()
        print("chunk compressors alone (CPU time, one core):")
        for label, codec, mbps, ratio in compressor_run():
            print(f"  {label:13} {codec:5} {mbps:8.0f} MB/s   compressed size {ratio * 100:5.1f}% of input")
        print()
        r = info_run(directory, args.info_minutes)
        print(
            f"info: {r['recorded_s']:.0f} s recording, {r['messages']} messages, {r['file_MB']:.1f} MB "
            f"(generated in {r['generate_s']:.1f} s): info {r['info_s']:.2f} s, "
            f"info --no-seq {r['info_no_seq_s']:.2f} s"
        )


if __name__ == "__main__":
    main()
