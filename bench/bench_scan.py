"""Benchmark of the scan spine's performance requirements.

    python bench/bench_scan.py            # 10-minute + 1-minute clips (generating the clips takes ~7 min, once)
    python bench/bench_scan.py --quick    # 1-minute + 10-second clips (smoke test, ~1 min)
    python bench/bench_scan.py --profile scan   # cProfile one full scan of the long clip
    python bench/bench_scan.py --breakdown      # main-thread CPU per part: conversion, each extractor

Requirements checked (see bench/README.md):
  * full scan wall time <= 1.25 x plain threaded PyAV decoding of the same clip;
  * triage (keyframes only) >= 100 x real time;
  * peak memory flat in clip length (10-min scan peak RSS / 1-min scan peak RSS close to 1).

Every measurement runs in a fresh child process (this same file with --child), which reports
its own wall time, CPU time and peak RSS (VmHWM; see _peak_rss_mb for why not ru_maxrss).
This is a benchmark: requirements are printed as PASS/FAIL, nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"

# Streaming-like encoding of the synthetic clips.
WIDTH, HEIGHT, FPS = 1280, 720, 30
BITRATE_KBPS = 2500
GOP_S = 2.0
BFRAMES = 2
PRESET = "veryfast"
SEED = 20240611

# Requirements.
MAX_SCAN_OVER_DECODE = 1.25
MIN_TRIAGE_RTF = 100.0
# "Flat" memory: the long clip's peak RSS may exceed the short clip's by at most this factor.
MAX_RSS_RATIO = 1.10

KINDS = ("decode", "scan", "triage", "breakdown-scan", "breakdown-triage")


# ----------------------------------------------------------------------------------------
# child side: one measurement per process
# ----------------------------------------------------------------------------------------
def _status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (Linux), in MiB."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def _rss_now_mb() -> float:
    return _status_mb("VmRSS")


def _peak_rss_mb() -> float:
    """Peak RSS of this process since exec.

    VmHWM belongs to the current address space, so it starts afresh at exec. ru_maxrss does
    not: Linux carries the pre-exec high-water mark (the forked copy of the parent) over
    exec, so a child of a big parent would report the parent's size. ru_maxrss is the
    fallback where /proc is missing.
    """
    peak = _status_mb("VmHWM")
    if peak == peak:   # not NaN
        return peak
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _child(kind: str, path: str) -> dict:
    """Run one measurement; imports happen before the clock starts."""
    import av  # noqa: F401  (imported before timing in every kind)
    import numpy  # noqa: F401

    result: dict = {"kind": kind, "path": path}
    if kind == "decode":
        result["rss_before_mb"] = _rss_now_mb()
        t0, c0 = time.perf_counter(), time.process_time()
        n = 0
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for _frame in container.decode(stream):
                n += 1
        result["wall_s"] = time.perf_counter() - t0
        result["cpu_s"] = time.process_time() - c0
        result["frames_decoded"] = n
        result["frames_sampled"] = 0
    else:
        import cv2  # noqa: F401

        from detector.config import ScanConfig
        from detector.pipeline import extract

        config = ScanConfig(triage=(kind == "triage"))
        result["rss_before_mb"] = _rss_now_mb()
        t0, c0 = time.perf_counter(), time.process_time()
        extraction = extract(path, config)
        result["wall_s"] = time.perf_counter() - t0
        result["cpu_s"] = time.process_time() - c0
        stats = extraction.stats
        result["frames_decoded"] = stats.frames_decoded
        result["frames_sampled"] = stats.frames_sampled
        result["decoded_duration_s"] = stats.duration_s
        result["decode_errors"] = stats.decode_errors
        result["audio_samples"] = stats.audio_samples
        result["stopped_early"] = stats.stopped_early
    result["peak_rss_mb"] = _peak_rss_mb()
    # For the record: ru_maxrss (KiB on Linux), which may include the parent's pre-exec size.
    result["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return result


class _Timed:
    """Wraps an extractor and adds up the main-thread CPU and wall time of its calls."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.update_cpu_s = self.update_wall_s = self.finalize_cpu_s = self.finalize_wall_s = 0.0
        self.audio_cpu_s = 0.0
        self.updates = 0

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    def reset(self, meta) -> None:
        self._inner.reset(meta)

    def update(self, frame) -> None:
        c0, t0 = time.thread_time(), time.perf_counter()
        self._inner.update(frame)
        self.update_cpu_s += time.thread_time() - c0
        self.update_wall_s += time.perf_counter() - t0
        self.updates += 1

    def update_audio(self, chunk) -> None:
        c0 = time.thread_time()
        self._inner.update_audio(chunk)
        self.audio_cpu_s += time.thread_time() - c0

    def finalize(self):
        c0, t0 = time.thread_time(), time.perf_counter()
        result = self._inner.finalize()
        self.finalize_cpu_s += time.thread_time() - c0
        self.finalize_wall_s += time.perf_counter() - t0
        return result


