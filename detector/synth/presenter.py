"""A talking presenter from a real portrait, at any frame size and rate.

Promoted from tests/face_media.py for the labelled corpus. The portrait is NASA's
public-domain picture of Eileen Collins that scikit-image ships in its wheel
(`skimage/data/astronaut.png`), read straight from the installed package (skimage is not
imported, nothing is downloaded).

Clips are rendered from per-frame *states* (head pose, blinks, mouth opening), so footage
can be replayed exactly (with fresh sensor noise) and a replay can get a new mouth:

- `live_states`: a real presenter: head on a smooth mean-reverting walk, irregular blinks, a
  speech envelope that also moves jaw and cheeks;
- `portrait_states`: a still portrait swayed by a sine, clockwork blinks and a pasted,
  feathered mouth following a speech envelope (nothing around it moves);
- `replay`: chunks of earlier states played again, optionally with a new pasted mouth.

`Presenter(width, height, fps)` renders states to BGR frames that "cover" the frame (the
view is cropped from the 512x512 picture around the face). `mouth_box` tells where the
mouth lands in the frame (for tests and truth).
"""

from __future__ import annotations

import functools
import importlib.util
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

SOURCE_SIZE = 512
# Landmarks of the portrait, measured on the picture (source pixels).
FACE_CENTRE = (224.0, 113.0)
FACE_WIDTH = 95.0
EYES = ((200.0, 101.0), (246.0, 102.0))
MOUTH = (224.0, 145.0)
NOISE_SIGMA = 2.0


