"""Pictures for the HTML report, collected during the one decode pass.

The report shows thumbnails of every repeated span beside the span it repeats, a timeline
and a self-similarity picture. Decoding the video a second time for them would double the
cost of a batch, so a `ThumbnailCollector` rides along with the extractors when a report is
requested: it keeps about one tiny JPEG per second and a 16x16 luma descriptor twice a
second, both capped in count (a long clip keeps every other one and halves its rate), so a
worker's memory stays bounded whatever the clip's length. After the scan, `select_visuals`
picks the thumbnails nearest to the evidence and renders the self-similarity picture.
"""

from __future__ import annotations

import base64
import bisect
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from detector.extractors.base import FeatureExtractor
from detector.types import Evidence, Frame, VideoMeta

# Face columns shown on an ai_driven card (the cues that speak for a digital human).
FACE_CUE_COLUMNS = (
    "face__presenter_share", "face__mouth_upper_ratio", "face__mouth_only_share",
    "face__mouth_seam_ratio", "face__blink_rate_per_min", "face__blink_interval_cv",
    "face__sway_peakiness", "face__upper_repeat_share", "face__mouth_novelty_on_repeat",
    "face__mouth_only_novelty",
)


@dataclass(frozen=True)
class VisualSettings:
    thumb_interval_s: float = 1.0      # one thumbnail per second of video...
    # ...at most this many (then every other one, half the rate): one a second up to 10
    # minutes, one every 12 s for a 2-hour stream; ~2.5 MB per worker at most.
    max_thumbs: int = 600
    thumb_long_side: int = 160         # pixels; a card shows them at about this size
    jpeg_quality: int = 70             # ~3-5 KB per thumbnail
    sim_interval_s: float = 0.5        # self-similarity descriptors per second of video...
    max_sim: int = 360                 # ...at most this many (a 360x360 matrix)
    sim_side: int = 16                 # descriptor: a 16x16 luma thumbnail
    picture_side: int = 240            # self-similarity picture, pixels
    overview_count: int = 8            # evenly spaced thumbnails on every card
    span_count: int = 4                # thumbnails per repeated span (and per source span)
    max_spans: int = 4                 # repeated spans shown per card


class _Decimating:
    """Samples taken every `interval_s`; when more than `cap` are kept, every other one is
    dropped and the interval doubles, so the samples still cover the whole clip."""

    def __init__(self, interval_s: float, cap: int) -> None:
        self.interval_s, self.cap = interval_s, cap
        self.times: list[float] = []
        self.items: list[Any] = []
        self._next_t = -math.inf

    def due(self, t_s: float) -> bool:
        return t_s >= self._next_t

    def add(self, t_s: float, item: Any) -> None:
        self.times.append(t_s)
        self.items.append(item)
        self._next_t = t_s + self.interval_s
        if len(self.items) > self.cap:
            self.times, self.items = self.times[::2], self.items[::2]
            self.interval_s *= 2
            self._next_t = self.times[-1] + self.interval_s


class ThumbnailCollector(FeatureExtractor):
    """Keeps a bounded strip of tiny JPEGs and luma descriptors; adds no feature column."""

    name: ClassVar[str] = "visuals"
    FEATURES: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config=None, settings: VisualSettings | None = None) -> None:
        super().__init__(config)
        self.settings = settings or VisualSettings()

    def reset(self, meta: VideoMeta) -> None:
        super().reset(meta)
        s = self.settings
        self.thumbs = _Decimating(s.thumb_interval_s, s.max_thumbs)
        self.descriptors = _Decimating(s.sim_interval_s, s.max_sim)
        self.last_t_s = 0.0

    def update(self, frame: Frame) -> None:
        import cv2

        s = self.settings
        self.last_t_s = frame.t_s
        if self.descriptors.due(frame.t_s):
            small = cv2.resize(frame.gray, (s.sim_side, s.sim_side), interpolation=cv2.INTER_AREA)
            self.descriptors.add(frame.t_s, small)
        if self.thumbs.due(frame.t_s):
            h, w = frame.height, frame.width
            scale = min(1.0, s.thumb_long_side / max(h, w))
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            # Colour only for the frames kept: one conversion a second.
            thumb = cv2.resize(frame.bgr, size, interpolation=cv2.INTER_AREA)
            ok, jpeg = cv2.imencode(".jpg", thumb, [cv2.IMWRITE_JPEG_QUALITY, s.jpeg_quality])
            if ok:
                self.thumbs.add(frame.t_s, jpeg.tobytes())

    def finalize(self) -> tuple[dict[str, float], list[Evidence]]:
        return {}, []

    def nearest_thumb(self, t_s: float) -> tuple[float, bytes] | None:
        times = self.thumbs.times
        if not times:
            return None
        i = bisect.bisect_left(times, t_s)
        best = min((j for j in (i - 1, i) if 0 <= j < len(times)), key=lambda j: abs(times[j] - t_s))
        return times[best], self.thumbs.items[best]


