"""One decode pass: every sampled frame goes to every extractor, once."""

from __future__ import annotations

import contextlib
import hashlib
import math
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from detector.config import ScanConfig
from detector.extractors import REGISTRY, FeatureExtractor, build_extractors
from detector.extractors.base import ColumnDoc
from detector.source import DecodeStats, VideoSource
from detector.types import AudioChunk, Evidence, VideoMeta

# Columns measured by the source itself while decoding (no extractor needed).
STREAM_COLUMN_DOCS = {
    "fps": ColumnDoc("decoded frames per second of stream time", "1/s", "> 0", "context"),
    "interval_cv": ColumnDoc("coefficient of variation of frame intervals; 0 for constant frame rate", "ratio", ">= 0", "context"),
    "max_interval_s": ColumnDoc("longest gap between two decoded frames", "s", ">= 0", "prerecorded"),
    "decode_errors_per_min": ColumnDoc("packets that failed to decode, per minute", "1/min", ">= 0", "context"),
    "non_increasing_share": ColumnDoc("share of frames whose timestamp did not advance", "share", "0-1", "prerecorded"),
    "declared_duration_ratio": ColumnDoc("container-declared duration / decoded duration (missing if none declared)", "ratio", ">= 0", "context"),
}
STREAM_FEATURES = tuple(STREAM_COLUMN_DOCS)
STREAM_VERSION = 1


def feature_columns(extractor_names: Sequence[str] = ()) -> list[str]:
    names = list(extractor_names) or list(REGISTRY)
    return [f"stream__{k}" for k in STREAM_FEATURES] + [c for n in names for c in REGISTRY[n].columns()]


def column_docs(extractor_names: Sequence[str] = ()) -> dict[str, ColumnDoc]:
    """Every feature column with its documentation, in column order."""
    names = list(extractor_names) or list(REGISTRY)
    docs = {f"stream__{k}": d for k, d in STREAM_COLUMN_DOCS.items()}
    for name in names:
        cls = REGISTRY[name]
        docs.update({f"{name}__{k}": cls.COLUMN_DOCS[k] for k in cls.FEATURES})
    return docs


def features_markdown() -> str:
    """docs/features.md: the table of every column (tests check the file is up to date)."""
    lines = [
        "# Feature columns",
        "",
        "Generated from the code by `python -m detector.pipeline > docs/features.md`; do not edit.",
        "Columns are `extractor__key`; a missing value (NaN in tables, null in JSON) means the",
        "cue could not be measured for that clip (e.g. no face was ever found), not zero.",
        "`speaks for` names the verdict or flag a high value points to (`context`: needed to read other columns).",
        "",
        "| column | meaning | unit | range | speaks for |",
        "|---|---|---|---|---|",
    ]
    for column, doc in column_docs().items():
        lines.append(f"| `{column}` | {doc.meaning} | {doc.unit} | {doc.range} | {doc.speaks_for} |")
    return "\n".join(lines) + "\n"


def feature_schema(extractor_names: Sequence[str] = ()) -> str:
    """Identifies the column set and meaning; a model card must carry the same string."""
    names = list(extractor_names) or list(REGISTRY)
    parts = [f"stream.{STREAM_VERSION}"] + [f"{n}.{REGISTRY[n].VERSION}" for n in names]
    digest = hashlib.sha1(",".join(feature_columns(names)).encode()).hexdigest()[:8]
    return "+".join(parts) + f"-{digest}"


@dataclass(frozen=True)
class Extraction:
    meta: VideoMeta
    features: dict[str, float]
    evidence: list[Evidence]
    stats: DecodeStats

    @property
    def duration_s(self) -> float:
        return self.stats.duration_s


def extract(
    source: str | Path | VideoSource,
    config: ScanConfig | None = None,
    extractors: Sequence[FeatureExtractor] | None = None,
) -> Extraction:
    """Decode `source` once and hand each sampled frame to every extractor.

    Extractors that declare `USES_AUDIO` also get the audio track, decoded in the same pass,
    as AudioChunks; when none does, audio packets are not decoded at all.
    `source` is a path, a URL, or a VideoSource (opened or not); a source we open, we close.
    Raises SourceError when the input cannot be opened at all.
    """
    config = config or ScanConfig()
    if extractors is None:
        extractors = build_extractors(config.extractors, config)
    owned = not isinstance(source, VideoSource)
    video = VideoSource(source, config) if owned else source
    try:
        with _opencv_single_threaded():
            return _extract(video, config, extractors)
    finally:
        if owned:
            video.close()


