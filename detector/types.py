"""The small value types every part of the pipeline shares."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class VideoMeta:
    """What the container declares. Declared values may lie; decoded truth is in DecodeStats."""

    location: str
    container_format: str
    codec: str
    width: int                      # coded size, before rotation
    height: int
    rotation_deg: int               # display rotation applied to every sampled frame
    declared_fps: float | None
    declared_duration_s: float | None
    declared_frames: int            # frame count in the header (0: not declared)
    is_stream: bool                 # a URL rather than a local file
    analysis_width: int             # size of Frame.gray / Frame.bgr after rotation and resize
    analysis_height: int
    encoder: str = ""
    has_audio: bool = False
    bit_rate: int | None = None


@dataclass(frozen=True, eq=False)
class DecodedThumb:
    """A tiny luma copy of one *decoded* frame (sampled or not): the only view extractors get
    of the frames between samples, where frame-rate conversion and jump cuts show."""

    t_s: float
    luma: np.ndarray                # float32, ~32 px wide, each pixel a block mean (low noise)


@dataclass(frozen=True, eq=False)
class Frame:
    """One sampled frame, already rotated and downscaled to the analysis size.

    `gray` (luma) is always there because it is almost free to get from the decoder;
    `bgr` is converted on first use only, so extractors that need colour pay for it once and
    the others never do.
    """

    index: int                      # position among *decoded* frames (internal; use t_s)
    t_s: float                      # presentation time from PTS, seconds from stream start
    gray: np.ndarray
    _bgr_factory: Callable[[], np.ndarray] | None = field(default=None, repr=False)
    # Thumbnails of every frame decoded since the previous sampled frame, this one last
    # (empty in triage mode, where only keyframes are decoded).
    decoded: tuple[DecodedThumb, ...] = ()

    @cached_property
    def bgr(self) -> np.ndarray:
        if self._bgr_factory is None:
            import cv2

            return cv2.cvtColor(self.gray, cv2.COLOR_GRAY2BGR)
        return self._bgr_factory()

    @cached_property
    def half(self) -> np.ndarray:
        """`gray` at half size, each pixel the rounded mean of a 2x2 block (INTER_AREA at an
        exact factor 2; an odd last row or column is dropped). Computed once, for every
        extractor that works at half size: `half_crop` gives the same pixels as halving a
        crop of `gray` that starts at even coordinates."""
        import cv2

        h, w = self.gray.shape[0] // 2, self.gray.shape[1] // 2
        return cv2.resize(self.gray[: 2 * h, : 2 * w], (w, h), interpolation=cv2.INTER_AREA)

    def half_crop(self, y0: int, x0: int, height: int, width: int) -> np.ndarray | None:
        """`cv2.resize(gray[y0:y0 + 2 * height, x0:x0 + 2 * width], (width, height), INTER_AREA)`
        read from the shared `half` (a view), or None when that would not be the same pixels
        (odd offsets, or outside the picture)."""
        if y0 % 2 or x0 % 2 or y0 < 0 or x0 < 0:
            return None
        half = self.half
        y, x = y0 // 2, x0 // 2
        if y + height > half.shape[0] or x + width > half.shape[1]:
            return None
        return half[y:y + height, x:x + width]

    @property
    def height(self) -> int:
        return int(self.gray.shape[0])

    @property
    def width(self) -> int:
        return int(self.gray.shape[1])


@dataclass(frozen=True, eq=False)
class AudioChunk:
    """A run of decoded audio, mixed down to mono, with the time of its first sample.

    `t_s` is on the same clock as `Frame.t_s` (seconds from the first video frame), taken
    from the audio packets' PTS; it may be slightly negative when the audio starts first.
    Consecutive chunks are contiguous unless the stream itself has a gap.
    """

    t_s: float
    rate_hz: int
    samples: np.ndarray             # float32, mono, nominally in [-1, 1]

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.rate_hz if self.rate_hz else 0.0


@dataclass(frozen=True)
class Evidence:
    """A span of the clip and the number behind a claim about it.

    `score` is in [0, 1], higher is more suspicious. For a repeat, `source_*` is the earlier
    span that `start_s..end_s` replays.
    """

    kind: str
    start_s: float
    end_s: float
    score: float
    source_start_s: float | None = None
    source_end_s: float | None = None
    detail: Mapping[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "start_s": round(self.start_s, 3),
            "end_s": round(self.end_s, 3),
            "score": round(float(self.score), 4),
            "source_start_s": None if self.source_start_s is None else round(self.source_start_s, 3),
            "source_end_s": None if self.source_end_s is None else round(self.source_end_s, 3),
            "detail": dict(self.detail),
        }
