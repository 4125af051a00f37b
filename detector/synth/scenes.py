"""Small deterministic procedural scenes, as iterators of BGR uint8 frames.

Every scene takes ``(width, height, fps, duration_s, seed)`` and yields
``round(duration_s * fps)`` frames. The same arguments always give the same
frames, and the content (not the noise) depends only on the seed, not on the
duration. Frames are generated lazily and cheaply (a precomputed background,
a few cv2 drawing calls, one lighting multiply and pre-drawn noise), so a
1280x720 30 fps ten-minute clip is dominated by encoding time, not by
generation.

- ``moving_scene``: a live-looking camera view that never repeats.
- ``static_scene``: a fixed room where only sensor noise changes.
- ``cut_scene``: hard cuts between visually distinct moving scenes.
- ``looped_scene``: a stretch of moving content replayed over and over.
"""

from __future__ import annotations

import math
from typing import Iterator, List, Sequence, Tuple

import cv2
import numpy as np

#: Standard deviation of the per-frame Gaussian sensor noise, in grey levels.
NOISE_SIGMA = 2.0

# Random-number streams derived from the user seed; separate streams keep
# the scene content independent of how much noise has been drawn, which is
# what lets looped_scene replay identical content under fresh noise.
_CONTENT_STREAM = 0
_NOISE_STREAM = 1
_CUT_STREAM = 2
_STATIC_STREAM = 3

_GOLDEN = (math.sqrt(5) - 1) / 2  # hue step that keeps successive hues far apart


def moving_scene(width: int, height: int, fps: float, duration_s: float,
                 seed: int) -> Iterator[np.ndarray]:
    """Live-camera-like frames: textured background, shapes on random walks,
    slowly drifting lighting and Gaussian sensor noise; never repeats."""
    n_frames = _frame_count(width, height, fps, duration_s)
    return _moving_frames(width, height, fps, n_frames, seed)


def static_scene(width: int, height: int, fps: float, duration_s: float,
                 seed: int) -> Iterator[np.ndarray]:
    """A fixed textured room in which nothing moves; only sensor noise changes."""
    n_frames = _frame_count(width, height, fps, duration_s)
    return _static_frames(width, height, n_frames, seed)


def cut_scene(width: int, height: int, fps: float, duration_s: float, seed: int,
              cut_times_s: Sequence[float]) -> Tuple[Iterator[np.ndarray], List[float]]:
    """Moving scenes with hard cuts to a visually distinct new scene at each
    of ``cut_times_s``.

    Returns ``(frames, cuts_s)`` where ``cuts_s[k]`` is the presentation time
    (index / fps) of the first frame after cut k, i.e. the requested time
    rounded up to the frame grid.
    """
    n_frames = _frame_count(width, height, fps, duration_s)
    cut_times = [float(t) for t in cut_times_s]
    if any(b <= a for a, b in zip(cut_times, cut_times[1:])):
        raise ValueError("cut_times_s must be strictly increasing")
    # A cut lands on the first frame whose time is >= the requested time.
    cut_indices = [math.ceil(t * fps - 1e-9) for t in cut_times]
    if any(i <= 0 or i >= n_frames for i in cut_indices):
        raise ValueError("every cut must fall strictly inside the clip")
    if len(set(cut_indices)) != len(cut_indices):
        raise ValueError("two cuts fall on the same frame")
    frames = _cut_frames(width, height, fps, n_frames, seed, cut_indices)
    return frames, [i / fps for i in cut_indices]


def looped_scene(width: int, height: int, fps: float, duration_s: float, seed: int,
                 period_s: float) -> Tuple[Iterator[np.ndarray], float]:
    """``period_s`` of ``moving_scene`` content replayed until ``duration_s``,
    with fresh sensor noise on every pass (so passes are not bit-identical).

    Returns ``(frames, period)`` where ``period`` is the true loop period in
    seconds (``period_s`` rounded to a whole number of frames). The first
    pass equals ``moving_scene`` with the same seed.
    """
    n_frames = _frame_count(width, height, fps, duration_s)
    period_frames = round(period_s * fps)
    if period_frames < 1:
        raise ValueError(f"period_s={period_s} is shorter than one frame")
    frames = _looped_frames(width, height, fps, n_frames, seed, period_frames)
    return frames, period_frames / fps


