"""Rolling windows: the scan's extractors over the last `window_s` of stream, every `hop_s`.

Extractors report at `finalize`, once (their state is not meant to be read mid-stream), so
a rolling window is a fresh set of extractors started every `hop_s` and finalized
`window_s` later; `window_s / hop_s` sets are open at a time. Each set sees the frames on its
own clock starting at 0 (the model learned from clips that start at 0) and its evidence is
moved back onto the stream clock. Colour frames are converted once and shared by every set.

A window's features are the scan's columns (the `stream__*` ones from the decoder's counters
over the window), so the shipped model scores it as it would a clip of that length.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from detector.config import ScanConfig, WatchConfig
from detector.extractors import FeatureExtractor, build_extractors
from detector.pipeline import finalize_extractors
from detector.source import DecodeStats
from detector.types import Evidence, Frame, VideoMeta
from detector.watch.ingest import DecodeCounters, retimed


@dataclass(frozen=True)
class WindowResult:
    start_s: float
    end_s: float
    features: dict[str, float]
    evidence: list[Evidence]          # on the stream clock
    frames: int


class _Window:
    def __init__(self, start_s: float, extractors: list[FeatureExtractor], meta: VideoMeta) -> None:
        self.start_s = start_s
        self.extractors = extractors
        self.meta = meta
        self.stats = DecodeStats()
        self.frames = 0
        self.last_t_s = start_s
        self._previous: tuple[int, DecodeCounters] | None = None
        self._max_interval_s = 0.0
        for extractor in extractors:
            extractor.reset(meta)

    def add(self, frame: Frame, connection: int, counters: DecodeCounters) -> None:
        rel = retimed(frame, frame.t_s - self.start_s)   # colour converted once, shared by all sets
        for extractor in self.extractors:
            extractor.update(rel)
        self.frames += 1
        self.last_t_s = frame.t_s
        self._count(connection, counters)

    def _count(self, connection: int, c: DecodeCounters) -> None:
        """Decoder counters of this window: differences of the connection's running totals."""
        s = self.stats
        s.nominal_interval_s = c.nominal_interval_s
        previous = self._previous
        self._previous = (connection, c)
        if previous is None or previous[0] != connection:
            s.frames_decoded += 1
            return
        p = previous[1]
        frames = c.frames_decoded - p.frames_decoded
        s.frames_decoded += frames
        s.interval_sum_s += c.interval_sum_s - p.interval_sum_s
        s.interval_sq_sum_s += c.interval_sq_sum_s - p.interval_sq_sum_s
        s.non_increasing_pts += c.non_increasing - p.non_increasing
        s.missing_pts += c.missing_pts - p.missing_pts
        s.decode_errors += c.decode_errors - p.decode_errors
        # The longest gap is a running maximum: it is known exactly when it grew during the
        # window; otherwise the longest mean gap of a sampling step stands in for it.
        if c.max_interval_s > p.max_interval_s:
            self._max_interval_s = max(self._max_interval_s, c.max_interval_s)
        elif frames > 0:
            self._max_interval_s = max(self._max_interval_s, (c.interval_sum_s - p.interval_sum_s) / frames)

    def finish(self) -> WindowResult:
        s = self.stats
        s.last_t_s = self.last_t_s - self.start_s
        s.max_interval_s = self._max_interval_s
        features, found = finalize_extractors(self.extractors, s, self.meta)
        evidence = [_shifted(e, self.start_s) for e in found]      # still in time order
        return WindowResult(self.start_s, self.last_t_s, features, evidence, self.frames)


def _shifted(e: Evidence, offset_s: float) -> Evidence:
    def move(t: float | None) -> float | None:
        return None if t is None else t + offset_s

    return dataclasses.replace(e, start_s=e.start_s + offset_s, end_s=e.end_s + offset_s,
                               source_start_s=move(e.source_start_s), source_end_s=move(e.source_end_s))


class RollingWindows:
    """Feed frames; get a WindowResult each time a window closes."""

    def __init__(self, config: ScanConfig, watch: WatchConfig) -> None:
        self.config = config
        self.watch = watch
        self._open: list[_Window] = []
        self._next_start_s: float | None = None

    @property
    def open_windows(self) -> int:
        return len(self._open)

    def add(self, frame: Frame, connection: int, counters: DecodeCounters, meta: VideoMeta) -> list[WindowResult]:
        done: list[WindowResult] = []
        t = frame.t_s
        still_open = []
        for window in self._open:
            if t - window.start_s >= self.watch.window_s:
                done.append(window.finish())
            else:
                still_open.append(window)
        self._open = still_open
        if self._next_start_s is None:
            self._next_start_s = t
        if t >= self._next_start_s:
            self._open.append(_Window(t, build_extractors(self.config.extractors, self.config), meta))
            # After a gap (an outage) the next windows start from now, not in the past.
            while self._next_start_s <= t:
                self._next_start_s += self.watch.hop_s
        for window in self._open:
            window.add(frame, connection, counters)
        return done

    def flush(self, min_s: float) -> WindowResult | None:
        """At the end of a watch: the longest open window, if it covers at least `min_s`."""
        candidates = [w for w in self._open if w.last_t_s - w.start_s >= min_s]
        self._open = []
        if not candidates:
            return None
        return min(candidates, key=lambda w: w.start_s).finish()