def _extract(video: VideoSource, config: ScanConfig, extractors: Sequence[FeatureExtractor]) -> Extraction:
    """The pass itself: frames (and audio) to the extractors, then their results."""
    meta = video.meta or video.open()
    for extractor in extractors:
        extractor.reset(meta)
    listeners = [e for e in extractors if e.USES_AUDIO]
    thumbs = any(e.USES_DECODED_FRAMES for e in extractors)
    for item in _decoded_ahead(video, config.decode_ahead_frames, audio=bool(listeners), decoded_thumbs=thumbs):
        if type(item) is AudioChunk:
            for extractor in listeners:
                extractor.update_audio(item)
        else:
            for extractor in extractors:
                extractor.update(item)
    features, evidence = finalize_extractors(extractors, video.stats, meta)
    return Extraction(meta=meta, features=features, evidence=evidence, stats=video.stats)


def finalize_extractors(extractors: Sequence[FeatureExtractor], stats: DecodeStats,
                        meta: VideoMeta) -> tuple[dict[str, float], list[Evidence]]:
    """Every column (stream counters, then each extractor's) and all evidence in time order,
    once the frames are in: for a whole scan, or one window of `detector watch`."""
    features = _stream_features(stats, meta)
    evidence: list[Evidence] = []
    for extractor in extractors:
        values, found = extractor.finalize()
        features.update({f"{extractor.name}__{k}": float(values.get(k, math.nan)) for k in extractor.FEATURES})
        evidence.extend(found)
    evidence.sort(key=lambda e: (e.start_s, e.kind))
    return features, evidence


_END = object()
_opencv_lock = threading.Lock()
_opencv_users = 0
_opencv_threads_before = 0


@contextlib.contextmanager
def _opencv_single_threaded():
    """OpenCV's own thread pool off while extracting (restored afterwards).

    FFmpeg's decoding threads already keep every core busy; OpenCV splitting a 320-px
    resize or a cascade search across its pool only adds wake-ups and contention (measured:
    ~0.1-0.3 ms more CPU per sampled frame with the pool on). The setting is process-wide, so
    concurrent extractions share one count and the last one out restores it.
    """
    global _opencv_users, _opencv_threads_before
    import cv2

    with _opencv_lock:
        if _opencv_users == 0:
            _opencv_threads_before = cv2.getNumThreads()
            cv2.setNumThreads(1)
        _opencv_users += 1
    try:
        yield
    finally:
        with _opencv_lock:
            _opencv_users -= 1
            if _opencv_users == 0:
                cv2.setNumThreads(_opencv_threads_before)


def _decoded_ahead(video: VideoSource, depth: int, audio: bool = False, decoded_thumbs: bool = False):
    """`video.frames()` (`video.media()` with `audio`), decoded on a background thread up to
    `depth` items ahead.

    FFmpeg's own decoding threads leave part of the machine idle while the extractors run
    on the main thread; decoding ahead overlaps the two (PyAV, NumPy and OpenCV release the
    GIL in their heavy parts). The queue is short: each queued frame pins a decoded picture.
    Errors in the decoder are re-raised here; if the consumer stops early, the thread stops.
    """
    def items():
        return video.media(decoded_thumbs) if audio else video.frames(decoded_thumbs)

    if depth <= 0:
        yield from items()
        return
    # With audio about every other item is a small AudioChunk: room for `depth` frames still.
    frames: queue.Queue = queue.Queue(maxsize=2 * depth if audio else depth)
    stop = threading.Event()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            for frame in items():
                while not stop.is_set():
                    try:
                        frames.put(frame, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            failure.append(exc)
        finally:
            while not stop.is_set():
                try:
                    frames.put(_END, timeout=0.1)
                    break
                except queue.Full:
                    continue

    worker = threading.Thread(target=produce, name="detector-decode", daemon=True)
    worker.start()
    try:
        while True:
            item = frames.get()
            if item is _END:
                break
            yield item
    finally:
        stop.set()
        worker.join()
    if failure:
        raise failure[0]


def _stream_features(stats: DecodeStats, meta: VideoMeta) -> dict[str, float]:
    """The `stream__*` columns from what decoding counted."""
    duration_s = stats.duration_s
    n = stats.frames_decoded
    declared = meta.declared_duration_s
    values = {
        "fps": (n - 1) / stats.last_t_s if stats.last_t_s > 0 else math.nan,
        "interval_cv": stats.interval_cv,
        "max_interval_s": stats.max_interval_s,
        "decode_errors_per_min": 60.0 * stats.decode_errors / duration_s if duration_s > 0 else math.nan,
        "non_increasing_share": stats.non_increasing_pts / n if n else math.nan,
        "declared_duration_ratio": declared / duration_s if declared and duration_s > 0 else math.nan,
    }
    return {f"stream__{k}": float(v) for k, v in values.items()}


if __name__ == "__main__":
    print(features_markdown(), end="")
