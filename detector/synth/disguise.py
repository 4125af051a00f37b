"""Disguises operators put on replayed footage, as frame transforms (BGR uint8 in and out).

Each `Disguise` is a small frozen description; `apply(frame, t_s, rng)` renders it. They
compose: a pass of a loop may be mirrored, sped up, cropped, colour-shifted and overlaid at
once. The catalogue follows shared/GUIDE.md section 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Disguise:
    """What one pass looks like. Defaults are the identity."""

    mirror: bool = False
    vflip: bool = False
    crop: float = 0.0              # share of width/height cut away (0.05-0.12), then scaled back
    crop_centre: tuple[float, float] = (0.5, 0.5)   # where the kept window sits (0-1)
    rotation_deg: float = 0.0
    brightness: float = 0.0        # added to every channel, levels
    contrast: float = 1.0
    gamma: float = 1.0
    hue_shift_deg: float = 0.0
    noise_sigma: float = 0.0
    reencode_quality: int = 0      # JPEG quality of a lossy round trip (0: none)
    rescale: float = 1.0           # down-then-up scaling factor (re-encode at another resolution)
    overlay: str = ""              # "", "comments", "stickers", "watermark", "all"
    overlay_seed: int = 0
    extra: dict = field(default_factory=dict)

    def describe(self) -> str:
        parts = []
        if self.mirror:
            parts.append("mirror")
        if self.vflip:
            parts.append("vflip")
        if self.crop:
            parts.append(f"crop {self.crop:.2f}")
        if self.rotation_deg:
            parts.append(f"rotate {self.rotation_deg:g}")
        if self.brightness or self.contrast != 1 or self.gamma != 1 or self.hue_shift_deg:
            parts.append("colour")
        if self.noise_sigma:
            parts.append("noise")
        if self.reencode_quality or self.rescale != 1:
            parts.append("reencode")
        if self.overlay:
            parts.append(f"overlay {self.overlay}")
        return "+".join(parts) or "none"

    def apply(self, frame: np.ndarray, t_s: float, rng: np.random.Generator) -> np.ndarray:
        import cv2

        out = frame
        h, w = out.shape[:2]
        if self.crop or self.rotation_deg:
            out = _crop_rotate(out, self.crop, self.crop_centre, self.rotation_deg)
        if self.mirror:
            out = out[:, ::-1]
        if self.vflip:
            out = out[::-1]
        if self.hue_shift_deg:
            out = rotate_hue(out, self.hue_shift_deg)
        if self.contrast != 1 or self.brightness or self.gamma != 1:
            x = out.astype(np.float32)
            x = (x - 128.0) * self.contrast + 128.0 + self.brightness
            x = np.clip(x, 0, 255)
            if self.gamma != 1:
                x = 255.0 * (x / 255.0) ** (1.0 / self.gamma)
            out = x.astype(np.uint8)
        if self.rescale != 1:
            small = cv2.resize(out, (max(2, int(w * self.rescale)), max(2, int(h * self.rescale))),
                               interpolation=cv2.INTER_AREA)
            out = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        if self.reencode_quality:
            ok, data = cv2.imencode(".jpg", np.ascontiguousarray(out), [cv2.IMWRITE_JPEG_QUALITY, self.reencode_quality])
            out = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if self.noise_sigma:
            out = np.clip(out + rng.normal(0, self.noise_sigma, out.shape), 0, 255).astype(np.uint8)
        if self.overlay:
            out = draw_overlays(np.ascontiguousarray(out), t_s, self.overlay, self.overlay_seed)
        return np.ascontiguousarray(out)


def rotate_hue(frame: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate the chroma plane by `degrees`, keeping luma, as ffmpeg's `hue=h=` filter does.

    (Rotating H in OpenCV's HSV, as this module did before, also changes the luma of
    saturated colours by up to ~30 levels: a brightness disguise as well, which no hue tool
    applies.) Only where a rotated colour leaves the RGB gamut does clipping move luma.
    """
    import cv2

    ycc = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_BGR2YCrCb).astype(np.float32)
    cr, cb = ycc[..., 1] - 128.0, ycc[..., 2] - 128.0
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    ycc[..., 1] = 128.0 + cos * cr + sin * cb
    ycc[..., 2] = 128.0 - sin * cr + cos * cb
    return cv2.cvtColor(np.clip(ycc, 0, 255).astype(np.uint8), cv2.COLOR_YCrCb2BGR)


