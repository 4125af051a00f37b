"""Camera motion, local motion after compensating it, motion periodicity, and idle stretches.

Complements `basic` (whole-frame motion energy, active share, `static` spans) rather than
repeating it. Everything is measured on a ~80 px copy of the analysis frame (power-of-two
INTER_AREA halvings of a centred crop whose sides are even, optimal DFT sizes: OpenCV's phase
correlation is biased by half a pixel on odd sizes).

* **Camera motion.** Global translation between consecutive sampled frames by phase
  correlation on the Hanning-windowed copy, refined to sub-pixel accuracy by one Gauss-Newton
  step on the whole picture (OpenCV's sub-pixel peak is biased towards whole pixels, and a
  pixel is 1.25 % of the width here). Phase correlation follows whatever dominates the
  picture, and a big object moving over a plain wall dominates it, so a shift counts as camera
  motion only if it makes most changed regions match better than no shift. From the camera
  path: the share of time the camera is locked off (tripod), the handheld jitter (RMS of the
  path minus its ~1 s centred moving average: what a hand adds and a tripod or a smooth pan
  does not), the share of time in a sustained, coherent pan and its top speed. Zoom is not
  estimated (it shows up as lower correlation response and as local motion near the
  borders). These are *context*, not verdicts: a phone room jitters and a tripod room is
  locked off, but a played-back file carries the jitter of its original recording, and a
  live room can be shot on a tripod.
* **Local motion** is what still changes once the previous frame is shifted by the camera
  motion: its mean, spread and 95th percentile over time, and where it falls on a 4x4 grid
  (normalised entropy: one busy corner vs. motion everywhere; share of regions active).
* **Periodicity.** Motion *energy* is a poor signal for it: a textured object rotating in
  the image plane (a turntable seen from above, a fan) changes the same amount at every
  angle, so its energy is flat, and encoder keyframes make the energy of any calm picture
  pulse with the GOP length (2 s). Instead, per cell of an 8x8 grid, the compensated signed
  frame difference is projected on a fixed smooth random pattern (one float per cell per
  step): a motion that repeats makes that number repeat. Each half-overlapping window (180 s
  by default; the whole clip if shorter) is resampled to a uniform 10 Hz grid, cleaned of
  one-step spikes (running median of 3) and bursts (clipped at 3 robust sigmas: something
  passing through a cell), and the normalised autocorrelation of each cell that moved in at
  least 20 % of the window is searched for its strongest peak between 0.5 s and 60 s (at
  most a third of the window, so a period repeats twice). Strength is the peak's height above
  the deepest trough before it, capped by the correlation at twice the lag (the repetition
  must repeat); chance peaks of random motion stay around 0.2-0.35, a turntable scores > 0.9.
  Values are divided by the sampling step so that the 0.12/0.08 s alternation of sampling a
  25 fps file at 10 Hz does not read as a rhythm. This is NOT the loop detector: it sees
  motion that repeats within a minute, keeps one window of 64 floats per sampled frame, and
  cannot tell a replayed file from a live turntable (a hard negative that must stay `live`).
* **Idle stretches** (evidence kind ``idle``): at least `idle_min_s` (30 s) in which the
  camera does not pan and at most `idle_active_share` (1 %) of the picture changes after
  camera compensation, with gaps up to 0.5 s forgiven: a blinking light, a small clock or an
  animated sticker do not end it. `basic`'s ``static`` is stricter and shorter: >= 5 s in
  which fewer than 0.2 % of pixels change at all (a 16x16 px blinking light at 320x180
  already breaks it). An idle span is the platform-style "nothing is happening in this
  room": marketplaces call a room idle after 15 minutes without interaction or with an empty
  shot, and that duration scores 1. A camera that keeps shaking is held by someone, and its
  compensation leaves more than 1 % of residue at strong edges, so a handheld room is not
  idle (its `local_mean` stays low instead).

Cost: about 0.2 ms per sampled frame (measured at 320x180; phase correlation ~35 us,
refinement ~30 us, the rest small vectorised reductions done as tiny matrix products). State
is bounded: running sums, a fixed histogram, two 1 s deques and one periodicity window
(~2.9k samples x 64 floats); the only lists that grow are one result per 90 s window and the
idle spans (each >= 30 s).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from detector.extractors.base import ColumnDoc, FeatureExtractor
from detector.types import Evidence, Frame, VideoMeta

log = logging.getLogger(__name__)

# Local-motion quantiles come from a fixed histogram so memory does not grow with clip length.
_HIST_BIN = 0.05
_HIST_BINS = int(256 / _HIST_BIN)
# Fixed seed: the projection patterns must be the same for every clip (and every run).
_PATTERN_SEED = 20240611


@dataclass(frozen=True)
class MotionSettings:
    # Long side of the copy motion is measured on. Block averaging divides sensor noise (so a
    # still camera reads as still) and keeps phase correlation at ~50 us.
    work_long_side_px: int = 80
    # Phase-correlation peak below this: global motion undefined for that step (a cut, a
    # flat picture, a foreground that fills the frame); the step is left out of camera stats.
    # Consecutive frames of one view peak at ~0.8-1.0; unrelated pictures reach ~0.3, noise 0.6.
    min_response: float = 0.45
    # A phase-correlation shift is taken as camera motion only if, among the regions that
    # changed by more than `camera_min_change` luma levels (mean, with or without the shift),
    # at least `camera_region_share` change by less than `camera_gain` x as much once shifted.
    camera_min_change: float = 1.5
    camera_gain: float = 0.8
    camera_region_share: float = 0.5
    # Camera speed (share of frame width per second) below which the camera counts as locked
    # off. Phase-correlation noise on a still noisy picture is ~0.2 %/s at 10 Hz.
    locked_speed_pct_s: float = 1.0
    # Camera-path smoothing window: motion faster than this is jitter, slower is intended.
    smooth_s: float = 1.0
    # A pan: the camera's mean velocity over `smooth_s` is at least this fast ...
    pan_speed_pct_s: float = 4.0
    # ... and coherent (|mean velocity| / mean speed): jitter averages out, a pan does not.
    pan_coherence: float = 0.75
    # Regions of the local-motion grid per side (4 -> 16 regions).
    region_grid: int = 4
    # A region is active when this share of its pixels changed beyond the noise threshold.
    region_active_share: float = 0.02
    # Periodicity is followed on a finer grid (cells per side; a multiple of `region_grid`)
    # so that a turntable fills its cells rather than sharing them with other motion.
    periodicity_grid: int = 8
    # Periodicity search range and window; the window hops by half its length.
    min_period_s: float = 0.5
    max_period_s: float = 60.0
    periodicity_window_s: float = 180.0
    periodicity_rate_hz: float = 10.0
    # A region's series is searched only if the region moved in this share of the window.
    periodicity_min_active: float = 0.2
    # A window at least this periodic counts towards `periodic_share`.
    periodic_strength: float = 0.5
    # Idle: at least this long, with at most `idle_active_share` of pixels changing after
    # camera compensation; gaps up to `idle_gap_s` (a compression pulse, a flicker) don't end it.
    idle_min_s: float = 30.0
    idle_active_share: float = 0.01
    idle_gap_s: float = 0.5
    # An idle stretch this long scores 1 (15 min: the marketplaces' idle threshold).
    idle_full_score_s: float = 900.0


class MotionExtractor(FeatureExtractor):
    name = "motion"
    Settings = MotionSettings
    COLUMN_DOCS = {
        "locked_share": ColumnDoc("share of time (among steps where global motion was measurable) the camera did not move: tripod / locked off; NaN if never measurable", "share", "0-1", "context"),
        "jitter_pct": ColumnDoc("RMS high-frequency camera shake: camera path minus its ~1 s moving average, in % of frame width (handheld phone ~0.2-2; tripod < 0.05); played-back files keep their original jitter", "% of width", ">= 0", "context (leans live)"),
        "pan_share": ColumnDoc("share of time in a sustained, coherent camera pan", "share", "0-1", "context"),
        "pan_speed_max": ColumnDoc("fastest sustained pan (1 s mean camera velocity); 0 if no pan", "% of width / s", ">= 0", "context"),
        "global_reliable_share": ColumnDoc("share of steps where global (camera) motion could be measured (low: cuts, flat pictures, a foreground filling the frame)", "share", "0-1", "context"),
        "local_mean": ColumnDoc("mean absolute luma change after compensating camera motion, on a ~80 px copy", "luma level", "0-255", "context"),
        "local_std": ColumnDoc("standard deviation over time of that change", "luma level", "0-128", "context"),
        "local_p95": ColumnDoc("95th percentile over time of that change (bursts)", "luma level", "0-255", "prerecorded"),
        "region_entropy": ColumnDoc("mean normalised entropy of where changed pixels fall on a 4x4 grid (0: all in one region, 1: evenly everywhere), over steps with motion; NaN if nothing ever moved", "ratio", "0-1", "context"),
        "region_active_share": ColumnDoc("mean share of the 16 regions with local motion", "share", "0-1", "live"),
        "periodicity_strength": ColumnDoc("strongest motion periodicity of any analysis window (autocorrelation peak between 0.5 and 60 s above the trough before it, confirmed at twice the lag): looped gestures, recycled presenter sway; also turntables and fans, which are live; 0 if nothing moved, NaN if the clip is too short (< ~1.5 s)", "ratio", "0-1", "looped; ai_driven (context: turntables are live)"),
        "periodicity_period_s": ColumnDoc("period of that peak; NaN when no peak was found", "s", "0.5-60", "context"),
        "periodic_share": ColumnDoc("share of analysis windows (180 s, half-overlapping; the whole clip if shorter) whose periodicity strength is >= 0.5", "share", "0-1", "looped"),
        "idle_share": ColumnDoc("share of the clip's time inside idle stretches (>= 30 s with no camera pan and at most 1 % of the picture changing after camera compensation)", "share", "0-1", "static flag"),
        "longest_idle_s": ColumnDoc("longest idle stretch (0 if none reached 30 s)", "s", ">= 0", "static flag"),
    }
    FEATURES = tuple(COLUMN_DOCS)

    def reset(self, meta: VideoMeta) -> None:
        super().reset(meta)
        s = self.settings
        rate = self.config.sample_fps or meta.declared_fps or 25.0
        self._nominal_dt_s = 1.0 / rate
        self._smooth_n = max(3, int(round(s.smooth_s * rate)) | 1)   # odd: a centred window
        self._geometry: _Geometry | None = None
        self._previous: np.ndarray | None = None
        self._previous_t_s = 0.0
        self._first_t_s: float | None = None
        self._last_t_s = 0.0
        # camera
        self._steps = 0
        self._reliable_time_s = self._locked_time_s = self._pan_time_s = self._total_time_s = 0.0
        self._reliable_steps = 0
        self._pan_speed_max = 0.0
        self._path = (0.0, 0.0)         # cumulative content displacement, % of width
        self._path_window: deque[tuple[float, float]] = deque(maxlen=self._smooth_n)
        self._path_sums = [0.0, 0.0]
        self._velocity_window: deque[tuple[float, float, float]] = deque(maxlen=self._smooth_n)
        self._velocity_sums = [0.0, 0.0, 0.0]
        self._jitter_sq = 0.0
        self._jitter_n = 0
        # local motion
        self._local_sum = self._local_sq = 0.0
        self._hist = np.zeros(_HIST_BINS, dtype=np.int64)
        self._entropy_sum = 0.0
        self._entropy_n = 0
        self._regions_active_sum = 0.0
        # periodicity
        self._periodicity = _PeriodicityWindow(s, s.periodicity_grid ** 2, rate)
        # idle
        self._idle_start_s: float | None = None
        self._idle_end_s = 0.0
        self._idle_runs: list[tuple[float, float, float]] = []   # (start_s, end_s, max active share)
        self._idle_active_max = 0.0

    # -- per frame ------------------------------------------------------------------------
    def update(self, frame: Frame) -> None:
        if self._geometry is None or self._geometry.shape_in != frame.gray.shape:
            self._geometry = _Geometry(frame.gray.shape, self.settings)
            self._previous = None
        small = self._geometry.shrink(frame)
        t_s = frame.t_s
        if self._first_t_s is None:
            self._first_t_s = t_s
        previous, previous_t_s = self._previous, self._previous_t_s
        dt_s = t_s - previous_t_s
        if previous is not None and dt_s <= 0:
            return          # a repeated timestamp: nothing happened in zero time
        self._previous, self._previous_t_s, self._last_t_s = small, t_s, t_s
        if previous is None:
            return
        self._step(previous, small, previous_t_s, t_s)

    def _step(self, previous: np.ndarray, current: np.ndarray, t0_s: float, t1_s: float) -> None:
        import cv2

        geo, s = self._geometry, self.settings
        dt_s = t1_s - t0_s
        self._steps += 1
        self._total_time_s += dt_s
        # Phase correlation: content displacement from `previous` to `current`, in work px.
        # It is given fresh windowed copies because OpenCV may scribble on its inputs.
        (dx, dy), response = cv2.phaseCorrelate(previous * geo.window, current * geo.window)
        reliable = response >= s.min_response and abs(dx) < geo.width / 4 and abs(dy) < geo.height / 4
        signed = current - previous
        if not reliable:
            dx = dy = 0.0
        elif dx or dy:
            # Local motion is what still changes once `previous` is moved by the camera motion.
            # But phase correlation follows whatever dominates the picture, and a big moving
            # object on a plain wall dominates it: accept the shift as camera motion only if it
            # explains most of the picture that changed.
            dx, dy = geo.refine(previous, current, dx, dy)
            moved = current - geo.shifted(previous, dx, dy)
            _blank_uncovered(moved, dx, dy)     # replicated border pixels are not motion
            if geo.camera_explains(signed, moved, dx, dy, s):
                signed = moved
            else:
                dx = dy = 0.0
        panning = self._camera(reliable, (dx * 100.0 / geo.width, dy * 100.0 / geo.width), dt_s)

        change = np.abs(signed)
        local = float(change.mean())
        active_counts = geo.region_sums((change > self.config.static_pixel_delta).astype(np.float32))
        active_share = float(active_counts.sum()) / change.size
        regions_active = active_counts / geo.region_pixels >= s.region_active_share
        self._local(local, active_counts, regions_active)

        # Periodicity series: per-region signed projections, per unit of time so that an
        # irregular sampling step is not mistaken for a rhythm.
        projections = geo.cell_projections(signed) * (self._nominal_dt_s / dt_s)
        self._periodicity.add(0.5 * (t0_s + t1_s), projections.ravel(), geo.cell_flags(regions_active))

        idle = active_share <= s.idle_active_share and not panning
        self._idle(idle, active_share, t0_s, t1_s)

    def _camera(self, reliable: bool, shift_pct: tuple[float, float], dt_s: float) -> bool:
        """Update camera statistics; return whether the camera is panning now.

        Plain floats and running sums over short deques: this runs for every sampled frame.
        """
        s = self.settings
        vx, vy = (shift_pct[0] / dt_s, shift_pct[1] / dt_s) if reliable else (0.0, 0.0)
        speed = math.hypot(vx, vy)
        if reliable:
            self._reliable_steps += 1
            self._reliable_time_s += dt_s
            if speed < s.locked_speed_pct_s:
                self._locked_time_s += dt_s
            self._path = (self._path[0] + shift_pct[0], self._path[1] + shift_pct[1])
        # Jitter: the path minus its centred moving average, for the window's middle sample.
        path, sums = self._path_window, self._path_sums
        if len(path) == path.maxlen:
            old = path[0]
            sums[0] -= old[0]
            sums[1] -= old[1]
        path.append(self._path)
        sums[0] += self._path[0]
        sums[1] += self._path[1]
        n = len(path)
        if n == path.maxlen:
            middle = path[n // 2]
            rx, ry = middle[0] - sums[0] / n, middle[1] - sums[1] / n
            self._jitter_sq += rx * rx + ry * ry
            self._jitter_n += 1
        # Pan: the trailing mean velocity is fast and coherent (jitter cancels out in the mean).
        velocities, vsums = self._velocity_window, self._velocity_sums
        if len(velocities) == velocities.maxlen:
            old = velocities[0]
            for i in range(3):
                vsums[i] -= old[i]
        velocities.append((vx, vy, speed))
        for i, v in enumerate((vx, vy, speed)):
            vsums[i] += v
        n = len(velocities)
        if n < velocities.maxlen:
            return False
        mean_speed = math.hypot(vsums[0], vsums[1]) / n
        panning = mean_speed >= s.pan_speed_pct_s and mean_speed >= s.pan_coherence * vsums[2] / n
        if panning:
            self._pan_time_s += dt_s
            self._pan_speed_max = max(self._pan_speed_max, mean_speed)
        return panning

    def _local(self, local: float, active_counts: np.ndarray, regions_active: np.ndarray) -> None:
        self._local_sum += local
        self._local_sq += local * local
        self._hist[min(int(local / _HIST_BIN), _HIST_BINS - 1)] += 1
        self._regions_active_sum += np.count_nonzero(regions_active) / regions_active.size
        total = float(active_counts.sum())
        if total >= max(4.0, 0.001 * self._geometry.pixels):
            p = active_counts.ravel() / total
            p = p[p > 0]
            self._entropy_sum += float(-(p * np.log(p)).sum() / math.log(active_counts.size))
            self._entropy_n += 1

    def _idle(self, idle: bool, active_share: float, t0_s: float, t1_s: float) -> None:
        if not idle:
            return
        if self._idle_start_s is not None and t0_s - self._idle_end_s <= self.settings.idle_gap_s:
            self._idle_end_s = t1_s
            self._idle_active_max = max(self._idle_active_max, active_share)
            return
        self._close_idle()
        self._idle_start_s, self._idle_end_s, self._idle_active_max = t0_s, t1_s, active_share

    def _close_idle(self) -> None:
        if self._idle_start_s is not None:
            if self._idle_end_s - self._idle_start_s >= self.settings.idle_min_s:
                self._idle_runs.append((self._idle_start_s, self._idle_end_s, self._idle_active_max))
            self._idle_start_s = None

    # -- results --------------------------------------------------------------------------
    def finalize(self) -> tuple[dict[str, float], list[Evidence]]:
        self._close_idle()
        nan = math.nan
        s = self.settings
        n = self._steps
        span_s = self._last_t_s - (self._first_t_s or 0.0)
        strength, period_s, periodic_share = self._periodicity.finish()
        idle_time_s = sum(end - start for start, end, _ in self._idle_runs)
        features = {
            "locked_share": self._locked_time_s / self._reliable_time_s if self._reliable_time_s > 0 else nan,
            "jitter_pct": math.sqrt(self._jitter_sq / self._jitter_n) if self._jitter_n else nan,
            "pan_share": self._pan_time_s / self._total_time_s if self._total_time_s > 0 else nan,
            "pan_speed_max": self._pan_speed_max if n else nan,
            "global_reliable_share": self._reliable_steps / n if n else nan,
            "local_mean": self._local_sum / n if n else nan,
            "local_std": _std(self._local_sum, self._local_sq, n),
            "local_p95": _hist_quantile(self._hist, 0.95),
            "region_entropy": self._entropy_sum / self._entropy_n if self._entropy_n else nan,
            "region_active_share": self._regions_active_sum / n if n else nan,
            "periodicity_strength": strength,
            "periodicity_period_s": period_s,
            "periodic_share": periodic_share,
            "idle_share": min(1.0, idle_time_s / span_s) if span_s > 0 else nan,
            "longest_idle_s": max((end - start for start, end, _ in self._idle_runs), default=0.0),
        }
        evidence = [
            Evidence(
                kind="idle", start_s=start_s, end_s=end_s,
                score=min(1.0, (end_s - start_s) / s.idle_full_score_s),
                detail={"active_share_max": round(active_max, 4)},
            )
            for start_s, end_s, active_max in self._idle_runs
        ]
        return features, evidence


class _Geometry:
    """Sizes, crop, window and patterns for one analysis frame shape (computed once)."""

    def __init__(self, shape: tuple[int, ...], s: MotionSettings) -> None:
        import cv2

        self.shape_in = shape
        height_in, width_in = shape[:2]
        grid = s.region_grid
        if s.periodicity_grid % grid:
            raise ValueError(f"motion.periodicity_grid ({s.periodicity_grid}) must be a multiple of region_grid ({grid})")
        # Halve (fast, exact INTER_AREA) until the long side is near the working size.
        self.halvings = max(0, int(round(math.log2(max(height_in, width_in) / s.work_long_side_px))))
        factor = 2 ** self.halvings
        # Even sizes that are their own optimal DFT size: phase correlation on an odd (padded)
        # size is biased by half a pixel. Multiples of the grid keep regions equal.
        self.width = _good_size(width_in // factor, s.periodicity_grid)
        self.height = _good_size(height_in // factor, s.periodicity_grid)
        self.pixels = self.width * self.height
        crop_w, crop_h = self.width * factor, self.height * factor
        self.x0, self.y0 = (width_in - crop_w) // 2, (height_in - crop_h) // 2
        self.crop = (slice(self.y0, self.y0 + crop_h), slice(self.x0, self.x0 + crop_w))
        self.window = cv2.createHanningWindow((self.width, self.height), cv2.CV_32F)
        self.grid = grid
        self.region_h, self.region_w = self.height // grid, self.width // grid
        self.region_pixels = self.region_h * self.region_w
        fine = s.periodicity_grid
        self.fine = fine
        self.cell_h, self.cell_w = self.height // fine, self.width // fine
        # A smooth random pattern per periodicity cell, zero mean and unit norm, so that a
        # repeating motion anywhere inside a cell repeats the projection (a pixel-level pattern
        # would decorrelate under sub-pixel differences between cycles).
        rng = np.random.default_rng(_PATTERN_SEED)
        pattern = cv2.GaussianBlur(rng.standard_normal((self.height, self.width)).astype(np.float32), (0, 0), 1.0)
        blocks = pattern.reshape(fine, self.cell_h, fine, self.cell_w)
        blocks -= blocks.mean(axis=(1, 3), keepdims=True)
        blocks /= np.sqrt((blocks ** 2).sum(axis=(1, 3), keepdims=True)) + 1e-9
        self.pattern = blocks.reshape(self.height, self.width)
        self.rows_coarse, self.cols_coarse = _block_matrices(self.height, self.width, grid)
        self.rows_fine, self.cols_fine = _block_matrices(self.height, self.width, fine)

    def shrink(self, frame: Frame) -> np.ndarray:
        import cv2

        halvings = self.halvings
        small = None
        if halvings:
            # The first halving is the frame's shared half-size copy when the crop allows.
            crop_h, crop_w = self.crop[0].stop - self.y0, self.crop[1].stop - self.x0
            small = frame.half_crop(self.y0, self.x0, crop_h // 2, crop_w // 2)
        if small is None:
            small = frame.gray[self.crop]
        else:
            halvings -= 1
        for _ in range(halvings):
            small = cv2.resize(small, (small.shape[1] // 2, small.shape[0] // 2), interpolation=cv2.INTER_AREA)
        return small.astype(np.float32)

    def shifted(self, image: np.ndarray, dx: float, dy: float) -> np.ndarray:
        """`image` with its content moved by (dx, dy) pixels (edges replicated)."""
        import cv2

        matrix = np.float32([[1, 0, dx], [0, 1, dy]])
        return cv2.warpAffine(image, matrix, (self.width, self.height),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def refine(self, previous: np.ndarray, current: np.ndarray, dx: float, dy: float) -> tuple[float, float]:
        """One Gauss-Newton step on the whole picture from the phase-correlation estimate.

        OpenCV's sub-pixel phase-correlation peak is biased towards whole pixels (a 0.45 px
        step can read as 0.05 px), and at ~80 px a whole pixel is 1.25 % of the width: too
        coarse for jitter and slow pans. Linearising previous(x - d - e) ~ W - grad(W).e
        around W = previous(x - d) gives the remaining e by least squares.
        """
        warped = self.shifted(previous, dx, dy)
        m = 2 + int(math.ceil(max(abs(dx), abs(dy))))        # ignore replicated borders
        h, w = self.height, self.width
        if h <= 2 * m + 2 or w <= 2 * m + 2:
            return dx, dy
        # Central differences by slicing: a fraction of the cost of two Sobel calls.
        gx = (0.5 * (warped[m:h - m, m + 1:w - m + 1] - warped[m:h - m, m - 1:w - m - 1])).ravel()
        gy = (0.5 * (warped[m + 1:h - m + 1, m:w - m] - warped[m - 1:h - m - 1, m:w - m])).ravel()
        residual = (current[m:h - m, m:w - m] - warped[m:h - m, m:w - m]).ravel()
        a11, a12, a22 = float(gx @ gx), float(gx @ gy), float(gy @ gy)
        b1, b2 = float(gx @ residual), float(gy @ residual)
        det = a11 * a22 - a12 * a12
        if det <= 1e-6 * max(a11 * a22, 1e-12):
            return dx, dy           # no texture in one direction: keep the estimate
        ex = -(a22 * b1 - a12 * b2) / det
        ey = -(a11 * b2 - a12 * b1) / det
        if abs(ex) > 1.0 or abs(ey) > 1.0:
            return dx, dy           # outside the linear range: something else is moving
        return dx + ex, dy + ey

    def region_sums(self, image: np.ndarray) -> np.ndarray:
        """Sum of `image` (float32) over each region of the 4x4 grid, as two small matrix
        products (several times faster than a 4-D reshape-and-reduce at this size)."""
        return self.rows_coarse @ image @ self.cols_coarse

    def camera_explains(self, still: np.ndarray, moved: np.ndarray, dx: float, dy: float,
                        s: MotionSettings) -> bool:
        """Whether shifting by (dx, dy) makes most changed regions match better than no shift."""
        still = np.abs(still)
        _blank_uncovered(still, dx, dy)      # compare like with like
        scale = 1.0 / self.region_pixels
        before, after = self.region_sums(still) * scale, self.region_sums(np.abs(moved)) * scale
        informative = np.maximum(before, after) > s.camera_min_change
        if np.count_nonzero(informative) < 2:
            # A flat or still picture: nothing to arbitrate with; only a tiny shift is harmless.
            return math.hypot(dx, dy) <= 1.0
        better = after[informative] < s.camera_gain * before[informative]
        return np.count_nonzero(better) / better.size >= s.camera_region_share

    def cell_projections(self, signed: np.ndarray) -> np.ndarray:
        return self.rows_fine @ (signed * self.pattern) @ self.cols_fine

    def cell_flags(self, regions_active: np.ndarray) -> np.ndarray:
        """Each periodicity cell inherits the activity of the region it lies in."""
        repeat = self.fine // self.grid
        return np.repeat(np.repeat(regions_active, repeat, axis=0), repeat, axis=1).ravel()


def _block_matrices(height: int, width: int, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """(cells x height, width x cells) 0/1 matrices: R @ image @ C sums equal blocks."""
    rows = np.kron(np.eye(cells, dtype=np.float32), np.ones((1, height // cells), np.float32))
    cols = np.kron(np.eye(cells, dtype=np.float32), np.ones((width // cells, 1), np.float32))
    return rows, cols


class _PeriodicityWindow:
    """A sliding window of per-step motion series, analysed for periodicity every half window."""

    def __init__(self, s: MotionSettings, n_series: int, sample_rate_hz: float) -> None:
        self.s = s
        capacity = int(math.ceil(s.periodicity_window_s * max(sample_rate_hz, s.periodicity_rate_hz) * 1.6)) + 32
        self.t = np.zeros(capacity)
        self.values = np.zeros((capacity, n_series), np.float32)
        self.flags = np.zeros((capacity, n_series), bool)
        self.n = 0
        self.fresh = 0           # samples added since the last analysis
        self.results: list[tuple[float, float]] = []   # (strength, period_s) per window

    def add(self, t_s: float, values: np.ndarray, flags: np.ndarray) -> None:
        if self.n == len(self.t):
            self._analyse_and_slide()    # irregular timestamps outran the capacity
        self.t[self.n], self.values[self.n], self.flags[self.n] = t_s, values, flags
        self.n += 1
        self.fresh += 1
        if self.t[self.n - 1] - self.t[0] >= self.s.periodicity_window_s:
            self._analyse_and_slide()

    def _analyse_and_slide(self) -> None:
        self._analyse()
        keep = self.t[: self.n] >= self.t[0] + self.s.periodicity_window_s / 2
        kept = int(np.count_nonzero(keep))
        start = self.n - kept
        self.t[:kept] = self.t[start: self.n]
        self.values[:kept] = self.values[start: self.n]
        self.flags[:kept] = self.flags[start: self.n]
        self.n = kept

    def _analyse(self) -> None:
        self.fresh = 0
        result = _window_periodicity(self.t[: self.n], self.values[: self.n], self.flags[: self.n], self.s)
        if result is not None:
            self.results.append(result)

    def finish(self) -> tuple[float, float, float]:
        """(strongest strength, its period, share of periodic windows); NaN when unmeasurable."""
        if self.fresh and (not self.results or self.t[self.n - 1] - self.t[0] >= self.s.periodicity_window_s / 4):
            self._analyse()
        if not self.results:
            return math.nan, math.nan, math.nan
        strengths = np.array([r[0] for r in self.results])
        best = int(np.argmax(strengths))
        share = float(np.mean(strengths >= self.s.periodic_strength))
        return float(strengths[best]), self.results[best][1], share


def _window_periodicity(t: np.ndarray, values: np.ndarray, flags: np.ndarray,
                        s: MotionSettings) -> tuple[float, float] | None:
    """Strongest periodicity among the series of one window; None if the window is too short.

    A period must fit three times into the window (so that it is seen to repeat twice), and
    the peak must come back at twice its lag: with a few cycles in view, single chance peaks
    of a random motion reach 0.4-0.5, a repetition confirmed at 2x the lag does not.
    """
    if len(t) < 8:
        return None
    duration_s = float(t[-1] - t[0])
    rate = s.periodicity_rate_hz
    min_lag = max(2, int(math.floor(s.min_period_s * rate)))
    max_lag = int(math.floor(min(s.max_period_s, duration_s / 3) * rate))
    if max_lag < min_lag + 2:
        return None
    grid = t[0] + np.arange(int(duration_s * rate) + 1) / rate
    best_strength, best_period_s = 0.0, math.nan
    active = flags.mean(axis=0) >= s.periodicity_min_active
    for j in np.flatnonzero(active):
        series = _winsorise(_median3(np.interp(grid, t, values[:, j].astype(np.float64))))
        strength, lag = _strongest_peak(_lag_correlation(series, 2 * max_lag + 2), min_lag, max_lag)
        if strength > best_strength:
            best_strength, best_period_s = strength, lag / rate
    return best_strength, best_period_s


def _winsorise(x: np.ndarray, k: float = 3.0) -> np.ndarray:
    """Clip to median +- k robust sigmas: something passing through a cell for a moment
    makes a burst that would otherwise dominate the correlation of a steady rhythm."""
    median = float(np.median(x))
    sigma = 1.4826 * float(np.median(np.abs(x - median)))
    return np.clip(x, median - k * sigma, median + k * sigma) if sigma > 0 else x


def _median3(x: np.ndarray) -> np.ndarray:
    """Running median of three: removes one-sample spikes (an encoder keyframe changes the
    whole picture's noise at once, every GOP, which is periodic but not motion)."""
    if len(x) < 3:
        return x
    out = x.copy()
    out[1:-1] = np.median(np.stack([x[:-2], x[1:-1], x[2:]]), axis=0)
    return out


def _lag_correlation(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Pearson correlation of x[:n-k] with x[k:] for k = 0..max_lag (FFT for the cross sums)."""
    n = len(x)
    max_lag = min(max_lag, n - 2)
    x = x - x.mean()
    size = 1 << int(math.ceil(math.log2(2 * n)))
    spectrum = np.fft.rfft(x, size)
    cross = np.fft.irfft(spectrum * np.conj(spectrum), size)[: max_lag + 1]
    lags = np.arange(max_lag + 1)
    m = n - lags
    c1 = np.concatenate(([0.0], np.cumsum(x)))
    c2 = np.concatenate(([0.0], np.cumsum(x * x)))
    sum_a, sum_b = c1[m], c1[n] - c1[lags]
    sq_a, sq_b = c2[m], c2[n] - c2[lags]
    cov = cross - sum_a * sum_b / m
    var = (sq_a - sum_a ** 2 / m) * (sq_b - sum_b ** 2 / m)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / np.sqrt(var)
    return np.nan_to_num(r, nan=0.0, posinf=0.0, neginf=0.0)


def _strongest_peak(r: np.ndarray, min_lag: int, max_lag: int) -> tuple[float, float]:
    """(strength, refined lag) of the strongest autocorrelation peak in [min_lag, max_lag].

    Strength is the peak's height above the deepest trough between lag 0 and it (clipped at
    0): a smooth random signal decays slowly with small wiggles and scores ~0; a periodic one
    dips and comes back. It is capped by the correlation near twice the lag (the repetition
    must repeat). Among peaks nearly as strong as the best, the shortest lag wins, so a period
    is not reported as a multiple of itself. `r` must extend to 2 * max_lag + 1.
    """
    max_lag = min(max_lag, (len(r) - 2) // 2)
    if max_lag < min_lag:
        return 0.0, math.nan
    trough = np.maximum(np.minimum.accumulate(r), 0.0)
    lags = np.arange(min_lag, max_lag + 1)
    is_peak = (r[lags] >= r[lags - 1]) & (r[lags] >= r[lags + 1])
    if not is_peak.any():
        return 0.0, math.nan
    peaks = lags[is_peak]
    again = np.maximum.reduce([r[2 * peaks - 1], r[2 * peaks], r[2 * peaks + 1]])
    strengths = np.minimum(r[peaks] - trough[peaks], np.maximum(again, 0.0))
    best = float(strengths.max())
    if best <= 0:
        return 0.0, math.nan
    index = int(np.flatnonzero(strengths >= 0.9 * best)[0])
    k = int(peaks[index])
    # Parabolic refinement of the peak position (the grid is 0.1 s; 5 % of a 2 s period is 1 lag).
    a, b, c = r[k - 1], r[k], r[k + 1]
    denominator = a - 2 * b + c
    offset = 0.5 * (a - c) / denominator if denominator < 0 else 0.0
    return float(min(1.0, strengths[index])), k + float(np.clip(offset, -0.5, 0.5))


def _good_size(n: int, multiple: int) -> int:
    """Largest m <= n that is even, a multiple of `multiple` and its own optimal DFT size."""
    import cv2

    step = multiple if multiple % 2 == 0 else 2 * multiple
    m = n - n % step
    while m > step and cv2.getOptimalDFTSize(m) != m:
        m -= step
    return max(m, step)


def _blank_uncovered(image: np.ndarray, dx: float, dy: float) -> None:
    """Zero the strips that a shift by (dx, dy) brought in from outside the frame."""
    mx, my = int(math.ceil(abs(dx))), int(math.ceil(abs(dy)))
    if mx:
        image[:, slice(0, mx) if dx > 0 else slice(-mx, None)] = 0
    if my:
        image[slice(0, my) if dy > 0 else slice(-my, None)] = 0


def _hist_quantile(hist: np.ndarray, q: float) -> float:
    total = int(hist.sum())
    if total == 0:
        return math.nan
    index = int(np.searchsorted(np.cumsum(hist), q * total, side="left"))
    return (index + 0.5) * _HIST_BIN


def _std(total: float, total_sq: float, n: int) -> float:
    if n < 2:
        return math.nan
    mean = total / n
    return math.sqrt(max(total_sq / n - mean * mean, 0.0))
