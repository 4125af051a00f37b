"""Talking-head clips with known truth, built from a real portrait.

Haar cascades need a real face, so the clips animate NASA's public-domain portrait of
Eileen Collins that scikit-image ships in its wheel (`skimage/data/astronaut.png`). The file
is read straight from the installed package (no import of skimage, nothing downloaded).

Every clip is rendered from per-frame *states* (head pose, blink closure, mouth opening), so
footage can be replayed exactly (with fresh sensor noise) and a replay can be given a new mouth:

- `live_states`: the head moves in front of a still background (mean-reverting random walk
  of position, scale and roll), the camera jitters a little, blinks come at irregular
  intervals, and the mouth opens with a speech-like envelope that also moves the jaw, chin
  and lower cheeks;
- `portrait_states`: a still portrait swayed by a sine, perfectly regular blinks, and a
  mouth pasted in with a feathered mask that follows a speech envelope (nothing around it moves);
- `replay`: chunks of earlier states played again, optionally with a new pasted mouth;
- `with_absence`: the camera turns to a product table (no face) for a while.

`Renderer(comments=True)` scrolls viewer comments over the lower half, as live rooms do.

Coordinates are in the 512x512 source picture unless said otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

# The portrait, its landmarks and the random state generators are the corpus presenter's;
# this module keeps the face tests' own framing, states and renderer.
from detector.synth.presenter import (  # noqa: F401  (landmarks are used by the face tests)
    EYES, FACE_CENTRE, FACE_WIDTH, MOUTH, NOISE_SIGMA, _blink_train, _ou, astronaut_bgr,
    irregular_blink_times, speech_envelope,
)

WIDTH, HEIGHT, FPS = 180, 320, 25          # a portrait-orientation live room
# The part of the source shown in the frame: x 80..368, all rows (scale 0.625).
VIEW_X0, VIEW_SCALE = 80.0, HEIGHT / 512.0


@dataclass(frozen=True)
class States:
    """Per-frame parameters of a talking-head clip (arrays of one value per frame)."""

    head_dx: np.ndarray            # head translation, source px
    head_dy: np.ndarray
    head_scale: np.ndarray         # 1 = as in the picture
    head_roll_deg: np.ndarray
    head_yaw_deg: np.ndarray       # turning left/right and nodding: the face's 2D picture
    head_pitch_deg: np.ndarray     # changes non-rigidly (the nose moves more than the cheeks)
    cam_dx: np.ndarray             # whole-view jitter, source px
    cam_dy: np.ndarray
    blink: np.ndarray              # eyelid closure 0..1
    mouth: np.ndarray              # mouth opening 0..1 of the footage itself
    jaw: bool                      # True: opening moves jaw and cheeks (a real face)
    pasted_mouth: np.ndarray | None = None   # a re-synthesised mouth pasted over the footage
    face_visible: np.ndarray | None = None   # False: the frame shows no presenter

    def __len__(self) -> int:
        return len(self.blink)

    def take(self, index: np.ndarray) -> "States":
        pick = lambda a: None if a is None else a[index]   # noqa: E731
        return replace(self, head_dx=self.head_dx[index], head_dy=self.head_dy[index],
                       head_scale=self.head_scale[index], head_roll_deg=self.head_roll_deg[index],
                       head_yaw_deg=self.head_yaw_deg[index], head_pitch_deg=self.head_pitch_deg[index],
                       cam_dx=self.cam_dx[index], cam_dy=self.cam_dy[index], blink=self.blink[index],
                       mouth=self.mouth[index], pasted_mouth=pick(self.pasted_mouth),
                       face_visible=pick(self.face_visible))


# -- state generators ------------------------------------------------------------------------

def live_states(duration_s: float, seed: int) -> tuple[States, list[float]]:
    """A live presenter; returns the states and the true blink onsets (s)."""
    rng = np.random.default_rng([seed, 1])
    n = round(duration_s * FPS)
    blinks = irregular_blink_times(rng, duration_s)
    states = States(
        head_dx=_ou(rng, n, FPS, 7.0, 1.2), head_dy=_ou(rng, n, FPS, 4.0, 1.0),
        head_scale=1 + _ou(rng, n, FPS, 0.03, 1.5), head_roll_deg=_ou(rng, n, FPS, 2.0, 1.5),
        head_yaw_deg=_ou(rng, n, FPS, 9.0, 0.6), head_pitch_deg=_ou(rng, n, FPS, 6.0, 0.5),
        cam_dx=_ou(rng, n, FPS, 0.8, 0.5), cam_dy=_ou(rng, n, FPS, 0.8, 0.5),
        blink=_blink_train(n, FPS, blinks, rng.uniform(0.18, 0.3, len(blinks))),
        mouth=speech_envelope(rng, n, FPS), jaw=True)
    return states, blinks


def portrait_states(duration_s: float, seed: int, blink_period_s: float = 3.0) -> tuple[States, list[float]]:
    """A still portrait with sine sway, clockwork blinks and a pasted speech-driven mouth."""
    rng = np.random.default_rng([seed, 2])
    n = round(duration_s * FPS)
    t = np.arange(n) / FPS
    blinks = list(np.arange(1.0, duration_s - 0.5, blink_period_s))
    zeros = np.zeros(n)
    states = States(
        head_dx=4.0 * np.sin(2 * math.pi * t / 4.0), head_dy=1.5 * np.sin(2 * math.pi * t / 4.0 + 1.0),
        head_scale=np.ones(n), head_roll_deg=zeros, head_yaw_deg=zeros, head_pitch_deg=zeros,
        cam_dx=zeros, cam_dy=zeros,
        blink=_blink_train(n, FPS, blinks, np.full(len(blinks), 0.24)),
        mouth=zeros, jaw=False, pasted_mouth=speech_envelope(rng, n, FPS))
    return states, blinks


def replay(states: States, chunks_s: Sequence[tuple[float, float]], new_mouth_seed: int | None) -> States:
    """`states` followed by the chunks (start_s, end_s) of it played again; with
    `new_mouth_seed`, the replayed part gets a new pasted mouth (the footage is untouched)."""
    n = len(states)
    index = [np.arange(n)] + [np.arange(round(a * FPS), round(b * FPS)) for a, b in chunks_s]
    out = states.take(np.concatenate(index))
    if new_mouth_seed is not None:
        pasted = np.full(len(out), np.nan)
        pasted[n:] = speech_envelope(np.random.default_rng([new_mouth_seed, 3]), len(out) - n, FPS)
        out = replace(out, pasted_mouth=pasted)
    return out


def with_absence(states: States, start_s: float, end_s: float) -> States:
    """The presenter is gone (the camera shows a product scene) from start_s to end_s."""
    visible = np.ones(len(states), bool)
    visible[round(start_s * FPS):round(end_s * FPS)] = False
    return replace(states, face_visible=visible)


# -- rendering -------------------------------------------------------------------------------

class Renderer:
    """Turns states into BGR frames of WIDTH x HEIGHT."""

    def __init__(self, seed: int = 0, comments: bool = False):
        self.comments = comments
        self.base = astronaut_bgr()
        self.rng = np.random.default_rng([seed, 9])
        # The warp is smooth, so it is computed on a half-resolution grid and upsampled.
        v, u = np.mgrid[0:HEIGHT:2, 0:WIDTH:2].astype(np.float32) + 0.5
        self.src_x = u / VIEW_SCALE + VIEW_X0      # source coordinates of output pixels
        self.src_y = v / VIEW_SCALE
        fx, fy = FACE_CENTRE
        # The head moves, the far background does not: displacements fade with distance from
        # the face (a person in front of a wall, seen by a fixed camera).
        r2 = ((self.src_x - fx) ** 2 + ((self.src_y - fy) * 0.8) ** 2) / (1.6 * FACE_WIDTH) ** 2
        self.head_weight = np.exp(-r2).astype(np.float32)
        self.lid = self._eyelids()
        self.product = None
        self.noise: tuple[np.ndarray, np.ndarray] | None = None

    def _eyelids(self) -> list[tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]]:
        """Per eye: ROI, closed-eye picture (skin from just above the eye), soft mask."""
        out = []
        for ex, ey in EYES:
            x0, y0, x1, y1 = int(ex - 14), int(ey - 9), int(ex + 14), int(ey + 9)
            skin = self.base[y0 - 6:y0 - 2, x0:x1].reshape(-1, 3).mean(axis=0)
            closed = np.empty((y1 - y0, x1 - x0, 3), np.float32)
            closed[:] = skin
            crease = slice(8, 11)                              # the lash line of a closed lid
            closed[crease] *= 0.7
            mask = np.zeros((y1 - y0, x1 - x0), np.float32)
            cv2.ellipse(mask, (14, 9), (11, 6), 0, 0, 360, 1.0, -1)
            mask = cv2.GaussianBlur(mask, (0, 0), 1.5)[:, :, None]
            out.append(((x0, y0, x1, y1), closed, mask))
        return out

    def _open_mouth(self, src: np.ndarray, amount: float, jaw: bool, from_image: np.ndarray) -> None:
        """Open the mouth by `amount` (0..1): stretch about the lip line and show a dark gap.
        With `jaw`, the stretch covers chin and lower cheeks as a real jaw drop does; without,
        only a feathered mouth patch changes (what a lip-sync model pastes)."""
        if amount <= 0.01:
            if from_image is not src:
                self._paste_mouth(src, from_image)
            return
        mx, my = MOUTH
        rx, ry = (48, 40) if jaw else (32, 16)
        x0, y0, x1, y1 = int(mx - rx), int(my - ry), int(mx + rx), int(my + ry + (12 if jaw else 0))
        h, w = y1 - y0, x1 - x0
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        xs, ys = xx + x0, yy + y0
        weight = np.clip(1 - ((xs - mx) / rx) ** 2 - ((ys - my) / (ry + (12 if jaw else 0))) ** 2, 0, 1)
        weight = weight ** 0.5
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
            # The lip-sync model re-synthesises the mouth from the neutral face.
            self._open_mouth(src, float(s.pasted_mouth[i]), False, self.base)
        return src

    def frame(self, s: States, i: int) -> np.ndarray:
        if s.face_visible is not None and not s.face_visible[i]:
            return self._noisy(self._product_shot(i))
        fx, fy = FACE_CENTRE
        scale, roll = float(s.head_scale[i]), math.radians(float(s.head_roll_deg[i]))
        # Inverse head transform about the face centre, applied with the fading weight.
        px, py = self.src_x - fx - s.head_dx[i], self.src_y - fy - s.head_dy[i]
        cos, sin = math.cos(-roll) / scale, math.sin(-roll) / scale
        hx, hy = cos * px - sin * py, sin * px + cos * py
        hx, hy = self._turn(hx, hy, float(s.head_yaw_deg[i]), float(s.head_pitch_deg[i]))
        hx, hy = hx + fx, hy + fy
        wgt = self.head_weight
        map_x = cv2.resize((self.src_x + wgt * (hx - self.src_x) + s.cam_dx[i]).astype(np.float32),
                           (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)
        map_y = cv2.resize((self.src_y + wgt * (hy - self.src_y) + s.cam_dy[i]).astype(np.float32),
                           (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)
        out = cv2.remap(self.source(s, i), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if self.comments:
            self._comments(out, i)
        return self._noisy(out)

    @staticmethod
    def _comments(frame: np.ndarray, i: int) -> None:
        """Viewer comments scrolling up over the lower half, as live rooms show them."""
        rise = i * 40.0 / FPS                                   # 40 px per second
        for k in range(12):
            y = int(HEIGHT - 10 + 28 * k - rise % (28 * 12))
            if HEIGHT // 2 < y < HEIGHT - 4:
                cv2.putText(frame, f"user{(k * 37 + int(rise // 336) * 12) % 997}: so nice!", (6, y),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1, cv2.LINE_AA)

    @staticmethod
    def _turn(x, y, yaw_deg, pitch_deg):
        """Where a point of the (unturned) face picture comes from when the head turns: the
        face as a sphere's front, points shift by their depth x sin(angle)."""
        if yaw_deg == 0 and pitch_deg == 0:
            return x, y
        radius = 0.75 * FACE_WIDTH
        depth = np.sqrt(np.clip(radius ** 2 - x ** 2 - y ** 2, 0, None))
        return (x - depth * math.sin(math.radians(yaw_deg)),
                y - depth * math.sin(math.radians(pitch_deg)))

    def _product_shot(self, i: int) -> np.ndarray:
        """The camera turned to a product table: no face, things still move."""
        if self.product is None:
            from detector.synth.scenes import static_scene
            self.product = next(static_scene(WIDTH, HEIGHT, FPS, 1.0 / FPS, seed=5))
        frame = self.product.copy()
        x = int(WIDTH / 2 + 40 * math.sin(i / FPS))
        cv2.circle(frame, (x, HEIGHT // 2), 25, (40, 160, 220), -1, cv2.LINE_AA)
        return frame

    def _noisy(self, frame: np.ndarray) -> np.ndarray:
        """Gaussian sensor noise: a random crop of a pre-drawn field (drawing fresh normals
        for every frame would cost more than everything else here)."""
        if self.noise is None:
            field = np.rint(self.rng.standard_normal((HEIGHT + 64, WIDTH + 64, 3)) * NOISE_SIGMA)
            self.noise = (np.clip(field, 0, 255).astype(np.uint8), np.clip(-field, 0, 255).astype(np.uint8))
        dy, dx = self.rng.integers(0, 64, 2)
        window = (slice(dy, dy + HEIGHT), slice(dx, dx + WIDTH))
        noisy = cv2.add(frame, self.noise[0][window])
        return cv2.subtract(noisy, self.noise[1][window], dst=noisy)

    def frames(self, s: States) -> Iterator[np.ndarray]:
        for i in range(len(s)):
            yield self.frame(s, i)


def write_states(path, states: States, seed: int = 0, comments: bool = False, **encoding) -> Path:
    """Render and encode a clip (H.264, streaming-like settings; `encoding` goes to
    write_clip, e.g. bitrate_kbps)."""
    from detector.synth.writer import write_clip

    return write_clip(path, Renderer(seed, comments).frames(states), FPS, **encoding)
