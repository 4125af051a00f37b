"""Scanning one input: extract, judge, and turn everything into the output record.

The record's keys are a contract other tools parse (documented in the README): keep them
stable. Every failure becomes a one-line `error` in the record; nothing raises past here.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from detector.config import NON_LIVE_LABELS, ScanConfig
from detector.extractors import FeatureExtractor, build_extractors
from detector.model import LoadedModel
from detector.pipeline import Extraction, extract
from detector.source import SourceError, is_stream_location
from detector.types import Evidence

log = logging.getLogger(__name__)

# Evidence kinds that raise a flag of the same meaning on the whole clip.
_FLAG_FOR_KIND = {
    "no_presenter": "no_presenter",
    "picture_in_picture": "picture_in_picture",
    "cut": "cuts",
    "audio_loop": "audio_loop",
    "idle": "static",                  # idle: a long still stretch, even if a light blinks
    "regional_loop": "regional_loop",  # a window in the picture replays recorded footage (picture in picture)
    "green_screen": "green_screen",
    "frozen": "static",
}

RECORD_KEYS = (
    "path", "verdict", "confidence", "scores", "duration_s", "loops", "loop_period_s",
    "cuts_s", "flags", "evidence", "model", "error", "elapsed_s",
)


@dataclass
class ScanRecord:
    path: str
    verdict: str | None = None
    confidence: float | None = None
    scores: dict[str, float] = field(default_factory=dict)
    duration_s: float | None = None
    loops: list[dict[str, Any]] = field(default_factory=list)
    loop_period_s: float | None = None
    cuts_s: list[float] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    model: str | None = None
    error: str | None = None
    elapsed_s: float = 0.0
    features: dict[str, float] | None = None

    def to_dict(self, include_features: bool = False) -> dict[str, Any]:
        data = {key: getattr(self, key) for key in RECORD_KEYS}
        if include_features:
            data["features"] = {k: _json_number(v) for k, v in (self.features or {}).items()}
        return data

    def strongest_evidence(self) -> dict[str, Any] | None:
        """The finding a moderator should check first: a replayed span beats everything,
        then the highest score (clip-library summaries only when nothing else is there)."""
        rank = {"loop": 2, "recycled_clip": 0}
        return max(self.evidence, key=lambda e: (rank.get(e["kind"], 1), e["score"]), default=None)


def _json_number(value: float) -> float | None:
    """NaN and infinity are not JSON: a missing value is null."""
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


def loop_entry(e: Evidence) -> dict[str, Any]:
    """A `loop` evidence item as the record's `loops` list shows it (scan and watch)."""
    return {
        "start_s": round(e.start_s, 3),
        "end_s": round(e.end_s, 3),
        "source_start_s": None if e.source_start_s is None else round(e.source_start_s, 3),
        "source_end_s": None if e.source_end_s is None else round(e.source_end_s, 3),
        "similarity": round(float(e.score), 4),
        "transform": str(e.detail.get("transform", "none")),
    }


def _problem(extraction: Extraction, config: ScanConfig) -> str | None:
    """Why an input that opened still cannot be judged (truncated, too short), or None."""
    stats, meta = extraction.stats, extraction.meta
    duration_s = stats.duration_s
    stopped = stats.stopped_early
    if stopped and stopped != "time limit":
        if meta.is_stream:
            return f"{stopped} after {duration_s:.1f} s"
        return f"truncated or corrupt: {stopped} at {duration_s:.1f} s"
    declared = meta.declared_duration_s
    complete_file = not meta.is_stream and stopped != "time limit" and not config.triage
    if complete_file and meta.declared_frames > 0:
        # The header's frame count (MP4 sample table) is exact where present; a few frames
        # of slack for edit lists.
        if stats.frames_decoded < 0.98 * meta.declared_frames - 1:
            return (f"truncated: decoded {stats.frames_decoded} of the {meta.declared_frames} "
                    f"frames the header declares ({duration_s:.1f} s)")
    if complete_file and declared and declared > 0:
        # Metadata lies a little (edit lists, a last frame's duration); a file that decodes to
        # much less than its header promises was cut short.
        if duration_s < declared - max(1.0, 0.1 * declared):
            return f"truncated: decoded {duration_s:.1f} s of the {declared:.1f} s the header declares"
    if duration_s < config.min_duration_s:
        return (f"too short to analyse: {stats.frames_decoded} frame(s), {duration_s:.2f} s "
                f"(< {config.min_duration_s:g} s)")
    return None