def astronaut_bgr() -> np.ndarray:
    """The portrait from scikit-image's wheel, as a BGR uint8 array."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("scikit-image is needed for the presenter (pip install detector[corpus])")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "astronaut.png"
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read {path}")
    return image


@dataclass(frozen=True)
class States:
    """Per-frame parameters of a talking-head clip (arrays of one value per frame)."""

    head_dx: np.ndarray            # head translation, source px
    head_dy: np.ndarray
    head_scale: np.ndarray         # 1 = as in the picture
    head_roll_deg: np.ndarray
    head_yaw_deg: np.ndarray
    head_pitch_deg: np.ndarray
    cam_dx: np.ndarray             # whole-view jitter, source px
    cam_dy: np.ndarray
    blink: np.ndarray              # eyelid closure 0..1
    mouth: np.ndarray              # mouth opening 0..1 of the footage itself
    jaw: bool                      # True: opening moves jaw and cheeks (a real face)
    pasted_mouth: np.ndarray | None = None   # a re-synthesised mouth (NaN: none this frame)
    product: np.ndarray | None = None        # how far a product is raised to the camera 0..1

    def __len__(self) -> int:
        return len(self.blink)

    def take(self, index: np.ndarray) -> States:
        pick = lambda a: None if a is None else a[index]
        return replace(self, head_dx=self.head_dx[index], head_dy=self.head_dy[index],
                       head_scale=self.head_scale[index], head_roll_deg=self.head_roll_deg[index],
                       head_yaw_deg=self.head_yaw_deg[index], head_pitch_deg=self.head_pitch_deg[index],
                       cam_dx=self.cam_dx[index], cam_dy=self.cam_dy[index], blink=self.blink[index],
                       mouth=self.mouth[index], pasted_mouth=pick(self.pasted_mouth), product=pick(self.product))


# -- state generators ------------------------------------------------------------------------

def _ou(rng, n, fps, sigma, tau_s) -> np.ndarray:
    """Smooth mean-reverting random walk (white noise through two low-pass filters, so the
    velocity is smooth too, as a head's is) with deviation ~`sigma`, time constant `tau_s`."""
    from scipy.signal import lfilter

    a = math.exp(-1.0 / (fps * tau_s))
    b = math.exp(-1.0 / (fps * 0.25))
    warm = round(3 * tau_s * fps)
    e = rng.normal(0, 1, n + warm)
    x = lfilter([1 - b], [1, -b], e)
    out = lfilter([1 - a], [1, -a], x)[warm:]
    return out * (sigma / max(float(out.std()), 1e-9))


def speech_envelope(rng, n, fps) -> np.ndarray:
    """Syllables at ~4 Hz in talk spurts of 1.5-4 s separated by 0.4-1.2 s pauses."""
    env = np.zeros(n)
    t_s, end_s = rng.uniform(0, 0.5), n / fps
    times = np.arange(n) / fps
    while t_s < end_s:
        spurt_end = t_s + rng.uniform(1.5, 4.0)
        while t_s < min(spurt_end, end_s):
            width = rng.uniform(0.15, 0.25)
            lo, hi = max(0, int((t_s - width) * fps)), min(n, int((t_s + width) * fps) + 2)
            bump = np.clip(1 - np.abs(times[lo:hi] - t_s) / width, 0, None)
            env[lo:hi] = np.maximum(env[lo:hi], rng.uniform(0.4, 1.0) * np.sin(0.5 * math.pi * bump) ** 2)
            t_s += rng.uniform(0.18, 0.32)
        t_s += rng.uniform(0.4, 1.2)
    return env


def _blink_train(n, fps, blink_times_s, duration_s) -> np.ndarray:
    closure = np.zeros(n)
    times = np.arange(n) / fps
    for start, dur in zip(blink_times_s, duration_s):
        phase = (times - start) / dur
        inside = (phase >= 0) & (phase <= 1)
        closure[inside] = np.maximum(closure[inside], np.sin(math.pi * phase[inside]))
    return closure


def irregular_blink_times(rng, duration_s) -> list[float]:
    """Blink onsets with gamma(2) intervals (coefficient of variation ~0.7, like real blinks)."""
    times, t_s = [], rng.uniform(0.8, 2.0)
    while t_s < duration_s - 0.5:
        times.append(t_s)
        t_s += max(0.9, rng.gamma(2.0, 1.6))
    return times


def product_events(duration_s: float, seed: int, share: float = 0.75) -> list[tuple[float, float, float, float]]:
    """When a presenter raises a product to the camera: (start_s, top_s, lower_s, end_s) per
    showing (rising from start to top, held near the camera, lowered from lower to end), on
    `share` of the seeds; gaps of 2-8 s between showings. Its own random stream, so adding
    products left the rest of a seed's states unchanged."""
    rng = np.random.default_rng([seed, 5])
    if rng.random() >= share:
        return []
    events, t_s = [], float(rng.uniform(0.8, 5.0))
    while True:
        rise, hold, lower = rng.uniform(0.5, 1.2), rng.uniform(1.2, 4.0), rng.uniform(0.5, 1.0)
        if t_s + rise + hold + lower > duration_s - 0.2:
            break
        events.append((t_s, t_s + rise, t_s + rise + hold, t_s + rise + hold + lower))
        t_s += rise + hold + lower + float(rng.uniform(2.0, 8.0))
    return events


def product_lift(events, n: int, fps: float, seed: int) -> np.ndarray:
    """Per frame 0 (out of view, below the frame) .. 1 (held close to the camera): smooth
    rises and falls, and while held a slow push towards and away from the lens."""
    rng = np.random.default_rng([seed, 7])
    t = np.arange(n) / fps
    lift = np.zeros(n)
    smooth = lambda x: x * x * (3 - 2 * x)
    for start, top, lower, end in events:
        up = (t >= start) & (t < top)
        lift[up] = smooth((t[up] - start) / (top - start))
        held = (t >= top) & (t < lower)
        lift[held] = 1.0 - 0.12 * (1 - np.cos(2 * math.pi * (t[held] - top) / rng.uniform(1.5, 3.0))) / 2
        down = (t >= lower) & (t < end)
        level = lift[held][-1] if held.any() else 1.0
        lift[down] = level * smooth(1 - (t[down] - lower) / (end - lower))
    return lift


def live_states(duration_s: float, fps: float, seed: int, liveliness: float = 1.0,
                products: bool = True) -> States:
    """A live presenter (`liveliness` scales how much the head moves) who, on most seeds,
    raises a product to the camera now and then (`product_events`)."""
    rng = np.random.default_rng([seed, 1])
    n = round(duration_s * fps)
    blinks = irregular_blink_times(rng, duration_s)
    k = liveliness
    return States(
        head_dx=_ou(rng, n, fps, 7.0 * k, 1.2), head_dy=_ou(rng, n, fps, 4.0 * k, 1.0),
        head_scale=1 + _ou(rng, n, fps, 0.03 * k, 1.5), head_roll_deg=_ou(rng, n, fps, 2.0 * k, 1.5),
        head_yaw_deg=_ou(rng, n, fps, 9.0 * k, 0.6), head_pitch_deg=_ou(rng, n, fps, 6.0 * k, 0.5),
        cam_dx=_ou(rng, n, fps, 0.8, 0.5), cam_dy=_ou(rng, n, fps, 0.8, 0.5),
        blink=_blink_train(n, fps, blinks, rng.uniform(0.18, 0.3, len(blinks))),
        mouth=speech_envelope(rng, n, fps), jaw=True,
        product=product_lift(product_events(duration_s, seed), n, fps, seed) if products else None)


def portrait_states(duration_s: float, fps: float, seed: int, blink_period_s: float = 3.0,
                    sway_period_s: float = 4.0, sway_px: float = 4.0, mouth: np.ndarray | None = None,
                    products: bool = False) -> States:
    """A still portrait with sine sway, clockwork blinks and a pasted speech-driven mouth
    (`mouth`: the opening per frame, e.g. from real speech; default a synthetic envelope).
    With `products`, a product picture is composited rising to the camera now and then."""
    rng = np.random.default_rng([seed, 2])
    n = round(duration_s * fps)
    t = np.arange(n) / fps
    blinks = list(np.arange(1.0, duration_s - 0.5, blink_period_s))
    zeros = np.zeros(n)
    phase = 2 * math.pi * t / sway_period_s
    return States(
        head_dx=sway_px * np.sin(phase), head_dy=0.4 * sway_px * np.sin(phase + 1.0),
        head_scale=np.ones(n), head_roll_deg=0.5 * np.sin(phase + 2.0), head_yaw_deg=zeros,
        head_pitch_deg=zeros, cam_dx=zeros, cam_dy=zeros,
        blink=_blink_train(n, fps, blinks, np.full(len(blinks), 0.24)),
        mouth=zeros, jaw=False,
        pasted_mouth=speech_envelope(rng, n, fps) if mouth is None else _fitted(mouth, n),
        product=product_lift(product_events(duration_s, seed, share=1.0), n, fps, seed) if products else None)


def _fitted(values: np.ndarray, n: int) -> np.ndarray:
    """`values` cut or padded (with zeros) to n frames."""
    out = np.zeros(n)
    out[:min(n, len(values))] = values[:n]
    return out


def replay(states: States, chunks_s: Sequence[tuple[float, float]], fps: float,
           new_mouth_seed: int | None, keep_original: bool = True, new_mouth: np.ndarray | None = None) -> States:
    """`states` (if `keep_original`) followed by its chunks (start_s, end_s) played again;
    with `new_mouth_seed` the replayed part gets a new pasted mouth (the footage is untouched),
    opened by `new_mouth` (per replayed frame) when given, else by a synthetic envelope."""
    n = len(states)
    index = ([np.arange(n)] if keep_original else []) + \
        [np.arange(round(a * fps), min(n, round(b * fps))) for a, b in chunks_s]
    out = states.take(np.concatenate(index))
    if new_mouth_seed is not None:
        start = n if keep_original else 0
        pasted = np.full(len(out), np.nan)
        pasted[start:] = (speech_envelope(np.random.default_rng([new_mouth_seed, 3]), len(out) - start, fps)
                          if new_mouth is None else _fitted(new_mouth, len(out) - start))
        # The lip-sync model also shuts the footage's own mouth: it re-synthesises the region.
        mouth = out.mouth.copy()
        mouth[start:] = 0.0
        out = replace(out, pasted_mouth=pasted, mouth=mouth)
    return out


# -- rendering -------------------------------------------------------------------------------

class Presenter:
    """Turns states into BGR frames of `width` x `height`, cropped around the face."""

    def __init__(self, width: int, height: int, seed: int = 0, noise_sigma: float = NOISE_SIGMA,
                 base: np.ndarray | None = None):
        self.width, self.height = width, height
        self.base = astronaut_bgr() if base is None else base
        self.rng = np.random.default_rng([seed, 9])
        self.noise_sigma = noise_sigma
        self.scale = max(width / SOURCE_SIZE, height / SOURCE_SIZE)
        view_w, view_h = width / self.scale, height / self.scale
        fx, fy = FACE_CENTRE
        self.view_x0 = float(np.clip(fx - view_w / 2, 0, SOURCE_SIZE - view_w))
        self.view_y0 = float(np.clip(fy - 0.45 * view_h, 0, SOURCE_SIZE - view_h))
        # The warp is smooth, so it is computed on a half-resolution grid and upsampled.
        v, u = np.mgrid[0:height:2, 0:width:2].astype(np.float32) + 0.5
        self.src_x = u / self.scale + self.view_x0
        self.src_y = v / self.scale + self.view_y0
        # The head moves, the far background does not: displacements fade with distance.
        r2 = ((self.src_x - fx) ** 2 + ((self.src_y - fy) * 0.8) ** 2) / (1.6 * FACE_WIDTH) ** 2
        self.head_weight = np.exp(-r2).astype(np.float32)
        self.lid = self._eyelids()
        self.noise: tuple[np.ndarray, np.ndarray] | None = None
        self.seed = seed

    def to_frame(self, x: float, y: float) -> tuple[float, float]:
        """Frame coordinates of a source point (head at rest)."""
        return (x - self.view_x0) * self.scale, (y - self.view_y0) * self.scale

    def mouth_box(self, margin_px: float = 34.0) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) in frame pixels around the mouth at rest."""
        mx, my = MOUTH
        x0, y0 = self.to_frame(mx - margin_px, my - 0.6 * margin_px)
        x1, y1 = self.to_frame(mx + margin_px, my + 0.9 * margin_px)
        return int(x0), int(y0), int(math.ceil(x1)), int(math.ceil(y1))

    def person_mask(self) -> np.ndarray:
        """Soft 0..1 mask of head and shoulders in the frame (for keying onto a background)."""
        mask = np.zeros((SOURCE_SIZE, SOURCE_SIZE), np.float32)
        fx, fy = FACE_CENTRE
        cv2.ellipse(mask, (int(fx), int(fy)), (int(0.75 * FACE_WIDTH), int(1.0 * FACE_WIDTH)), 0, 0, 360, 1.0, -1)
        cv2.ellipse(mask, (int(fx), int(fy + 2.6 * FACE_WIDTH)), (int(2.0 * FACE_WIDTH), int(1.9 * FACE_WIDTH)),
                    0, 0, 360, 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), 4.0)
        m = np.float32([[self.scale, 0, -self.view_x0 * self.scale], [0, self.scale, -self.view_y0 * self.scale]])
        return cv2.warpAffine(mask, m, (self.width, self.height))

    def _eyelids(self):
        """Per eye: ROI, closed-eye picture (skin from just above the eye), soft mask."""
        out = []
        for ex, ey in EYES:
            x0, y0, x1, y1 = int(ex - 14), int(ey - 9), int(ex + 14), int(ey + 9)
            skin = self.base[y0 - 6:y0 - 2, x0:x1].reshape(-1, 3).mean(axis=0)
            closed = np.empty((y1 - y0, x1 - x0, 3), np.float32)
            closed[:] = skin
            closed[8:11] *= 0.7                                # the lash line of a closed lid
            mask = np.zeros((y1 - y0, x1 - x0), np.float32)
            cv2.ellipse(mask, (14, 9), (11, 6), 0, 0, 360, 1.0, -1)
            mask = cv2.GaussianBlur(mask, (0, 0), 1.5)[:, :, None]
            out.append(((x0, y0, x1, y1), closed, mask))
        return out

    def _open_mouth(self, src: np.ndarray, amount: float, jaw: bool, from_image: np.ndarray) -> None:
        """Open the mouth by `amount` (0..1): stretch about the lip line and show a dark gap.
        With `jaw` the stretch covers chin and lower cheeks as a real jaw drop does; without,
        only a feathered mouth patch changes (what a lip-sync model pastes)."""
        if amount <= 0.01:
            if from_image is not src:
                self._paste_mouth(src, from_image)
            return
        mx, my = MOUTH
        rx, ry = (48, 40) if jaw else (32, 16)
        extra = 12 if jaw else 0
        x0, y0, x1, y1 = int(mx - rx), int(my - ry), int(mx + rx), int(my + ry + extra)
        h, w = y1 - y0, x1 - x0
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        xs, ys = xx + x0, yy + y0
        weight = np.clip(1 - ((xs - mx) / rx) ** 2 - ((ys - my) / (ry + extra)) ** 2, 0, 1) ** 0.5
        stretch = 1 + 0.45 * amount * weight
        map_y = my + (ys - my) / stretch
        roi = src[y0:y1, x0:x1].astype(np.float32)
        warped = cv2.remap(from_image, xs, map_y.astype(np.float32), cv2.INTER_LINEAR)
        gap = np.zeros((h, w), np.float32)
        cv2.ellipse(gap, (int(mx - x0), int(my + 1 - y0)), (17, max(1, int(1 + 6 * amount))), 0, 0, 360, 1.0, -1)
        gap = cv2.GaussianBlur(gap, (0, 0), 1.2)[:, :, None] * min(1.0, 1.5 * amount)
        warped = warped.astype(np.float32) * (1 - gap) + np.array([40, 30, 70], np.float32) * gap
        if jaw:
            src[y0:y1, x0:x1] = np.clip(warped, 0, 255).astype(np.uint8)
        else:
            feather = cv2.GaussianBlur((weight > 0).astype(np.float32), (0, 0), 2.0)[:, :, None]
            src[y0:y1, x0:x1] = np.clip(roi * (1 - feather) + warped * feather, 0, 255).astype(np.uint8)

    def _paste_mouth(self, src: np.ndarray, from_image: np.ndarray) -> None:
        """A closed re-synthesised mouth: the neutral picture's mouth patch, feathered in."""
        mx, my = MOUTH
        x0, y0, x1, y1 = int(mx - 32), int(my - 16), int(mx + 32), int(my + 16)
        feather = np.zeros((y1 - y0, x1 - x0), np.float32)
        cv2.ellipse(feather, (32, 16), (31, 15), 0, 0, 360, 1.0, -1)
        feather = cv2.GaussianBlur(feather, (0, 0), 2.0)[:, :, None]
        roi = src[y0:y1, x0:x1].astype(np.float32)
        patch = from_image[y0:y1, x0:x1].astype(np.float32)
        src[y0:y1, x0:x1] = np.clip(roi * (1 - feather) + patch * feather, 0, 255).astype(np.uint8)

    def source(self, s: States, i: int) -> np.ndarray:
        """The edited source picture for frame i (eyes and mouth, before any motion)."""
        src = self.base.copy()
        if s.blink[i] > 0.01:
            for (x0, y0, x1, y1), closed, mask in self.lid:
                roi = src[y0:y1, x0:x1].astype(np.float32)
                alpha = mask * float(s.blink[i])
                src[y0:y1, x0:x1] = (roi * (1 - alpha) + closed * alpha).astype(np.uint8)
        if s.mouth[i] > 0.01:
            self._open_mouth(src, float(s.mouth[i]), s.jaw, src.copy())
        if s.pasted_mouth is not None and not math.isnan(s.pasted_mouth[i]):
            self._open_mouth(src, float(s.pasted_mouth[i]), False, self.base)
        return src

    def clean_frame(self, s: States, i: int, product: bool = True) -> np.ndarray:
        """Frame i without sensor noise (`product` False: without the raised product, for
        keying: `draw_product` then draws it over the composite)."""
        frame = self._posed(s, i)
        return self.draw_product(frame, s, i) if product else frame

    def draw_product(self, frame: np.ndarray, s: States, i: int) -> np.ndarray:
        """The product raised to `s.product[i]` over `frame` (in place; returned)."""
        if s.product is None or s.product[i] <= 0.01:
            return frame
        self.product.draw(frame, float(s.product[i]))
        return frame

    def product_box(self, lift: float) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of the product in the frame at `lift` (may reach past the frame)."""
        return self.product.box(lift)

    @functools.cached_property
    def product(self) -> Product:
        """The product this presenter shows (its look drawn from the seed), made on first use."""
        return Product(self.width, self.height, self.seed, self.base)

    def _posed(self, s: States, i: int) -> np.ndarray:
        fx, fy = FACE_CENTRE
        scale, roll = float(s.head_scale[i]), math.radians(float(s.head_roll_deg[i]))
        px, py = self.src_x - fx - s.head_dx[i], self.src_y - fy - s.head_dy[i]
        cos, sin = math.cos(-roll) / scale, math.sin(-roll) / scale
        hx, hy = cos * px - sin * py, sin * px + cos * py
        hx, hy = self._turn(hx, hy, float(s.head_yaw_deg[i]), float(s.head_pitch_deg[i]))
        hx, hy = hx + fx, hy + fy
        wgt = self.head_weight
        size = (self.width, self.height)
        map_x = cv2.resize((self.src_x + wgt * (hx - self.src_x) + s.cam_dx[i]).astype(np.float32), size,
                           interpolation=cv2.INTER_LINEAR)
        map_y = cv2.resize((self.src_y + wgt * (hy - self.src_y) + s.cam_dy[i]).astype(np.float32), size,
                           interpolation=cv2.INTER_LINEAR)
        return cv2.remap(self.source(s, i), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    def frame(self, s: States, i: int) -> np.ndarray:
        return self._noisy(self.clean_frame(s, i))

    @staticmethod
    def _turn(x, y, yaw_deg, pitch_deg):
        """Where a point of the unturned face picture comes from when the head turns: the face
        as a sphere's front, points shift by their depth x sin(angle)."""
        if yaw_deg == 0 and pitch_deg == 0:
            return x, y
        radius = 0.75 * FACE_WIDTH
        depth = np.sqrt(np.clip(radius ** 2 - x ** 2 - y ** 2, 0, None))
        return (x - depth * math.sin(math.radians(yaw_deg)),
                y - depth * math.sin(math.radians(pitch_deg)))

    def _noisy(self, frame: np.ndarray) -> np.ndarray:
        """Gaussian sensor noise: a random crop of a pre-drawn field."""
        if self.noise_sigma <= 0:
            return frame
        if self.noise is None:
            field = np.rint(self.rng.standard_normal((self.height + 64, self.width + 64, 3)) * self.noise_sigma)
            self.noise = (np.clip(field, 0, 255).astype(np.uint8), np.clip(-field, 0, 255).astype(np.uint8))
        dy, dx = self.rng.integers(0, 64, 2)
        window = (slice(dy, dy + self.height), slice(dx, dx + self.width))
        noisy = cv2.add(frame, self.noise[0][window])
        return cv2.subtract(noisy, self.noise[1][window], dst=noisy)

    def frames(self, s: States) -> Iterator[np.ndarray]:
        for i in range(len(s)):
            yield self.frame(s, i)


