"""The extractor interface: see every sampled frame once, keep small state, report at the end."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from detector.config import ScanConfig
from detector.types import Evidence, Frame, VideoMeta


class FeatureExtractor(ABC):
    """One family of cues. Subclasses set `name` and `FEATURES`; columns are `name__key`.

    Extractors never touch the decoder: the scanner hands them frames with true timestamps.
    They must not keep `Frame` objects (that would pin decoded pictures in memory); keep the
    numbers you need instead.
    """

    name: ClassVar[str]
    FEATURES: ClassVar[tuple[str, ...]]
    # Versioned with the columns: bump when a column's meaning changes.
    VERSION: ClassVar[int] = 1

    def __init__(self, config: ScanConfig | None = None) -> None:
        self.config = config or ScanConfig()

    def reset(self, meta: VideoMeta) -> None:
        """Called before the first frame of each input; the default keeps the metadata."""
        self.meta = meta

    @abstractmethod
    def update(self, frame: Frame) -> None:
        """Take one sampled frame."""

    @abstractmethod
    def finalize(self) -> tuple[dict[str, float], list[Evidence]]:
        """Return every key in FEATURES (NaN where undefined) and the evidence found."""

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        return tuple(f"{cls.name}__{key}" for key in cls.FEATURES)