def _mark_loop_seams(evidence: list[Evidence]) -> list[Evidence]:
    """A loop seam is one edit, not two: a cut where a replay starts or ends is marked as the
    seam it is and left out of `cuts_s`."""
    seams = [t for e in evidence if e.kind == "loop" for t in (e.start_s, e.end_s)]
    if not seams:
        return evidence
    marked = []
    for e in evidence:
        if e.kind == "cut" and any(abs(e.start_s - t) <= 0.5 for t in seams):
            e = dataclasses.replace(e, detail={**e.detail, "loop_seam": True})
        marked.append(e)
    return marked


def build_record(path: str, extraction: Extraction, config: ScanConfig, model: LoadedModel | None) -> ScanRecord:
    features = extraction.features
    evidence = extraction.evidence
    record = ScanRecord(path=path, duration_s=round(extraction.duration_s, 3), features=features)
    record.loops = [loop_entry(e) for e in evidence if e.kind == "loop"]
    period = features.get("repetition__period_s")
    record.loop_period_s = round(period, 3) if period is not None and math.isfinite(period) else None
    evidence = _mark_loop_seams(evidence)
    cuts = [e for e in evidence if e.kind == "cut" and not e.detail.get("loop_seam")]
    record.cuts_s = [round(e.start_s, 3) for e in cuts]
    flags = {_FLAG_FOR_KIND[e.kind] for e in evidence if e.kind in _FLAG_FOR_KIND and e.kind != "cut"}
    if any(e.score >= config.cut_flag_score for e in cuts):
        flags.add("cuts")
    static_share = features.get("basic__static_share", math.nan)
    if math.isfinite(static_share) and static_share >= config.static_flag_share:
        flags.add("static")
    record.flags = sorted(flags)
    record.evidence = [e.to_dict() for e in evidence]
    record.error = _problem(extraction, config)
    if model is not None:
        record.model = model.name
        if record.error is None:
            scores = model.predict_scores(features)
            record.scores = {k: round(v, 4) for k, v in scores.items()}
            record.verdict = decide_verdict(scores, config.label_thresholds)
            record.confidence = round(scores[record.verdict], 4)
    return record


def decide_verdict(scores: dict[str, float], thresholds: Mapping[str, float]) -> str:
    """The verdict for calibrated `scores` under per-verdict `thresholds` (see ScanConfig).
    A non-live verdict qualifies by reaching its threshold or, without one, by scoring
    highest; the best-scoring qualifier wins, and `live` when none qualifies."""
    best = max(scores, key=scores.get)
    qualifying = [
        label for label in NON_LIVE_LABELS if label in scores
        and (scores[label] >= thresholds[label] if label in thresholds else label == best)
    ]
    if qualifying:
        return max(qualifying, key=scores.get)
    return "live" if "live" in scores else best


def scan_one(path: str, config: ScanConfig | None = None, model: LoadedModel | None = None,
             extra_extractors: Sequence[FeatureExtractor] = ()) -> ScanRecord:
    """Scan one file or URL; never raises for a bad input (the record carries the error).

    `extra_extractors` ride along in the same decode pass after the configured ones (the
    report's thumbnail collector); their columns, if any, join the features."""
    config = config or ScanConfig()
    started = time.perf_counter()
    try:
        extractors = None
        if extra_extractors:
            extractors = [*build_extractors(config.extractors, config), *extra_extractors]
        extraction = extract(path, config, extractors)
        record = build_record(path, extraction, config, model)
    except SourceError as exc:
        record = ScanRecord(path=path, error=str(exc), model=model.name if model else None)
    except MemoryError:
        record = ScanRecord(path=path, error="out of memory while decoding", model=model.name if model else None)
    except Exception as exc:  # a bug or an FFmpeg surprise: keep the batch going, say what it was
        log.debug("unexpected failure on %s", path, exc_info=True)
        message = " ".join(f"{type(exc).__name__}: {exc}".split())
        record = ScanRecord(path=path, error=f"internal error: {message}", model=model.name if model else None)
    record.elapsed_s = round(time.perf_counter() - started, 3)
    if record.error:
        log.info("%s: %s", path, record.error)
    return record


def is_flagged(record: ScanRecord, config: ScanConfig) -> bool:
    return (
        record.error is None
        and record.verdict in config.fail_on
        and (record.confidence or 0.0) >= config.min_confidence
    )


__all__ = ["ScanRecord", "scan_one", "build_record", "decide_verdict", "is_flagged", "is_stream_location", "RECORD_KEYS"]