class Product:
    """A product (a box or a bottle) held in a hand, raised from below the frame towards the
    camera: the higher it is lifted, the nearer and larger it is, occluding the presenter.

    The look (kind, colours, label, hand side, where across the frame) is drawn from the seed;
    the sprite is drawn once (anti-aliased, with alpha) and scaled per frame."""

    SPRITE_H = 256

    def __init__(self, width: int, height: int, seed: int, portrait: np.ndarray):
        rng = np.random.default_rng([seed, 6])
        self.width, self.height = width, height
        short = min(width, height)
        self.full_h = float(rng.uniform(0.45, 0.7)) * short * (1.25 if height > width else 1.0)
        self.centre_x = float(rng.uniform(0.3, 0.7)) * width
        self.top_y = float(rng.uniform(0.5, 0.62)) * height          # centre when fully raised
        self.drift_x = float(rng.choice([-1, 1]) * rng.uniform(0.0, 0.12)) * width
        fx, fy = FACE_CENTRE
        skin = portrait[int(fy) - 10:int(fy) + 10, int(fx) - 25:int(fx) - 5].reshape(-1, 3).mean(axis=0)
        self.sprite, self.grip_x = _product_sprite(rng, self.SPRITE_H, skin)
        self.sleeve = tuple(float(c) for c in rng.uniform(20, 200, 3))

    def box(self, lift: float) -> tuple[int, int, int, int]:
        h = self.full_h * (0.5 + 0.5 * lift)                 # nearer the camera, larger
        w = h * self.sprite.shape[1] / self.sprite.shape[0]
        cy = (self.height + 0.5 * h) + (self.top_y - self.height - 0.5 * h) * lift
        cx = self.centre_x + self.drift_x * (1 - lift)
        return int(round(cx - w / 2)), int(round(cy - h / 2)), int(round(cx + w / 2)), int(round(cy + h / 2))

    def draw(self, frame: np.ndarray, lift: float) -> None:
        x0, y0, x1, y1 = self.box(lift)
        w, h = x1 - x0, y1 - y0
        if w < 2 or h < 2:
            return
        fx0, fy0, fx1, fy1 = max(0, x0), max(0, y0), min(self.width, x1), min(self.height, y1)
        if fx1 <= fx0 or fy1 <= fy0:
            return
        # The forearm (in a sleeve) reaching up from below the frame to the hand.
        gx = x0 + self.grip_x * w
        arm = np.array([[gx - 0.22 * w, y0 + 0.8 * h], [gx + 0.22 * w, y0 + 0.8 * h],
                        [gx + 0.45 * w, self.height + 0.3 * h], [gx - 0.05 * w, self.height + 0.3 * h]])
        cv2.fillPoly(frame, [np.round(arm * 16).astype(np.int32)], self.sleeve, cv2.LINE_AA, 4)
        sprite = cv2.resize(self.sprite, (w, h), interpolation=cv2.INTER_AREA if h < self.SPRITE_H else cv2.INTER_LINEAR)
        part = sprite[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0].astype(np.float32)
        alpha = part[:, :, 3:] / 255.0
        roi = frame[fy0:fy1, fx0:fx1].astype(np.float32)
        frame[fy0:fy1, fx0:fx1] = (roi * (1 - alpha) + part[:, :, :3] * alpha).astype(np.uint8)


