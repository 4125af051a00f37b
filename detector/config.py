"""Every default of the tool, in one place.

`ScanConfig` is frozen; CLI flags and a TOML file override it through `load_config`.
Nothing else in the package hard-codes a threshold that a user might want to tune.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib

LABELS: tuple[str, ...] = ("live", "looped", "prerecorded", "ai_driven")
NON_LIVE_LABELS: tuple[str, ...] = ("looped", "prerecorded", "ai_driven")

VIDEO_EXTENSIONS: tuple[str, ...] = (
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".flv", ".ts", ".mts", ".m2ts", ".avi",
)


class ConfigError(ValueError):
    """A configuration file or flag is invalid (the CLI exits with code 2)."""


@dataclass(frozen=True)
class ScanConfig:
    # -- sampling -------------------------------------------------------------------------
    # 10 frames per second: blinks last 100-400 ms and syllables come at 4-5 Hz, so face cues
    # need ~10 Hz; a cut is then located within 0.1 s and a loop seam within a fraction of a
    # second. Converting a sampled frame costs ~0.3 ms, so the rate mostly prices the
    # extractors, not decoding (which must touch every frame of a long-GOP stream anyway).
    sample_fps: float = 10.0
    # Analysis size: the longer side of each sampled frame after the single resize. 320 px
    # keeps a portrait 720x1280 room at 180x320, enough for motion, repetition and faces
    # that fill a live-room frame, and keeps per-frame work well under a millisecond.
    analysis_long_side: int = 320
    # Keyframes only: ~5x faster than full decoding; for quick triage of large batches.
    triage: bool = False
    # 0 lets FFmpeg pick one decoding thread per core.
    decode_threads: int = 0
    # Sampled frames decoded ahead on a background thread while extractors work (0: decode
    # on the calling thread). Each queued frame pins one decoded picture in memory.
    decode_ahead_frames: int = 8

    # -- inputs ---------------------------------------------------------------------------
    open_timeout_s: float = 10.0
    read_timeout_s: float = 10.0
    # How much of a live URL `scan` records before judging it (`watch` is for endless rooms).
    stream_duration_s: float = 300.0
    # Stop analysing any input after this much stream time (None: the whole input).
    max_duration_s: float | None = None
    # Shorter inputs get an error record: too little footage to judge anything.
    min_duration_s: float = 1.0
    # Refuse absurd declared or decoded frame sizes before allocating for them.
    max_frame_side: int = 8192
    video_extensions: tuple[str, ...] = VIDEO_EXTENSIONS

    # -- motion / stillness -----------------------------------------------------------------
    # A picture is still when fewer than `static_active_share` of its pixels change by more
    # than `static_pixel_delta` luma levels between sampled frames, measured on a coarse
    # (~96 px) copy where block averaging has divided sensor noise by ~6. A share, not a mean,
    # so that one small moving product in a big frame is motion and global noise is not.
    static_pixel_delta: float = 6.0
    static_active_share: float = 0.002
    # Still stretches at least this long are reported as `static` evidence.
    static_min_s: float = 5.0
    # A clip whose still share exceeds this carries the `static` flag.
    static_flag_share: float = 0.5
    # A clip carries the `cuts` flag when an edit at least this certain is found.
    cut_flag_score: float = 0.5

    # -- verdict --------------------------------------------------------------------------
    # Model file (.skops with a .card.json beside it). None: models/default.skops if shipped.
    model: str | None = None
    # Verdicts that make the exit code 1.
    fail_on: tuple[str, ...] = NON_LIVE_LABELS
    # Below this confidence a non-live verdict is reported but does not fail the run.
    min_confidence: float = 0.0
    # Per-verdict score thresholds (TOML table `[thresholds]`, flag `--threshold looped=0.8`).
    # A non-live verdict with a threshold is given when its score reaches it, even if `live`
    # scores higher (lower it to miss fewer fakes), and only then (raise it to accuse fewer
    # real rooms). Verdicts without a threshold win by having the highest score.
    label_thresholds: Mapping[str, float] = field(default_factory=dict)

    # -- extractors -----------------------------------------------------------------------
    # Registry names to run; empty means all registered extractors.
    extractors: tuple[str, ...] = field(default_factory=tuple)
    # Per-extractor overrides, {extractor name: {setting: value}}, from TOML tables such as
    # `[shots]`. The defaults live in each extractor's `Settings` dataclass.
    extractor_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sample_fps < 0:
            raise ConfigError(f"sample_fps must be >= 0 (0 = every frame), got {self.sample_fps}")
        if self.analysis_long_side < 16:
            raise ConfigError(f"analysis_long_side must be >= 16, got {self.analysis_long_side}")
        for name in ("open_timeout_s", "read_timeout_s", "stream_duration_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        unknown = set(self.fail_on) - set(LABELS)
        if unknown:
            raise ConfigError(f"fail_on has unknown verdicts {sorted(unknown)}; known: {list(LABELS)}")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ConfigError(f"min_confidence must be in [0, 1], got {self.min_confidence}")
        for label, threshold in self.label_thresholds.items():
            if label not in NON_LIVE_LABELS:
                raise ConfigError(f"threshold for unknown verdict {label!r}; known: {', '.join(NON_LIVE_LABELS)}")
            if not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
                raise ConfigError(f"threshold for {label} must be a number in [0, 1], got {threshold!r}")


    def settings_for(self, extractor: str, settings_class: type) -> Any:
        """The extractor's Settings with this config's overrides applied (validated)."""
        overrides = self.extractor_settings.get(extractor, {})
        known = {f.name: f for f in dataclasses.fields(settings_class)}
        defaults = settings_class()
        values = {}
        for key, value in overrides.items():
            if key not in known:
                raise ConfigError(
                    f"unknown setting {key!r} for extractor {extractor!r} (known: {', '.join(sorted(known)) or 'none'})")
            values[key] = _coerce(f"{extractor}.{key}", value, getattr(defaults, key))
        return dataclasses.replace(defaults, **values)


@dataclass(frozen=True)
class WatchConfig:
    """Defaults of `detector watch` (a TOML `[watch]` table and the command's flags override them).

    Timeouts for opening and reading come from ScanConfig (`open_timeout_s`, `read_timeout_s`).
    """

    # The rolling window the model scores: the default model learned from 18-40 s clips, so
    # a 30 s window shows it what it was trained on. A new window starts every `hop_s`, so
    # a verdict (and the cuts, still and empty stretches found in a window) is at most
    # window_s + hop_s old; each open window costs one set of extractors (~3 ms a frame).
    window_s: float = 30.0
    hop_s: float = 10.0
    min_window_s: float = 10.0
    max_window_s: float = 600.0
    # Loop alerts search this much history of fingerprints (256 B each, 5 a second: 30 min
    # is 2.3 MB of thumbnails, 2.8 MB allocated with slack). A loop is alerted once its
    # second pass is seen, so its period must be shorter than this. Older ones are dropped.
    loop_memory_s: float = 1800.0
    # Loop search at most this often (stream time)...
    loop_check_s: float = 2.0
    # ... and so that searching takes at most this share of one core: after a search that
    # took d seconds the next waits d / share (a long history is searched less often).
    loop_search_share: float = 0.25
    # Reconnecting: wait backoff_initial_s after a drop, doubling to backoff_max_s.
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 8.0
    # A server that answers but sends nothing new (a stalled encoder) is retried this long
    # without a frame before the watch ends; a server that refuses or is gone is given up
    # after read_timeout_s without a frame.
    max_outage_s: float = 300.0
    # The watchdog abandons a reader that has produced no frame for
    # open_timeout_s + read_timeout_s + this (FFmpeg's own timeouts normally fire first).
    watchdog_grace_s: float = 5.0
    # HLS: reloads of an unchanged playlist before FFmpeg gives up; kept low so a dead
    # playlist writer ends the read (a reconnect follows) instead of waiting for ever.
    hls_hold_counters: int = 6
    # HLS: failed playlist reloads before FFmpeg gives up (its default is 1000).
    hls_max_reload: int = 2
    # Stream time FFmpeg reads from a live URL to identify its streams before the first frame.
    # Its default (5 s) arrives in real time from a live source and may outlast the open
    # timeout, and an open interrupted mid-probe leaves an RTMP connection broken.
    probe_s: float = 1.0
    # Sampled frames queued between the reader and the analysis (each pins one decoded picture).
    queue_frames: int = 32
    # A local file modified this recently is followed as it grows (read to the end, then
    # waited on until read_timeout_s passes without new data); MP4/MOV are never followed
    # (their index is written last).
    follow_recent_s: float = 60.0
    # Seconds between refreshes of the status line (stderr, terminals only).
    status_interval_s: float = 0.5

    def __post_init__(self) -> None:
        if not self.min_window_s <= self.window_s <= self.max_window_s:
            raise ConfigError(f"window_s must be within [{self.min_window_s:g}, {self.max_window_s:g}] s, got {self.window_s:g}")
        if not 0 < self.hop_s <= self.window_s:
            raise ConfigError(f"hop_s must be in (0, window_s], got {self.hop_s:g}")
        if self.loop_memory_s < 2 * self.min_window_s:
            raise ConfigError(f"loop_memory_s must be >= {2 * self.min_window_s:g} s, got {self.loop_memory_s:g}")
        for name in ("loop_check_s", "backoff_initial_s", "backoff_max_s", "max_outage_s", "status_interval_s", "probe_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 < self.loop_search_share <= 1:
            raise ConfigError(f"loop_search_share must be in (0, 1], got {self.loop_search_share}")
        if self.hls_hold_counters < 1 or self.hls_max_reload < 0 or self.queue_frames < 1:
            raise ConfigError("hls_hold_counters and queue_frames must be >= 1, hls_max_reload >= 0")


def load_watch_config(path: str | Path | None = None, **overrides: Any) -> WatchConfig:
    """WatchConfig defaults, then the `[watch]` table of the TOML file, then `overrides`."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            table = tomllib.loads(Path(path).read_text(encoding="utf-8")).get("watch", {})
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        if not isinstance(table, dict):
            raise ConfigError("[watch] in the config file must be a table")
        data.update(table)
    data.update({k: v for k, v in overrides.items() if v is not None})
    fields = {f.name for f in dataclasses.fields(WatchConfig)}
    defaults = WatchConfig()
    changes = {}
    for name, value in data.items():
        if name not in fields:
            raise ConfigError(f"unknown watch setting {name!r} (known: {', '.join(sorted(fields))})")
        changes[name] = _coerce(f"watch.{name}", value, getattr(defaults, name))
    return dataclasses.replace(defaults, **changes) if changes else defaults


def _coerce(name: str, value: Any, default: Any) -> Any:
    """Turn TOML/CLI values into the field's type (lists become tuples; ints may be floats)."""
    if isinstance(default, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name} must be a table, got {value!r}")
        return dict(value)
    if isinstance(default, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name} must be a list, got {value!r}")
        return tuple(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
        return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if default is not None and not isinstance(value, type(default)):
        raise ConfigError(f"{name} must be {type(default).__name__}, got {value!r}")
    return value


def config_with(base: ScanConfig, overrides: Mapping[str, Any]) -> ScanConfig:
    """Return `base` with `overrides` applied; None values mean "not given" and are skipped."""
    fields = {f.name: f for f in dataclasses.fields(ScanConfig)}
    changes: dict[str, Any] = {}
    for name, value in overrides.items():
        if value is None:
            continue
        if name not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"unknown config key {name!r} (known: {known})")
        changes[name] = _coerce(name, value, getattr(base, name))
    return dataclasses.replace(base, **changes)


def load_config(path: str | Path | None = None, **overrides: Any) -> ScanConfig:
    """Defaults, then the TOML file (top-level keys or a `[scan]` table), then `overrides`."""
    config = ScanConfig()
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        data = dict(data.get("scan", data))
        data.pop("watch", None)          # `detector watch` settings (load_watch_config)
        if isinstance(data.get("thresholds"), dict):
            data["label_thresholds"] = data.pop("thresholds")
        tables = {k: data.pop(k) for k in list(data) if isinstance(data[k], dict) and k != "label_thresholds"}
        if tables:
            from detector.extractors import REGISTRY

            unknown = sorted(set(tables) - set(REGISTRY))
            if unknown:
                raise ConfigError(f"config file has tables for unknown extractors {unknown}; known: {sorted(REGISTRY)}")
            data["extractor_settings"] = tables
        config = config_with(config, data)
        for name, table in tables.items():   # fail now, not on the first clip
            config.settings_for(name, REGISTRY[name].Settings)
    return config_with(config, overrides)
