"""One watch: ingest -> fingerprints + rolling windows -> JSON-lines events -> summary.

Every event carries `stream_t_s` (the stream time at which its evidence was complete: the
last frame it needed), `wall_time` (UTC, when it was written) and `latency_s` (wall seconds
between that frame reaching the reader and the event being written).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from detector.config import ScanConfig, WatchConfig
from detector.model import LoadedModel
from detector.scan import loop_entry, decide_verdict
from detector.types import Evidence
from detector.watch.ingest import (
    Ended,
    LiveIngest,
    Outage,
    Resumed,
    Sampled,
    describe_location,
)
from detector.watch.loops import LoopWatcher
from detector.watch.windows import RollingWindows, WindowResult

log = logging.getLogger(__name__)

# Evidence kinds from the rolling windows that become events of the same name.
WINDOW_EVENT_KINDS = {"cut": "cut", "static": "static", "idle": "static", "frozen": "static",
                      "no_presenter": "no_presenter"}
EVENT_NAMES = ("started", "loop_detected", "cut", "static", "no_presenter", "verdict_changed",
               "stream_stalled", "reconnected", "ended")


def _utc(wall_s: float) -> str:
    return _dt.datetime.fromtimestamp(wall_s, _dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


class EventWriter:
    """One JSON object per line, flushed as written (and fsynced to a file): a crash loses at
    most the event in flight; a consumer tailing the file sees each event at once."""

    def __init__(self, handle: IO[str], durable: bool) -> None:
        self.handle = handle
        self.durable = durable
        self.counts: Counter = Counter()

    def write(self, event: dict[str, Any]) -> None:
        self.handle.write(json.dumps(event, ensure_ascii=False) + "\n")
        self.handle.flush()
        if self.durable:
            os.fsync(self.handle.fileno())
        self.counts[event["event"]] += 1


@dataclass
class WatchOutcome:
    ended: str                                 # the `ended` event's reason
    flagged: bool                              # a fail-on verdict, or a loop when looped is in fail_on
    failed: bool                               # the stream could not be watched (unreadable or lost)
    summary: dict[str, Any] = field(default_factory=dict)


class _Arrivals:
    """Wall arrival time of recent frames, to turn an evidence time into a latency."""

    def __init__(self, keep_s: float) -> None:
        self.keep_s = keep_s
        self._items: deque[tuple[float, float]] = deque()

    def add(self, t_s: float, wall_s: float) -> None:
        self._items.append((t_s, wall_s))
        while self._items and self._items[0][0] < t_s - self.keep_s:
            self._items.popleft()

    def wall_at(self, t_s: float) -> float | None:
        """Arrival of the last frame at or before t_s (the newest ones are searched first)."""
        best = None
        for t, wall in reversed(self._items):
            if t <= t_s + 1e-6:
                return wall
            best = wall
        return best


class WatchSession:
    def __init__(self, location: str, config: ScanConfig, watch: WatchConfig, model: LoadedModel | None,
                 writer: EventWriter, duration_s: float | None = None,
                 status: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.location = location
        self.config = config
        self.watch = watch
        self.model = model
        self.writer = writer
        self.duration_s = duration_s
        self.status = status
        self.ingest = LiveIngest(location, config, watch)
        if duration_s is not None and self.ingest.is_stream:
            # A live room that stalls does not stretch the watch (see _wall_duration_over).
            self.ingest.deadline = time.monotonic() + duration_s
        self.loops = LoopWatcher(config, watch)
        self.windows = RollingWindows(config, watch)
        self.arrivals = _Arrivals(keep_s=max(watch.window_s + watch.hop_s, watch.loop_memory_s) + 60)
        self.started_wall = time.time()
        self.started_mono = time.monotonic()
        self.last_t_s: float | None = None
        self.frames = 0
        self.verdict: str | None = None
        self.scores: dict[str, float] = {}
        self.verdicts_seen: Counter = Counter()
        self.flagged = False
        # The latest alerted spans (seam marking and the summary); the count covers them all.
        self.loop_spans: deque[dict[str, Any]] = deque(maxlen=100)
        self.loop_count = 0
        self._emitted_spans: dict[str, list[tuple[float, float]]] = {}
        self._outages = 0
        self._stall_s = 0.0
        self._latencies: dict[str, list[float]] = {}     # per event: [count, sum, max]
        self._peak_rss_mb = 0.0
        self._next_status = 0.0
        self._meta = None

    def stop(self) -> None:
        """Ask the watch to end (safe from a signal handler)."""
        self.ingest.stop()

    # -- events ---------------------------------------------------------------------------
    def emit(self, name: str, evidence_t_s: float | None, **body: Any) -> None:
        now = time.time()
        arrived = self.arrivals.wall_at(evidence_t_s) if evidence_t_s is not None else None
        latency = None if arrived is None else max(0.0, now - arrived)
        if latency is not None:
            stats = self._latencies.setdefault(name, [0, 0.0, 0.0])
            stats[0] += 1
            stats[1] += latency
            stats[2] = max(stats[2], latency)
        self.writer.write({"event": name, "stream_t_s": _round(evidence_t_s), "wall_time": _utc(now),
                           "latency_s": _round(latency), **body})

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> WatchOutcome:
        self.emit("started", None, source=self.location, kind=describe_location(self.location),
                  model=self.model.name if self.model else None,
                  window_s=self.watch.window_s, hop_s=self.watch.hop_s,
                  loop_memory_s=self.watch.loop_memory_s, duration_s=self.duration_s,
                  open_timeout_s=self.config.open_timeout_s, read_timeout_s=self.config.read_timeout_s,
                  follow=self.ingest.follow)
        ended = Ended("stopped")
        try:
            for item in self.ingest.items():
                if isinstance(item, Sampled):
                    self._on_frame(item)
                    if self.duration_s is not None and item.frame.t_s >= self.duration_s:
                        ended = Ended("duration")
                        break
                elif isinstance(item, Outage):
                    self._outages += 1
                    self.emit("stream_stalled", item.last_t_s, reason=item.reason)
                elif isinstance(item, Resumed):
                    self._stall_s += item.outage_s
                    self.emit("reconnected", item.t_s, outage_s=item.outage_s, attempts=item.attempts,
                              skipped_s=item.skipped_s)
                elif isinstance(item, Ended):
                    ended = item
                    break
                self._poll_loops()
                if self._wall_duration_over():
                    ended = Ended("duration")
                    break
                self._refresh_status()
        finally:
            self.ingest.close()
        if ended.reason == "stopped":
            ended = Ended("interrupted", ended.detail)
        return self._finish(ended)

    def _wall_duration_over(self) -> bool:
        # A live room that stalls does not stretch the watch: --duration bounds wall time too
        # (a file is read faster than real time, so there only stream time counts).
        return (self.duration_s is not None and self.ingest.is_stream
                and time.monotonic() - self.started_mono >= self.duration_s)

    def _on_frame(self, item: Sampled) -> None:
        frame = item.frame
        self.frames += 1
        self.last_t_s = frame.t_s
        self._meta = item.meta
        self.arrivals.add(frame.t_s, item.arrived_wall_s)
        self.loops.add(frame.t_s, frame.gray)
        self.loops.maybe_search(frame.t_s)
        for result in self.windows.add(frame, item.connection, item.counters, item.meta):
            self._on_window(result)

    def _poll_loops(self, final: bool = False) -> None:
        finding = self.loops.final_search(self.last_t_s or 0.0) if final else self.loops.poll()
        if finding is None or not finding.repeats:
            return
        spans = [loop_entry(_as_evidence(r)) for r in finding.repeats]
        self.loop_spans.extend(spans)
        self.loop_count += len(spans)
        periods = [s["start_s"] - s["source_start_s"] for s in spans if s["source_start_s"] is not None]
        if "looped" in self.config.fail_on:
            self.flagged = True
        self.emit("loop_detected", finding.evidence_t_s, spans=spans,
                  offset_s=_round(min(periods)) if periods else None,
                  fingerprints=finding.fingerprints, search_s=_round(finding.search_s))

    def _on_window(self, result: WindowResult) -> None:
        for e in result.evidence:
            name = WINDOW_EVENT_KINDS.get(e.kind)
            if name is None or not self._new_span(name, e):
                continue
            body: dict[str, Any] = {"start_s": _round(e.start_s), "end_s": _round(e.end_s), "score": _round(e.score, 4)}
            if e.kind != name:
                body["kind"] = e.kind
            if name == "cut":
                body["type"] = e.detail.get("type")
                if self._at_loop_seam(e.start_s):
                    body["loop_seam"] = True      # where a replayed pass starts: one edit, not a cut
            self.emit(name, result.end_s, **body)
        if self.model is None:
            return
        scores = self.model.predict_scores(result.features)
        verdict = decide_verdict(scores, self.config.label_thresholds)
        self.scores = {k: round(v, 4) for k, v in scores.items()}
        self.verdicts_seen[verdict] += 1
        confidence = scores[verdict]
        if verdict in self.config.fail_on and confidence >= self.config.min_confidence:
            self.flagged = True
        if verdict != self.verdict:
            previous, self.verdict = self.verdict, verdict
            self.emit("verdict_changed", result.end_s, verdict=verdict, previous=previous,
                      confidence=round(confidence, 4), scores=self.scores,
                      window=[_round(result.start_s), _round(result.end_s)])

    def _at_loop_seam(self, t_s: float) -> bool:
        """A cut where an alerted replay starts or ends (or a whole period later) is the seam."""
        for span in list(self.loop_spans)[-50:]:
            start, end, source = span["start_s"], span["end_s"], span["source_start_s"]
            if abs(t_s - start) <= 0.5 or abs(t_s - end) <= 0.5:
                return True
            period = start - source if source is not None else 0.0
            if period > 1.0 and t_s >= start:
                phase = (t_s - start) % period
                if min(phase, period - phase) <= 0.5:
                    return True
        return False

    def _new_span(self, name: str, e: Evidence) -> bool:
        """Overlapping windows find the same cut or stretch again: report it once."""
        spans = self._emitted_spans.setdefault(name, [])
        slack = 0.5 if name == "cut" else 0.0
        for i, (a, b) in enumerate(spans):
            if e.start_s <= b + slack and e.end_s >= a - slack:
                spans[i] = (min(a, e.start_s), max(b, e.end_s))
                return False
        spans.append((e.start_s, e.end_s))
        # Bounded memory over a long watch: only spans a window could still overlap.
        if len(spans) > 256:
            horizon = e.start_s - 2 * self.watch.window_s
            spans[:] = [s for s in spans if s[1] >= horizon]
        return True

    # -- the end --------------------------------------------------------------------------
    def _finish(self, ended: Ended) -> WatchOutcome:
        if ended.reason != "interrupted" and self.last_t_s is not None:
            self._poll_loops(final=True)
            result = self.windows.flush(min_s=max(self.config.min_duration_s, self.watch.min_window_s))
            if result is not None:
                self._on_window(result)
        else:
            self._poll_loops()
        self.loops.close()
        # Not watched: never opened, lost, or ended (by --duration or a signal) before any frame.
        failed = ended.reason in ("unreadable", "stream_lost") or self.frames == 0
        summary = self._summary(ended)
        self.emit("ended", self.last_t_s, reason=ended.reason, detail=ended.detail, summary=summary)
        return WatchOutcome(ended.reason, self.flagged, failed, summary)

    def _summary(self, ended: Ended) -> dict[str, Any]:
        counts = dict(self.writer.counts)
        latencies = {k: {"mean": _round(total / n), "max": _round(worst)}
                     for k, (n, total, worst) in self._latencies.items() if n}
        return {
            "stream_s": _round(self.last_t_s),
            "wall_s": _round(time.time() - self.started_wall),
            "frames_analysed": self.frames,
            "verdict": self.verdict,
            "scores": self.scores,
            "verdicts_seen": dict(self.verdicts_seen),
            "flagged": self.flagged,
            "loops": self.loop_count,
            "loop_spans": list(self.loop_spans)[-20:],
            "events": counts,
            "outages": self._outages,
            "outage_s": _round(self._stall_s),
            "connections": self.ingest.stats["connections"],
            # Stream time t_s is PTS t_s + origin_pts_s of the stream's own clock.
            "origin_pts_s": _round(self.ingest.origin_pts_s),
            "clock_restarts": self.ingest.clock_restarts,
            "watchdog_trips": self.ingest.stats["watchdog_trips"],
            "loop_searches": self.loops.searches,
            "loop_search_s": _round(self.loops.search_wall_s),
            "fingerprints_kept": len(self.loops.ring),
            "fingerprint_mb": _round(self.loops.ring.nbytes / 2**20, 2),
            "peak_rss_mb": _round(_peak_rss_mb(), 1),
            "latency_s": latencies,
        }

    # -- status line ------------------------------------------------------------------------
    def _refresh_status(self) -> None:
        if self.status is None:
            return
        now = time.monotonic()
        if now < self._next_status:
            return
        self._next_status = now + self.watch.status_interval_s
        lag = None
        if self.last_t_s is not None:
            arrived = self.arrivals.wall_at(self.last_t_s)
            lag = None if arrived is None else time.time() - arrived
        self.status({
            "stream_t_s": self.last_t_s, "wall_s": now - self.started_mono, "lag_s": lag,
            "verdict": self.verdict, "confidence": self.scores.get(self.verdict) if self.verdict else None,
            "loops": self.loop_count, "cuts": self.writer.counts.get("cut", 0),
            "outages": self._outages, "windows": self.windows.open_windows,
            "fingerprints": len(self.loops.ring), "rss_mb": _current_rss_mb(),
        })


def _as_evidence(r) -> Evidence:
    return Evidence(kind="loop", start_s=r.start_s, end_s=r.end_s, score=r.similarity,
                    source_start_s=r.source_start_s, source_end_s=r.source_end_s,
                    detail={"transform": r.transform})


def _peak_rss_mb() -> float:
    import resource

    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mb() -> float | None:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None
