"""Robust live ingest: one reader thread per connection, reconnects with backoff, a watchdog.

A live room drops, stalls and comes back. `LiveIngest.items()` hides that from the analysis:
it yields `Sampled` frames on one continuous stream clock and `Outage` / `Resumed` notices,
and ends with an `Ended` carrying the reason. The decoding itself is `VideoSource` (one
decode pass, true PTS); what is added here:

- FFmpeg options that keep its own waiting short (HLS hold counters and reload limits,
  `rw_timeout`), so a dead playlist writer ends a read instead of hanging it;
- a reader thread per connection feeding a bounded queue, and a watchdog on the consumer
  side: a reader that produced nothing for open + read timeout + grace is abandoned (FFmpeg's
  interrupt callback normally stops it first);
- reconnects with exponential backoff: a server that answers but has nothing new (a
  stalled encoder) is retried up to `max_outage_s`; one that refuses, says not found or does
  not answer within the open timeout is given up `read_timeout_s` after the last frame (or
  at the first failed open after that);
- one clock across connections: HLS segments carry absolute timestamps, so a reconnect that
  replays segments already seen is recognised and its frames dropped; a stream whose clock
  restarted (a new encoder session) continues where the old one stopped plus the wall-clock gap.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from detector.config import ScanConfig, WatchConfig
from detector.extractors import uses_decoded_frames
from detector.source import SourceError, VideoSource, is_stream_location
from detector.types import Frame, VideoMeta

log = logging.getLogger(__name__)

# Containers whose index is written last: a growing file of this kind cannot be followed.
_UNFOLLOWABLE = {".mp4", ".m4v", ".mov", ".m4a", ".3gp"}
# A reconnect whose clock lands this far behind the last frame seen is a new clock.
_REWIND_TOLERANCE_S = 120.0
# ... or this far ahead of where the wall-clock gap says the stream should be.
_JUMP_TOLERANCE_S = 60.0


@dataclass(frozen=True)
class DecodeCounters:
    """Cumulative decoding counters of one connection, read after each sampled frame (the
    window's `stream__*` columns are built from their differences)."""

    frames_decoded: int
    interval_sum_s: float
    interval_sq_sum_s: float
    max_interval_s: float
    non_increasing: int
    missing_pts: int
    decode_errors: int
    nominal_interval_s: float


@dataclass(frozen=True)
class Sampled:
    frame: Frame                  # t_s on the watch's continuous stream clock
    arrived_wall_s: float         # time.time() when the reader handed it over
    connection: int
    counters: DecodeCounters
    meta: VideoMeta


@dataclass(frozen=True)
class Outage:
    """Frames stopped coming: the stream dropped, stalled or the reader was abandoned."""

    last_t_s: float | None        # stream time of the last frame before the outage
    reason: str
    wall_s: float


@dataclass(frozen=True)
class Resumed:
    """Frames flow again after an outage."""

    t_s: float                    # stream time of the first new frame
    outage_s: float               # wall seconds without a frame
    attempts: int                 # connections opened to get here
    skipped_s: float              # stream time missed across the gap (0 when the server kept it)


@dataclass(frozen=True)
class Ended:
    reason: str                   # end_of_stream | stream_lost | unreadable | stopped
    detail: str | None = None


_END = object()


class _Reader(threading.Thread):
    """One connection: open, decode, hand sampled frames over; never raises."""

    def __init__(self, connection: int, location: str, config: ScanConfig, options: dict[str, str],
                 out: queue.Queue) -> None:
        super().__init__(name=f"detector-watch-reader-{connection}", daemon=True)
        self.connection = connection
        self.location, self.config, self.options, self.out = location, config, options, out
        self.stop = threading.Event()
        self.last_activity = time.monotonic()

    def _put(self, item) -> bool:
        while not self.stop.is_set():
            try:
                self.out.put((self.connection, item), timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def run(self) -> None:
        opened = False
        try:
            with VideoSource(self.location, self.config, options=self.options) as source:
                opened = True
                meta = source.meta
                self._put(("opened", meta))
                stats = source.stats
                for frame in source.frames(decoded_thumbs=uses_decoded_frames(self.config.extractors)):
                    self.last_activity = time.monotonic()
                    counters = DecodeCounters(
                        stats.frames_decoded, stats.interval_sum_s, stats.interval_sq_sum_s,
                        stats.max_interval_s, stats.non_increasing_pts, stats.missing_pts,
                        stats.decode_errors, stats.nominal_interval_s)
                    t_abs = frame.t_s + (stats.first_time_s or 0.0)
                    if not self._put(("frame", frame, t_abs, time.time(), counters, meta)):
                        return
                self._put(("closed", stats.stopped_early))
        except SourceError as exc:
            self._put(("closed" if opened else "open_failed", str(exc)))
        except Exception as exc:  # an FFmpeg surprise: reported as a drop, the watch goes on
            log.debug("reader %d failed", self.connection, exc_info=True)
            self._put(("closed" if opened else "open_failed", f"{type(exc).__name__}: {exc}"))


def retimed(frame: Frame, t_s: float, colour_from: Frame | None = None) -> Frame:
    """`frame` at stream time `t_s` (with anything else it carries, such as thumbnails of the
    frames decoded since the previous sample, moved by the same amount); its colour picture
    comes from `colour_from` (default: `frame`), so it is converted once however many
    copies the analysis makes."""
    shift = t_s - frame.t_s
    source = colour_from or frame
    changes: dict = {"t_s": t_s, "_bgr_factory": lambda: source.bgr}
    if frame.decoded:
        changes["decoded"] = tuple(dataclasses.replace(d, t_s=d.t_s + shift) for d in frame.decoded)
    return dataclasses.replace(frame, **changes)


def hls_playlist_ended(url: str, timeout_s: float) -> bool:
    """True when the HLS playlist at `url` (or its first variant) carries #EXT-X-ENDLIST."""
    try:
        for _ in range(2):
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                text = response.read(1 << 20).decode("utf-8", "replace")
            if "#EXT-X-ENDLIST" in text:
                return True
            if "#EXT-X-STREAM-INF" not in text:
                return False
            lines = [ln.strip() for ln in text.splitlines()]
            variant = next((ln for ln in lines if ln and not ln.startswith("#")), None)
            if variant is None:
                return False
            url = urllib.parse.urljoin(url, variant)
    except (OSError, ValueError):
        return False
    return False


class LiveIngest:
    """Frames of a live URL or growing file on one clock, across drops and reconnects.

    Iterate `items()` once (it yields Sampled, Outage, Resumed and finally Ended); call
    `stop()` from any thread (a signal handler) to end it cleanly.
    """

    def __init__(self, location: str, config: ScanConfig, watch: WatchConfig) -> None:
        self.location = location
        self.config = config
        self.watch = watch
        self.is_stream = is_stream_location(location)
        self.is_hls = self.is_stream and ".m3u8" in location.lower().split("?")[0]
        self.follow = False if self.is_stream else self._followable(Path(location))
        self._queue: queue.Queue = queue.Queue(maxsize=watch.queue_frames)
        self._stop = threading.Event()
        self._reader: _Reader | None = None
        self._current: int | None = None     # the connection whose items are accepted
        self._connections = 0
        self.stats = {"connections": 0, "outages": 0, "watchdog_trips": 0, "duplicates_dropped": 0}
        # Absolute timestamp (PTS, seconds) of stream time 0, and how often the clock restarted.
        self.origin_pts_s: float | None = None
        # time.monotonic() at which to end with Ended("duration") even during an outage.
        self.deadline: float | None = None
        self.clock_restarts = 0

    # -- setup --------------------------------------------------------------------------------
    def _followable(self, path: Path) -> bool:
        try:
            age_s = time.time() - path.stat().st_mtime
        except OSError:
            return False
        return path.suffix.lower() not in _UNFOLLOWABLE and age_s <= self.watch.follow_recent_s

    def _options(self) -> dict[str, str]:
        read_us = str(int(self.config.read_timeout_s * 1e6))
        if self.is_stream:
            options = {"rw_timeout": read_us, "analyzeduration": str(int(self.watch.probe_s * 1e6))}
            if self.is_hls:
                options.update({"m3u8_hold_counters": str(self.watch.hls_hold_counters),
                                "max_reload": str(self.watch.hls_max_reload)})
            return options
        if self.follow:
            # Read to the end, then keep waiting for the writer until read_timeout_s passes.
            return {"follow": "1", "rw_timeout": read_us}
        return {}

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _start_reader(self) -> None:
        self._connections += 1
        self.stats["connections"] = self._connections
        self._reader = _Reader(self._connections, self.location, self.config, self._options(), self._queue)
        self._current = self._connections
        self._reader.start()

    def _abandon_reader(self) -> None:
        if self._reader is not None:
            self._reader.stop.set()
            self._reader = None
        self._current = None            # what it already queued is ignored

    def close(self) -> None:
        """Stop the reader; a thread stuck inside FFmpeg is left to its own timeout (daemon)."""
        reader = self._reader
        self._abandon_reader()
        if reader is not None:
            reader.join(timeout=1.0)

    # -- the loop -----------------------------------------------------------------------------
    def items(self) -> Iterator[Sampled | Outage | Resumed | Ended]:
        cfg, watch = self.config, self.watch
        watchdog_s = cfg.open_timeout_s + cfg.read_timeout_s + watch.watchdog_grace_s
        origin_abs: float | None = None       # absolute time of stream time 0 on this clock
        last_t: float | None = None
        last_frame_wall = time.monotonic()
        outage: Outage | None = None
        attempts = 0
        backoff = watch.backoff_initial_s
        next_attempt: float | None = None
        connection_clock_checked = False
        fresh = replayed = 0                  # this connection's new and already-seen frames
        unreachable = False
        ever_opened = False
        failure: str | None = None
        self._start_reader()
        attempts = 1
        try:
            while True:
                if self._stop.is_set():
                    yield Ended("stopped")
                    return
                now = time.monotonic()
                if self.deadline is not None and now >= self.deadline:
                    yield Ended("duration")
                    return
                if self._reader is None and next_attempt is not None and now >= next_attempt:
                    next_attempt = None
                    connection_clock_checked = False
                    fresh = replayed = 0
                    attempts += 1
                    self._start_reader()
                try:
                    connection, item = self._queue.get(timeout=0.1)
                except queue.Empty:
                    reader = self._reader
                    if reader is not None and time.monotonic() - max(reader.last_activity, last_frame_wall) > watchdog_s:
                        self.stats["watchdog_trips"] += 1
                        log.info("watchdog: no frame for %.0f s, abandoning connection %d", watchdog_s, reader.connection)
                        self._abandon_reader()
                        item, connection = ("closed", f"no frame for {watchdog_s:g} s (watchdog)"), -1
                    else:
                        continue
                if connection != -1 and connection != self._current:
                    continue                              # an abandoned reader's leftovers
                kind = item[0]
                if kind == "opened":
                    ever_opened = True
                    unreachable = False
                    continue
                if kind == "frame":
                    _, frame, t_abs, wall_s, counters, meta = item
                    if not connection_clock_checked:
                        connection_clock_checked = True
                        origin_abs = self._clock_origin(origin_abs, t_abs, last_t, time.monotonic() - last_frame_wall)
                        if self.origin_pts_s is None:
                            self.origin_pts_s = origin_abs
                    t_s = t_abs - origin_abs
                    if last_t is not None and t_s <= last_t + 1e-3:
                        self.stats["duplicates_dropped"] += 1   # a replayed segment
                        replayed += 1
                        continue
                    if outage is not None:
                        yield Resumed(t_s=t_s, outage_s=round(time.monotonic() - last_frame_wall, 3), attempts=attempts,
                                      skipped_s=round(max(0.0, t_s - (outage.last_t_s or 0.0) - 0.5), 3))
                        outage = None
                        attempts = 1
                        backoff = watch.backoff_initial_s
                    last_t = t_s
                    fresh += 1
                    last_frame_wall = time.monotonic()
                    yield Sampled(retimed(frame, t_s), wall_s, connection, counters, meta)
                    continue
                # The connection is over ("closed" after frames, or "open_failed").
                reason = item[1]
                self._reader = None
                if kind == "open_failed":
                    # Refused, not found, or no answer within the open timeout: the server is
                    # not serving this room (a stalled encoder behind a live server still opens).
                    unreachable = True
                    failure = reason
                if not self.is_stream and not self.follow and kind == "closed":
                    yield Ended("end_of_stream", reason)
                    return
                if not self.is_stream and kind == "open_failed" and not self.follow:
                    yield Ended("unreadable", reason)
                    return
                if kind == "closed" and self.follow and last_t is not None:
                    yield Ended("end_of_stream", reason or "the file stopped growing")
                    return
                if kind == "closed" and not reason and not self.is_hls and replayed and not fresh:
                    # A finished recording served again from its start (HLS says so instead).
                    yield Ended("end_of_stream", "the server sent again only what was already watched")
                    return
                if kind == "closed" and not reason and self.is_hls and hls_playlist_ended(
                        self.location, cfg.open_timeout_s):
                    yield Ended("end_of_stream", "the playlist ended (#EXT-X-ENDLIST)")
                    return
                if outage is None:
                    outage = Outage(last_t_s=last_t, reason=reason or "no new data: the server closed the stream or stopped updating it", wall_s=time.time())
                    self.stats["outages"] += 1
                    yield outage
                silent_s = time.monotonic() - last_frame_wall
                if unreachable and silent_s >= cfg.read_timeout_s:
                    what = "unreadable" if not ever_opened and last_t is None else "stream_lost"
                    yield Ended(what, failure or reason)
                    return
                if silent_s >= watch.max_outage_s:
                    yield Ended("stream_lost", f"no frame for {silent_s:.0f} s ({reason or 'no new data'})")
                    return
                next_attempt = time.monotonic() + backoff
                if unreachable:   # the give-up check must run on time, whatever the backoff
                    next_attempt = min(next_attempt, last_frame_wall + cfg.read_timeout_s)
                backoff = min(backoff * 2, watch.backoff_max_s)
        finally:
            self.close()

    def _clock_origin(self, origin_abs: float | None, t_abs: float, last_t: float | None, gap_s: float) -> float:
        """Stream-clock origin for a connection whose first frame has absolute time t_abs."""
        if origin_abs is None or last_t is None:
            return t_abs
        t_s = t_abs - origin_abs
        if last_t - _REWIND_TOLERANCE_S <= t_s <= last_t + gap_s + _JUMP_TOLERANCE_S:
            return origin_abs                      # same clock (maybe replaying a few segments)
        log.info("stream clock restarted on reconnect (%.1f s vs %.1f s): continuing after the gap", t_s, last_t)
        self.clock_restarts += 1
        return t_abs - (last_t + gap_s)


def describe_location(location: str) -> str:
    """What kind of input this is, for the `started` event."""
    if is_stream_location(location):
        scheme = location.split(":", 1)[0].lower()
        if ".m3u8" in location.lower():
            return "hls"
        if location.lower().split("?")[0].endswith(".flv"):
            return "http-flv" if scheme.startswith("http") else scheme
        return scheme
    return "file" if os.path.exists(location) else "missing"
