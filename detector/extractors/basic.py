"""Brightness and whole-frame motion statistics, and stretches where nothing moves.

The cheapest useful cues: a looped or played-back file and a live camera differ in how their
motion is distributed over time, and a room where nothing moves for minutes is `static`
(which is not the same as a loop: a still scene matches itself at every offset).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from detector.extractors.base import ColumnDoc, FeatureExtractor
from detector.types import Evidence, Frame, VideoMeta

# Quantiles come from a fixed histogram so memory does not grow with clip length.
_HIST_BIN = 0.05
_HIST_BINS = int(256 / _HIST_BIN)


@dataclass(frozen=True)
class BasicSettings:
    # Motion is measured on a coarse copy: block averaging divides sensor noise, so stillness
    # is not mistaken for motion on a noisy camera.
    motion_side_px: int = 96
    # A still stretch this long is as suspicious as stillness gets (evidence score 1).
    idle_full_score_s: float = 60.0


class BasicStatsExtractor(FeatureExtractor):
    name = "basic"
    Settings = BasicSettings
    COLUMN_DOCS = {
        "brightness_mean": ColumnDoc("mean luma of sampled frames", "luma level", "0-255", "context"),
        "brightness_std": ColumnDoc("variation over time of per-frame mean luma (lighting drift, flashes)", "luma level", "0-128", "context"),
        "contrast_mean": ColumnDoc("mean per-frame luma standard deviation", "luma level", "0-128", "context"),
        "motion_mean": ColumnDoc("mean absolute luma change between consecutive sampled frames, on a ~96 px copy", "luma level", "0-255", "context"),
        "motion_std": ColumnDoc("standard deviation of that change over time", "luma level", "0-128", "context"),
        "motion_p50": ColumnDoc("median of that change", "luma level", "0-255", "context"),
        "motion_p95": ColumnDoc("95th percentile of that change (bursts: cuts, fast motion)", "luma level", "0-255", "prerecorded"),
        "active_share_mean": ColumnDoc("mean share of pixels that changed beyond the noise threshold", "share", "0-1", "live"),
        "static_share": ColumnDoc("share of the clip's time in which nothing moved", "share", "0-1", "static flag"),
        "longest_static_s": ColumnDoc("longest stretch in which nothing moved", "s", ">= 0", "static flag"),
        "sample_fps": ColumnDoc("sampled frames per second actually obtained", "1/s", "> 0", "context"),
    }
    FEATURES = tuple(COLUMN_DOCS)

    def reset(self, meta: VideoMeta) -> None:
        super().reset(meta)
        self._n = 0
        self._bright_sum = self._bright_sq = self._contrast_sum = 0.0
        self._motion_n = 0
        self._motion_sum = self._motion_sq = self._active_sum = 0.0
        self._hist = np.zeros(_HIST_BINS, dtype=np.int64)
        self._previous: np.ndarray | None = None
        self._previous_t_s = 0.0
        self._first_t_s: float | None = None
        self._last_t_s = 0.0
        self._static_time_s = 0.0
        self._run_start_s: float | None = None      # start of the current still run
        self._runs: list[tuple[float, float, float]] = []   # (start_s, end_s, mean motion)
        self._run_motion_sum = 0.0
        self._run_n = 0

    def update(self, frame: Frame) -> None:
        import cv2

        gray = frame.gray
        mean, std = cv2.meanStdDev(gray)
        mean, std = float(mean[0, 0]), float(std[0, 0])
        self._n += 1
        self._bright_sum += mean
        self._bright_sq += mean * mean
        self._contrast_sum += std
        if self._first_t_s is None:
            self._first_t_s = frame.t_s
        self._last_t_s = frame.t_s

        scale = self.settings.motion_side_px / max(gray.shape)
        if scale < 1:
            size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
            # From the frame's shared half-size copy when that is still larger: an area
            # resize at a non-integer factor costs ~0.1 ms on the full analysis frame and
            # ~0.03 ms on the half (the motion figures agree to 0.9998 correlation).
            source = frame.half if 2 * size[0] <= gray.shape[1] and 2 * size[1] <= gray.shape[0] else gray
            small = cv2.resize(source, size, interpolation=cv2.INTER_AREA)
        else:
            small = gray
        small = small.astype(np.float32)
        if self._previous is not None and self._previous.shape == small.shape:
            diff = cv2.absdiff(small, self._previous)
            motion = float(diff.mean())
            active = float(np.count_nonzero(diff > self.config.static_pixel_delta)) / diff.size
            self._add_motion(motion, active, self._previous_t_s, frame.t_s)
        self._previous = small
        self._previous_t_s = frame.t_s

    def _add_motion(self, motion: float, active: float, t0_s: float, t1_s: float) -> None:
        self._motion_n += 1
        self._active_sum += active
        self._motion_sum += motion
        self._motion_sq += motion * motion
        self._hist[min(int(motion / _HIST_BIN), _HIST_BINS - 1)] += 1
        if active < self.config.static_active_share:
            self._static_time_s += t1_s - t0_s
            if self._run_start_s is None:
                self._run_start_s = t0_s
                self._run_motion_sum, self._run_n = 0.0, 0
            self._run_motion_sum += motion
            self._run_n += 1
        else:
            self._close_run(t0_s)

    def _close_run(self, end_s: float) -> None:
        if self._run_start_s is not None:
            self._runs.append((self._run_start_s, end_s, self._run_motion_sum / max(self._run_n, 1)))
            self._run_start_s = None

    def _quantile(self, q: float) -> float:
        total = int(self._hist.sum())
        if total == 0:
            return math.nan
        index = int(np.searchsorted(np.cumsum(self._hist), q * total, side="left"))
        return (index + 0.5) * _HIST_BIN

    def finalize(self) -> tuple[dict[str, float], list[Evidence]]:
        self._close_run(self._last_t_s)
        nan = math.nan
        n, m = self._n, self._motion_n
        span_s = self._last_t_s - (self._first_t_s or 0.0)
        motion_mean = self._motion_sum / m if m else nan
        features = {
            "brightness_mean": self._bright_sum / n if n else nan,
            "brightness_std": _std(self._bright_sum, self._bright_sq, n),
            "contrast_mean": self._contrast_sum / n if n else nan,
            "motion_mean": motion_mean,
            "motion_std": _std(self._motion_sum, self._motion_sq, m),
            "motion_p50": self._quantile(0.5),
            "motion_p95": self._quantile(0.95),
            "active_share_mean": self._active_sum / m if m else nan,
            "static_share": self._static_time_s / span_s if span_s > 0 else nan,
            "longest_static_s": max((e - s for s, e, _ in self._runs), default=0.0),
            "sample_fps": (n - 1) / span_s if span_s > 0 else nan,
        }
        evidence = [
            Evidence(
                kind="static",
                start_s=start_s,
                end_s=end_s,
                score=min(1.0, (end_s - start_s) / self.settings.idle_full_score_s),
                detail={"motion_mean": round(motion, 3)},
            )
            for start_s, end_s, motion in self._runs
            if end_s - start_s >= self.config.static_min_s
        ]
        return features, evidence


def _std(total: float, total_sq: float, n: int) -> float:
    if n < 2:
        return math.nan
    mean = total / n
    return math.sqrt(max(total_sq / n - mean * mean, 0.0))