def _frame_count(width: int, height: int, fps: float, duration_s: float) -> int:
    """Number of frames in the scene, validating its parameters."""
    if width < 2 or height < 2:
        raise ValueError(f"scene too small: {width}x{height}")
    if fps <= 0 or duration_s <= 0:
        raise ValueError("fps and duration_s must be positive")
    return max(1, round(duration_s * fps))


def _rng(seed: int, *stream: int) -> np.random.Generator:
    """Independent generator for one purpose (stream) of one seed."""
    return np.random.default_rng([seed, *stream])


def _moving_frames(width, height, fps, n_frames, seed):
    world = _MovingWorld(width, height, fps, _rng(seed, _CONTENT_STREAM))
    noise = _NoiseBank(width, height, _rng(seed, _NOISE_STREAM), n_frames)
    for _ in range(n_frames):
        yield noise.apply(world.render())


def _static_frames(width, height, n_frames, seed):
    rng = _rng(seed, _STATIC_STREAM)
    room = _furnished_room(width, height, rng)
    noise = _NoiseBank(width, height, _rng(seed, _NOISE_STREAM), n_frames)
    for _ in range(n_frames):
        yield noise.apply(room)


def _cut_frames(width, height, fps, n_frames, seed, cut_indices):
    noise = _NoiseBank(width, height, _rng(seed, _NOISE_STREAM), n_frames)
    bounds = [0, *cut_indices, n_frames]
    first_hue = _rng(seed, _CUT_STREAM).random()
    for segment, (start, stop) in enumerate(zip(bounds, bounds[1:])):
        # Hue jumps by the golden ratio and brightness alternates, so
        # consecutive segments differ clearly in colour and level.
        world = _MovingWorld(width, height, fps, _rng(seed, _CUT_STREAM, segment),
                             hue=(first_hue + segment * _GOLDEN) % 1.0,
                             value=(150 if segment % 2 == 0 else 80))
        for _ in range(start, stop):
            yield noise.apply(world.render())


def _looped_frames(width, height, fps, n_frames, seed, period_frames):
    noise = _NoiseBank(width, height, _rng(seed, _NOISE_STREAM), n_frames)
    for start in range(0, n_frames, period_frames):
        # Rebuilding the world from the same seed replays exactly the same
        # content without holding a period of frames in memory.
        world = _MovingWorld(width, height, fps, _rng(seed, _CONTENT_STREAM))
        for _ in range(start, min(n_frames, start + period_frames)):
            yield noise.apply(world.render())


class _NoiseBank:
    """Gaussian sensor noise served as crops of a few pre-drawn noise fields.

    Drawing 2.7 M normals per 720p frame would cost more than encoding it;
    instead each frame takes a different (field, dy, dx) crop of a padded
    bank, visiting the combinations in a seeded random order so no two frames
    of a clip share a noise pattern unless the clip outlasts the bank.
    """

    def __init__(self, width, height, rng, n_frames, sigma=NOISE_SIGMA, pad=48):
        self.width, self.height, self.pad = width, height, pad
        n_fields = max(1, min(8, math.ceil(n_frames / (pad + 1) ** 2)))
        shape = (n_fields, height + pad, width + pad, 3)
        # Signed noise is added as a saturating add of its positive part and
        # a saturating subtract of its negative part, all in uint8.
        self.positive = np.empty(shape, np.uint8)
        self.negative = np.empty(shape, np.uint8)
        for index in range(n_fields):  # one field at a time bounds peak memory
            field = np.rint(rng.standard_normal(shape[1:], dtype=np.float32) * sigma)
            np.clip(field, 0, 255, out=self.positive[index], casting="unsafe")
            np.clip(-field, 0, 255, out=self.negative[index], casting="unsafe")
        self.order = rng.permutation(n_fields * (pad + 1) ** 2)
        self.count = 0

    def apply(self, clean: np.ndarray) -> np.ndarray:
        """Return a new frame: ``clean`` plus the next noise pattern."""
        combo = int(self.order[self.count % len(self.order)])
        self.count += 1
        field, offset = divmod(combo, (self.pad + 1) ** 2)
        dy, dx = divmod(offset, self.pad + 1)
        window = (field, slice(dy, dy + self.height), slice(dx, dx + self.width))
        noisy = cv2.add(clean, self.positive[window])
        return cv2.subtract(noisy, self.negative[window], dst=noisy)


