"""What goes on top of a clip's content: camera, lighting, sensor noise, live-room overlays.

Every class gets the same layers drawn from the same distributions, so none of them is a
cue: a looped clip's overlays keep running (the streaming software draws them live over the
replay), a live clip is as often hand-held as a recorded one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from detector.synth.disguise import draw_overlays
from detector.synth.scenes import _NoiseBank  # the scenes' fast pre-drawn sensor noise

OVERLAY_KINDS = ("comments", "counter", "stickers", "watermark")
# Sensor noise of the corpus's cameras (Gaussian sigma in luma levels), drawn per clip.
SENSOR_NOISE_SIGMA = (0.6, 1.8)


def smooth_walk(rng: np.random.Generator, n: int, fps: float, sigma: float, tau_s: float) -> np.ndarray:
    """Mean-reverting smooth random walk (two cascaded low-pass filters of white noise)."""
    from scipy.signal import lfilter

    a = math.exp(-1.0 / (fps * tau_s))
    b = math.exp(-1.0 / (fps * 0.2))
    warm = int(3 * tau_s * fps)
    x = lfilter([1 - b], [1, -b], rng.normal(0, 1, n + warm))
    y = lfilter([1 - a], [1, -a], x)[warm:]
    return y * (sigma / max(float(y.std()), 1e-9))


@dataclass
class Camera:
    """A hand-held camera's shake and an auto-exposure's drift over `n` frames.

    `shake_px` 0 is a camera on a tripod. Gains drift by a few percent.
    """

    dx: np.ndarray
    dy: np.ndarray
    rot_deg: np.ndarray
    gain: np.ndarray
    zoom: float

    @classmethod
    def make(cls, rng: np.random.Generator, n: int, fps: float, shake_px: float, drift: float) -> Camera:
        zeros = np.zeros(n)
        if shake_px > 0:
            dx, dy = smooth_walk(rng, n, fps, shake_px, 0.6), smooth_walk(rng, n, fps, shake_px, 0.6)
            rot = smooth_walk(rng, n, fps, 0.15 * shake_px, 0.8)
        else:
            dx = dy = rot = zeros
        gain = 1.0 + (smooth_walk(rng, n, fps, drift, 6.0) if drift > 0 else zeros)
        return cls(dx, dy, rot, gain, 1.0 + 2.5 * shake_px / 360.0)

    def apply(self, frame: np.ndarray, i: int) -> np.ndarray:
        i = min(i, len(self.dx) - 1)
        out = frame
        if self.dx[i] or self.dy[i] or self.rot_deg[i]:
            h, w = frame.shape[:2]
            # Zoomed in slightly so the shaken frame never shows its border.
            m = cv2.getRotationMatrix2D((w / 2, h / 2), float(self.rot_deg[i]), self.zoom)
            m[0, 2] += self.dx[i]
            m[1, 2] += self.dy[i]
            out = cv2.warpAffine(frame, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if abs(self.gain[i] - 1.0) > 1e-3:
            out = cv2.convertScaleAbs(out, alpha=float(self.gain[i]))
        return out


def filmed(frames: Iterable[np.ndarray], camera: Camera | None) -> Iterator[np.ndarray]:
    """Frames as seen through `camera` (None: unchanged)."""
    for i, frame in enumerate(frames):
        yield frame if camera is None else camera.apply(frame, i)


def with_noise(frames: Iterable[np.ndarray], width: int, height: int, n_frames: int,
               sigma: float, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Frames with fresh Gaussian sensor noise (never the same pattern twice)."""
    if sigma <= 0:
        yield from frames
        return
    bank = _NoiseBank(width, height, rng, max(1, n_frames), sigma=sigma)
    for frame in frames:
        yield bank.apply(frame)


@dataclass(frozen=True)
class Overlays:
    """The live-room graphics a streaming app draws over the picture."""

    kinds: tuple[str, ...]
    seed: int

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Overlays:
        # Most rooms show comments; a few show nothing at all.
        if rng.random() < 0.1:
            return cls((), 0)
        kinds = tuple(k for k in OVERLAY_KINDS if rng.random() < (0.8 if k == "comments" else 0.5))
        return cls(kinds, int(rng.integers(0, 50)))

    def apply(self, frame: np.ndarray, t_s: float) -> np.ndarray:
        out = frame
        for kind in self.kinds:
            # The comments' text changes every few seconds as new viewers write.
            out = draw_overlays(out, t_s, kind, self.seed + int(t_s // 7))
        return out

    def over(self, frames: Iterable[np.ndarray], fps: float) -> Iterator[np.ndarray]:
        for i, frame in enumerate(frames):
            yield self.apply(frame, i / fps) if self.kinds else frame


def crossfade(a: np.ndarray, b: np.ndarray, alpha: float) -> np.ndarray:
    """(1 - alpha) * a + alpha * b."""
    return cv2.addWeighted(a, 1.0 - alpha, b, alpha, 0.0)


def degrade(frame: np.ndarray, rescale: float, jpeg_quality: int) -> np.ndarray:
    """A picture that went through a smaller resolution and a lossy codec before."""
    h, w = frame.shape[:2]
    out = frame
    if rescale != 1.0:
        small = cv2.resize(out, (max(2, int(w * rescale)), max(2, int(h * rescale))), interpolation=cv2.INTER_AREA)
        out = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if jpeg_quality:
        ok, data = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        out = cv2.imdecode(data, cv2.IMREAD_COLOR)
    return out


def fit(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize to exactly width x height (area filter when shrinking)."""
    h, w = frame.shape[:2]
    if (w, h) == (width, height):
        return frame
    interp = cv2.INTER_AREA if width < w else cv2.INTER_LINEAR
    return cv2.resize(frame, (width, height), interpolation=interp)


class FrameStore:
    """Recorded footage kept for replay: raw frames when short, JPEG (q 95) when long, so a
    three-minute loop source does not need gigabytes."""

    RAW_LIMIT_BYTES = 400 * 1024 * 1024

    def __init__(self, frames: Iterable[np.ndarray], expected: int, frame_bytes: int):
        self.compress = expected * frame_bytes > self.RAW_LIMIT_BYTES
        self.items = [self._pack(f) for f in frames]

    def _pack(self, frame):
        if not self.compress:
            return frame
        return cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 95])[1]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int) -> np.ndarray:
        item = self.items[k]
        return cv2.imdecode(item, cv2.IMREAD_COLOR) if self.compress else item