def _crop_rotate(frame: np.ndarray, crop: float, centre: tuple[float, float], rotation_deg: float) -> np.ndarray:
    """Keep a (1-crop) window around `centre`, rotated, scaled back to the full size."""
    import cv2

    h, w = frame.shape[:2]
    keep = 1.0 - crop
    cx = (keep / 2 + (1 - keep) * centre[0]) * w
    cy = (keep / 2 + (1 - keep) * centre[1]) * h
    scale = 1.0 / keep
    matrix = cv2.getRotationMatrix2D((cx, cy), rotation_deg, scale)
    matrix[0, 2] += w / 2 - cx
    matrix[1, 2] += h / 2 - cy
    return cv2.warpAffine(frame, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


_COMMENTS = ("主播好美", "666", "how much?", "链接在哪", "已拍", "nice!!", "求讲解", "size M?", "包邮吗", "love it")


def draw_overlays(frame: np.ndarray, t_s: float, kind: str, seed: int) -> np.ndarray:
    """Live-room overlays: scrolling comments, a like counter, price stickers, a watermark.

    Deterministic in (t_s, seed); `seed` changes what the overlays say between passes, as a
    live room's comments do.
    """
    import cv2

    h, w = frame.shape[:2]
    out = frame.copy()
    kinds = {"comments", "stickers", "watermark", "counter"} if kind == "all" else {kind}
    scale = max(h, w) / 640.0
    font = cv2.FONT_HERSHEY_SIMPLEX
    if "comments" in kinds:
        # A translucent band in the lower-left quarter with lines scrolling up (~1 line/s).
        x0, x1, y0, y1 = int(0.02 * w), int(0.55 * w), int(0.62 * h), int(0.92 * h)
        band = out[y0:y1, x0:x1].astype(np.float32)
        out[y0:y1, x0:x1] = (band * 0.55).astype(np.uint8)
        line_h = max(10, int(22 * scale))
        offset = (t_s * line_h) % line_h
        first = int(t_s) + seed * 7
        for k in range((y1 - y0) // line_h + 1):
            y = int(y1 - offset - k * line_h)
            if y - line_h < y0:
                break
            text = f"user{(first - k) % 97}: {_COMMENTS[(first - k + seed) % len(_COMMENTS)]}"
            cv2.putText(out, text.encode("ascii", "replace").decode(), (x0 + 4, y), font,
                        0.45 * scale, (255, 255, 255), max(1, int(scale)), cv2.LINE_AA)
    if "counter" in kinds or "stickers" in kinds:
        likes = 1000 + int(t_s * 13) + seed * 5000
        cv2.putText(out, f"{likes} likes", (int(0.62 * w), int(0.08 * h)), font, 0.55 * scale,
                    (255, 255, 255), max(1, int(scale)), cv2.LINE_AA)
    if "stickers" in kinds:
        # A price tag that changes colour and price between passes.
        rng = np.random.default_rng(seed)
        colour = tuple(int(c) for c in rng.integers(40, 255, 3))
        x, y = int(0.68 * w), int(0.70 * h)
        cv2.rectangle(out, (x, y), (x + int(0.28 * w), y + int(0.12 * h)), colour, -1)
        cv2.putText(out, f"${19 + seed * 3}.9", (x + 6, y + int(0.09 * h)), font, 0.8 * scale,
                    (0, 0, 0), max(1, int(2 * scale)), cv2.LINE_AA)
    if "watermark" in kinds:
        cv2.putText(out, f"LIVE {seed:02d}", (int(0.04 * w), int(0.07 * h)), font, 0.7 * scale,
                    (230, 230, 230), max(1, int(2 * scale)), cv2.LINE_AA)
    return out


def speed_indices(n_source: int, speed: float, fps: float) -> list[int]:
    """Source frame index for each output frame when playing n_source frames at `speed`."""
    n_out = int(math.floor(n_source / speed))
    return [min(n_source - 1, int(round(k * speed))) for k in range(n_out)]