class _MovingWorld:
    """The noiseless content of a moving scene, advanced one frame per render."""

    N_SHAPES = 6

    def __init__(self, width, height, fps, rng, hue=None, value=None):
        self.width, self.height, self.dt = width, height, 1.0 / fps
        self.rng = rng
        hue = rng.random() if hue is None else hue
        value = rng.uniform(90, 160) if value is None else value
        self.background = _textured_background(width, height, rng, _hsv_to_bgr(hue, 0.45, value))
        self.shapes = [_Shape(width, height, rng) for _ in range(self.N_SHAPES)]
        # Lighting: a slow sinusoid per channel plus a mean-reverting random
        # walk, like clouds passing a window or auto-exposure hunting.
        self.light_phase = rng.uniform(0, 2 * math.pi, 3)
        self.light_period_s = rng.uniform(15, 40, 3)
        self.light_walk = np.zeros(3)
        self.t_s = 0.0

    def render(self) -> np.ndarray:
        """Draw the current state, then advance time by one frame."""
        frame = self.background.copy()
        for shape in self.shapes:
            shape.draw(frame)
        gains = self._light_gains()
        cv2.multiply(frame, (*gains, 0.0), dst=frame)
        self._advance()
        return frame

    def _light_gains(self):
        wave = 0.06 * np.sin(2 * math.pi * self.t_s / self.light_period_s + self.light_phase)
        return tuple(float(g) for g in 1.0 + wave + self.light_walk)

    def _advance(self):
        self.t_s += self.dt
        # Mean reversion keeps the walk within a few percent of neutral.
        self.light_walk += -0.02 * self.light_walk + self.rng.normal(0, 0.002, 3)
        for shape in self.shapes:
            shape.step(self.dt, self.rng)


class _Shape:
    """A filled circle, rectangle or triangle moving on a random walk."""

    KINDS = ("circle", "rectangle", "triangle")

    def __init__(self, width, height, rng):
        self.width, self.height = width, height
        scale = min(width, height)
        self.kind = self.KINDS[rng.integers(len(self.KINDS))]
        self.radius = rng.uniform(0.06, 0.16) * scale
        self.color = tuple(float(c) for c in rng.uniform(20, 235, 3))
        self.pos = np.array([rng.uniform(0, width), rng.uniform(0, height)])
        self.speed_scale = 0.25 * scale  # pixels per second, typical
        self.vel = rng.normal(0, self.speed_scale, 2)
        self.angle = rng.uniform(0, 2 * math.pi)
        self.spin = rng.normal(0, 0.8)  # radians per second

    def step(self, dt, rng):
        """Ornstein-Uhlenbeck velocity and spin: smooth, never periodic."""
        self.vel += -0.5 * self.vel * dt + rng.normal(0, self.speed_scale, 2) * math.sqrt(dt)
        self.spin += -0.3 * self.spin * dt + rng.normal(0, 0.6) * math.sqrt(dt)
        self.pos += self.vel * dt
        self.angle += self.spin * dt
        # Bounce off the borders so shapes stay (mostly) in view.
        for axis, limit in ((0, self.width), (1, self.height)):
            if self.pos[axis] < 0 or self.pos[axis] > limit:
                self.pos[axis] = min(max(self.pos[axis], 0.0), float(limit))
                self.vel[axis] = -self.vel[axis]

    def draw(self, frame):
        """Anti-aliased drawing with 4 bits of sub-pixel precision."""
        shift = 4
        centre = tuple(int(round(c * 16)) for c in self.pos)
        if self.kind == "circle":
            cv2.circle(frame, centre, int(self.radius * 16), self.color, -1, cv2.LINE_AA, shift)
            return
        corners = 4 if self.kind == "rectangle" else 3
        angles = self.angle + np.arange(corners) * 2 * math.pi / corners
        points = self.pos + self.radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        polygon = np.round(points * 16).astype(np.int32)
        cv2.fillPoly(frame, [polygon], self.color, cv2.LINE_AA, shift)


