"""Footage sources: what a camera in a live room (or a recording of one) shows.

`take(kind, ...)` returns an iterator of exactly round(duration_s * fps) BGR frames of one
continuous take. Kinds:

- procedural: "room" (shapes on random walks in a textured room), "still" (a furnished room
  where nothing moves), "gesture" (a figure repeating an arm wave), "turntable", "pan";
- presenter: "presenter" (a real portrait animated as a live, talking presenter);
- real footage shipped in packages: "bikes", "carphone", "bigbuckbunny" (short: at most
  `max_duration_s(kind)` seconds).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

from detector.corpus.layers import Camera, filmed

PROCEDURAL = ("room", "still", "gesture", "turntable", "pan")
FOOTAGE_KINDS = ("bikes", "carphone", "bigbuckbunny")
_FOOTAGE_S = {"bikes": 10.0, "carphone": 4.0, "bigbuckbunny": 5.28}


def max_duration_s(kind: str) -> float:
    """How long a take of `kind` can be (real footage is short)."""
    return _FOOTAGE_S.get(kind, float("inf"))


def take(kind: str, width: int, height: int, fps: float, duration_s: float, seed: int,
         shake_px: float = 0.0, drift: float = 0.0, zoom: float = 1.0,
         centre: tuple[float, float] = (0.5, 0.5)) -> Iterator[np.ndarray]:
    """One continuous take of `kind` (see module doc), filmed by a camera that shakes by
    `shake_px` (0: tripod) and whose exposure drifts by `drift` (relative gain deviation)."""
    n = max(1, round(duration_s * fps))
    frames = _content(kind, width, height, fps, duration_s, seed, zoom, centre)
    frames = itertools.islice(frames, n)
    if shake_px > 0 or drift > 0:
        rng = np.random.default_rng([seed, 77])
        frames = filmed(frames, Camera.make(rng, n, fps, shake_px, drift))
    return frames


def _content(kind, width, height, fps, duration_s, seed, zoom, centre) -> Iterator[np.ndarray]:
    from detector.synth import hard_negatives as hn
    from detector.synth.scenes import moving_scene, static_scene

    if kind == "room":
        return moving_scene(width, height, fps, duration_s, seed)
    if kind == "still":
        return static_scene(width, height, fps, duration_s, seed)
    if kind == "gesture":
        period = 2.0 + (seed % 7) * 0.4
        return hn.gesture_scene(width, height, fps, duration_s, seed, gesture_period_s=period)
    if kind == "turntable":
        period = 4.0 + (seed % 5)
        return hn.turntable_scene(width, height, fps, duration_s, seed, rotation_period_s=period)
    if kind == "pan":
        return hn.pan_back_scene(width, height, fps, duration_s, seed)
    if kind == "presenter":
        from detector.synth.presenter import Presenter, live_states

        liveliness = 0.6 + (seed % 5) * 0.15
        return Presenter(width, height, seed).frames(live_states(duration_s, fps, seed, liveliness))
    if kind in FOOTAGE_KINDS:
        from detector.corpus.footage import footage_frames

        if duration_s > _FOOTAGE_S[kind] + 1e-6:
            raise ValueError(f"{kind} footage lasts only {_FOOTAGE_S[kind]} s, asked for {duration_s}")
        return footage_frames(kind, width, height, fps, zoom=zoom, centre=centre)
    raise ValueError(f"unknown source kind {kind!r}")