@dataclass
class ClipVisuals:
    """What a report card needs beyond the record: thumbnails (time -> JPEG), the repeated
    spans as pairs of thumbnail times, the self-similarity picture and the face cues."""

    duration_s: float
    thumbs: dict[float, bytes] = field(default_factory=dict)
    overview_t: list[float] = field(default_factory=list)
    # One entry per repeated span shown: {"start_s", "end_s", "source_start_s", ..., "pairs": [[t, source_t], ...]}
    spans: list[dict[str, Any]] = field(default_factory=list)
    # Thumbnail time on each side of a cut.
    cuts: list[list[float]] = field(default_factory=list)
    thumb_interval_s: float = 1.0      # spacing of the kept thumbnails (grows on long clips)
    selfsim_png: bytes = b""
    selfsim_t_s: tuple[float, float] = (0.0, 0.0)
    face_cues: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "duration_s": self.duration_s,
            "thumbs": [[t, base64.b64encode(b).decode("ascii")] for t, b in self.thumbs.items()],
            "overview_t": self.overview_t, "spans": self.spans, "cuts": self.cuts,
            "thumb_interval_s": self.thumb_interval_s,
            "selfsim_png": base64.b64encode(self.selfsim_png).decode("ascii"),
            "selfsim_t_s": list(self.selfsim_t_s), "face_cues": self.face_cues,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClipVisuals:
        return cls(
            duration_s=float(data["duration_s"]),
            thumbs={float(t): base64.b64decode(b) for t, b in data["thumbs"]},
            overview_t=[float(t) for t in data["overview_t"]],
            spans=list(data["spans"]), cuts=[list(c) for c in data["cuts"]],
            thumb_interval_s=float(data.get("thumb_interval_s", 1.0)),
            selfsim_png=base64.b64decode(data["selfsim_png"]),
            selfsim_t_s=tuple(data["selfsim_t_s"]), face_cues=dict(data["face_cues"]),
        )


def select_visuals(collector: ThumbnailCollector, record) -> ClipVisuals:
    """The thumbnails nearest to the record's evidence, the overview strip and the
    self-similarity picture; `record` is the finished ScanRecord of the same clip."""
    s = collector.settings
    duration = float(record.duration_s or collector.last_t_s or 0.0)
    visuals = ClipVisuals(duration_s=duration)

    def take(t_s: float) -> float | None:
        found = collector.nearest_thumb(t_s)
        if found is None:
            return None
        visuals.thumbs[found[0]] = found[1]
        return found[0]

    for t in _evenly(0.0, duration, s.overview_count):
        kept = take(t)
        if kept is not None and kept not in visuals.overview_t:
            visuals.overview_t.append(kept)
    visuals.thumb_interval_s = collector.thumbs.interval_s
    for loop in record.loops[: s.max_spans]:
        if loop.get("source_start_s") is None:
            continue
        visuals.spans.append({**loop, "pairs": _span_pairs(collector, loop, s.span_count, take)})
    times = collector.thumbs.times
    for cut_s in record.cuts_s[: s.max_spans]:
        # The last thumbnail before the cut and the first after it (cut_s is the first frame
        # of the new shot).
        i = bisect.bisect_left(times, cut_s - 1e-6)
        if 0 < i < len(times):
            visuals.cuts.append([cut_s, take(times[i - 1]), take(times[i])])
    visuals.selfsim_png, visuals.selfsim_t_s = _selfsim_picture(collector.descriptors, s.picture_side)
    features = record.features or {}
    visuals.face_cues = {k: round(float(features[k]), 4) for k in FACE_CUE_COLUMNS
                         if features.get(k) is not None and math.isfinite(features[k])}
    return visuals


def _span_pairs(collector: ThumbnailCollector, loop: dict[str, Any], count: int, take) -> list[list[float]]:
    """Thumbnail times [replayed, original] across a repeated span. The original's time is
    mapped from the replayed thumbnail actually kept, and a pair is shown only when both
    thumbnails lie close to the moments they stand for: side by side, they must show the
    same content (on a long clip, where thumbnails are sparse, a short span may get none)."""
    start, end = loop["start_s"], loop["end_s"]
    source_start, source_end = loop["source_start_s"], loop["source_end_s"]
    tolerance = max(0.6, 0.1 * (end - start))
    pairs = []
    for t in _evenly(start, end, count):
        replayed = collector.nearest_thumb(t)
        if replayed is None or abs(replayed[0] - t) > tolerance:
            continue
        share = (replayed[0] - start) / max(1e-9, end - start)
        source_t = source_start + share * (source_end - source_start)
        original = collector.nearest_thumb(source_t)
        if original is None or abs(original[0] - source_t) > tolerance:
            continue
        pair = [take(replayed[0]), take(original[0])]
        if pair not in pairs:
            pairs.append(pair)
    return pairs


def _evenly(start: float, end: float, count: int) -> list[float]:
    """`count` times spread over [start, end], each in the middle of its share."""
    if count <= 0 or end <= start:
        return [start] if count > 0 else []
    step = (end - start) / count
    return [start + step * (i + 0.5) for i in range(count)]


def _selfsim_picture(descriptors: _Decimating, side: int) -> tuple[bytes, tuple[float, float]]:
    """A picture of how alike every pair of moments is: bright off-diagonal lines are
    replays (parallel to the diagonal) or boomerangs (across it); a uniformly bright square
    is a still stretch. Descriptors are brightness-normalised, compared by correlation."""
    import cv2

    if len(descriptors.items) < 2:
        return b"", (0.0, 0.0)
    x = np.stack(descriptors.items).reshape(len(descriptors.items), -1).astype(np.float32)
    x -= x.mean(axis=1, keepdims=True)
    x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-6
    similarity = x @ x.T
    # Stretch the contrast between typical and top off-diagonal values: a scene whose
    # background never changes is alike everywhere, and a replay must still stand out.
    off_diagonal = similarity[~np.eye(len(x), dtype=bool)]
    high = float(np.percentile(off_diagonal, 99.5))
    low = min(float(np.percentile(off_diagonal, 10)), high - 0.05)
    image = (np.clip((similarity - low) / (high - low), 0.0, 1.0) * 255).astype(np.uint8)
    image = cv2.resize(image, (side, side), interpolation=cv2.INTER_NEAREST)
    coloured = cv2.applyColorMap(image, cv2.COLORMAP_VIRIDIS)
    ok, png = cv2.imencode(".png", coloured)
    return (png.tobytes() if ok else b""), (descriptors.times[0], descriptors.times[-1])
