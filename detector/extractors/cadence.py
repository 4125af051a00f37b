"""Frame-to-frame steps between *decoded* frames: content jumps and repeated frames.

Sampling at 10 Hz hides what happens from one decoded frame to the next, and two physical
traces of editing live exactly there:

* **Jump cuts.** Cutting a stretch out of a fixed-camera take leaves one step in which the
  moving content jumps by seconds of motion while the steps around it move by 1/25 s. A live
  camera never does that: motion is continuous at the frame rate.
* **Frame-rate conversion.** Footage shot at 12-24 fps and played into a 25-30 fps stream
  repeats frames in a fixed cadence (24 -> 30: one frame in five); a camera never repeats a
  picture of moving content.

The source hands every decoded frame over as a tiny block-averaged luma thumbnail
(`Frame.decoded`), so this costs no extra pass. Each step's change is pooled on a coarse grid
and compared, cell by cell, with the same cells' typical change over the steps around it.
Only cells that keep moving count: an overlay that pops in over a still part of the picture
(a comment box, a sticker) is not a jump, and a still room has nothing to measure.
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections import deque
from dataclasses import dataclass

import numpy as np

from detector.extractors.base import ColumnDoc, FeatureExtractor
from detector.extractors.signal import pattern_regularity
from detector.types import DecodedThumb, Evidence, Frame, VideoMeta


@dataclass(frozen=True)
class CadenceSettings:
    # Each step's change is pooled on a grid of this many cells per side.
    grid: int = 6
    # Steps on either side that define a cell's typical change (7 at 25 fps: +-0.28 s)...
    context_steps: int = 7
    # ...as this percentile of theirs: above the median, so that a conversion repeating every
    # other frame (12 -> 25) still has a typical step that moves.
    typical_percentile: float = 75.0
    # A cell "moves" when its typical step change exceeds this (thumbnail luma levels; noise
    # alone stays below ~0.3 after the source's block averaging).
    moving_cell_level: float = 0.6
    # A step is measured only when at least this share of cells moves.
    min_moving_share: float = 0.25
    # Jump: the moving cells change this many times their typical step...
    jump_ratio: float = 4.0
    # ...and this many times the larger of the two neighbouring steps (a burst of fast
    # motion raises its neighbours too; a cut does not).
    jump_over_neighbours: float = 3.0
    # Repeat: the moving cells change less than this share of their typical step.
    repeat_ratio: float = 0.3
    # ...while both neighbouring steps move at least this share of the typical step.
    repeat_neighbour_ratio: float = 0.6
    # Repeats needed before their cadence is judged, and the regularity that makes it
    # `rate_conversion` evidence.
    cadence_min_repeats: int = 8
    cadence_min_regularity: float = 0.7
    # Source rates a conversion is tested against (fps; only those below the stream's), each
    # at this many phases of its frame clock.
    source_fps_candidates: tuple[float, ...] = (10.0, 12.0, 12.5, 15.0, 20.0, 23.976, 24.0, 25.0)
    conversion_phases: int = 24
    # `rate_conversion` evidence also when the repeats fall where a conversion puts them
    # (conversion_fit at least this), whatever the gaps between the ones detected.
    conversion_min_fit: float = 0.7
    # ... and its hits are this many standard deviations above chance (8 random repeats can
    # fit some clock by luck).
    conversion_min_z: float = 5.0
    # A gap in decoded timestamps longer than this restarts the context (a stream gap).
    max_step_s: float = 0.5
    # At most this many `content_jump` evidence items per clip (the strongest).
    max_jump_evidence: int = 30


class CadenceExtractor(FeatureExtractor):
    name = "cadence"
    Settings = CadenceSettings
    VERSION = 2                 # 2: conversion_fit
    USES_DECODED_FRAMES = True
    COLUMN_DOCS = {
        "jump_per_min": ColumnDoc(
            "content jumps per minute between consecutive decoded frames: the moving part of the "
            "picture changes >= 4x its usual frame-to-frame step and >= 3x both neighbouring steps "
            "(a stretch cut out of a take, a splice); 0 when nothing was measurable",
            "1/min", ">= 0", "prerecorded"),
        "jump_ratio_max": ColumnDoc(
            "strongest jump: its change over the usual step of the moving cells (0 with no jump)",
            "ratio", ">= 0", "prerecorded"),
        "repeat_share": ColumnDoc(
            "share of measured decoded steps that repeat the previous picture while the content "
            "around them moves (frame-rate conversion repeats frames; so does an encoder starved "
            "of bits on slow, small motion: 0.12-0.28 in live rooms where only an arm moves, so "
            "the rate itself is context and `conversion_fit` the evidence); missing when no step "
            "was measurable", "share", "0-1", "context"),
        "repeat_regularity": ColumnDoc(
            "share of gaps between repeated frames that follow a fixed pattern (1: a conversion "
            "cadence such as 24 -> 30; low: random stalls); missing with fewer than 8 repeats. "
            "Context: gaps between stalls of a starved encoder fall into patterns too; "
            "`conversion_fit` tests the clock of a source rate", "share", "0-1", "context"),
        "conversion_fit": ColumnDoc(
            "how well the repeated frames fall where showing footage of a lower frame rate at "
            "the stream's rate puts them (best source rate and phase): 1 when every repeat is on "
            "that clock, 0 when no better than repeats at random (an encoder starved of bits "
            "freezing slow motion now and then); missing with fewer than 8 repeats",
            "score", "0-1", "prerecorded"),
        "measured_share": ColumnDoc(
            "share of decoded steps with enough moving content to measure (low: still picture)",
            "share", "0-1", "context"),
    }
    FEATURES = tuple(COLUMN_DOCS)

    def reset(self, meta: VideoMeta) -> None:
        super().reset(meta)
        self._previous: DecodedThumb | None = None
        self._window: deque[tuple[float, np.ndarray]] = deque()   # (t_s, cells)
        self._steps = 0
        self._measured = 0
        # Bounded however long the stream: repeat times packed as doubles (the cadence needs
        # their sequence), jumps as a count plus the strongest few for the evidence.
        self._repeat_times = array("d")
        self._frames = 0
        self._jump_count = 0
        self._jump_ratio_max = 0.0
        self._strongest_jumps: list[tuple[float, float]] = []     # min-heap of (ratio, t_s)
        self._first_t_s: float | None = None
        self._last_t_s = 0.0

    def update(self, frame: Frame) -> None:
        for thumb in frame.decoded:
            self._add(thumb)

    def _add(self, thumb: DecodedThumb) -> None:
        previous, self._previous = self._previous, thumb
        self._frames += 1
        if self._first_t_s is None:
            self._first_t_s = thumb.t_s
        self._last_t_s = thumb.t_s
        if previous is None or previous.luma.shape != thumb.luma.shape:
            return
        gap = thumb.t_s - previous.t_s
        if gap <= 0 or gap > self.settings.max_step_s:
            self._window.clear()                # no continuity to judge across
            return
        self._window.append((thumb.t_s, self._pooled_change(previous.luma, thumb.luma)))
        self._steps += 1
        if len(self._window) == 2 * self.settings.context_steps + 1:
            self._judge_centre()
            self._window.popleft()

    def _pooled_change(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        import cv2

        g = self.settings.grid
        change = cv2.absdiff(after, before)
        return cv2.resize(change, (g, g), interpolation=cv2.INTER_AREA).ravel()

    def _judge_centre(self) -> None:
        s = self.settings
        k = s.context_steps
        cells = np.stack([w[1] for w in self._window])
        centre = cells[k]
        typical = np.percentile(np.delete(cells, k, axis=0), s.typical_percentile, axis=0)
        moving = typical > s.moving_cell_level
        if moving.mean() < s.min_moving_share:
            return
        self._measured += 1
        t_s = self._window[k][0]
        change = float(centre[moving].sum())
        expected = float(typical[moving].sum())
        ratio = change / expected
        before, after = float(cells[k - 1][moving].sum()), float(cells[k + 1][moving].sum())
        if ratio < s.repeat_ratio:
            # A converted frame repeats in the middle of motion; a gesture that pauses slows
            # down into the pause and out of it.
            if min(before, after) >= s.repeat_neighbour_ratio * expected:
                self._repeat_times.append(t_s)
            return
        if ratio >= s.jump_ratio and change >= s.jump_over_neighbours * max(before, after):
            self._jump_count += 1
            self._jump_ratio_max = max(self._jump_ratio_max, ratio)
            heapq.heappush(self._strongest_jumps, (ratio, t_s))
            if len(self._strongest_jumps) > s.max_jump_evidence:
                heapq.heappop(self._strongest_jumps)

    def finalize(self) -> tuple[dict[str, float], list[Evidence]]:
        s = self.settings
        span_s = (self._last_t_s - self._first_t_s) if self._first_t_s is not None else 0.0
        times = np.asarray(self._repeat_times)
        regularity = fit = source_fps = significance = math.nan
        gaps = np.zeros(0, dtype=np.int64)
        if len(times) >= s.cadence_min_repeats and span_s > 0:
            stream_fps = (self._frames - 1) / span_s
            # Gaps in decoded frames, from the timestamps (a stream gap counts as its frames).
            gaps = np.rint(np.diff(times) * stream_fps).astype(np.int64)
            regularity = pattern_regularity(gaps)[0]
            fit, source_fps, significance = conversion_fit(times, stream_fps, s.source_fps_candidates,
                                                           s.conversion_phases)
        repeat_share = len(times) / self._measured if self._measured else math.nan
        features = {
            "jump_per_min": 60.0 * self._jump_count / span_s if span_s > 0 else 0.0,
            "jump_ratio_max": self._jump_ratio_max,
            "repeat_share": repeat_share,
            "repeat_regularity": regularity,
            "conversion_fit": fit,
            "measured_share": self._measured / self._steps if self._steps else 0.0,
        }
        evidence = self._jump_evidence()
        regular = not math.isnan(regularity) and regularity >= s.cadence_min_regularity
        on_clock = not math.isnan(fit) and fit >= s.conversion_min_fit and significance >= s.conversion_min_z
        if regular or on_clock:
            evidence.append(Evidence(
                kind="rate_conversion", start_s=float(times[0]), end_s=float(times[-1]),
                score=max(regularity if regular else 0.0, fit if on_clock else 0.0),
                detail={"repeat_share": round(repeat_share, 4), "repeats": len(times),
                        "pattern_gap_frames": int(np.median(gaps)),
                        "source_fps": None if math.isnan(source_fps) else source_fps,
                        "conversion_fit": None if math.isnan(fit) else round(fit, 3)}))
        return features, evidence

    def _jump_evidence(self) -> list[Evidence]:
        # A jump scores 1 when the step is ten times the usual one (0.33 at the 4x threshold).
        return [
            Evidence(kind="content_jump", start_s=t, end_s=t, score=min(1.0, (ratio - 1.0) / 9.0),
                     detail={"ratio": round(ratio, 2)})
            for ratio, t in sorted(self._strongest_jumps, key=lambda j: j[1])
        ]


def conversion_fit(repeat_times_s: np.ndarray, stream_fps: float, candidates: tuple[float, ...],
                   phases: int = 24) -> tuple[float, float, float]:
    """(fit, source fps, significance) of the source clock that best explains the repeats.

    Footage at r fps shown at the stream's R fps repeats the frame at time t exactly when no
    source frame starts between t - 1/R and t: floor(t r + phase) == floor((t - 1/R) r + phase).
    A fraction 1 - r/R of all frames repeat, so repeats at random land on that clock that
    often by chance. The clock chosen is the one whose hits are least likely by chance (a
    binomial z-score: a 12 fps clock repeats 60 % of frames and so also covers most of a
    24 fps clock's repeats, but by chance as easily); the fit is its share of repeats on the
    clock above chance, scaled to 0-1. Timestamps, not frame counts, so a gap in the stream
    does not shift the clock.
    """
    times = np.asarray(repeat_times_s, dtype=np.float64)
    n = times.size
    if n == 0 or not stream_fps > 0:
        return math.nan, math.nan, math.nan
    best = (-math.inf, math.nan, math.nan)          # (z, fit, fps)
    for fps in candidates:
        chance = 1.0 - fps / stream_fps
        if chance <= 0.02:
            continue                          # not slower than the stream: nothing repeats
        now = times * fps
        before = (times - 1.0 / stream_fps) * fps
        for phase in np.arange(phases) / phases:
            # The small offset keeps frame times that land exactly on a source frame's start
            # on the same side in both terms.
            on_clock = float(np.mean(np.floor(now + phase + 1e-6) == np.floor(before + phase + 1e-6)))
            z = (on_clock - chance) * math.sqrt(n / (chance * (1.0 - chance)))
            if z > best[0] + 1e-9:
                best = (z, (on_clock - chance) / (1.0 - chance), fps)
    z, fit, fps = best
    if z == -math.inf:
        return math.nan, math.nan, math.nan
    return max(0.0, fit), fps, z
