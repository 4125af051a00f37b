"""Repetition confined to a region: a recorded window looping inside a live frame.

The whole-frame search cannot see a loop that fills a fifth of the picture. Here each cell
of the 16x16 fingerprint thumbnails is a time series; a region that replays footage
periodically makes its cells' frame-to-frame changes correlate with themselves one period
later, while the live rest of the frame does not. Autocorrelations come from FFTs (cells in
chunks, so memory stays bounded); the lag at which the largest connected block of cells
repeats is the region's period.

This finds periodic regional loops (the usual picture-in-picture trick); a regional shuffled
playlist is not covered. A turntable or a fan is also periodic in a region: it is reported
the same way (as `regional_loop`, never as a whole-frame `loop`) and left to the classifier
together with the layout cues (a PiP window has a hard rectangular border, a turntable not).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detector.fingerprint import THUMB_SIDE


@dataclass(frozen=True)
class RegionalSettings:
    step_s: float = 0.4              # resampling step of the cell series (2.5 Hz)
    min_period_s: float = 4.0
    max_period_s: float = 600.0
    min_correlation: float = 0.75    # a cell repeats when its change correlates this much a period later
    min_cells: int = 4               # smallest region reported (4 of 256 cells)
    max_share_of_active: float = 0.6  # above this the whole frame loops: the main search reports it
    noise_level: float = 0.8         # per-cell change (luma levels) under which a cell is still


@dataclass(frozen=True)
class RegionalRepeat:
    box: tuple[float, float, float, float]   # x, y, w, h as fractions of the frame
    area_share: float
    period_s: float
    correlation: float
    rest_correlation: float
    start_s: float
    end_s: float


def _components(mask: np.ndarray) -> list[np.ndarray]:
    from scipy.ndimage import label

    labels, n = label(mask)
    return [np.argwhere(labels == k) for k in range(1, n + 1)]


def find_regional_repeat(times_s: np.ndarray, thumbs: np.ndarray,
                         settings: RegionalSettings | None = None) -> RegionalRepeat | None:
    settings = settings or RegionalSettings()
    if len(times_s) < 4:
        return None
    grid = np.arange(times_s[0], times_s[-1], settings.step_s)
    min_lag = int(np.ceil(settings.min_period_s / settings.step_s))
    if len(grid) < 3 * min_lag:
        return None                  # not even two periods plus a margin to compare
    idx = np.clip(np.searchsorted(times_s, grid), 0, len(times_s) - 1)
    series = thumbs[idx].reshape(len(grid), -1).astype(np.float32)
    change = np.diff(series, axis=0)
    change -= change.mean(axis=0)
    active = change.std(axis=0) > settings.noise_level
    if active.sum() < settings.min_cells:
        return None
    m = len(change)
    max_lag = min(m // 2, int(settings.max_period_s / settings.step_s))
    if max_lag <= min_lag:
        return None
    corr = _autocorrelation(change[:, active], min_lag, max_lag)      # (lags, active cells)
    # A period that is not a multiple of the step spreads over neighbouring lags.
    corr = np.maximum(corr, np.maximum(np.roll(corr, 1, axis=0), np.roll(corr, -1, axis=0)))
    best = None
    active_idx = np.flatnonzero(active)
    for lag_offset in np.argsort(-(corr >= settings.min_correlation).sum(axis=1))[:20]:
        repeating = np.zeros(THUMB_SIDE * THUMB_SIDE, bool)
        repeating[active_idx[corr[lag_offset] >= settings.min_correlation]] = True
        for cells in _components(repeating.reshape(THUMB_SIDE, THUMB_SIDE)):
            if len(cells) < settings.min_cells:
                continue
            if len(cells) > settings.max_share_of_active * active.sum():
                continue
            if best is None or len(cells) > len(best[1]):
                best = (lag_offset, cells)
    if best is None:
        return None
    lag_offset, cells = best
    flat_cells = cells[:, 0] * THUMB_SIDE + cells[:, 1]
    in_region = np.isin(active_idx, flat_cells)
    region_corr = float(corr[lag_offset, in_region].mean())
    rest = corr[lag_offset, ~in_region]
    rest_corr = float(rest.mean()) if len(rest) else 0.0
    if rest_corr > 0.5 * region_corr:
        return None                  # the rest repeats too: not confined to the region
    y0, x0 = cells.min(axis=0)
    y1, x1 = cells.max(axis=0) + 1
    period_s = (min_lag + lag_offset) * settings.step_s
    return RegionalRepeat(
        box=(x0 / THUMB_SIDE, y0 / THUMB_SIDE, (x1 - x0) / THUMB_SIDE, (y1 - y0) / THUMB_SIDE),
        area_share=len(cells) / THUMB_SIDE ** 2,
        period_s=float(period_s),
        correlation=region_corr,
        rest_correlation=rest_corr,
        start_s=float(times_s[0] + period_s),
        end_s=float(times_s[-1]),
    )


def _autocorrelation(x: np.ndarray, min_lag: int, max_lag: int, chunk: int = 32) -> np.ndarray:
    """Normalised autocorrelation of each column for lags min_lag..max_lag-1."""
    m = len(x)
    size = 1 << int(np.ceil(np.log2(2 * m)))
    lags = np.arange(min_lag, max_lag)
    out = np.empty((len(lags), x.shape[1]), np.float32)
    energy = np.cumsum(np.concatenate([np.zeros((1, x.shape[1]), np.float32), x * x]), axis=0)
    for start in range(0, x.shape[1], chunk):
        block = x[:, start: start + chunk]
        spectrum = np.fft.rfft(block, n=size, axis=0)
        raw = np.fft.irfft(spectrum * np.conj(spectrum), n=size, axis=0)[lags]
        # Normalise by the energy of the two overlapping parts, as a Pearson correlation would.
        head = energy[m - lags, start: start + chunk] - energy[0, start: start + chunk]
        tail = energy[m, start: start + chunk] - energy[lags, start: start + chunk]
        out[:, start: start + chunk] = raw / np.sqrt(np.maximum(head * tail, 1e-6))
    return out