def _child_breakdown(kind: str, path: str) -> dict:
    """One scan with the main thread's CPU split into conversion, each extractor, and the rest.

    `time.thread_time` counts only the calling thread, so the figures hold up reasonably
    when other work competes for the CPUs (wall times do not).
    """
    import av  # noqa: F401
    import cv2  # noqa: F401

    from detector.config import ScanConfig
    from detector.extractors import build_extractors
    from detector.pipeline import extract
    from detector.source import VideoSource

    import detector.source as source_module

    config = ScanConfig(triage=(kind == "triage"))
    convert = {"cpu_s": 0.0, "wall_s": 0.0, "n": 0}
    thumbs = {"cpu_s": 0.0, "n": 0}
    thumb_of = source_module.decoded_thumb

    def timed_thumb(luma):      # the per-decoded-frame thumbnail (Frame.decoded)
        c0 = time.thread_time()
        thumb = thumb_of(luma)
        thumbs["cpu_s"] += time.thread_time() - c0
        thumbs["n"] += 1
        return thumb

    source_module.decoded_thumb = timed_thumb

    class TimedSource(VideoSource):
        def _convert(self, *args, **kwargs):   # private hook: a diagnostic may lean on it
            c0, t0 = time.thread_time(), time.perf_counter()
            frame = super()._convert(*args, **kwargs)
            convert["cpu_s"] += time.thread_time() - c0
            convert["wall_s"] += time.perf_counter() - t0
            convert["n"] += 1
            return frame

    wrapped = [_Timed(e) for e in build_extractors(config.extractors, config)]
    source = TimedSource(path, config)
    c0, m0, t0 = time.process_time(), time.thread_time(), time.perf_counter()
    try:
        extraction = extract(source, config, extractors=wrapped)
    finally:
        source.close()
    wall, cpu, main = time.perf_counter() - t0, time.process_time() - c0, time.thread_time() - m0
    named = convert["cpu_s"] + thumbs["cpu_s"] + sum(w.update_cpu_s + w.finalize_cpu_s for w in wrapped)
    return {
        "kind": kind, "path": path, "wall_s": wall, "process_cpu_s": cpu, "main_thread_cpu_s": main,
        "other_threads_cpu_s": cpu - main,
        "frames_decoded": extraction.stats.frames_decoded, "frames_sampled": extraction.stats.frames_sampled,
        "convert": convert,
        "decoded_thumbs": thumbs,
        "extractors": {w.name: {"update_cpu_s": w.update_cpu_s, "update_wall_s": w.update_wall_s,
                                "finalize_cpu_s": w.finalize_cpu_s, "finalize_wall_s": w.finalize_wall_s,
                                "update_audio_cpu_s": w.audio_cpu_s,
                                "updates": w.updates} for w in wrapped},
        # Decoder calls on the main thread, demuxing, PTS bookkeeping and the generator chain.
        "main_thread_rest_cpu_s": main - named,
        "peak_rss_mb": _peak_rss_mb(),
    }


