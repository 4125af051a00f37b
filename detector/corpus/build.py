"""Render a corpus plan into H.264 clips and a manifest, resumably.

A clip is written to a temporary name and renamed when complete; the manifest is rewritten
(atomically) after every clip with the rows of the clips that are complete. Re-running skips
every job whose file and manifest row both exist, so an interrupted build continues where it
stopped. A clip that fails is reported (with its error) and left out; the next run retries it.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from detector.corpus.plan import Job

log = logging.getLogger(__name__)

MANIFEST = "manifest.csv"
COLUMNS = ("path", "label", "group", "variant", "duration_s", "params")


@dataclass
class BuildReport:
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def render_job(out: Path, job: Job) -> dict:
    """Render and encode one clip; return its manifest row."""
    from detector.corpus.layers import Overlays, with_noise
    from detector.corpus.variants import RECIPES
    from detector.synth.writer import write_clip

    spec = job.spec
    rng = np.random.default_rng([spec.seed, 3])
    rendered = RECIPES[spec.label][spec.variant](spec, rng)
    duration_s = rendered.duration_s or spec.duration_s
    n = max(1, round(duration_s * spec.fps))
    overlays = Overlays.draw(np.random.default_rng(job.overlay_draw))
    frames = rendered.frames if rendered.noise_baked else with_noise(
        rendered.frames, spec.width, spec.height, n, job.noise_sigma, np.random.default_rng([spec.seed, 4]))
    frames = overlays.over(frames, spec.fps)
    target = out / job.path
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.stem + ".part.mp4")
    audio, audio_info, audio_rate = None, None, 16000
    if job.audio:
        from detector.corpus.audio import RATE, soundtrack

        audio, audio_info = soundtrack(spec.label, rendered.truth, n / spec.fps, spec.seed)
        audio_rate = RATE
    write_clip(partial, frames, spec.fps, bitrate_kbps=job.encoding.bitrate_kbps, gop_s=job.encoding.gop_s,
               bframes=job.encoding.bframes, preset=job.encoding.preset, audio=audio, audio_rate=audio_rate,
               threads=1)
    os.replace(partial, target)
    params = {**rendered.truth, "seed": spec.seed, "width": spec.width, "height": spec.height, "fps": spec.fps,
              "bitrate_kbps": job.encoding.bitrate_kbps, "gop_s": job.encoding.gop_s,
              "bframes": job.encoding.bframes, "preset": job.encoding.preset, "noise_sigma": round(job.noise_sigma, 3),
              "overlays": list(overlays.kinds)}
    if audio_info is not None:
        params["audio"] = audio_info
    return {"path": job.path, "label": spec.label, "group": rendered.group, "variant": spec.variant,
            "duration_s": round(n / spec.fps, 4), "params": json.dumps(_rounded(params), sort_keys=True)}


def _rounded(value):
    """Floats to 4 decimals, recursively (the manifest stays readable)."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


def _complete(out: Path, row: dict, job: Job) -> bool:
    """The clip is on disk and its row describes this job (not one of another seed or set)."""
    try:
        seed = json.loads(row.get("params") or "{}").get("seed")
    except ValueError:
        return False
    has_audio = '"audio": {' in (row.get("params") or "")
    return ((out / job.path).is_file() and row.get("variant") == job.spec.variant and seed == job.spec.seed
            and has_audio == job.audio)


def read_manifest(path: Path) -> dict[str, dict]:
    """Rows of a manifest by path ({} when there is none)."""
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["path"]: row for row in csv.DictReader(handle)}


def write_manifest(path: Path, rows: Sequence[dict]) -> None:
    """Write the manifest atomically (a reader never sees half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def build(out: Path, jobs: Sequence[Job], n_jobs: int | None = None,
          on_done: Callable[[Job, str | None], None] | None = None) -> BuildReport:
    """Build every job not already complete in `out`; `on_done(job, error)` after each."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / MANIFEST
    existing = read_manifest(manifest)
    planned = {job.path for job in jobs}
    by_path = {job.path: job for job in jobs}
    rows = {p: r for p, r in existing.items() if p in planned and _complete(out, r, by_path[p])}
    # Rows of clips that are not in this plan (another --per-class, another set) are kept.
    foreign = [r for p, r in existing.items() if p not in planned]
    report = BuildReport(skipped=[j.path for j in jobs if j.path in rows])
    todo = [j for j in jobs if j.path not in rows]
    order = {job.path: k for k, job in enumerate(jobs)}

    def record(job: Job, row: dict | None, error: str | None) -> None:
        if row is not None:
            rows[job.path] = row
            report.written.append(job.path)
            write_manifest(manifest, foreign + sorted(rows.values(), key=lambda r: order[r["path"]]))
        else:
            report.failed[job.path] = error or "unknown error"
            log.error("clip %s failed: %s", job.path, error)
        if on_done is not None:
            on_done(job, error)

    if on_done is not None:
        for job in jobs:
            if job.path in rows:
                on_done(job, None)
    workers = n_jobs if n_jobs is not None else (os.cpu_count() or 1)
    if workers <= 1 or len(todo) <= 1:
        for job in todo:
            try:
                record(job, render_job(out, job), None)
            except Exception as exc:  # noqa: BLE001 - a failed clip is reported, the build goes on
                record(job, None, f"{type(exc).__name__}: {exc}")
        return report
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending = {}
        queue = list(todo)
        # Submit only a few ahead so an interrupt loses little work.
        while queue or pending:
            while queue and len(pending) < 2 * workers:
                job = queue.pop(0)
                pending[pool.submit(render_job, out, job)] = job
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                job = pending.pop(future)
                exc = future.exception()
                if exc is None:
                    record(job, future.result(), None)
                else:
                    record(job, None, f"{type(exc).__name__}: {exc}")
    return report
