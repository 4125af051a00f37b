"""Composited layouts: picture-in-picture ("big and small window") and keyed presenters.

Both are one physical fact: two video *layers* were combined. Where one layer ends, a
boundary stays put for the whole clip while the picture on both sides keeps changing, and what
moves on one side does not move the other. In a single camera view a persistent edge is one
that nothing passes in front of; whatever moves near it sooner or later occludes it.

What is accumulated (bounded: a few small grids, whatever the clip length), on a half-size
copy of the analysis frame (160x90 for 320x180) cut into 5 px cells (32 along the long side)
and a coarse grid of 2x2 cells:

* per fine cell, the mean absolute change per step (divided by the sampling step) and its
  running sums: how much each cell ever moves (`activity`);
* for the coarse cells, running sums of products of their change series plus the frame's
  median change, i.e. their covariance matrix (145 x 145 for 16x9 cells, ~20 us per step);
  steps where the whole picture jumps at once (an encoder keyframe, a cut, a flash) are left
  out, and what every cell shares with the frame's median change (the frame-type cadence
  that 10 Hz sampling of a 25 fps file hits, rate-control settling, exposure) is removed by
  partial covariance;
* per half-size pixel, the share of frames (every `edge_every_n`-th) in which a strong
  vertical / horizontal luma step is present there, and the share of steps in which the
  pixel changed by more than `change_delta` levels;
* every `colour_every_n`-th sampled frame (0.5 Hz by default: `frame.bgr` costs a
  conversion, ~0.8 ms from a 720p frame), a count of key-colour fringe pixels (below).

**Picture-in-picture.** Every rectangle on the coarse grid is scored in one vectorised pass
(finalize, a few ms). Its *border* is the weakest of its inner sides (those not on the frame
border), each side scored by the prominence of the best straight pixel line within half a
coarse cell of it: the share of frames with an edge on that line, averaged along the side,
minus the same share 3 px to either side. A window's frame, or the content step at its edge,
is a thin line that is there in nearly every frame; dense text, fine texture and an edge
smeared by camera shake are persistent over a band of columns, not on one line. Its
*independence* is 1 minus the correlation over time of the summed change inside vs. outside
(from the covariance, so every rectangle costs 16 table look-ups), scaled down unless both
sides move, overall and right up to every inner side (mean cell activity >= `min_active`): a
picture frame on the wall of a live room has a perfect border but nothing moves inside it,
and a shelf edge next to a presenter has a still wall on its other side. Score = sqrt(border score x
independence); evidence ``picture_in_picture`` from `pip_min_score`.

A rectangle must have an inner vertical *and* an inner horizontal side. That is why a comment
band, ticker or price bar across the full width is not a window, and why it must not be:
overlays are everywhere in live rooms and their region is not an independent *video* - a
translucent band lets the room's motion continue under it, scrolling text has no straight
persistent line along its moving glyphs, and its only straight line (the band's top edge)
runs across the whole frame. Limits, honestly: after the common factors are removed, the
summed changes of two regions of one moving scene are nearly independent too, so in
practice the border decides and independence mostly rejects still insides; a window without
a visible frame is found only when its content step is persistent; a busy small window over
a calm picture in a 25 fps file with B-frames still shares enough encoder cadence to lose
independence; a full-width split screen is not reported by design; an opaque comment panel
inset in a corner is geometrically a window and can be reported.

**Green screen.** `key_edge` is the layer-edge share: persistent edge pixels (present in
more than half the frames) whose neighbourhood 3 px to one side changes markedly more often
than the edge itself - the edge stays while the picture beside it moves, so it is on top. A
keyed presenter over a moving background has such a contour; so do static graphic overlays
and, partly, strong edges under camera shake, so the column alone is context. `spill` is the
keyer's trace: a thin ridge (narrower than `spill_tophat_px`, found by morphological opening)
of green or blue excess over the other two channels, standing on a background with none,
near strong luma edges. A key-coloured surface (a green wall, a blue shirt) is removed by the
opening; natural edges rarely carry a thin key-coloured line. Evidence ``green_screen`` needs
both. A clean professional key without spill is not found; neither is a presenter who walks
around (no persistent contour).

Cost: ~0.1 ms per sampled frame at 320x180 (measured), plus, every 20th sampled frame, the
BGR conversion (~0.8 ms from 720p, i.e. ~0.04 ms per sampled frame) unless another
extractor already asked for colour on that frame; the rectangle search in finalize ~10 ms.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import statistics
from collections import deque
from dataclasses import dataclass

import numpy as np

from detector.extractors.base import ColumnDoc, FeatureExtractor
from detector.types import Evidence, Frame, VideoMeta

log = logging.getLogger(__name__)

# A step whose frame-wide median change exceeds this multiple of its recent level (plus the
# floor, in luma levels) is an encoder keyframe pulse, a cut or a flash.
_PULSE_RATIO = 1.6
_PULSE_FLOOR = 0.2
# Half-size pixels between a candidate border line and the flanks it is compared with (a
# 3x3 Sobel spreads a 1-2 px line over ~3 px).
_FLANK_PX = 3


@dataclass(frozen=True)
class LayoutSettings:
    # Fine cells along the long side of the half-size copy (32 -> 5 px cells at 160x90);
    # windows are searched on a grid twice as coarse.
    grid_long: int = 32
    # A cell's change spread (std over time of its mean abs change, luma levels per nominal
    # step) below `active_sigma_low` is noise; at `active_sigma_high` it fully counts.
    active_sigma_low: float = 0.3
    active_sigma_high: float = 1.0
    # Edge persistence: a luma step of at least this Sobel response (3x3, on the half-size
    # copy; ~10 luma levels across one pixel) counts as an edge; sampled every n-th frame.
    edge_sobel: int = 40
    edge_every_n: int = 2
    # Windows considered: at least this many coarse cells per side, area share within bounds.
    min_cells: int = 2
    min_area_share: float = 0.02
    max_area_share: float = 0.7
    # Independence counts fully once at least this mean cell activity is found inside, outside
    # and on both sides of every inner side.
    min_active: float = 0.3
    # Border prominence (edge persistence of the line minus its flanks) that scores 0 / 1.
    border_floor: float = 0.35
    border_full: float = 0.65
    # Evidence when the PiP score reaches this.
    pip_min_score: float = 0.75
    # Layer edges (key_edge): a half-size pixel that is an edge in more than `key_persist` of
    # the frames, while a pixel `_FLANK_PX` to one side changes (by more than `change_delta`
    # luma levels) in at least `key_contrast` more of the steps than the edge pixel itself.
    change_delta: int = 8
    key_persist: float = 0.5
    key_contrast: float = 0.08
    # key_edge is the share of persistent edge pixels that are layer edges, out of at least
    # this share of the picture (so that three persistent pixels cannot make a share of 1).
    key_min_share: float = 0.005
    # Colour fringe: measured on every n-th sampled frame (0.5 Hz at 10 Hz: BGR costs
    # ~0.8 ms); the key-colour ridge must exceed `spill_ridge` levels, near strong luma
    # edges (3x3 Sobel above `spill_edge` at analysis size).
    colour_every_n: int = 20
    spill_ridge: int = 16
    spill_edge: int = 120
    spill_tophat_px: int = 7
    # Green-screen evidence when both reach their thresholds.
    key_edge_min: float = 0.04
    spill_min: float = 0.06


class LayoutExtractor(FeatureExtractor):
    name = "layout"
    Settings = LayoutSettings
    COLUMN_DOCS = {
        "pip_score": ColumnDoc("picture-in-picture score of the best candidate window: geometric mean of its border score and its independence; NaN if the clip is too short", "score", "0-1", "picture_in_picture flag; prerecorded"),
        "pip_area_share": ColumnDoc("area of that best candidate window as a share of the frame (whatever its score); NaN if none could be scored", "share", "0-1", "context"),
        "pip_border": ColumnDoc("border prominence of that window: along its weakest inner side, the share of frames with a strong edge on one straight line minus that share 3 px to either side", "share", "-1-1", "picture_in_picture flag"),
        "pip_independence": ColumnDoc("how independently the inside and the outside of that window change: 1 - correlation of their summed change over time (frame-wide common change removed), scaled down when either side, or the cells along any inner side, hardly move", "ratio", "0-1", "picture_in_picture flag"),
        "key_edge": ColumnDoc("share of persistent edge pixels that are layer edges: the edge never moves while the picture right beside it keeps changing (a keyed presenter's contour over a moving background, a static graphic overlay; a detected window's own sides excluded); NaN if nothing ever changed", "share", "0-1", "context (composited layers; with spill: green_screen)"),
        "spill": ColumnDoc("share of pixels near strong luma edges that carry a thin green/blue fringe (keyer spill), sampled at 0.5 Hz; NaN if no sampled frame had strong edges", "share", "0-1", "prerecorded"),
        "active_cell_share": ColumnDoc("share of grid cells whose change varies beyond the noise (how much of the frame ever moves)", "share", "0-1", "context"),
    }
    FEATURES = tuple(COLUMN_DOCS)

    def reset(self, meta: VideoMeta) -> None:
        super().reset(meta)
        rate = self.config.sample_fps or meta.declared_fps or 25.0
        self._nominal_dt_s = 1.0 / rate
        self._geometry: _Grid | None = None
        self._first_t_s: float | None = None
        self._last_t_s = 0.0
        self._spill_hits = 0
        self._spill_total = 0

    def _start(self, shape: tuple[int, ...]) -> None:
        self._geometry = g = _Grid(shape, self.settings.grid_long)
        if not g.usable:
            log.warning("analysis frame %s is too small for layout cues", shape[:2])
        self._previous: np.ndarray | None = None
        self._previous_t_s = 0.0
        self._frames = 0
        self._cells = _CellStats(g.rows, g.cols)
        self._change_rate = np.zeros((g.height, g.width), np.float32)   # steps with change, x255
        n = g.coarse_rows * g.coarse_cols + 1        # coarse cells + the frame's median change
        self._coarse_sum = np.zeros(n)
        self._coarse_cross = np.zeros((n, n))       # sum of outer products: covariance later
        self._coarse_n = 0
        self._recent_medians: deque[float] = deque(maxlen=21)
        self._edges_v = np.zeros((g.height, g.width), np.float32)    # vertical edges (|d/dx|)
        self._edges_h = np.zeros((g.height, g.width), np.float32)    # horizontal edges (|d/dy|)
        self._edge_frames = 0

    # -- per frame ------------------------------------------------------------------------
    def update(self, frame: Frame) -> None:
        import cv2

        if self._geometry is None or self._geometry.shape_in != frame.gray.shape:
            if self._geometry is not None:
                log.warning("frame size changed mid-clip; layout statistics restart")
            self._start(frame.gray.shape)
        g, s = self._geometry, self.settings
        if not g.usable:
            return          # a picture too small to hold a window (finalize reports NaN)
        t_s = frame.t_s
        if self._first_t_s is None:
            self._first_t_s = t_s
        dt_s = t_s - self._previous_t_s
        if self._previous is not None and dt_s <= 0:
            return
        half = g.shrink(frame)
        self._frames += 1
        self._last_t_s = t_s
        if self._previous is not None:
            self._add_change(cv2.absdiff(half, self._previous), dt_s)
        self._previous, self._previous_t_s = half, t_s
        if self._frames % s.edge_every_n == 0:
            self._add_edges(half)
        if s.colour_every_n <= 1 or self._frames % s.colour_every_n == 1:
            hits, total = _spill_counts(frame, s)
            self._spill_hits += hits
            self._spill_total += total

    def _add_change(self, difference: np.ndarray, dt_s: float) -> None:
        import cv2

        g, s = self._geometry, self.settings
        cv2.accumulate(cv2.compare(difference, s.change_delta, cv2.CMP_GT), self._change_rate)
        change = cv2.resize(difference, (g.cols, g.rows), interpolation=cv2.INTER_AREA).astype(np.float32)
        # Per unit of time: sampling a 25 fps file at 10 Hz alternates 0.08/0.12 s steps,
        # which would otherwise correlate every cell with every other.
        change *= self._nominal_dt_s / dt_s
        self._cells.add(change)
        coarse = cv2.resize(change, (g.coarse_cols, g.coarse_rows), interpolation=cv2.INTER_AREA)
        coarse = coarse.ravel().astype(np.float64)
        median = _median(coarse)
        # An encoder keyframe refreshes the noise of the whole picture: the two steps around
        # it change everywhere at once, coupling every region with every other (streams use
        # a fixed 1-4 s GOP). Steps whose median change jumps well above its recent level are
        # left out of the covariance (so is a cut or a flash: just as common to all regions).
        # statistics.median: ~1 us on 21 floats, where np.median costs ~40 us of overhead.
        typical = float(statistics.median(self._recent_medians)) if self._recent_medians else median
        self._recent_medians.append(median)
        if median > _PULSE_RATIO * typical + _PULSE_FLOOR:
            return
        # The median rides along as one more series; finalize removes what every cell shares
        # with it (partial covariance): the frame-type cadence that 10 Hz sampling of a 25 fps
        # file hits, rate control settling, exposure drift.
        vector = np.append(coarse, median)
        self._coarse_n += 1
        self._coarse_sum += vector
        self._coarse_cross += np.outer(vector, vector)

    def _add_edges(self, half: np.ndarray) -> None:
        import cv2

        self._edge_frames += 1
        for dx, dy, acc in ((1, 0, self._edges_v), (0, 1, self._edges_h)):
            response = cv2.convertScaleAbs(cv2.Sobel(half, cv2.CV_16S, dx, dy, ksize=3))
            cv2.accumulate(cv2.compare(response, self.settings.edge_sobel, cv2.CMP_GT), acc)

    # -- results --------------------------------------------------------------------------
    def finalize(self) -> tuple[dict[str, float], list[Evidence]]:
        features = {key: math.nan for key in self.FEATURES}
        if self._spill_total:
            features["spill"] = self._spill_hits / self._spill_total
        if self._geometry is None or self._cells.n < 10 or self._edge_frames < 3:
            return features, []
        s, g = self.settings, self._geometry
        maps = self._maps()
        features["active_cell_share"] = float(np.mean(maps.activity > 0.5))
        evidence: list[Evidence] = []
        window = _best_window(maps, g, s)
        if window is not None:
            features.update(pip_score=window.score, pip_area_share=window.area_share,
                            pip_border=window.border, pip_independence=window.independence)
            if window.score >= s.pip_min_score:
                evidence.append(Evidence(
                    kind="picture_in_picture", start_s=self._first_t_s or 0.0, end_s=self._last_t_s,
                    score=window.score,
                    detail={"box": [round(v, 4) for v in window.fractions],
                            "border": round(window.border, 3), "independence": round(window.independence, 3)},
                ))
            else:
                window = None
        features["key_edge"] = _key_edge(maps, g, s, window)
        key, spill = features["key_edge"], features["spill"]
        if key >= s.key_edge_min and spill >= s.spill_min:     # NaN compares False
            evidence.append(Evidence(
                kind="green_screen", start_s=self._first_t_s or 0.0, end_s=self._last_t_s,
                score=float(math.sqrt(min(1.0, spill / (2 * s.spill_min)) * min(1.0, key / (2 * s.key_edge_min)))),
                detail={"key_edge": round(key, 3), "spill": round(spill, 4)},
            ))
        return features, evidence

    def _maps(self) -> "_Maps":
        s = self.settings
        n = self._cells.n
        sigma = self._cells.sigma()
        activity = np.clip((sigma - s.active_sigma_low) / (s.active_sigma_high - s.active_sigma_low), 0.0, 1.0)
        mean = self._coarse_sum / max(self._coarse_n, 1)
        full = self._coarse_cross / max(self._coarse_n, 1) - np.outer(mean, mean)
        # Partial covariance given the frame-wide (median) change: cell_i - beta_i * median.
        covariance, common, common_var = full[:-1, :-1], full[:-1, -1], float(full[-1, -1])
        if common_var > 1e-9:
            covariance = covariance - np.outer(common, common) / common_var
        frames = 255.0 * self._edge_frames          # cv2.compare marks edges with 255
        return _Maps(activity, covariance, self._edges_v / frames, self._edges_h / frames,
                     self._change_rate / (255.0 * n))


def _median(values: np.ndarray) -> float:
    """np.median of a 1-D float array, exactly, at a quarter of its overhead."""
    n = values.size
    k = n // 2
    if n % 2:
        return float(np.partition(values, k)[k])
    low_high = np.partition(values, (k - 1, k))
    return float((low_high[k - 1] + low_high[k]) / 2)


class _CellStats:
    """Running sums of each cell's change, for its spread over time (activity)."""

    def __init__(self, rows: int, cols: int) -> None:
        self.n = 0
        self.sum = np.zeros((rows, cols))
        self.sum_sq = np.zeros((rows, cols))

    def add(self, x: np.ndarray) -> None:
        self.n += 1
        self.sum += x
        self.sum_sq += x * x

    def sigma(self) -> np.ndarray:
        mean = self.sum / self.n
        return np.sqrt(np.maximum(self.sum_sq / self.n - mean * mean, 0.0))