def print_breakdown(result: dict) -> None:
    n_s = max(result["frames_sampled"], 1)
    n_d = max(result["frames_decoded"], 1)
    print(f"\n{result['kind']} breakdown: {result['wall_s']:.2f} s wall, {result['process_cpu_s']:.2f} s cpu "
          f"({result['main_thread_cpu_s']:.2f} s main thread, {result['other_threads_cpu_s']:.2f} s decoder "
          f"threads); {result['frames_decoded']} decoded, {result['frames_sampled']} sampled")
    print(f"  {'part':<28} {'main-thread cpu s':>18} {'ms / sampled frame':>20}")
    rows = [("conversion (_convert)", result["convert"]["cpu_s"])]
    for name, e in result["extractors"].items():
        rows.append((f"{name}.update", e["update_cpu_s"]))
        if e.get("update_audio_cpu_s"):
            rows.append((f"{name}.update_audio", e["update_audio_cpu_s"]))
        rows.append((f"{name}.finalize", e["finalize_cpu_s"]))
    for name, cpu in rows:
        per = f"{1e3 * cpu / n_s:.3f}" if not name.endswith(".finalize") else "(once)"
        print(f"  {name:<28} {cpu:>18.2f} {per:>20}")
    thumbs = result["decoded_thumbs"]
    print(f"  {'decoded thumbnails':<28} {thumbs['cpu_s']:>18.2f} {1e6 * thumbs['cpu_s'] / max(thumbs['n'], 1):>14.1f} us/decoded")
    rest = result["main_thread_rest_cpu_s"]
    print(f"  {'rest (decode calls, loop)':<28} {rest:>18.2f} {1e6 * rest / n_d:>14.1f} us/decoded")


def _child_profile(kind: str, path: str, out: Path, top: int) -> None:
    import cProfile
    import pstats

    import av  # noqa: F401
    import cv2  # noqa: F401

    from detector.config import ScanConfig
    from detector.pipeline import extract

    config = ScanConfig(triage=(kind == "triage"))
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    extract(path, config)
    profiler.disable()
    print(f"profiled {kind} of {path}: {time.perf_counter() - t0:.2f} s wall (with profiler overhead)")
    profiler.dump_stats(str(out))
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    print(f"profile written to {out}")


# ----------------------------------------------------------------------------------------
# parent side
# ----------------------------------------------------------------------------------------
def clip_path(duration_s: int) -> Path:
    return OUT / (f"moving_{WIDTH}x{HEIGHT}_{FPS}fps_{duration_s}s_{BITRATE_KBPS}k_"
                  f"g{GOP_S:g}s_bf{BFRAMES}_seed{SEED}.mp4")


def ensure_clip(duration_s: int) -> tuple[Path, float | None]:
    """Generate the clip if missing; return its path and the generation time (None if cached)."""
    path = clip_path(duration_s)
    if path.exists() and path.stat().st_size > 0:
        return path, None
    from detector.synth.scenes import moving_scene
    from detector.synth.writer import write_clip

    OUT.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".partial.mp4")
    print(f"generating {path.name} ({duration_s} s of {WIDTH}x{HEIGHT}@{FPS}) ...", flush=True)
    t0 = time.perf_counter()
    frames = moving_scene(WIDTH, HEIGHT, FPS, duration_s, SEED)
    write_clip(partial, frames, FPS, codec="libx264", bitrate_kbps=BITRATE_KBPS, gop_s=GOP_S,
               bframes=BFRAMES, preset=PRESET)
    os.replace(partial, path)   # a half-written clip is never mistaken for a finished one
    elapsed = time.perf_counter() - t0
    print(f"  done in {elapsed:.0f} s ({path.stat().st_size / 1e6:.1f} MB)", flush=True)
    return path, elapsed


AUDIO_RATE = 48000


