"""Repetition confined to a region: a recorded window looping inside a live frame.

The whole-frame search cannot see a loop that fills a fifth of the picture. Here each cell
of the 16x16 fingerprint thumbnails is a time series; a region that replays footage
periodically makes its cells' frame-to-frame changes correlate with themselves one period
later, while the live rest of the frame does not. Autocorrelations come from FFTs (cells in
chunks, so memory stays bounded); the lag at which the largest connected block of cells
repeats is the region's period.

Periodic changes alone do not make a replayed window. Three physical tests tell a recorded
window from the live scenes that also change periodically in one place (issue 3's hard
negatives):

- *the picture comes back*, not only the rhythm of its changes: one period earlier the
  region shows clearly the same picture, closer than 1-2 s off the period. Slides changed
  every few seconds (and a counter ticking) change on a beat but never show the same picture;
- *nothing repeats faster than a loop can*: a region whose changes repeat at a fraction of
  the period that is shorter than the shortest loop considered is a motion repeated on its
  own beat (a waving arm every 3 s, a fan), not a replay of a clip;
- *it is a window*: a rectangle whose whole content replays, its background (lighting,
  noise, camera shake) included, so the replaying cells fill a rectangle of at least a
  quarter of each side of the frame. A turntable, a fan or an arm repeats only where the
  object moves: on the 16x16 grid a disc a third of the frame high replays in a strip at
  most 3 cells wide (measured on the bench and corpus turntables), while a picture-in-
  picture window of 40-60 % of each side fills 5-8 cells each way. A window smaller than
  a quarter of each side cannot be told from a moving object on this grid and is not
  reported.

This finds periodic regional loops (the usual picture-in-picture trick); a regional shuffled
playlist is not covered.
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
    # A large region is judged more leniently: the mean correlation of many cells that agree on
    # one period is itself strong evidence. A picture-in-picture window of 40-60 % of each side
    # covers 26-58 of the 256 cells, a turntable or a gesturing arm up to 18 (measured).
    large_region_cells: int = 21
    large_region_correlation: float = 0.62
    # Cap on the resampled series (memory bound at any stream length): beyond this many steps
    # the step grows. 24,000 steps of 0.4 s cover 2.7 hours.
    max_steps: int = 24_000
    # Memory for the FFTs of one chunk of cells (bytes).
    fft_budget_bytes: int = 48_000_000
    max_share_of_active: float = 0.6  # above this the whole frame loops: the main search reports it
    noise_level: float = 0.8         # per-cell change (luma levels) under which a cell is still
    # Where the region repeats: its changes correlate this much with one period earlier over
    # a sliding window of span_window_s; spans shorter than min_span_s are dropped.
    span_correlation: float = 0.5
    span_window_s: float = 4.0
    min_span_s: float = 4.0
    # The picture comes back: over the replaying spans, the region's distance to itself one
    # period earlier is at most this share of its distance 1-2 s off the period.
    replay_sharpness: float = 0.6
    # Nothing repeats faster than a loop can: a divisor of the period shorter than
    # min_period_s at which the region's changes correlate this share of the period's own.
    faster_beat_share: float = 0.85
    # It is a window: a rectangle of at least this many cells each way (a quarter of each
    # side) whose cells all replay, a cell counting when its changes correlate at least
    # window_cell_share of the region's mean correlation one period apart (cells at the
    # window's border are partly outside it and replay partly).
    min_window_side_cells: int = 4
    window_cell_share: float = 0.5


@dataclass(frozen=True)
class RegionalRepeat:
    box: tuple[float, float, float, float]   # x, y, w, h as fractions of the frame
    area_share: float
    period_s: float
    correlation: float
    rest_correlation: float
    start_s: float
    end_s: float
    # Airtime where the region replays what it showed one period earlier, one span per pass
    # (each at most a period long).
    spans: tuple[tuple[float, float], ...] = ()
    cells: tuple[int, ...] = ()              # flat indices (row * THUMB_SIDE + column) of the region


def _components(mask: np.ndarray) -> list[np.ndarray]:
    from scipy.ndimage import label

    labels, n = label(mask)
    return [np.argwhere(labels == k) for k in range(1, n + 1)]


def find_regional_repeat(times_s: np.ndarray, thumbs: np.ndarray,
                         settings: RegionalSettings | None = None) -> RegionalRepeat | None:
    settings = settings or RegionalSettings()
    if len(times_s) < 4:
        return None
    step_s = max(settings.step_s, (times_s[-1] - times_s[0]) / settings.max_steps)
    grid = np.arange(times_s[0], times_s[-1], step_s)
    min_lag = int(np.ceil(settings.min_period_s / step_s))
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
    max_lag = min(m // 2, int(settings.max_period_s / step_s))
    if max_lag <= min_lag:
        return None
    raw = _autocorrelation(change[:, active], min_lag, max_lag, settings.fft_budget_bytes)  # (lags, active cells)
    # A period that is not a multiple of the step spreads over neighbouring lags.
    corr = np.maximum(raw, np.maximum(np.roll(raw, 1, axis=0), np.roll(raw, -1, axis=0)))
    active_idx = np.flatnonzero(active)
    best = _largest_region(corr, active_idx, settings.min_correlation, settings)
    # A big window that repeats a little less exactly (cells straddling its edge, encoder
    # blur) may pass the strict threshold only in a few cells, or not at all: the lenient
    # threshold, for large regions only.
    large = _largest_region(corr, active_idx, settings.large_region_correlation, settings)
    if large is not None and len(large[1]) >= settings.large_region_cells and \
            (best is None or len(large[1]) > len(best[1])):
        best = large
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
    # A multiple of the period repeats as well, and on a coarse grid (long streams) a whole
    # number of steps may fit a multiple better than the period: take the shortest divisor
    # of the lag at which the region correlates nearly as well.
    for k in range(6, 1, -1):
        divisor = int(round((min_lag + lag_offset) / k)) - min_lag
        if divisor >= 0 and float(corr[divisor, in_region].mean()) >= 0.85 * region_corr:
            lag_offset = divisor
            break
    # The lag itself: the neighbour of the (max-filtered) best lag where the region correlates most.
    near = [k for k in (lag_offset - 1, lag_offset, lag_offset + 1) if 0 <= k < len(raw)]
    lag_offset = max(near, key=lambda k: float(raw[k, in_region].mean()))
    lag = min_lag + lag_offset
    period_s = lag * step_s
    if _window_rectangle(raw[lag_offset], active_idx, region_corr, settings) is None:
        return None
    spans = _repeating_spans(change[:, flat_cells], lag, grid, step_s, period_s, settings)
    if not spans:
        return None
    if not _picture_returns(series[:, flat_cells], lag, grid, step_s, spans, settings):
        return None
    if _faster_beat(times_s, thumbs, flat_cells, period_s, spans, settings):
        return None
    y0, x0 = cells.min(axis=0)
    y1, x1 = cells.max(axis=0) + 1
    return RegionalRepeat(
        box=(x0 / THUMB_SIDE, y0 / THUMB_SIDE, (x1 - x0) / THUMB_SIDE, (y1 - y0) / THUMB_SIDE),
        area_share=len(cells) / THUMB_SIDE ** 2,
        period_s=float(period_s),
        correlation=region_corr,
        rest_correlation=rest_corr,
        start_s=spans[0][0],
        end_s=spans[-1][1],
        spans=tuple(spans),
        cells=tuple(int(c) for c in flat_cells),
    )


def _lag_correlation(change: np.ndarray, lag: int) -> float:
    """Pearson-like correlation of the region's changes with themselves `lag` steps earlier,
    pooled over its cells."""
    if lag <= 0 or lag >= len(change):
        return 0.0
    now, then = change[lag:], change[:-lag]
    return float((now * then).sum() / np.sqrt(max((now * now).sum() * (then * then).sum(), 1e-9)))


def _faster_beat(times_s: np.ndarray, thumbs: np.ndarray, flat_cells: np.ndarray, period_s: float,
                 spans: list[tuple[float, float]], settings: RegionalSettings) -> bool:
    """Whether the region's changes repeat at a fraction of the period that is shorter than
    any loop considered (a gesture or a spinning object on its own beat).

    Judged at the fingerprints' own rate (a 3 s gesture is 7.5 steps of the 0.4 s grid, and
    half a step off a fast arm decorrelates it), over at most max_steps fingerprints from the
    start of the replaying airtime.
    """
    step = float(np.median(np.diff(times_s)))
    if step <= 0:
        return False
    lag = int(round(period_s / step))
    lo = int(np.searchsorted(times_s, spans[0][0] - period_s))
    hi = min(len(times_s), int(np.searchsorted(times_s, spans[-1][1])) + 1, lo + settings.max_steps)
    series = thumbs[lo:hi].reshape(hi - lo, -1)[:, flat_cells].astype(np.float32)
    change = np.diff(series, axis=0)
    change -= change.mean(axis=0)
    if len(change) <= lag + 1:
        return False
    own = max(_lag_correlation(change, lag + d) for d in (-1, 0, 1))
    for k in range(2, 7):
        sub = period_s / k
        if sub >= settings.min_period_s:
            continue
        sub_lag = int(round(sub / step))
        if sub_lag < 2:
            break
        if max(_lag_correlation(change, sub_lag + d) for d in (-1, 0, 1)) >= settings.faster_beat_share * own:
            return True
    return False


def _window_rectangle(corr_at_lag: np.ndarray, active_idx: np.ndarray, region_corr: float,
                      settings: RegionalSettings) -> tuple[int, int, int, int] | None:
    """(y0, x0, y1, x1) of the largest rectangle of cells that all replay, if it is at least
    min_window_side_cells each way; None otherwise."""
    replaying = np.zeros(THUMB_SIDE * THUMB_SIDE, bool)
    replaying[active_idx[corr_at_lag >= settings.window_cell_share * region_corr]] = True
    box = _largest_rectangle(replaying.reshape(THUMB_SIDE, THUMB_SIDE), settings.min_window_side_cells)
    return box


def _largest_rectangle(mask: np.ndarray, min_side: int) -> tuple[int, int, int, int] | None:
    """Largest all-True axis-aligned rectangle with both sides >= min_side (16x16: brute force
    over row ranges, a run scan per range)."""
    rows, cols = mask.shape
    best, best_area = None, 0
    for y0 in range(rows):
        column_ok = np.ones(cols, bool)
        for y1 in range(y0 + 1, rows + 1):
            column_ok &= mask[y1 - 1]
            if not column_ok.any():
                break
            if y1 - y0 < min_side:
                continue
            run = 0
            for x in range(cols + 1):
                if x < cols and column_ok[x]:
                    run += 1
                    continue
                if run >= min_side and run * (y1 - y0) > best_area:
                    best, best_area = (y0, x - run, y1, x), run * (y1 - y0)
                run = 0
    return best


def _picture_returns(levels: np.ndarray, lag: int, grid: np.ndarray, step_s: float,
                     spans: list[tuple[float, float]], settings: RegionalSettings) -> bool:
    """Whether, over the replaying spans, the region's picture one period earlier is clearly
    closer than 1-2 s off the period (each picture's mean removed: a brightness change of
    the window is still a replay)."""
    x = levels - levels.mean(axis=1, keepdims=True)
    inside = np.zeros(len(grid), bool)
    for lo, hi in spans:
        inside |= (grid >= lo) & (grid < hi)
    off = sorted({max(1, round(s / step_s)) for s in (1.0, 1.5, 2.0)})

    def distance(k: int) -> float:
        idx = np.flatnonzero(inside)
        idx = idx[(idx - k >= 0) & (idx < len(x))]
        if len(idx) < 3:
            return np.nan
        return float(np.mean(np.abs(x[idx] - x[idx - k])))

    exact = distance(lag)
    shifted = [distance(lag + sign * k) for k in off for sign in (-1, 1)]
    shifted = [d for d in shifted if np.isfinite(d)]
    if not np.isfinite(exact) or not shifted:
        return False
    return exact <= settings.replay_sharpness * float(np.mean(shifted))


def _repeating_spans(change: np.ndarray, lag: int, grid: np.ndarray, step_s: float, period_s: float,
                     settings: RegionalSettings) -> list[tuple[float, float]]:
    """Spans of airtime where the region's changes correlate with one period earlier over a
    sliding window, cut into passes of at most a period."""
    now, then = change[lag:], change[:-lag]
    window = max(1, round(settings.span_window_s / step_s))

    def moving_sum(x: np.ndarray) -> np.ndarray:
        c = np.concatenate([[0.0], np.cumsum(x, dtype=np.float64)])
        half = window // 2
        lo = np.clip(np.arange(len(x)) - half, 0, len(x))
        hi = np.clip(np.arange(len(x)) + window - half, 0, len(x))
        return c[hi] - c[lo]

    local = moving_sum((now * then).sum(axis=1)) / np.sqrt(
        np.maximum(moving_sum((now * now).sum(axis=1)) * moving_sum((then * then).sum(axis=1)), 1e-9))
    # change[i] is the change from grid[i] to grid[i + 1]: local[i] describes grid[lag + i + 1].
    times = grid[lag + 1: lag + 1 + len(local)]
    spans, start, last = [], None, None
    for t, ok in zip(times, local >= settings.span_correlation):
        if ok:
            if start is None or t - last > 2 * settings.span_window_s:
                if start is not None:
                    spans.append((start, last + step_s))
                start = t
            last = t
    if start is not None:
        spans.append((start, last + step_s))
    passes = []
    for lo, hi in spans:
        if hi - lo < settings.min_span_s:
            continue
        edges = np.arange(lo, hi, period_s)
        passes += [(float(a), float(min(a + period_s, hi))) for a in edges if min(a + period_s, hi) - a >= 1.0]
    return passes


def _largest_region(corr: np.ndarray, active_idx: np.ndarray, threshold: float, settings: RegionalSettings):
    """(lag offset, cells) of the largest connected block of cells whose changes correlate at
    least `threshold` one lag apart, over the 20 lags where most cells do; None if none is
    big enough (or so big that the whole frame loops)."""
    best = None
    for lag_offset in np.argsort(-(corr >= threshold).sum(axis=1))[:20]:
        repeating = np.zeros(THUMB_SIDE * THUMB_SIDE, bool)
        repeating[active_idx[corr[lag_offset] >= threshold]] = True
        for cells in _components(repeating.reshape(THUMB_SIDE, THUMB_SIDE)):
            if len(cells) < settings.min_cells:
                continue
            if len(cells) > settings.max_share_of_active * len(active_idx):
                continue
            if best is None or len(cells) > len(best[1]):
                best = (lag_offset, cells)
    return best


def _autocorrelation(x: np.ndarray, min_lag: int, max_lag: int, budget_bytes: int = 48_000_000) -> np.ndarray:
    """Normalised autocorrelation of each column for lags min_lag..max_lag-1, in chunks of
    columns whose FFTs fit `budget_bytes`."""
    m = len(x)
    size = 1 << int(np.ceil(np.log2(2 * m)))
    # Per column: the complex spectrum, its product and the real inverse (float64).
    chunk = int(max(1, min(32, budget_bytes // (size * 40))))
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
