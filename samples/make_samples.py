"""Regenerate the shipped sample clips and their manifest, deterministically.

    .venv/bin/python samples/make_samples.py samples/

These are the scan spine's smoke samples: procedurally rendered scenes with known truth
(no third-party footage). The labelled corpus command (`detector samples make`, issue 5)
will replace them with real-footage and presenter scenes.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from detector.synth.scenes import cut_scene, looped_scene, moving_scene, static_scene
from detector.synth.writer import write_clip

WIDTH, HEIGHT, FPS = 540, 960, 25      # portrait, as most rooms are streamed
BITRATE_KBPS = 700                     # a low streaming bitrate keeps the repo lean


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = []

    def clip(name, label, group, variant, duration_s, frames, params):
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

    with open(out / "manifest.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent))