@dataclass
class _Maps:
    activity: np.ndarray          # (rows, cols) fine cells, in [0, 1]
    covariance: np.ndarray        # (n, n) change covariance of the coarse cells (row-major)
    edges_v: np.ndarray           # (height, width) share of frames with a vertical edge
    edges_h: np.ndarray           # ... with a horizontal edge
    change_rate: np.ndarray       # (height, width) share of steps in which the pixel changed


@dataclass(frozen=True)
class _Window:
    score: float
    border: float
    independence: float
    area_share: float
    fractions: tuple[float, float, float, float]     # x, y, w, h of the analysis frame
    cells: tuple[int, int, int, int]                 # x0, x1, y0, y1 on the coarse grid


class _Grid:
    """The half-size copy, its fine cell grid and the coarse (2x2) grid for one frame shape."""

    def __init__(self, shape: tuple[int, ...], grid_long: int) -> None:
        height_in, width_in = shape[:2]
        long_half = max(height_in, width_in) // 2
        self.cell = max(2, long_half // max(grid_long, 8))
        # Even numbers of fine cells, so that coarse cells are exactly 2x2 fine ones.
        self.cols = (width_in // 2) // self.cell // 2 * 2
        self.rows = (height_in // 2) // self.cell // 2 * 2
        # A window needs inner sides on a coarse grid of at least 4 x 4.
        self.usable = self.cols >= 8 and self.rows >= 8
        self.coarse_cols, self.coarse_rows = self.cols // 2, self.rows // 2
        self.coarse_cell = 2 * self.cell
        self.width, self.height = self.cols * self.cell, self.rows * self.cell
        self.shape_in = shape
        self.frame_w, self.frame_h = width_in, height_in
        # The half-size copy covers a centred crop of whole cells.
        self.x0 = (width_in - 2 * self.width) // 2
        self.y0 = (height_in - 2 * self.height) // 2
        self.crop = (slice(self.y0, self.y0 + 2 * self.height), slice(self.x0, self.x0 + 2 * self.width))

    def shrink(self, frame: Frame) -> np.ndarray:
        import cv2

        shared = frame.half_crop(self.y0, self.x0, self.height, self.width)
        if shared is not None:
            return shared
        return cv2.resize(frame.gray[self.crop], (self.width, self.height), interpolation=cv2.INTER_AREA)

    def to_fraction_x(self, x_half: float) -> float:
        return float((self.x0 + 2 * x_half) / self.frame_w)

    def to_fraction_y(self, y_half: float) -> float:
        return float((self.y0 + 2 * y_half) / self.frame_h)


def _line_persistence(edges: np.ndarray, n_lines: int, n_cells: int, cell: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Prominence of the best straight line near each grid line, for every cell span.

    `edges` is (along, across): rows run along the line, columns across it (transpose for
    horizontal lines). A candidate line's value is its mean edge persistence along the span
    minus the mean persistence of the lines `_FLANK_PX` to either side: a window border is a
    thin persistent line, while dense text, fine texture or an edge smeared by camera shake
    is persistent over a band of columns. Returns (value, position) arrays of shape
    (n_lines + 1, n_cells + 1, n_cells + 1), indexed [line, start cell, end cell];
    `position` is the pixel offset of the best line across. Spans with end <= start are 0.
    """
    along, across = edges.shape
    cumulative = np.vstack([np.zeros((1, across), np.float64), np.cumsum(edges, axis=0, dtype=np.float64)])
    bounds = np.arange(n_cells + 1) * cell                       # pixel index of each cell edge
    lengths = (bounds[None, :] - bounds[:, None]).astype(np.float64)  # [start, end]
    value = np.zeros((n_lines + 1, n_cells + 1, n_cells + 1))
    position = np.zeros((n_lines + 1, n_cells + 1, n_cells + 1))
    half = max(1, cell // 2)

    def span_means(columns: np.ndarray) -> np.ndarray:
        sums = cumulative[:, columns][bounds]                    # (n_cells + 1, k)
        with np.errstate(invalid="ignore", divide="ignore"):
            spans = (sums[None, :, :] - sums[:, None, :]) / lengths[:, :, None]
        return np.where(lengths[:, :, None] > 0, spans, 0.0)

    for line in range(1, n_lines):
        centre = line * cell
        candidates = np.arange(max(1, centre - half), min(across - 1, centre + half + 1))
        flanks = 0.5 * (span_means(np.clip(candidates - _FLANK_PX, 0, across - 1))
                        + span_means(np.clip(candidates + _FLANK_PX, 0, across - 1)))
        spans = span_means(candidates) - flanks
        best = np.argmax(spans, axis=2)
        value[line] = np.take_along_axis(spans, best[:, :, None], axis=2)[:, :, 0]
        position[line] = candidates[best]
    return value, position


def _rect_sums(prefix: np.ndarray, y0, y1, x0, x1) -> np.ndarray:
    """Sums over [y0, y1) x [x0, x1) from a 2-D prefix-sum table (broadcasting indices)."""
    return prefix[y1, x1] - prefix[y0, x1] - prefix[y1, x0] + prefix[y0, x0]


def _prefix2(a: np.ndarray) -> np.ndarray:
    out = np.zeros((a.shape[0] + 1, a.shape[1] + 1))
    out[1:, 1:] = a.cumsum(0).cumsum(1)
    return out


def _block_variance(covariance: np.ndarray, rows: int, cols: int, y0, y1, x0, x1) -> np.ndarray:
    """Variance of the summed change of every rectangle: sum of covariance over cell pairs
    both inside, by inclusion-exclusion on a 4-D prefix-sum table (16 look-ups each)."""
    prefix = np.zeros((rows + 1, cols + 1, rows + 1, cols + 1))
    prefix[1:, 1:, 1:, 1:] = covariance.reshape(rows, cols, rows, cols).cumsum(0).cumsum(1).cumsum(2).cumsum(3)
    total = 0.0
    for corner in itertools.product((0, 1), repeat=4):
        ya = y1 if corner[0] else y0
        xa = x1 if corner[1] else x0
        yb = y1 if corner[2] else y0
        xb = x1 if corner[3] else x0
        total = total + (-1) ** (4 - sum(corner)) * prefix[ya, xa, yb, xb]
    return total


def _best_window(maps: _Maps, g: _Grid, s: LayoutSettings) -> _Window | None:
    """Score every rectangle of the coarse grid in one vectorised pass; the best, or None."""
    rows, cols = g.coarse_rows, g.coarse_cols
    x0 = np.arange(cols + 1)[:, None, None, None]
    x1 = np.arange(cols + 1)[None, :, None, None]
    y0 = np.arange(rows + 1)[None, None, :, None]
    y1 = np.arange(rows + 1)[None, None, None, :]
    cells = (x1 - x0) * (y1 - y0)
    area = cells / float(rows * cols)
    left_in, right_in, top_in, bottom_in = x0 > 0, x1 < cols, y0 > 0, y1 < rows
    # A window has an inner vertical and an inner horizontal side: a full-width band (comment
    # overlay, ticker, price bar) or a split screen does not qualify.
    valid = ((x1 - x0 >= s.min_cells) & (y1 - y0 >= s.min_cells)
             & (area >= s.min_area_share) & (area <= s.max_area_share)
             & (left_in | right_in) & (top_in | bottom_in))
    if not valid.any():
        return None

    # Independence: correlation over time of the summed change inside vs. outside.
    cov = maps.covariance
    var_in = _block_variance(cov, rows, cols, y0, y1, x0, x1)
    cov_in_total = _rect_sums(_prefix2(cov.sum(axis=1).reshape(rows, cols)), y0, y1, x0, x1)
    var_total = float(cov.sum())
    cov_in_out = cov_in_total - var_in
    var_out = var_total - 2 * cov_in_total + var_in
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov_in_out / np.sqrt(var_in * var_out)
    corr = np.where(np.isfinite(corr), np.clip(corr, 0.0, 1.0), 1.0)
    coarse_activity = maps.activity.reshape(rows, 2, cols, 2).mean(axis=(1, 3))
    active_in = _rect_sums(_prefix2(coarse_activity), y0, y1, x0, x1)
    mean_in = active_in / np.maximum(cells, 1)
    mean_out = (coarse_activity.sum() - active_in) / np.maximum(rows * cols - cells, 1)
    # Both layers move, and they move right up to every inner side: a window's picture and
    # the picture around it both touch its frame. A static edge in a room (a shelf, a picture
    # frame) that a presenter moves next to has stillness on one side.
    at_sides = _side_activity(coarse_activity, left_in, right_in, top_in, bottom_in)
    both = np.clip(np.minimum(np.minimum(mean_in, mean_out), at_sides) / s.min_active, 0.0, 1.0)
    independence = (1.0 - corr) * both

    # Border: the weakest inner side's line prominence.
    border_v, pos_v = _line_persistence(maps.edges_v, cols, rows, g.coarse_cell)
    border_h, pos_h = _line_persistence(maps.edges_h.T, rows, cols, g.coarse_cell)
    inf = np.inf
    horizontal = np.transpose(border_h, (1, 2, 0))            # [x0, x1, y]
    border = functools.reduce(np.minimum, [
        np.where(left_in, border_v[:, None, :, :], inf), np.where(right_in, border_v[None, :, :, :], inf),
        np.where(top_in, horizontal[:, :, :, None], inf), np.where(bottom_in, horizontal[:, :, None, :], inf)])
    border = np.where(valid & np.isfinite(border), border, -1.0)
    border_score = np.clip((border - s.border_floor) / (s.border_full - s.border_floor), 0.0, 1.0)

    score = np.where(valid, np.sqrt(border_score * independence), -1.0)
    # Among equal scores (typically all 0) report the rectangle closest to qualifying.
    tie_break = 1e-6 * (np.clip(border, 0.0, 1.0) + independence)
    index = np.unravel_index(int(np.argmax(score + np.where(valid, tie_break, 0.0))), score.shape)
    bx0, bx1, by0, by1 = (int(i) for i in index)
    # Box edges: the best pixel line of each inner side; the frame border otherwise.
    fx0 = g.to_fraction_x(pos_v[bx0, by0, by1]) if bx0 > 0 else 0.0
    fx1 = g.to_fraction_x(pos_v[bx1, by0, by1]) if bx1 < cols else 1.0
    fy0 = g.to_fraction_y(pos_h[by0, bx0, bx1]) if by0 > 0 else 0.0
    fy1 = g.to_fraction_y(pos_h[by1, bx0, bx1]) if by1 < rows else 1.0
    full = np.broadcast_to
    return _Window(
        score=float(score[index]), border=float(border[index]),
        independence=float(full(independence, score.shape)[index]),
        area_share=float(full(area, score.shape)[index]),
        fractions=(fx0, fy0, fx1 - fx0, fy1 - fy0), cells=(bx0, bx1, by0, by1),
    )


def _side_activity(activity: np.ndarray, left_in, right_in, top_in, bottom_in) -> np.ndarray:
    """Least activity found just inside or just outside any inner side of every rectangle.

    `activity` is the coarse (rows, cols) map; the result broadcasts to [x0, x1, y0, y1]
    (1 where a rectangle has no inner side of that kind).
    """
    rows, cols = activity.shape
    # Mean activity of column c over rows [y0, y1): cumulative sums down each column.
    down = np.vstack([np.zeros((1, cols)), np.cumsum(activity, axis=0)])
    span = np.maximum(np.arange(rows + 1)[None, :] - np.arange(rows + 1)[:, None], 1)   # [y0, y1]
    column_mean = (down[None, :, :] - down[:, None, :]) / span[:, :, None]               # [y0, y1, c]
    across = np.hstack([np.zeros((rows, 1)), np.cumsum(activity, axis=1)])
    width = np.maximum(np.arange(cols + 1)[None, :] - np.arange(cols + 1)[:, None], 1)   # [x0, x1]
    row_mean = (across[:, None, :] - across[:, :, None]).transpose(1, 2, 0) / width[:, :, None]  # [x0, x1, r]
    # Vertical line k: the columns k-1 and k on either side (k = 0 or cols: unused, padded).
    pad_c = np.concatenate([column_mean[:, :, :1], column_mean, column_mean[:, :, -1:]], axis=2)
    line_v = np.minimum(pad_c[:, :, :-1], pad_c[:, :, 1:])         # [y0, y1, k], k = 0..cols
    pad_r = np.concatenate([row_mean[:, :, :1], row_mean, row_mean[:, :, -1:]], axis=2)
    line_h = np.minimum(pad_r[:, :, :-1], pad_r[:, :, 1:])         # [x0, x1, k], k = 0..rows
    left = np.transpose(line_v, (2, 0, 1))[:, None, :, :]          # [x0, -, y0, y1]
    right = np.transpose(line_v, (2, 0, 1))[None, :, :, :]         # [-, x1, y0, y1]
    top = line_h[:, :, :, None]                                     # [x0, x1, y0, -]
    bottom = line_h[:, :, None, :]                                  # [x0, x1, -, y1]
    one = 1.0
    return functools.reduce(np.minimum, [np.where(left_in, left, one), np.where(right_in, right, one),
                                         np.where(top_in, top, one), np.where(bottom_in, bottom, one)])


def _key_edge(maps: _Maps, g: _Grid, s: LayoutSettings, window: _Window | None) -> float:
    """Share of persistent edge pixels that are layer edges (see `LayoutSettings`).

    In one camera view a persistent edge is one that nothing passes in front of, so the
    picture around it is as still as the edge; the moving thing that does pass occludes it.
    An edge that stays while the picture right beside it keeps changing belongs to a layer on
    top: a keyed presenter's contour over a moving background, an overlay, a window frame.
    """
    if float(maps.change_rate.max()) <= 0.0:
        return math.nan
    persistent = np.maximum(maps.edges_v, maps.edges_h) > s.key_persist
    margin = _FLANK_PX + 1
    persistent[:margin] = persistent[-margin:] = False        # the frame border is no layer
    persistent[:, :margin] = persistent[:, -margin:] = False
    if window is not None:
        _drop_window_sides(persistent, window, g)
    rate = maps.change_rate
    padded = np.pad(rate, _FLANK_PX, mode="edge")
    f = _FLANK_PX
    h, w = rate.shape
    beside = functools.reduce(np.maximum, [padded[f + dy: f + dy + h, f + dx: f + dx + w]
                                           for dy, dx in ((0, -f), (0, f), (-f, 0), (f, 0))])
    layer = persistent & (beside - rate >= s.key_contrast)
    floor = s.key_min_share * rate.size
    return float(np.count_nonzero(layer) / max(float(np.count_nonzero(persistent)), floor))


def _drop_window_sides(mask: np.ndarray, window: _Window, g: _Grid) -> None:
    """Clear a detected window's own sides (already explained) from a half-size mask."""
    x0, x1, y0, y1 = (c * g.coarse_cell for c in window.cells)
    band = g.coarse_cell // 2 + _FLANK_PX
    rows, cols = mask.shape
    for x in (x0, x1):
        mask[max(0, y0 - band): y1 + band, max(0, x - band): x + band] = False
    for y in (y0, y1):
        mask[max(0, y - band): y + band, max(0, x0 - band): x1 + band] = False


def _spill_counts(frame: Frame, s: LayoutSettings) -> tuple[int, int]:
    """(fringe pixels, near-edge pixels) of one frame: a thin key-colour ridge at strong edges."""
    import cv2

    bgr = frame.bgr
    b, g, r = cv2.split(bgr)
    green = cv2.subtract(g, cv2.max(r, b))        # saturating: no excess -> 0
    blue = cv2.subtract(b, cv2.max(r, g))
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (s.spill_tophat_px, s.spill_tophat_px))
    ridge = np.zeros(green.shape, np.uint8)
    for excess in (green, blue):
        # Opening removes structures thinner than the kernel: what it leaves is the broad key
        # colour (a green wall, a blue shirt). A fringe is a thin ridge of key colour standing
        # on a background with none, not the texture of a key-coloured surface.
        opened = cv2.morphologyEx(excess, cv2.MORPH_OPEN, kernel)
        thin = cv2.compare(cv2.subtract(excess, opened), s.spill_ridge, cv2.CMP_GT)
        plain = cv2.compare(opened, s.spill_ridge // 2, cv2.CMP_LT)
        ridge = cv2.bitwise_or(ridge, cv2.bitwise_and(thin, plain))
    gray = frame.gray
    magnitude = cv2.max(cv2.convertScaleAbs(cv2.Sobel(gray, cv2.CV_16S, 1, 0)),
                        cv2.convertScaleAbs(cv2.Sobel(gray, cv2.CV_16S, 0, 1)))
    edges = cv2.compare(magnitude, s.spill_edge, cv2.CMP_GT)
    near = cv2.dilate(edges, np.ones((5, 5), np.uint8))
    total = int(cv2.countNonZero(near))
    if total == 0:
        return 0, 0
    fringe = cv2.bitwise_and(near, ridge)
    return int(cv2.countNonZero(fringe)), total
