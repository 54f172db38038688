"""`teleop-replay recover` on damaged copies of a real recording: does every file it writes read whole?

    .venv/bin/python benchmarks/bench_recover_damaged.py recordings/success/NAME.mcap [--copies 1000] [--seed 0]

Each copy is the recording cut at a random byte (a crash), in four equal shares: cut only; cut
with a byte flipped near the start (first 4 kB: header, start metadata, the scene attachment);
cut with a byte flipped just before the cut (last 4 kB); cut with a byte flipped anywhere. Each is
recovered (`robot_formats.recording.recover.recover`, what `teleop-replay recover` runs) and
every file written is read whole with the official `mcap` reader: every record in file order
with CRCs checked, then every message, metadata record and attachment through the summary, the
counts agreeing with its statistics. Prints how many read whole, and what was kept.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from robot_formats.recording.recover import recover  # noqa: E402
from tests.recording_checks import DAMAGE_SPAN, damaged, read_whole  # noqa: E402

KINDS = ("cut", "cut + flip near the start", "cut + flip before the cut", "cut + flip anywhere")


def damaged_copy(data: bytes, kind: int, rng: random.Random) -> bytes:
    """A copy of `data` damaged as `KINDS[kind]` says, drawn from `rng`."""
    cut = rng.randrange(1, len(data) + 1)
    if kind == 0:
        return damaged(data, cut)
    span = min(DAMAGE_SPAN, cut)
    # all three offsets are drawn whatever the kind: the copies of a seed stay those of earlier runs
    offsets = {"start": rng.randrange(span), "cut": rng.randrange(span), "any": rng.randrange(cut)}
    where = ("start", "cut", "any")[kind - 1]
    return damaged(data, cut, [(where, offsets[where], 1 << rng.randrange(8))])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", type=Path, help="a real recording (e.g. one of ./run_server.sh --debug)")
    ap.add_argument("--copies", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    data = args.file.read_bytes()
    total = read_whole(args.file)
    rng = random.Random(args.seed)
    written = readable = unrecoverable = with_drops = 0
    failures: list[str] = []
    per_kind = {k: [0, 0] for k in KINDS}  # written, read whole
    kept = 0
    t_recover = 0.0
    with tempfile.TemporaryDirectory(prefix="recover-bench-") as d:
        for i in range(args.copies):
            kind = i % len(KINDS)
            partial = Path(d) / f"copy{i}.mcap.partial"
            partial.write_bytes(damaged_copy(data, kind, rng))
            t0 = time.perf_counter()
            try:
                report = recover(partial)
            except Exception as exc:  # noqa: BLE001 - counted and shown: recover refused to write
                failures.append(f"copy {i} ({KINDS[kind]}): recover raised {type(exc).__name__}: {exc}")
                partial.unlink(missing_ok=True)
                continue
            t_recover += time.perf_counter() - t0
            if report.output is None:
                unrecoverable += 1
                partial.unlink(missing_ok=True)
                continue
            written += 1
            per_kind[KINDS[kind]][0] += 1
            with_drops += bool(report.dropped)
            try:
                n = read_whole(report.output)
                readable += 1
                per_kind[KINDS[kind]][1] += 1
                kept += n
            except Exception as exc:  # noqa: BLE001 - the figure this benchmark is about
                failures.append(f"copy {i} ({KINDS[kind]}): {type(exc).__name__}: {exc}")
            report.output.unlink(missing_ok=True)
    print(f"source: {args.file} ({len(data) / 1e6:.2f} MB, {total} messages); "
          f"{args.copies} damaged copies, seed {args.seed}")
    for kind, (w, ok) in per_kind.items():
        print(f"  {kind:<28} {ok}/{w} recovered files read whole")
    print(f"recovered files that read whole with the official reader: {readable}/{written}")
    print(f"unrecoverable (no header; nothing written): {unrecoverable}; with damaged records dropped/repaired: "
          f"{with_drops}; recover refused: {len([f for f in failures if 'recover raised' in f])}")
    if written:
        print(f"messages kept: {kept / written / total * 100:.1f} % of the original on average; "
              f"recover {t_recover / (written + unrecoverable) * 1e3:.1f} ms per copy")
    for line in failures[:20]:
        print("  " + line)
    return 0 if readable == written and not failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