def _textured_background(width, height, rng, base_bgr) -> np.ndarray:
    """Smoothed random noise at three scales plus a few colour gradients."""
    acc = np.zeros((height, width, 3), np.float32)
    acc += np.asarray(base_bgr, np.float32)
    for cell_frac, amplitude in ((0.12, 30.0), (0.03, 12.0), (0.008, 5.0)):
        # Noise drawn on a coarse grid, blurred there (to hide the grid) and
        # upsampled is smooth at the grid scale: blotches, mottling, grain.
        # Mostly shared by the channels (luminance) with a little colour, as
        # real walls and furniture are.
        cell = max(2.0, cell_frac * width)
        grid = (math.ceil(height / cell) + 2, math.ceil(width / cell) + 2)
        coarse = rng.standard_normal(grid)[:, :, None] + 0.3 * rng.standard_normal((*grid, 3))
        coarse = cv2.GaussianBlur(coarse.astype(np.float32), (0, 0), 0.8)
        coarse *= 1.0 / max(1e-6, float(coarse.std()))
        acc += amplitude * cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    ys = np.linspace(-0.5, 0.5, height, dtype=np.float32)[:, None]
    xs = np.linspace(-0.5, 0.5, width, dtype=np.float32)[None, :]
    for _ in range(3):
        angle = rng.uniform(0, 2 * math.pi)
        ramp = math.cos(angle) * xs + math.sin(angle) * ys
        acc += ramp[:, :, None] * rng.uniform(-50, 50, 3).astype(np.float32)
    return np.clip(acc, 0, 255).astype(np.uint8)


def _furnished_room(width, height, rng) -> np.ndarray:
    """A textured wall and floor with a window, a table and a picture frame."""
    room = _textured_background(width, height, rng, _hsv_to_bgr(rng.random(), 0.3, 140))
    floor_y = int(height * rng.uniform(0.62, 0.75))
    floor = _textured_background(width, height - floor_y, rng,
                                 _hsv_to_bgr(rng.random(), 0.5, 90))
    room[floor_y:] = floor
    for (x0, y0, x1, y1), value in (((0.08, 0.12, 0.32, 0.45), 220),   # window
                                    ((0.55, 0.18, 0.72, 0.38), 110),   # picture
                                    ((0.40, 0.55, 0.85, 0.62), 70)):   # table top
        colour = _hsv_to_bgr(rng.random(), 0.4, value)
        p0 = (int(x0 * width), int(y0 * height))
        p1 = (int(x1 * width), int(y1 * height))
        cv2.rectangle(room, p0, p1, colour, -1, cv2.LINE_AA)
        cv2.rectangle(room, p0, p1, (30, 30, 30), max(1, width // 320), cv2.LINE_AA)
    return room


def _hsv_to_bgr(hue, saturation, value) -> Tuple[float, float, float]:
    """BGR colour for hue and saturation in [0, 1] and value in [0, 255]."""
    hsv = np.array([[[hue * 179.0, saturation * 255.0, value]]], np.float32)
    hsv = np.clip(hsv, 0, 255).astype(np.uint8)
    bgr = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return tuple(float(c) for c in bgr)