def soundtrack(duration_s: float, seed: int) -> np.ndarray:
    """A never-repeating mono track: short harmonic notes (voice-like) and noise bursts at
    random pitches, lengths and levels over faint room noise, float32 at AUDIO_RATE."""
    rng = np.random.default_rng(seed)
    out = (0.003 * rng.standard_normal(int(duration_s * AUDIO_RATE))).astype(np.float32)
    t = 0.0
    while t < duration_s:
        length_s = rng.uniform(0.08, 0.4)
        n, start = int(length_s * AUDIO_RATE), int(t * AUDIO_RATE)
        tt = np.arange(n) / AUDIO_RATE
        if rng.random() < 0.8:
            f0 = rng.uniform(120, 600)
            event = sum(rng.uniform(0.2, 1) / k * np.sin(2 * np.pi * f0 * k * tt + rng.uniform(0, 6)) for k in range(1, 9))
        else:
            event = rng.standard_normal(n)
        event = (0.25 * np.sin(np.pi * np.arange(n) / n) ** 0.5 * event).astype(np.float32)[: len(out) - start]
        out[start:start + len(event)] += event
        t += length_s * rng.uniform(0.6, 1.3)
    return out


def ensure_clip_with_audio(video_clip: Path) -> tuple[Path, float | None]:
    """`video_clip` remuxed (video packets copied, not re-encoded) with a stereo AAC 48 kHz
    soundtrack, as a live stream carries: measures what decoding and analysing audio adds."""
    import av

    path = video_clip.with_name(video_clip.stem + "_aac48k.mp4")
    if path.exists() and path.stat().st_size > 0:
        return path, None
    partial = path.with_name(path.stem + ".partial.mp4")
    print(f"adding a soundtrack: {path.name} ...", flush=True)
    t0 = time.perf_counter()
    with av.open(str(video_clip)) as source:
        duration_s = float(source.duration / 1_000_000) if source.duration else 600.0
        mono = soundtrack(duration_s, SEED)
        with av.open(str(partial), "w") as out:
            video_in = source.streams.video[0]
            video_out = out.add_stream_from_template(video_in)
            audio_out = out.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
            audio_out.bit_rate = 128_000
            written = 0

            def audio_until(t_s: float) -> None:
                nonlocal written
                limit = min(len(mono), int(t_s * AUDIO_RATE))
                while written < limit:
                    chunk = mono[written:written + 1024]
                    frame = av.AudioFrame.from_ndarray(np.vstack([chunk, chunk]), format="fltp", layout="stereo")
                    frame.sample_rate, frame.pts = AUDIO_RATE, written
                    frame.time_base = Fraction(1, AUDIO_RATE)
                    out.mux(audio_out.encode(frame))
                    written += len(chunk)

            for packet in source.demux(video_in):
                if packet.dts is None:
                    continue
                audio_until(float(packet.pts * packet.time_base) + 0.5 if packet.pts is not None else 0.0)
                packet.stream = video_out
                out.mux(packet)
            audio_until(len(mono) / AUDIO_RATE)
            out.mux(audio_out.encode(None))
    os.replace(partial, path)
    elapsed = time.perf_counter() - t0
    print(f"  done in {elapsed:.0f} s ({path.stat().st_size / 1e6:.1f} MB)", flush=True)
    return path, elapsed


def run_child(kind: str, path: Path) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, str(path)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"child {kind} on {path.name} failed ({proc.returncode}):\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = elapsed
    return result


def clip_facts(path: Path) -> dict:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        declared = float(stream.duration * stream.time_base) if stream.duration else None
        return {
            "path": str(path.relative_to(HERE.parent)) if path.is_relative_to(HERE.parent) else str(path),
            "size_mb": round(path.stat().st_size / 1e6, 2),
            "declared_duration_s": declared,
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "codec": stream.codec_context.name,
            "bit_rate_kbps": round(container.bit_rate / 1000) if container.bit_rate else None,
            "has_b_frames": bool(stream.codec_context.has_b_frames),
        }


def busy_share(seconds: float = 1.0) -> float:
    """Share of all CPUs busy over `seconds` while this process sleeps: other work's load."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as fh:
            values = [int(v) for v in fh.readline().split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)   # idle + iowait
        return sum(values), idle

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except OSError:
        return float("nan")
    total = total1 - total0
    return (total - (idle1 - idle0)) / total if total > 0 else float("nan")


def best(runs: list[dict]) -> dict:
    return min(runs, key=lambda r: r["wall_s"])


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def code_facts() -> dict:
    """Which code was measured: the commit, uncommitted changes, and the extractors run."""
    from detector.extractors import REGISTRY

    def git(*cmd: str) -> str:
        try:
            proc = subprocess.run(["git", *cmd], cwd=HERE.parent, capture_output=True, text=True, check=False)
        except OSError:
            return ""
        return proc.stdout if proc.returncode == 0 else ""

    # Porcelain lines are "XY path"; the leading status column may be a space, so no strip().
    changed = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines() if line]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "uncommitted_changes": changed,
            "extractors": list(REGISTRY)}


def machine_facts() -> dict:
    import av
    import cv2
    import numpy

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "av": av.__version__,
        "ffmpeg_libavcodec": ".".join(map(str, av.library_versions.get("libavcodec", ()))),
        "opencv": cv2.__version__,
        "numpy": numpy.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1-minute and 10-second clips (smoke test)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per measurement; best wall time wins")
    parser.add_argument("--json", type=Path, default=None,
                        help="where to write results (default bench/out/scan.json, scan_quick.json with --quick)")
    parser.add_argument("--profile", choices=("scan", "triage"), default=None,
                        help="instead of benchmarking, cProfile one scan of the long clip")
    parser.add_argument("--breakdown", action="store_true",
                        help="instead of benchmarking, split one scan and one triage scan of the long clip "
                             "into conversion, each extractor and the rest (main-thread CPU)")
    parser.add_argument("--top", type=int, default=30, help="rows of the profile to print")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--child-profile", nargs=3, metavar=("KIND", "PATH", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        kind, path = args.child
        if kind not in KINDS:
            parser.error(f"unknown child kind {kind}")
        if kind.startswith("breakdown-"):
            print(json.dumps(_child_breakdown(kind.removeprefix("breakdown-"), path)))
        else:
            print(json.dumps(_child(kind, path)))
        return 0
    if args.child_profile:
        kind, path, out = args.child_profile
        _child_profile(kind, path, Path(out), args.top)
        return 0

    long_s, short_s = (60, 10) if args.quick else (600, 60)
    long_clip, gen_long = ensure_clip(long_s)
    short_clip, gen_short = ensure_clip(short_s)
    audio_clip, gen_audio = ensure_clip_with_audio(long_clip)

    if args.profile:
        out = OUT / f"{args.profile}_{long_s}s.prof"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--top", str(args.top),
               "--child-profile", args.profile, str(long_clip), str(out)]
        return subprocess.run(cmd, check=False).returncode

    if args.breakdown:
        # The clip with a soundtrack, so that the audio extractor's share shows too.
        results = [run_child(f"breakdown-{kind}", audio_clip) for kind in ("scan", "triage")]
        for result in results:
            print_breakdown(result)
        out = OUT / ("breakdown_quick.json" if args.quick else "breakdown.json")
        out.write_text(json.dumps({"code": code_facts(), "results": results}, indent=2) + "\n", encoding="utf-8")
        print(f"\nresults written to {out}")
        return 0

    repeats = max(1, args.repeats)
    code = code_facts()
    print(f"code: commit {code['commit'] or '?'}"
          f"{' + uncommitted changes' if code['uncommitted_changes'] else ''}; "
          f"extractors: {', '.join(code['extractors'])}", flush=True)
    busy_before = busy_share(2.0)
    if busy_before > 0.1:
        print(f"warning: {busy_before:.0%} of the CPUs are busy with other work before measuring; "
              f"timings on this {os.cpu_count()}-core machine will be distorted", flush=True)
    plan = [("decode", long_clip), ("scan", long_clip), ("triage", long_clip), ("scan", short_clip),
            ("scan", audio_clip)]
    runs: dict[tuple[str, Path], list[dict]] = {key: [] for key in plan}
    # Interleave the repeats so slow drifts of the machine hit every measurement alike.
    for r in range(repeats):
        for kind, path in plan:
            label = f"{kind} {path.name.split('_')[3]}{' +aac' if path == audio_clip else ''}"
            print(f"run {r + 1}/{repeats}: {label:<12}", end=" ", flush=True)
            result = run_child(kind, path)
            runs[(kind, path)].append(result)
            print(f"{result['wall_s']:8.2f} s wall  {result['cpu_s']:8.2f} s cpu  "
                  f"{result['peak_rss_mb']:7.1f} MB peak", flush=True)

    busy_after = busy_share(2.0)
    dec, scan, tri = (best(runs[(k, long_clip)]) for k in ("decode", "scan", "triage"))
    short = best(runs[("scan", short_clip)])
    with_audio = best(runs[("scan", audio_clip)])
    # Clip durations: decoded (counted frames, PTS), from the full scans.
    long_dur = scan["decoded_duration_s"]
    short_dur = short["decoded_duration_s"]
    # Peak memory: the worst of the repeated runs (peaks are not noise to minimise away).
    rss_long = max(r["peak_rss_mb"] for r in runs[("scan", long_clip)])
    rss_short = max(r["peak_rss_mb"] for r in runs[("scan", short_clip)])

    ratio = scan["wall_s"] / dec["wall_s"]
    # CPU seconds hold up better than wall time when other work competes for the cores.
    cpu_ratio = (statistics.median(r["cpu_s"] for r in runs[("scan", long_clip)])
                 / statistics.median(r["cpu_s"] for r in runs[("decode", long_clip)]))
    cpu_audio_ratio = (statistics.median(r["cpu_s"] for r in runs[("scan", audio_clip)])
                       / statistics.median(r["cpu_s"] for r in runs[("decode", long_clip)]))
    audio_ratio = with_audio["wall_s"] / dec["wall_s"]
    triage_rtf = long_dur / tri["wall_s"]
    scan_rtf = long_dur / scan["wall_s"]
    decode_rtf = long_dur / dec["wall_s"]
    rss_ratio = rss_long / rss_short
    checks = {
        "scan_over_decode": {"value": ratio, "limit": f"<= {MAX_SCAN_OVER_DECODE}",
                             "pass": ratio <= MAX_SCAN_OVER_DECODE},
        "scan_with_audio_over_decode": {"value": audio_ratio, "limit": f"<= {MAX_SCAN_OVER_DECODE}",
                                        "pass": audio_ratio <= MAX_SCAN_OVER_DECODE},
        "triage_realtime_factor": {"value": triage_rtf, "limit": f">= {MIN_TRIAGE_RTF:g}",
                                   "pass": triage_rtf >= MIN_TRIAGE_RTF},
        "peak_rss_long_over_short": {"value": rss_ratio, "limit": f"<= {MAX_RSS_RATIO}",
                                     "pass": rss_ratio <= MAX_RSS_RATIO},
    }

    rows = [
        ("clip durations (long / short)", f"{long_dur:.1f} s / {short_dur:.1f} s", ""),
        ("decode-only, PyAV threads AUTO", f"{dec['wall_s']:.2f} s  ({decode_rtf:.1f}x real time, "
                                           f"{dec['cpu_s']:.1f} s cpu)", ""),
        ("full scan", f"{scan['wall_s']:.2f} s  ({scan_rtf:.1f}x real time, {scan['cpu_s']:.1f} s cpu)", ""),
        ("scan / decode", f"{ratio:.3f}  (req <= {MAX_SCAN_OVER_DECODE})",
         verdict(checks["scan_over_decode"]["pass"])),
        ("cpu: scan / decode (median of runs)", f"{cpu_ratio:.3f}  (steadier than wall on a busy machine)", ""),
        ("full scan, same video + 48 kHz AAC", f"{with_audio['wall_s']:.2f} s  ({with_audio['cpu_s']:.1f} s cpu)", ""),
        ("scan with audio / decode", f"{audio_ratio:.3f}  (req <= {MAX_SCAN_OVER_DECODE})",
         verdict(checks["scan_with_audio_over_decode"]["pass"])),
        ("cpu: scan with audio / decode", f"{cpu_audio_ratio:.3f}", ""),
        ("triage scan (keyframes)", f"{tri['wall_s']:.2f} s  ({tri['cpu_s']:.1f} s cpu)", ""),
        ("triage real-time factor", f"{triage_rtf:.1f}x  (req >= {MIN_TRIAGE_RTF:g}x)",
         verdict(checks["triage_realtime_factor"]["pass"])),
        ("peak RSS, scan of short clip", f"{rss_short:.1f} MB", ""),
        ("peak RSS, scan of long clip", f"{rss_long:.1f} MB", ""),
        ("peak RSS long / short", f"{rss_ratio:.3f}  (req flat, <= {MAX_RSS_RATIO})",
         verdict(checks["peak_rss_long_over_short"]["pass"])),
        ("peak RSS, decode-only / triage", f"{max(r['peak_rss_mb'] for r in runs[('decode', long_clip)]):.1f} MB"
                                           f" / {max(r['peak_rss_mb'] for r in runs[('triage', long_clip)]):.1f} MB",
         ""),
        ("frames decoded (decode / scan / triage)",
         f"{dec['frames_decoded']} / {scan['frames_decoded']} / {tri['frames_decoded']}", ""),
        ("frames sampled (scan / triage)", f"{scan['frames_sampled']} / {tri['frames_sampled']}", ""),
    ]
    width = max(len(r[0]) for r in rows)
    title = (f"scan benchmark ({'quick' if args.quick else 'full'}; best of {repeats}; "
             f"CPUs busy with other work: {busy_before:.0%} before, {busy_after:.0%} after)")
    print()
    print(title)
    print("-" * len(title))
    for name, value, mark in rows:
        print(f"{name:<{width}}  {value:<52} {mark}".rstrip())

    report = {
        "mode": "quick" if args.quick else "full",
        "repeats": repeats,
        "other_cpu_busy_share_before": busy_before,
        "other_cpu_busy_share_after": busy_after,
        "code": code,
        "machine": machine_facts(),
        "clip_settings": {"width": WIDTH, "height": HEIGHT, "fps": FPS, "bitrate_kbps": BITRATE_KBPS,
                          "gop_s": GOP_S, "bframes": BFRAMES, "preset": PRESET, "seed": SEED,
                          "scene": "detector.synth.scenes.moving_scene"},
        "clips": {"long": clip_facts(long_clip) | {"decoded_duration_s": long_dur, "generation_s": gen_long},
                  "short": clip_facts(short_clip) | {"decoded_duration_s": short_dur, "generation_s": gen_short},
                  "long_with_audio": clip_facts(audio_clip) | {"generation_s": gen_audio,
                                                               "audio_samples": with_audio.get("audio_samples")}},
        "decode_s": dec["wall_s"],
        "decode_realtime_factor": decode_rtf,
        "scan_s": scan["wall_s"],
        "scan_over_decode": ratio,
        "scan_realtime_factor": scan_rtf,
        "scan_with_audio_s": with_audio["wall_s"],
        "scan_with_audio_over_decode": audio_ratio,
        "cpu_scan_over_decode": cpu_ratio,
        "cpu_scan_with_audio_over_decode": cpu_audio_ratio,
        "triage_s": tri["wall_s"],
        "triage_realtime_factor": triage_rtf,
        "peak_rss_mb": {"scan_short": rss_short, "scan_long": rss_long, "long_over_short": rss_ratio,
                        "decode_long": max(r["peak_rss_mb"] for r in runs[("decode", long_clip)]),
                        "triage_long": max(r["peak_rss_mb"] for r in runs[("triage", long_clip)])},
        "frames": {"decode_decoded": dec["frames_decoded"], "scan_decoded": scan["frames_decoded"],
                   "scan_sampled": scan["frames_sampled"], "triage_decoded": tri["frames_decoded"],
                   "triage_sampled": tri["frames_sampled"], "short_scan_decoded": short["frames_decoded"],
                   "short_scan_sampled": short["frames_sampled"]},
        "requirements": checks,
        "runs": {f"{kind}:{path.name}": rs for (kind, path), rs in runs.items()},
    }
    json_path = args.json or OUT / ("scan_quick.json" if args.quick else "scan.json")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nresults written to {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
