"""A tiny labelled set for the training lifecycle tests: four groups per class, one short
clip per group, made from the generators with known truth. It is too small to say how
good a model is (the corpus and the default model's card do that); it is big enough for
every fold of grouped cross-validation to hold every class."""

from __future__ import annotations

import csv
from pathlib import Path

from detector.synth.scenes import cut_scene, looped_scene, moving_scene
from detector.synth.writer import write_clip

W, H, FPS, DURATION_S = 180, 320, 25, 10.0
GROUPS_PER_CLASS = 4


def _face_clip(path: Path, seed: int) -> None:
    from face_media import portrait_states, write_states

    states, _ = portrait_states(DURATION_S, seed)
    write_states(path, states, seed=seed)


def make_labelled_set(folder: Path) -> Path:
    """Write the clips and manifest.csv (path,label,group,variant); return the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for k in range(GROUPS_PER_CLASS):
        seed = 100 + k
        clips = {
            "live": ("moving", lambda p: write_clip(p, moving_scene(W, H, FPS, DURATION_S, seed), FPS)),
            "looped": ("whole_loop", lambda p: write_clip(p, looped_scene(W, H, FPS, DURATION_S, seed, period_s=3.0 + 0.3 * k)[0], FPS)),
            "prerecorded": ("hard_cuts", lambda p: write_clip(p, cut_scene(W, H, FPS, DURATION_S, seed, [2.0 + 0.3 * k, 5.0, 7.5])[0], FPS)),
            "ai_driven": ("still_portrait", lambda p: _face_clip(p, seed)),
        }
        for label, (variant, write) in clips.items():
            name = f"{label}_{k}.mp4"
            write(folder / name)
            rows.append({"path": name, "label": label, "group": f"{label}-src{k}", "variant": variant})
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest
