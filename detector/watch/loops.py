"""Loop alerts while a room is on air: the repetition engine run over a rolling history.

Fingerprints (the 16x16 thumbnails of `detector.fingerprint`, 256 bytes each) are kept for
the last `loop_memory_s` of stream time in a fixed ring: memory does not grow with the length
of the watch. Every few seconds a snapshot of the ring is searched by
`detector.loopsearch.find_repeats` (the same engine `scan` uses, with the same `[repetition]`
settings) on a background thread, so the analysis keeps consuming frames meanwhile. The
search is paced so that it takes at most `loop_search_share` of a core.

A replay is alerted once: a found span is new when no span alerted before covers most of it.
As a loop goes on, each further pass is a new span (and a new alert).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from detector.config import ScanConfig, WatchConfig
from detector.extractors.repetition import RepetitionSettings, split_passes
from detector.fingerprint import THUMB_SIDE, thumbnail
from detector.loopsearch import Repeat, find_repeats

log = logging.getLogger(__name__)


class FingerprintRing:
    """(time, thumbnail) pairs for the last `memory_s` seconds, in a preallocated ring."""

    def __init__(self, memory_s: float, fingerprint_fps: float) -> None:
        self.memory_s = memory_s
        capacity = int(memory_s * fingerprint_fps * 1.25) + 16   # slack for a faster clock
        self._t = np.zeros(capacity, np.float64)
        self._thumbs = np.zeros((capacity, THUMB_SIDE, THUMB_SIDE), np.uint8)
        self._start = 0          # index of the oldest entry
        self._n = 0

    def __len__(self) -> int:
        return self._n

    @property
    def capacity(self) -> int:
        return len(self._t)

    @property
    def nbytes(self) -> int:
        return self._t.nbytes + self._thumbs.nbytes

    def add(self, t_s: float, thumb: np.ndarray) -> None:
        cap = len(self._t)
        # Forget what fell out of the memory window, and the oldest entry if the ring is full.
        while self._n and (self._n == cap or self._t[self._start] < t_s - self.memory_s):
            self._start = (self._start + 1) % cap
            self._n -= 1
        end = (self._start + self._n) % cap
        self._t[end] = t_s
        self._thumbs[end] = thumb
        self._n += 1

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies in time order (the search runs on them while the ring moves on)."""
        idx = (self._start + np.arange(self._n)) % len(self._t)
        return self._t[idx], self._thumbs[idx]


@dataclass(frozen=True)
class LoopFinding:
    """Replays found by one search, and the stream time its evidence reached."""

    repeats: list[Repeat]          # only the spans not alerted before
    evidence_t_s: float            # newest fingerprint the search saw
    search_s: float                # wall time the search took
    fingerprints: int


class LoopWatcher:
    """Collects fingerprints from sampled frames and searches them now and then."""

    def __init__(self, config: ScanConfig, watch: WatchConfig) -> None:
        self.settings: RepetitionSettings = config.settings_for("repetition", RepetitionSettings)
        self.watch = watch
        self.ring = FingerprintRing(watch.loop_memory_s, self.settings.fingerprint_fps)
        self._step_s = 1.0 / self.settings.fingerprint_fps
        self._next_fp_s = -1e9
        self._pending: Future | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="detector-loopsearch")
        self._next_search_t_s = 0.0
        self._next_search_wall = 0.0
        self._alerted: list[tuple[float, float]] = []
        self._last_searched_t_s = -1.0
        self.searches = 0
        self.search_wall_s = 0.0
        self.longest_search_s = 0.0

    def add(self, t_s: float, gray: np.ndarray) -> None:
        if t_s + 1e-3 < self._next_fp_s:
            return
        self._next_fp_s = max(self._next_fp_s + self._step_s, t_s + 0.5 * self._step_s)
        self.ring.add(t_s, thumbnail(gray))

    def _min_history_s(self) -> float:
        # Nothing can be a replay before a source span plus a replayed span exist.
        return self.settings.min_offset_s + self.settings.min_span_s

    def maybe_search(self, t_s: float) -> None:
        """Start a search in the background if one is due and none is running."""
        if self._pending is not None or len(self.ring) < 8:
            return
        now = time.monotonic()
        if t_s < self._next_search_t_s or now < self._next_search_wall or t_s < self._min_history_s():
            return
        times_s, thumbs = self.ring.snapshot()
        self._next_search_t_s = t_s + self.watch.loop_check_s
        self._last_searched_t_s = float(times_s[-1])
        self._pending = self._executor.submit(self._search, times_s, thumbs)

    def _search(self, times_s: np.ndarray, thumbs: np.ndarray) -> tuple[list[Repeat], float, float, int]:
        started = time.perf_counter()
        step_s = float(np.median(np.diff(times_s))) if len(times_s) > 1 else self._step_s
        repeats = split_passes(find_repeats(times_s, thumbs, self.settings, step_s))
        return repeats, float(times_s[-1]), time.perf_counter() - started, len(times_s)

    def poll(self, wait: bool = False) -> LoopFinding | None:
        """The result of the last search once it is done (None while running or idle)."""
        if self._pending is None or (not wait and not self._pending.done()):
            return None
        future, self._pending = self._pending, None
        repeats, evidence_t_s, search_s, n = future.result()
        self.searches += 1
        self.search_wall_s += search_s
        self.longest_search_s = max(self.longest_search_s, search_s)
        # Pace: a search that took d seconds is followed by a pause of d / share.
        self._next_search_wall = time.monotonic() + search_s * (1.0 / self.watch.loop_search_share - 1.0)
        fresh = [r for r in sorted(repeats, key=lambda r: r.start_s) if self._is_new(r)]
        for r in fresh:
            self._alerted.append((r.start_s, r.end_s))
        # Bounded memory: alerts older than the history cannot be found again.
        horizon = evidence_t_s - self.watch.loop_memory_s
        self._alerted = [(a, b) for a, b in self._alerted if b >= horizon]
        return LoopFinding(fresh, evidence_t_s, search_s, n)

    def final_search(self, t_s: float) -> LoopFinding | None:
        """Search whatever arrived since the last search, waiting for the result (end of watch)."""
        if self._pending is not None:
            finding = self.poll(wait=True)
            if finding is not None and finding.repeats:
                return finding
        if len(self.ring) < 8 or t_s <= self._last_searched_t_s or t_s < self._min_history_s():
            return None
        times_s, thumbs = self.ring.snapshot()
        self._last_searched_t_s = float(times_s[-1])
        self._pending = self._executor.submit(self._search, times_s, thumbs)
        return self.poll(wait=True)

    def _is_new(self, r: Repeat) -> bool:
        length = r.end_s - r.start_s
        if length < self.settings.min_span_s:
            return False         # the start of a further pass: alerted once it has grown
        for a, b in self._alerted:
            if min(b, r.end_s) - max(a, r.start_s) > 0.5 * min(length, b - a):
                return False
        return True

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
