"""Pictures of what each class looks like, for the docs: one PNG per class.

Each PNG is a sheet with one frame (the middle one, or the middle of the first product held
up to the camera) of the first clip of every variant of that class in a corpus manifest,
captioned with the variant.

    python -m detector.corpus.gallery CORPUS_DIR docs/classes           # from an existing corpus
    python -m detector.corpus.gallery --make WORK_DIR docs/classes      # one 12 s clip per variant
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

THUMB_LONG_SIDE = 256
COLUMNS = 5


def frame_at(path: Path, t_s: float) -> np.ndarray:
    """The BGR frame shown at `t_s`, with its long side scaled to THUMB_LONG_SIDE."""
    import av
    import cv2

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        picked = None
        for frame in container.decode(stream):
            picked = frame
            if float(frame.pts * stream.time_base) + 1e-6 >= t_s:
                break
    bgr = picked.to_ndarray(format="bgr24")
    scale = THUMB_LONG_SIDE / max(bgr.shape[:2])
    return cv2.resize(bgr, (round(bgr.shape[1] * scale), round(bgr.shape[0] * scale)), interpolation=cv2.INTER_AREA)


def sheet(thumbs: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """Thumbnails with captions in a grid of COLUMNS cells (each cell fits either orientation)."""
    import cv2

    cell, caption = THUMB_LONG_SIDE + 8, 22
    rows = (len(thumbs) + COLUMNS - 1) // COLUMNS
    out = np.full((rows * (cell + caption), min(COLUMNS, len(thumbs)) * cell, 3), 255, np.uint8)
    for k, (name, thumb) in enumerate(thumbs):
        y, x = (k // COLUMNS) * (cell + caption), (k % COLUMNS) * cell
        cv2.putText(out, name, (x + 4, y + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        h, w = thumb.shape[:2]
        oy, ox = y + caption + (cell - h) // 2, x + (cell - w) // 2
        out[oy:oy + h, ox:ox + w] = thumb
    return out


def write_gallery(corpus: Path, out: Path) -> list[Path]:
    """One PNG per class found in `corpus`/manifest.csv; returns the files."""
    import cv2

    from detector.corpus.build import MANIFEST, read_manifest

    out.mkdir(parents=True, exist_ok=True)
    by_label: dict[str, dict[str, np.ndarray]] = {}
    for row in read_manifest(Path(corpus) / MANIFEST).values():
        variants = by_label.setdefault(row["label"], {})
        if row["variant"] not in variants:
            variants[row["variant"]] = frame_at(Path(corpus) / row["path"], _shown_at(row))
    written = []
    for label, variants in by_label.items():
        path = out / f"{label}.png"
        ok, data = cv2.imencode(".png", sheet(list(variants.items())), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        path.write_bytes(data.tobytes())
        written.append(path)
    return written


def _shown_at(row: dict) -> float:
    """The middle of the clip, or of the first product held up to the camera if there is one."""
    import json

    products = json.loads(row["params"]).get("products_s") or []
    if products:
        _, top_s, lower_s, _ = products[0]
        return 0.5 * (top_s + lower_s)
    return 0.5 * float(row["duration_s"])


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
