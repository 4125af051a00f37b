"""Pictures of what each class looks like: one PNG per class and variant, for the docs.

Each PNG is a strip of three frames (at 20 %, 50 % and 80 % of the clip) of the first clip
of that variant in a corpus manifest, captioned with class, variant and times.

    python -m detector.corpus.gallery CORPUS_DIR docs/classes   # from an existing corpus
    python -m detector.corpus.gallery --make WORK_DIR docs/classes  # one 12 s clip per variant
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def frames_at(path: Path, times_s: list[float], height: int = 320) -> list[np.ndarray]:
    """BGR frames nearest to `times_s` (decoded in one pass), scaled to `height`."""
    import av
    import cv2

    wanted = sorted(times_s)
    out: list[np.ndarray] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            if not wanted:
                break
            t_s = float(frame.pts * stream.time_base)
            if t_s + 1e-6 >= wanted[0]:
                bgr = frame.to_ndarray(format="bgr24")
                scale = height / bgr.shape[0]
                out.append(cv2.resize(bgr, (int(bgr.shape[1] * scale) // 2 * 2, height), interpolation=cv2.INTER_AREA))
                wanted.pop(0)
    return out


def strip(path: Path, duration_s: float, caption: str) -> np.ndarray:
    import cv2

    times = [0.2 * duration_s, 0.5 * duration_s, 0.8 * duration_s]
    frames = frames_at(path, times)
    gap = np.full((frames[0].shape[0], 6, 3), 255, np.uint8)
    row = np.concatenate([x for f in frames for x in (f, gap)][:-1], axis=1)
    band = np.full((28, row.shape[1], 3), 255, np.uint8)
    text = f"{caption}  (t = {', '.join(f'{t:.1f}' for t in times)} s)"
    cv2.putText(band, text, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([band, row], axis=0)


def write_gallery(corpus: Path, out: Path) -> list[Path]:
    """One PNG per (class, variant) found in `corpus`/manifest.csv; returns the files."""
    from detector.corpus.build import MANIFEST, read_manifest
    from detector.synth.writer import write_image

    out.mkdir(parents=True, exist_ok=True)
    seen: set[tuple[str, str]] = set()
    written = []
    for row in read_manifest(Path(corpus) / MANIFEST).values():
        key = (row["label"], row["variant"])
        if key in seen:
            continue
        seen.add(key)
        image = strip(Path(corpus) / row["path"], float(row["duration_s"]), f"{row['label']} / {row['variant']}")
        written.append(write_image(out / f"{row['label']}-{row['variant']}.png", image))
    return written


def gallery_jobs(seed: int = 0):
    """One 12 s clip of every variant (portrait 360x640, 25 fps)."""
    from detector.corpus.plan import LABELS, Encoding, Job
    from detector.corpus.variants import RECIPES, Spec

    jobs = []
    for label in LABELS:
        for k, variant in enumerate(RECIPES[label]):
            spec = Spec(label, variant, 360, 640, 25.0, 12.0, 9000 + seed * 100 + k)
            jobs.append(Job(f"{label}/{variant}.mp4", spec, Encoding(500, 2.0, 2), 1.0, spec.seed))
    return jobs


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--make":
        from detector.corpus.build import build

        report = build(Path(args[1]), gallery_jobs())
        if report.failed:
            raise SystemExit(f"failed: {report.failed}")
        args = args[1:]
    for path in write_gallery(Path(args[0]), Path(args[1])):
        print(path)
