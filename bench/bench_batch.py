"""Batch throughput: clip-seconds scanned per wall-second through the real command line.

    python bench/bench_batch.py                 # 100 short clips and 4 long ones (see --help)
    python bench/bench_batch.py --short 20 --long 2 --long-s 60     # a quicker run

Clips are generated once into bench/out/batch/ (ignored by git) with detector.synth: a mix
of live-like, still and looped scenes at 640x360, 25 fps. Each configuration runs
`python -m detector scan --model none -f jsonl --output ...` as a user would, so the wall
time includes starting the workers (or the Dask cluster). While it runs, the process tree
is polled for the peak resident memory of each process. Prints a table and writes
bench/out/bench_batch.json. Timings depend on the machine's load: compare ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
sys.path.insert(0, str(REPO))


def make_clips(folder: Path, count: int, duration_s: float, prefix: str) -> list[Path]:
    from detector.synth.scenes import looped_scene, moving_scene, static_scene
    from detector.synth.writer import write_clip

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{prefix}{i:03d}.mp4"
        if not path.exists():
            kind = i % 3
            if kind == 0:
                frames = moving_scene(640, 360, 25, duration_s, seed=100 + i)
            elif kind == 1:
                frames = static_scene(640, 360, 25, duration_s, seed=100 + i)
            else:
                frames, _ = looped_scene(640, 360, 25, duration_s, seed=100 + i, period_s=max(2.0, duration_s / 3))
            temporary = path.with_suffix(".tmp.mp4")
            write_clip(temporary, frames, 25)
            temporary.replace(path)
        paths.append(path)
    return paths


class _TreeMemory:
    """Peak RSS of a process and each of its descendants, polled every 0.1 s."""

    def __init__(self, pid: int) -> None:
        import psutil

        self._root = psutil.Process(pid)
        self.peak: dict[int, tuple[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                processes = [self._root, *self._root.children(recursive=True)]
            except psutil.Error:
                return
            for p in processes:
                try:
                    rss = p.memory_info().rss
                    role = _role(p.cmdline())
                except psutil.Error:
                    continue
                if rss > self.peak.get(p.pid, ("", 0))[1]:
                    self.peak[p.pid] = (role, rss)
            time.sleep(0.1)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        by_role: dict[str, float] = {}
        for role, rss in self.peak.values():
            by_role[role] = max(by_role.get(role, 0.0), rss / 2**20)
        return by_role


def _role(cmdline: list[str]) -> str:
    text = " ".join(cmdline)
    if "resource_tracker" in text:
        return "resource tracker"
    if "multiprocessing" in text or "spawn_main" in text:
        return "worker"
    return "parent"


def run(paths: list[Path], workers: int, engine: str = "local", report: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "list.txt"
        listing.write_text("\n".join(map(str, paths)) + "\n")
        out = Path(tmp) / "results.jsonl"
        command = [sys.executable, "-m", "detector", "scan", "--model", "none", "-f", "jsonl", "--exit-zero",
                   "--workers", str(workers), "--engine", engine, "--output", str(out), "--from-file", str(listing)]
        if report:
            command += ["--report", str(Path(tmp) / "report.html")]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        cpu_before = _children_cpu_s()
        started = time.perf_counter()
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        memory = _TreeMemory(proc.pid)
        _, stderr = proc.communicate()
        wall = time.perf_counter() - started
        cpu = _children_cpu_s() - cpu_before      # the command and every worker it waited for
        peaks = memory.stop()
        if proc.returncode != 0:
            raise SystemExit(f"scan failed ({proc.returncode}): {stderr.decode()[-2000:]}")
        records = [json.loads(line) for line in out.read_text().splitlines()]
    clip_s = sum(r["duration_s"] or 0 for r in records)
    errors = sum(r["error"] is not None for r in records)
    scan_s = sum(r["elapsed_s"] for r in records)
    return {"engine": engine, "workers": workers, "report": report, "clips": len(records), "errors": errors,
            "clip_s": round(clip_s, 1), "wall_s": round(wall, 2), "sum_clip_scan_s": round(scan_s, 2),
            "clip_s_per_wall_s": round(clip_s / wall, 2), "cpu_s": round(cpu, 1),
            "clip_s_per_cpu_s": round(clip_s / cpu, 2), "peak_rss_mib": {k: round(v) for k, v in peaks.items()}}


def _children_cpu_s() -> float:
    """User + system CPU of waited-for descendants: unlike wall time, it hardly depends on
    how busy the rest of the machine is."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", type=int, default=100, help="number of short clips")
    parser.add_argument("--short-s", type=float, default=5.0, help="length of a short clip, s")
    parser.add_argument("--long", type=int, default=4, help="number of long clips")
    parser.add_argument("--long-s", type=float, default=120.0, help="length of a long clip, s")
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask engine")
    parser.add_argument("--repeats", type=int, default=1, help="run the plan this many times, keep the fastest")
    args = parser.parse_args()

    folder = OUT / "batch"
    t0 = time.perf_counter()
    short = make_clips(folder, args.short, args.short_s, f"short{args.short_s:g}s_")
    long = make_clips(folder, args.long, args.long_s, f"long{args.long_s:g}s_")
    print(f"clips ready in {time.perf_counter() - t0:.0f} s ({os.cpu_count()} cores)", flush=True)

    results = {}
    # With --repeats, the whole plan runs round-robin (a change in the machine's load hits
    # every configuration alike) and the fastest run of each configuration is kept.
    plan = [("short", short, 1, "local", False), ("short", short, 2, "local", False),
            ("long", long, 1, "local", False), ("long", long, 2, "local", False),
            ("long", long, 2, "local", True)]
    if not args.no_dask:
        plan += [("short", short, 2, "dask", False), ("long", long, 2, "dask", False)]
    for _ in range(args.repeats):
        for name, paths, workers, engine, report in plan:
            key = f"{name} {engine} x{workers}" + (" +report" if report else "")
            measured = run(paths, workers, engine, report)
            print(key, json.dumps(measured), flush=True)
            if key not in results or measured["wall_s"] < results[key]["wall_s"]:
                results[key] = measured

    def ratio(a: str, b: str) -> float | None:
        if a in results and b in results:
            return round(results[b]["wall_s"] / results[a]["wall_s"], 2)
        return None

    summary = {
        "speedup_2_vs_1_short": ratio("short local x2", "short local x1"),
        "speedup_2_vs_1_long": ratio("long local x2", "long local x1"),
        "dask_wall_over_pool_short": ratio("short local x2", "short dask x2"),
        "dask_wall_over_pool_long": ratio("long local x2", "long dask x2"),
        "report_wall_over_plain_long": ratio("long local x2", "long local x2 +report"),
    }
    if "short local x2" in results and "short dask x2" in results:
        summary["dask_cpu_over_pool_short"] = round(results["short dask x2"]["cpu_s"] / results["short local x2"]["cpu_s"], 2)
    if "long local x2" in results and "long local x2 +report" in results:
        summary["report_cpu_over_plain_long"] = round(results["long local x2 +report"]["cpu_s"] / results["long local x2"]["cpu_s"], 2)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench_batch.json").write_text(json.dumps({"args": vars(args), "runs": results, "summary": summary}, indent=2))
    print()
    print(f"{'run':<28} {'clips':>5} {'clip-s':>8} {'wall s':>8} {'clip-s/wall-s':>14} {'CPU s':>7} {'clip-s/CPU-s':>13}  peak RSS MiB")
    for key, r in results.items():
        print(f"{key:<28} {r['clips']:>5} {r['clip_s']:>8} {r['wall_s']:>8} {r['clip_s_per_wall_s']:>14} {r['cpu_s']:>7} {r['clip_s_per_cpu_s']:>13}  {r['peak_rss_mib']}")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