def _product_sprite(rng, height: int, skin: np.ndarray) -> tuple[np.ndarray, float]:
    """BGRA picture of a box, bottle or jar with a label, gripped by a hand near the bottom,
    and where across the picture (0..1) the hand is."""
    kind = str(rng.choice(["box", "bottle", "jar"]))
    aspect = {"box": rng.uniform(0.55, 0.85), "bottle": rng.uniform(0.32, 0.42), "jar": rng.uniform(0.7, 0.95)}[kind]
    s = 2                                                     # drawn at 2x, then downsampled: anti-aliasing
    H, W = height * s, int(height * aspect) * s
    pad = int(0.18 * W)                                       # room for the fingers either side
    img = np.zeros((H, W + 2 * pad, 4), np.float32)
    body = np.array([*rng.uniform(30, 230, 3), 255.0])
    accent = np.array([*rng.uniform(30, 230, 3), 255.0])
    label = np.array([*rng.uniform(170, 250, 3), 255.0])
    x0, x1 = pad, pad + W
    if kind == "box":
        cv2.rectangle(img, (x0, int(0.06 * H)), (x1, H), body.tolist(), -1)
        top = np.array([[x0, int(0.06 * H)], [x0 + int(0.12 * W), 0], [x1, 0], [x1, int(0.06 * H)]], np.int32)
        cv2.fillPoly(img, [top], (np.minimum(body * [1.25, 1.25, 1.25, 1], 255)).tolist())
        y_label = (int(0.3 * H), int(0.62 * H))
    else:
        neck = 0.3 if kind == "bottle" else 0.85
        shoulder = int((0.28 if kind == "bottle" else 0.1) * H)
        nx0, nx1 = int(pad + W * (1 - neck) / 2), int(pad + W * (1 + neck) / 2)
        cv2.rectangle(img, (nx0, int(0.02 * H)), (nx1, shoulder), accent.tolist(), -1)      # cap / lid
        cv2.ellipse(img, ((x0 + x1) // 2, shoulder + int(0.06 * H)), ((x1 - x0) // 2, int(0.08 * H)), 0, 180, 360,
                    body.tolist(), -1)
        cv2.rectangle(img, (x0, shoulder + int(0.06 * H)), (x1, H - int(0.03 * H)), body.tolist(), -1)
        cv2.ellipse(img, ((x0 + x1) // 2, H - int(0.04 * H)), ((x1 - x0) // 2, int(0.035 * H)), 0, 0, 180,
                    body.tolist(), -1)
        y_label = (int(0.45 * H), int(0.75 * H))
    cv2.rectangle(img, (x0, y_label[0]), (x1, y_label[1]), label.tolist(), -1)
    cv2.circle(img, ((x0 + x1) // 2, int(0.4 * y_label[0] + 0.6 * y_label[1]) - int(0.06 * H)),
               int(0.09 * min(W, H)), accent.tolist(), -1)
    for k in range(int(rng.integers(2, 5))):                  # lines of "text" on the label
        y = y_label[0] + int((0.55 + 0.1 * k) * (y_label[1] - y_label[0]))
        length = int(rng.uniform(0.4, 0.8) * W)
        cv2.rectangle(img, ((x0 + x1 - length) // 2, y), ((x0 + x1 + length) // 2, y + max(2, H // 80)),
                      (40.0, 40.0, 40.0, 255.0), -1)
    shade = np.linspace(0.8, 1.15, img.shape[1], dtype=np.float32)[None, :, None]   # light from one side
    if rng.random() < 0.5:
        shade = shade[:, ::-1]
    img[:, :, :3] *= shade
    # The hand: four fingers across the front on one side, a thumb on the other.
    skin4 = [*np.clip(skin * rng.uniform(0.85, 1.1), 0, 255), 255.0]
    left = rng.random() < 0.5
    grip_y = int(rng.uniform(0.68, 0.82) * H)
    fw, fh = int(0.16 * W + 0.05 * H), int(0.045 * H)
    for k in range(4):
        cx = x0 + int(0.12 * W) if left else x1 - int(0.12 * W)
        cv2.ellipse(img, (cx, grip_y + k * int(2.1 * fh)), (fw, fh), 0, 0, 360, skin4, -1)
        cv2.ellipse(img, (cx, grip_y + k * int(2.1 * fh) + fh), (fw, 1), 0, 0, 360,
                    [*(np.array(skin4[:3]) * 0.7), 255.0], -1)      # the crease between fingers
    tx = x1 + int(0.02 * W) if left else x0 - int(0.02 * W)
    cv2.ellipse(img, (tx, grip_y + int(2 * fh)), (int(0.5 * fh) + pad // 3, int(2.2 * fh)), 0, 0, 360, skin4, -1)
    img = np.clip(img, 0, 255)
    grip = (x0 + 0.12 * W if left else x1 - 0.12 * W) / img.shape[1]
    return cv2.resize(img, (img.shape[1] // s, H // s), interpolation=cv2.INTER_AREA).astype(np.uint8), grip
