"""The extractor interface: see every sampled frame once, keep small state, report at the end."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from detector.config import ScanConfig
from detector.types import AudioChunk, Evidence, Frame, VideoMeta


class ColumnDoc(NamedTuple):
    """One row of the feature table (docs/features.md is generated from these)."""

    meaning: str
    unit: str
    range: str
    speaks_for: str        # which verdict a high value points to, e.g. "looped", "live"


@dataclass(frozen=True)
class NoSettings:
    """For extractors with nothing to tune."""


class FeatureExtractor(ABC):
    """One family of cues. Subclasses set `name` and `FEATURES`; columns are `name__key`.

    Extractors never touch the decoder: the scanner hands them frames with true timestamps.
    They must not keep `Frame` objects (that would pin decoded pictures in memory); keep the
    numbers you need instead.
    """

    name: ClassVar[str]
    FEATURES: ClassVar[tuple[str, ...]]
    # Every key of FEATURES, documented.
    COLUMN_DOCS: ClassVar[Mapping[str, ColumnDoc]] = {}
    # Versioned with the columns: bump when a column's meaning changes.
    VERSION: ClassVar[int] = 1
    # A frozen dataclass of this extractor's tunables, with their defaults; a TOML table
    # named after the extractor (e.g. `[shots]`) overrides them.
    Settings: ClassVar[type] = NoSettings
    # True for extractors that listen to the soundtrack: the scanner then decodes the audio
    # track in the same pass and calls `update_audio` with each chunk.
    USES_AUDIO: ClassVar[bool] = False
    # True for extractors that read `Frame.decoded` (thumbnails of every decoded frame, not
    # only the sampled ones): the source makes them only when some extractor asks.
    USES_DECODED_FRAMES: ClassVar[bool] = False

    def __init__(self, config: ScanConfig | None = None) -> None:
        self.config = config or ScanConfig()
        self.settings = self.config.settings_for(self.name, self.Settings)

    def reset(self, meta: VideoMeta) -> None:
        """Called before the first frame of each input; the default keeps the metadata."""
        self.meta = meta

    @abstractmethod
    def update(self, frame: Frame) -> None:
        """Take one sampled frame."""

    def update_audio(self, chunk: AudioChunk) -> None:
        """Take one chunk of the soundtrack (called only when USES_AUDIO is set).

        Chunks come in time order among themselves, interleaved with frames in no fixed
        order. The default, for video-only extractors, is to ignore them.
        """
        return None

    @abstractmethod
    def finalize(self) -> tuple[dict[str, float], list[Evidence]]:
        """Return every key in FEATURES (NaN where undefined) and the evidence found."""

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        return tuple(f"{cls.name}__{key}" for key in cls.FEATURES)
