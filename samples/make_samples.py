"""Regenerate the shipped sample clips and their manifest, deterministically.

    .venv/bin/python samples/make_samples.py samples/

Two kinds of clips live here:
- the scan spine's four smoke samples (procedural scenes, 540x960, 12-14 s);
- a handful per class made by the corpus recipes (`detector.corpus`, the same code as
  `detector samples make`), 360x640 / 640x360, 16-20 s, with live-room overlays.
Clips already present are kept (the corpus build is resumable), so delete a clip to remake it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from detector.corpus.build import MANIFEST, build, read_manifest, write_manifest
from detector.corpus.plan import Encoding, Job
from detector.corpus.variants import Spec
from detector.synth.scenes import cut_scene, looped_scene, moving_scene, static_scene
from detector.synth.writer import write_clip

WIDTH, HEIGHT, FPS = 540, 960, 25      # portrait, as most rooms are streamed
BITRATE_KBPS = 700                     # a low streaming bitrate keeps the repo lean

# (file stem, label, variant, portrait, fps, duration_s, seed): clear examples of each class.
CORPUS_SAMPLES = (
    ("live_presenter", "live", "presenter", True, 25.0, 18.0, 501),
    ("live_room", "live", "room", True, 30.0, 16.0, 502),
    ("looped_mirror", "looped", "mirror", True, 25.0, 20.0, 503),
    ("looped_playlist", "looped", "playlist", False, 30.0, 18.0, 504),
    ("prerecorded_fades", "prerecorded", "cuts_and_fades", True, 25.0, 18.0, 505),
    ("prerecorded_film", "prerecorded", "film", False, 25.0, 16.0, 506),
    ("ai_driven_portrait", "ai_driven", "portrait", True, 25.0, 16.0, 507),
    ("ai_driven_recycled", "ai_driven", "recycled_presenter", True, 30.0, 18.0, 508),
)


def smoke_samples(out: Path) -> list[dict]:
    """The scan spine's smoke samples (unchanged since it shipped them)."""
    rows = []

    def clip(name, label, group, variant, duration_s, frames, params):
        if not (out / name).is_file():
            write_clip(out / name, frames, FPS, bitrate_kbps=BITRATE_KBPS, gop_s=2.0, bframes=2)
        rows.append({"path": name, "label": label, "group": group, "variant": variant,
                     "duration_s": duration_s, "params": json.dumps(params, sort_keys=True)})

    clip("live_moving_room.mp4", "live", "synth-moving-11", "moving", 12.0,
         moving_scene(WIDTH, HEIGHT, FPS, 12.0, seed=11), {"seed": 11})
    clip("live_still_room.mp4", "live", "synth-static-12", "still_room", 12.0,
         static_scene(WIDTH, HEIGHT, FPS, 12.0, seed=12), {"seed": 12})
    frames, cuts_s = cut_scene(WIDTH, HEIGHT, FPS, 12.0, seed=13, cut_times_s=[3.0, 6.5, 9.0])
    clip("prerecorded_cuts.mp4", "prerecorded", "synth-cuts-13", "hard_cuts", 12.0, frames,
         {"seed": 13, "cuts_s": cuts_s})
    frames, period_s = looped_scene(WIDTH, HEIGHT, FPS, 14.0, seed=14, period_s=4.0)
    clip("looped_4s.mp4", "looped", "synth-loop-14", "whole_loop", 14.0, frames,
         {"seed": 14, "period_s": period_s})
    return rows


def corpus_jobs() -> list[Job]:
    jobs = []
    for stem, label, variant, portrait, fps, duration_s, seed in CORPUS_SAMPLES:
        width, height = (360, 640) if portrait else (640, 360)
        spec = Spec(label, variant, width, height, fps, duration_s, seed)
        # ~0.055 bits per pixel: a low streaming bitrate (~320 kb/s at 360p25).
        bitrate = int(width * height * fps * 0.055 / 1000)
        jobs.append(Job(f"{stem}.mp4", spec, Encoding(bitrate, 2.0, 2), 1.2, seed))
    return jobs


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    smoke = smoke_samples(out)
    jobs = corpus_jobs()
    # The build keeps manifest rows it does not plan (the smoke samples); write them first.
    existing = read_manifest(out / MANIFEST)
    write_manifest(out / MANIFEST, smoke + [existing[j.path] for j in jobs if j.path in existing])
    report = build(out, jobs, n_jobs=None)
    if report.failed:
        raise SystemExit(f"failed: {report.failed}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent))
