"""Compact per-frame fingerprints for finding replayed footage inside one stream.

Each fingerprint is a 16x16 thumbnail of the blurred luma (256 bytes) plus its time. At the
default 5 fingerprints per second a 10-hour stream takes ~46 MB. Everything the loop search
needs is derived from these thumbnails:

- an *appearance* vector: the central part of the thumbnail, shrunk to 6x6 and normalised to
  zero mean and unit variance (brightness, contrast and most of gamma drop out);
- a *motion* vector: the change of that appearance over the last second, normalised. A still
  scene has no motion vector worth the name, so it can never anchor a repeat; a live room
  whose background never changes still has a unique motion pattern at every moment.

Disguises are handled at query time: mirrored variants are index permutations of the
thumbnail, a reversed replay negates the motion vector, crops and zooms are absorbed by the
coarse grid and then estimated in verification.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

THUMB_SIDE = 16
# The hashed appearance uses the central 12x12 cells of the 16x16 thumbnail: a crop of up to
# 12 % removes the border first, and overlays (comment boxes, price tags) sit near edges.
CENTRE = slice(2, 14)
DESCRIPTOR_SIDE = 6
MOTION_LAG_S = 1.0


def thumbnail(gray: np.ndarray) -> np.ndarray:
    """16x16 uint8 thumbnail of a luma frame, blurred first so re-encoding noise averages out."""
    import cv2

    h, w = gray.shape
    # Blur at roughly the scale of one output cell: keeps the thumbnail stable under small
    # shifts (crop offsets, rotation) instead of aliasing fine texture.
    small = cv2.resize(gray, (64, 64), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 2.0)
    return cv2.resize(small, (THUMB_SIDE, THUMB_SIDE), interpolation=cv2.INTER_AREA)


def normalise_rows(x: np.ndarray, floor: float = 1e-3) -> np.ndarray:
    """Zero-mean, unit-variance rows (float32)."""
    x = np.asarray(x, dtype=np.float32)
    x = x - x.mean(axis=-1, keepdims=True)
    std = x.std(axis=-1, keepdims=True)
    return x / np.maximum(std, floor)


def appearance(thumbs: np.ndarray) -> np.ndarray:
    """(n, 36) normalised appearance vectors from (n, 16, 16) thumbnails."""
    centre = thumbs[:, CENTRE, CENTRE].astype(np.float32)
    n = len(centre)
    if n == 0:
        return np.zeros((0, DESCRIPTOR_SIDE * DESCRIPTOR_SIDE), np.float32)
    # 12x12 -> 6x6 by 2x2 block sums (the normalisation makes sums and means the same;
    # four strided adds are several times faster than a reshaped mean on long streams).
    blocks = centre[:, 0::2, 0::2] + centre[:, 1::2, 0::2] + centre[:, 0::2, 1::2] + centre[:, 1::2, 1::2]
    return normalise_rows(blocks.reshape(n, -1))


def mirrored(thumbs: np.ndarray, transform: str) -> np.ndarray:
    """Thumbnails as they would look under `transform` (none, mirror, vflip, mirror+vflip)."""
    if transform == "none":
        return thumbs
    if transform == "mirror":
        return thumbs[:, :, ::-1]
    if transform == "vflip":
        return thumbs[:, ::-1, :]
    if transform == "mirror+vflip":
        return thumbs[:, ::-1, ::-1]
    raise ValueError(f"unknown transform {transform!r}")


@dataclass
class FingerprintStore:
    """Growing arrays of (time, thumbnail), kept under `max_count` by thinning old entries.

    Memory is bounded for streams of any length: when full, every other fingerprint older
    than the most recent half is dropped, so the distant past is kept at a coarser rate
    instead of being forgotten.
    """

    max_count: int = 400_000

    def __post_init__(self) -> None:
        self._t = np.zeros(1024, np.float64)
        self._thumbs = np.zeros((1024, THUMB_SIDE, THUMB_SIDE), np.uint8)
        self._n = 0
        self.thinned = 0

    def __len__(self) -> int:
        return self._n

    def add(self, t_s: float, thumb: np.ndarray) -> None:
        if self._n == len(self._t):
            if self._n >= self.max_count:
                self._thin()
            else:
                self._grow()
        self._t[self._n] = t_s
        self._thumbs[self._n] = thumb
        self._n += 1

    def _grow(self) -> None:
        size = min(len(self._t) * 2, self.max_count)
        t = np.zeros(size, np.float64)
        thumbs = np.zeros((size, THUMB_SIDE, THUMB_SIDE), np.uint8)
        t[: self._n] = self._t[: self._n]
        thumbs[: self._n] = self._thumbs[: self._n]
        self._t, self._thumbs = t, thumbs

    def _thin(self) -> None:
        half = self._n // 2
        keep = np.concatenate([np.arange(0, half, 2), np.arange(half, self._n)])
        m = len(keep)
        self._t[:m] = self._t[keep]
        self._thumbs[:m] = self._thumbs[keep]
        self.thinned += self._n - m
        self._n = m

    @property
    def times_s(self) -> np.ndarray:
        return self._t[: self._n]

    @property
    def thumbs(self) -> np.ndarray:
        return self._thumbs[: self._n]

    @property
    def nbytes(self) -> int:
        return self._t.nbytes + self._thumbs.nbytes
