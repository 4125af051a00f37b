"""Accelerated long watch: memory of `detector watch` over hours of stream time.

Writes a long synthetic room (never-repeating footage with a looped stretch every
`--loop-every-s`, so loop alerts happen all along), then runs a WatchSession over the file
as fast as it decodes (a file is not paced) and records the process RSS against stream time.
Memory is bounded by design (fingerprints for `loop_memory_s` in a fixed ring, a fixed number
of open windows, no frame kept): RSS should rise while the ring fills, then stay flat.

    PYTHONPATH=. python bench/bench_watch.py --hours 1 --loop-memory-s 600 --json rss.json
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import sys
import time
from pathlib import Path

from detector.config import ScanConfig, WatchConfig
from detector.synth.scenes import looped_scene, moving_scene
from detector.synth.writer import write_clip
from detector.watch.session import EventWriter, WatchSession


def long_room(width: int, height: int, fps: float, total_s: float, loop_every_s: float, seed: int = 0):
    """Blocks of `loop_every_s`: 2/3 live room, then a 1/6-block clip played twice."""
    blocks = []
    t = 0.0
    k = 0
    while t < total_s:
        block = min(loop_every_s, total_s - t)
        live_s = block * 2 / 3
        blocks.append(moving_scene(width, height, fps, live_s, seed=seed + 2 * k))
        rest = block - live_s
        if rest >= 2:
            frames, _ = looped_scene(width, height, fps, rest, seed=seed + 2 * k + 1, period_s=rest / 2)
            blocks.append(frames)
        t += block
        k += 1
    return itertools.chain.from_iterable(blocks)


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--fps", type=float, default=10.0, help="frame rate of the synthetic stream")
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--loop-memory-s", type=float, default=WatchConfig().loop_memory_s)
    parser.add_argument("--loop-every-s", type=float, default=180.0)
    parser.add_argument("--model", default=None, help="model file; default: the shipped one; 'none': no verdicts")
    parser.add_argument("--clip", type=Path, default=Path("/tmp/bench_watch_room.ts"))
    parser.add_argument("--json", type=Path, default=None, help="write the RSS series here")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    total_s = args.hours * 3600

    if not args.clip.exists():
        started = time.perf_counter()
        write_clip(args.clip, long_room(width, height, args.fps, total_s, args.loop_every_s), args.fps,
                   gop_s=2.0, preset="ultrafast", container_format="mpegts")
        print(f"wrote {args.clip} ({total_s:.0f} s) in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    os.utime(args.clip, (time.time() - 3600, time.time() - 3600))   # a finished file: not followed

    model = None
    if args.model != "none":
        from detector.model import default_model_path, load_model
        from detector.pipeline import feature_schema

        path = Path(args.model) if args.model else default_model_path()
        model = load_model(path, expected_schema=feature_schema()) if path else None
    config = ScanConfig(stream_duration_s=float("inf"))
    watch = WatchConfig(loop_memory_s=args.loop_memory_s, status_interval_s=5.0)
    series: list[tuple[float, float, float]] = []
    start = time.perf_counter()

    def record(info: dict) -> None:
        if info.get("stream_t_s") is not None:
            series.append((round(info["stream_t_s"], 1), round(rss_mb(), 1), round(time.perf_counter() - start, 1)))
            if len(series) % 12 == 0:
                t, mb, wall = series[-1]
                print(f"stream {t / 60:7.1f} min  rss {mb:6.1f} MB  wall {wall:6.0f} s  "
                      f"fingerprints {info['fingerprints']}  loops {info['loops']}", file=sys.stderr)

    events = io.StringIO()
    session = WatchSession(str(args.clip), config, watch, model, EventWriter(events, durable=False), status=record)
    outcome = session.run()
    wall_s = time.perf_counter() - start
    summary = outcome.summary
    filled = [mb for t, mb, _ in series if t >= args.loop_memory_s + watch.window_s]
    result = {
        "stream_s": summary["stream_s"], "wall_s": round(wall_s, 1),
        "speed_x_real_time": round(summary["stream_s"] / wall_s, 2),
        "loop_memory_s": args.loop_memory_s, "fingerprints_kept": summary["fingerprints_kept"],
        "fingerprint_mb": summary["fingerprint_mb"], "loops_alerted": summary["loops"],
        "events": summary["events"], "loop_searches": summary["loop_searches"],
        "rss_mb_at_end": series[-1][1] if series else None, "peak_rss_mb": summary["peak_rss_mb"],
        "rss_mb_after_ring_full": {"min": min(filled), "max": max(filled)} if filled else None,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps({**result, "series": series}) + "\n")


if __name__ == "__main__":
    main()
