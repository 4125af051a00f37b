"""Registry of feature extractors: name -> class. Importing this module imports no model."""

from __future__ import annotations

from detector.extractors.audio import AudioExtractor
from detector.extractors.base import FeatureExtractor
from detector.extractors.basic import BasicStatsExtractor
from detector.extractors.cadence import CadenceExtractor
from detector.extractors.face import FaceExtractor
from detector.extractors.layout import LayoutExtractor
from detector.extractors.motion import MotionExtractor
from detector.extractors.repetition import RepetitionExtractor
from detector.extractors.shots import ShotsExtractor
from detector.extractors.signal import SignalExtractor

REGISTRY: dict[str, type[FeatureExtractor]] = {
    cls.name: cls
    for cls in (BasicStatsExtractor, MotionExtractor, RepetitionExtractor, ShotsExtractor, SignalExtractor,
                LayoutExtractor, FaceExtractor, AudioExtractor, CadenceExtractor)
}


def build_extractors(names: tuple[str, ...] | list[str] = (), config=None) -> list[FeatureExtractor]:
    """Fresh extractor instances for `names` (all registered ones when empty)."""
    from detector.config import ScanConfig

    config = config or ScanConfig()
    chosen = list(names) or list(REGISTRY)
    unknown = [n for n in chosen if n not in REGISTRY]
    if unknown:
        raise KeyError(f"unknown extractor(s) {unknown}; known: {sorted(REGISTRY)}")
    return [REGISTRY[n](config) for n in chosen]


def uses_decoded_frames(names: tuple[str, ...] | list[str] = ()) -> bool:
    """Whether any of `names` (all registered extractors when empty) reads `Frame.decoded`."""
    return any(REGISTRY[n].USES_DECODED_FRAMES for n in (names or REGISTRY))


__all__ = ["REGISTRY", "FeatureExtractor", "build_extractors", "uses_decoded_frames"]
