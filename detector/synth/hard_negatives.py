"""Live scenes that look repetitive but never replay footage: the loop detector's hard negatives.

Each generator takes (width, height, fps, duration_s, seed) and yields BGR frames:
- `gesture_scene`: a "presenter" (a figure drawn from ellipses) repeating the same arm wave
  every few seconds, never exactly alike (timing jitter, body sway, fresh noise);
- `turntable_scene`: a textured disc rotating with a fixed period in one corner while a
  moving scene changes in the rest of the frame;
- `pan_back_scene`: a camera panning across a wide room and back to the same view at a
  different, uneven speed, with people-like blobs moving in the room all along;
- `slideshow_scene`: distinct slides, each shown once, with a small live noise;
- the still room is `detector.synth.scenes.static_scene`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from detector.synth.scenes import moving_scene, static_scene


def _noisy(frame: np.ndarray, rng: np.random.Generator, sigma: float = 2.0) -> np.ndarray:
    return np.clip(frame + rng.normal(0, sigma, frame.shape), 0, 255).astype(np.uint8)


def _room(width: int, height: int, seed: int) -> np.ndarray:
    return next(iter(static_scene(width, height, 25, 1 / 25, seed)))


def gesture_scene(width: int, height: int, fps: float, duration_s: float, seed: int,
                  gesture_period_s: float = 3.0) -> Iterator[np.ndarray]:
    import cv2

    rng = np.random.default_rng(seed)
    room = _room(width, height, seed)
    n = int(round(duration_s * fps))
    phase_jitter = phase_rate = 0.0
    cx, cy = width // 2, int(height * 0.55)
    scale = min(width, height) / 360
    sway = sway_speed = 0.0
    for i in range(n):
        t = i / fps
        # A human never repeats a gesture exactly: its tempo and amplitude drift. A body has
        # mass, so the drift changes speed smoothly: random *accelerations* (a random walk
        # of the position itself would jitter at the frame rate, which no body does and
        # which reads as repeated or skipped frames between two big steps).
        phase_rate = 0.97 * phase_rate + rng.normal(0, 0.0008)
        phase_jitter += phase_rate
        sway_speed = 0.9 * sway_speed + rng.normal(0, 0.045)
        sway = 0.985 * sway + sway_speed
        angle = math.sin(2 * math.pi * t / gesture_period_s + phase_jitter) * (40 + 10 * math.sin(t / 7.3))
        frame = room.copy()
        # Drawn at 1/16 px (cv2's `shift`): a body moves continuously, and whole-pixel
        # drawing would freeze a slow arm for a frame or two, a repeat no camera makes.
        x = cx + sway * scale
        cv2.ellipse(frame, _sub(x, cy), _sub(60 * scale, 110 * scale), 0, 0, 360, (70, 60, 150), -1, cv2.LINE_AA, _SHIFT)
        cv2.circle(frame, _sub(x, cy - 140 * scale), int(38 * scale * 16), (150, 170, 210), -1, cv2.LINE_AA, _SHIFT)
        shoulder = (x + 50 * scale, cy - 70 * scale)
        hand = (shoulder[0] + 90 * scale * math.cos(math.radians(angle - 60)),
                shoulder[1] + 90 * scale * math.sin(math.radians(angle - 60)))
        cv2.line(frame, _sub(*shoulder), _sub(*hand), (70, 60, 150), max(2, int(18 * scale)), cv2.LINE_AA, _SHIFT)
        cv2.circle(frame, _sub(*hand), int(14 * scale * 16), (150, 170, 210), -1, cv2.LINE_AA, _SHIFT)
        yield _noisy(frame, rng)


_SHIFT = 4      # fractional bits of cv2 drawing coordinates: 1/16 px


def _sub(x: float, y: float) -> tuple[int, int]:
    """A point (or size) in cv2's fixed-point drawing coordinates."""
    return int(round(x * (1 << _SHIFT))), int(round(y * (1 << _SHIFT)))


def turntable_scene(width: int, height: int, fps: float, duration_s: float, seed: int,
                    rotation_period_s: float = 6.0) -> Iterator[np.ndarray]:
    import cv2

    rng = np.random.default_rng(seed)
    radius = int(min(width, height) * 0.2)
    size = 2 * radius
    disc = cv2.resize(rng.integers(0, 255, (12, 12, 3)).astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
    mask = np.zeros((size, size), np.uint8)
    cv2.circle(mask, (radius, radius), radius - 1, 255, -1)
    x0, y0 = width - size - width // 20, height - size - height // 20
    live = moving_scene(width, height, fps, duration_s, seed + 1)
    for i, frame in enumerate(live):
        angle = 360.0 * (i / fps) / rotation_period_s
        rotated = cv2.warpAffine(disc, cv2.getRotationMatrix2D((radius, radius), angle, 1.0), (size, size))
        region = frame[y0:y0 + size, x0:x0 + size]
        region[mask > 0] = rotated[mask > 0]
        yield frame


def pan_back_scene(width: int, height: int, fps: float, duration_s: float, seed: int) -> Iterator[np.ndarray]:
    """Pan right over the first ~40 % of the clip, hold, pan back at ~0.7x and unevenly."""
    import cv2

    rng = np.random.default_rng(seed)
    wide = _room(width * 2, height, seed)
    n = int(round(duration_s * fps))
    t_out, t_hold = 0.4 * duration_s, 0.5 * duration_s
    blobs = [[rng.uniform(0, 2 * width), rng.uniform(0.3, 0.8) * height, rng.normal(0, 40), rng.normal(0, 15)]
             for _ in range(5)]
    for i in range(n):
        t = i / fps
        if t < t_out:
            x = width * (t / t_out)
        elif t < t_hold:
            x = width
        else:
            u = (t - t_hold) / (duration_s - t_hold)
            x = width * (1 - (u + 0.08 * math.sin(5 * u)))      # slower and uneven on the way back
        x = float(np.clip(x, 0, width))
        frame = wide.copy()
        for blob in blobs:   # people keep moving while the camera pans
            blob[0] = (blob[0] + blob[2] / fps) % (2 * width)
            blob[1] = float(np.clip(blob[1] + blob[3] / fps, 0.2 * height, 0.9 * height))
            blob[2] += rng.normal(0, 5)
            blob[3] += rng.normal(0, 3)
            cv2.ellipse(frame, (int(blob[0]), int(blob[1])), (int(0.04 * width), int(0.12 * height)), 0, 0, 360,
                        (60, 80, 120), -1)
        matrix = np.float32([[1, 0, -x], [0, 1, 0]])
        view = cv2.warpAffine(frame, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)
        yield _noisy(view, rng)


def slideshow_scene(width: int, height: int, fps: float, duration_s: float, seed: int,
                    slide_s: float = 5.0) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * fps))
    slide = None
    for i in range(n):
        k = int((i / fps) // slide_s)
        if slide is None or k != slide[0]:
            slide = (k, _room(width, height, seed * 1000 + k))
        yield _noisy(slide[1], rng)
