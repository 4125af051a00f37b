"""Face and presenter cues: is a presenter on screen, and does their face behave like a face?

An `ai_driven` room shows a "digital human": a still portrait, or recycled presenter footage,
whose mouth is re-synthesised to follow new speech. What that does physically, and what we
measure for it:

* the mouth changes while the rest of the face is frozen -> temporal change of the mouth
  region vs. the upper face vs. the body, on *track-stabilised* patches (rigid head motion
  cancels, non-rigid change remains), in units of the sensor noise;
* the change is confined to a pasted patch -> mouth change vs. change of the cheeks and jaw
  beside it (a real jaw drop moves them; a pasted mouth leaves a still seam around itself);
* blinks are scripted -> blink events (the eye band loses its detail for 1-4 sampled frames
  and gets it back) and the regularity of their intervals (real blinks: coefficient of
  variation ~0.5-1);
* the head sways on a sine -> head-sway speed and the spectral peakiness of its velocity
  (a real head gives a broad velocity spectrum, a sine one sharp line);
* recycled footage with new lips -> the frame above the chin, lower face weighted out,
  repeats an earlier moment sharply (one earlier moment matches, the rest do not, over a
  span whose matched moments advance with time) while the mouth differs from the mouth at
  that moment: "mouth-only novelty";
* nobody is there -> share of time with a face; `no_presenter` evidence for long absences.

How the face is found, and what it costs. One Haar cascade bundled in OpenCV 4.x wheels
(`haarcascade_frontalface_alt2.xml`), loaded lazily once per process (and thread: a cascade is
not safe to share between threads). A full-frame search runs on a copy whose long side is
`detect_side_px` (160 px: faces down to ~40 px at the 320 px analysis size) and costs ~3-5 ms,
so it runs only while no face is tracked: at `search_hz` (1 Hz) at the start and for
`recent_loss_s` (20 s) after a face was lost, then at `idle_search_hz` (one every 3 s), and at
once when the picture changes abruptly (a cut back to the presenter). While a face is tracked,
every sampled frame follows it by normalised template matching in a window around the last
box (~0.03 ms), and a detection restricted to that window confirms the track at `confirm_hz`
(every 2 s, ~0.5 ms) and at once after a cut; a track that fails the template match, is
not confirmed after a cut, or stays unconfirmed for `max_unconfirmed_s` is dropped. The face
size is the median of the last 9 detections, so patches keep one scale. The rest works on a
40x40 face patch and a 24x16 body patch per sampled frame, and the recycled-footage search
runs at `descriptor_hz` (4 Hz) against `history_s` (10 minutes) of 64-float descriptors. CPU time of `update` per sampled frame at
the default 10 Hz, measured on this project's 2-core machine while other jobs ran (a 720p area
resize took 0.33 ms there, ~0.3 idle; the basic extractor took ~0.1 ms): ~0.3 ms with a face
on screen (about 0.12 of it the recycled-footage search), ~0.3 ms in the first 20 s without
one, ~0.17 ms averaged over a minute without one. Only a frontal-face cascade is used: a
presenter who stays in profile is "no face" here.

State is bounded: running sums, fixed-size rings (10 minutes of descriptors, ~7 MB at most),
and a few floats per blink and per descriptor sample.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from array import array
from collections import deque
from dataclasses import dataclass

import numpy as np

from detector.extractors.base import ColumnDoc, FeatureExtractor
from detector.types import Evidence, Frame, VideoMeta

log = logging.getLogger(__name__)

# -- geometry of the stabilised face patch ----------------------------------------------------
# The Haar box resampled to PATCH x PATCH pixels. Haar frontal boxes run from the brows to the
# chin: eyes at ~0.35 of the height, mouth at ~0.72-0.93 (measured on frontal portraits).
PATCH = 40


def _region(rows: tuple[float, float], cols: tuple[float, float]) -> tuple[slice, slice]:
    return (slice(round(rows[0] * PATCH), round(rows[1] * PATCH)),
            slice(round(cols[0] * PATCH), round(cols[1] * PATCH)))


_UPPER = _region((0.05, 0.62), (0.1, 0.9))      # forehead, eyes, nose: no mouth or jaw
_EYES = _region((0.25, 0.5), (0.1, 0.9))
_MOUTH = _region((0.68, 0.96), (0.24, 0.76))
_CHEEK_L = _region((0.62, 0.96), (0.03, 0.2))   # beside the mouth: a real jaw moves them
_CHEEK_R = _region((0.62, 0.96), (0.8, 0.97))
_BODY_SIZE = (24, 16)                            # body patch (w, h): 1.6 x 1.0 face boxes
_BODY_OFFSET = 1.55                              # its centre, in face heights below the face's

# Mouth window for recycled footage: cells on a lattice fixed to the frame (not to the face
# box, whose sub-pixel state differs between two showings of the same footage), ~w/16 px each.
_MOUTH_CELLS = (12, 7)
# A sharp match is never closer than this (luma levels x sqrt(pixels per cell)): a floor on
# the match noise so that bit-identical frames do not make any mouth difference look huge.
_MATCH_NOISE_FLOOR = 0.5

# Laplacian of white noise with std s has std s * sqrt(20) (kernel 0 1 0 / 1 -4 1 / 0 1 0).
_LAPLACE_NORM = math.sqrt(20.0)
# Mean absolute value of zero-mean Gaussian noise / its std.
_MEAN_ABS = math.sqrt(2.0 / math.pi)
# Regulariser of the motion ratios, in noise units: keeps them finite on a frozen face.
_RATIO_EPS = 0.25


@dataclass(frozen=True)
class FaceSettings:
    # -- finding and following the face ---------------------------------------------------------
    cascade: str = "haarcascade_frontalface_alt2.xml"
    # Long side of the copy searched for faces: the cascade's 20 px window then finds faces
    # down to 20/160 of the frame's long side (40 px at 320). Cost grows with its square.
    detect_side_px: int = 160
    search_hz: float = 1.0            # full searches per second while no face is tracked ...
    recent_loss_s: float = 20.0       # ... for this long after losing one (and at the start),
    idle_search_hz: float = 1 / 3     # then this rate;
    # A cut: a 32x32 grid of pixels changes this much (mean luma) between sampled frames.
    # Without a face it triggers a search at once; with one, a check that the face is there.
    cut_search_delta: float = 20.0
    confirm_hz: float = 0.5           # detections near the tracked face per second
    track_min_score: float = 0.5      # template correlation below which the face is gone
    template_refresh_score: float = 0.85   # below this the template is re-cut (appearance changed)
    max_unconfirmed_s: float = 4.5    # a track no detection confirms for this long is dropped
    # -- presenter ------------------------------------------------------------------------------
    no_presenter_min_s: float = 10.0  # absences this long become `no_presenter` evidence
    no_presenter_full_score_s: float = 60.0
    # -- mouth vs. face motion -------------------------------------------------------------------
    mouth_only_window_s: float = 5.0
    mouth_only_ratio: float = 5.0     # mouth change / upper-face change that flags a window ...
    mouth_only_min_motion: float = 2.0    # ... when the mouth moves at least this (noise units)
    # -- blinks ---------------------------------------------------------------------------------
    blink_max_s: float = 0.45         # longer eye-band excursions are not blinks (looking down)
    blink_k: float = 4.0              # eye detail dip: x the typical single-frame deviation ...
    blink_min_dip: float = 0.1        # ... and at least this share of the detail
    blink_min_events: int = 5         # fewer blinks: interval regularity is not measured
    blink_regular_cv: float = 0.3     # interval CV below this is `regular_blinks` evidence ...
    blink_evidence_min: int = 7       # ... over at least this many blinks (a CV from 4 intervals is noise)
    # -- head sway ------------------------------------------------------------------------------
    sway_window_s: float = 12.8       # spectrum window (50 % overlap) of the head velocity
    # -- recycled footage ------------------------------------------------------------------------
    descriptor_hz: float = 4.0
    history_s: float = 600.0          # how far back a repeat is searched (ring of descriptors)
    repeat_exclude_s: float = 5.0     # the last seconds are not "earlier moments"
    # A sharp match: nearest earlier distance <= repeat_ratio x the median earlier distance
    # and <= repeat_change_k x the frame's typical change between two samples.
    repeat_ratio: float = 0.3
    repeat_change_k: float = 1.5
    novelty_min: float = 0.4          # mean mouth novelty of a span that becomes evidence
    recycled_min_s: float = 2.0
    recycled_full_score_s: float = 10.0


class FaceExtractor(FeatureExtractor):
    name = "face"
    Settings = FaceSettings
    _NAN_NOTE = "; missing when no face was ever tracked"
    COLUMN_DOCS = {
        "presenter_share": ColumnDoc("share of the clip's time in which a face is tracked (low: no_presenter)", "share", "0-1", "live (low: no_presenter flag)"),
        "longest_absence_s": ColumnDoc("longest stretch without a face", "s", ">= 0", "no_presenter flag"),
        "face_size_mean": ColumnDoc("mean face-box width / frame width" + _NAN_NOTE, "share", "0-1", "context"),
        "box_size_cv": ColumnDoc("coefficient of variation of detected face-box widths (a real head moves to and from the camera)" + _NAN_NOTE, "ratio", ">= 0", "live"),
        "sway_speed_mean": ColumnDoc("mean speed of the face-box centre" + _NAN_NOTE, "box widths/s", ">= 0", "live"),
        "sway_speed_std": ColumnDoc("standard deviation of that speed" + _NAN_NOTE, "box widths/s", ">= 0", "live"),
        "sway_peakiness": ColumnDoc("share of the head-velocity spectrum (0.1-3 Hz) in its strongest 3 bins: a sine-like sway is peaky; missing when no track lasts one window (12.8 s)", "share", "0-1", "ai_driven"),
        "mouth_motion": ColumnDoc("mean change of the stabilised mouth region between sampled frames, in noise units (noise only ~1)" + _NAN_NOTE, "noise units", ">= 0", "context"),
        "upper_face_motion": ColumnDoc("same for the upper face (forehead, eyes, nose)" + _NAN_NOTE, "noise units", ">= 0", "live"),
        "body_motion": ColumnDoc("same for the body below the face; missing when it is out of frame or no face", "noise units", ">= 0", "live"),
        "mouth_upper_ratio": ColumnDoc("(mouth + 0.25) / (upper face + 0.25) motion: a mouth moving on a frozen face is high" + _NAN_NOTE, "ratio", ">= 0", "ai_driven"),
        "mouth_body_ratio": ColumnDoc("(mouth + 0.25) / (body + 0.25) motion; missing without a body region", "ratio", ">= 0", "ai_driven"),
        "mouth_upper_corr": ColumnDoc("correlation over time of mouth and upper-face motion (a real speaker moves both together)" + _NAN_NOTE, "correlation", "-1-1", "live"),
        "mouth_seam_ratio": ColumnDoc("(mouth + 0.25) / (cheeks beside the mouth + 0.25) motion: change confined to a pasted mouth patch is high" + _NAN_NOTE, "ratio", ">= 0", "ai_driven"),
        "mouth_only_share": ColumnDoc("share of tracked time in 5 s windows where the mouth moves (>= 2 noise units) and the upper face barely does (mouth_upper_ratio >= 5)" + _NAN_NOTE, "share", "0-1", "ai_driven"),
        "blink_rate_per_min": ColumnDoc("blinks per minute of tracked face; missing with under 5 s of face", "1/min", ">= 0", "context"),
        "blink_interval_cv": ColumnDoc("coefficient of variation of intervals between blinks (real ~0.5-1, scripted low); missing with under 5 blinks", "ratio", ">= 0", "live"),
        "upper_repeat_share": ColumnDoc("share of descriptor samples (4 Hz) in replayed spans: the frame above the chin, lower face weighted out, sharply repeats an earlier moment, at one lag, for >= ~1 s; missing without ~7 s of face", "share", "0-1", "looped / ai_driven"),
        "mouth_novelty_on_repeat": ColumnDoc("mean mouth novelty (0: same mouth as at the repeated moment, 1: clearly new) over those repeats; missing without repeats", "share", "0-1", "ai_driven"),
        "mouth_only_novelty": ColumnDoc("upper_repeat_share x mouth_novelty_on_repeat: recycled footage with a re-synthesised mouth; missing as upper_repeat_share", "share", "0-1", "ai_driven"),
    }
    FEATURES = tuple(COLUMN_DOCS)

    def reset(self, meta: VideoMeta) -> None:
        super().reset(meta)
        s = self.settings
        _cascade(s.cascade)                          # fail now, clearly, if it is missing
        rate = self.config.sample_fps or (meta.declared_fps or 30.0)
        self._tracker = _Tracker(s)
        self._presence = _Presence()
        self._motion = _Motion(s)
        self._blinks = _Blinks(s)
        self._sway = _Sway(max(32, round(s.sway_window_s * rate)), rate)
        self._recycle = _RecycleMatcher(s, rate)
        self._prev: tuple[np.ndarray, np.ndarray | None] | None = None
        self._last_t_s: float | None = None
        self._face_width_sum = 0.0
        self._face_frames = 0

    def update(self, frame: Frame) -> None:
        gray, t_s = frame.gray, frame.t_s
        dt_s = 0.0 if self._last_t_s is None else t_s - self._last_t_s
        self._last_t_s = t_s
        box, continuous = self._tracker.step(gray, t_s)
        self._presence.add(t_s, box is not None)
        if box is None:
            self._end_segment()
            return
        if not continuous:
            self._end_segment()
        self._face_width_sum += box.w / gray.shape[1]
        self._face_frames += 1
        face = _crop(gray, box.cx, box.cy, box.w, box.h, PATCH, PATCH).astype(np.float32)
        body = _body_patch(gray, box)
        if self._prev is not None and dt_s > 0:
            self._motion.add(t_s, face, body, *self._prev)
        self._blinks.add(t_s, face[_EYES])
        self._sway.add(box, dt_s if self._prev is not None else 0.0)
        self._recycle.add(t_s, gray, box, self._tracker)
        self._prev = (face, body)

    def _end_segment(self) -> None:
        """The face was lost or its track jumped: differences across the gap mean nothing."""
        if self._prev is not None:
            self._prev = None
            self._motion.end_window()
            self._blinks.end_segment()
            self._sway.end_segment()

    def finalize(self) -> tuple[dict[str, float], list[Evidence]]:
        s = self.settings
        self._end_segment()
        nan = math.nan
        presence = self._presence
        tracked = self._face_frames > 0
        features: dict[str, float] = {
            "presenter_share": presence.share(),
            "longest_absence_s": presence.longest_absence_s(),
            "face_size_mean": self._face_width_sum / self._face_frames if tracked else nan,
            "box_size_cv": self._tracker.size_cv() if tracked else nan,
        }
        features.update(self._sway.features() if tracked else dict.fromkeys(_Sway.KEYS, nan))
        features.update(self._motion.features() if tracked else dict.fromkeys(_Motion.KEYS, nan))
        features.update(self._blinks.features(presence.present_s) if tracked else dict.fromkeys(_Blinks.KEYS, nan))
        features.update(self._recycle.features() if tracked else dict.fromkeys(_RecycleMatcher.KEYS, nan))
        evidence = presence.evidence(s)
        evidence += self._motion.evidence()
        evidence += self._blinks.evidence()
        evidence += self._recycle.evidence()
        return {k: float(features[k]) for k in self.FEATURES}, evidence


# -- the cascade --------------------------------------------------------------------------------

_local = threading.local()


def _cascade(name: str):
    """The named bundled cascade, loaded once per process and thread."""
    cache = getattr(_local, "cascades", None)
    if cache is None:
        cache = _local.cascades = {}
    if name not in cache:
        import cv2

        path = os.path.join(cv2.data.haarcascades, name)
        classifier = cv2.CascadeClassifier(path)
        if classifier.empty():
            raise RuntimeError(f"cannot load the face cascade {path!r}: opencv-python(-headless) 4.x bundles it, 5.x does not")
        log.debug("loaded face cascade %s", path)
        cache[name] = classifier
    return cache[name]


def _crop(gray: np.ndarray, cx: float, cy: float, w: float, h: float, out_w: int, out_h: int) -> np.ndarray:
    """A w x h window centred (sub-pixel) at (cx, cy), area-resampled to out_w x out_h.
    Outside the frame the border is replicated (a face leaving the frame stops matching)."""
    import cv2

    patch = cv2.getRectSubPix(gray, (max(2, int(round(w))), max(2, int(round(h)))), (float(cx), float(cy)))
    return cv2.resize(patch, (out_w, out_h), interpolation=cv2.INTER_AREA)


def _body_patch(gray: np.ndarray, box: "_Box") -> np.ndarray | None:
    cy = box.cy + _BODY_OFFSET * box.h
    if cy + 0.1 * box.h > gray.shape[0]:            # mostly below the frame
        return None
    return _crop(gray, box.cx, cy, 1.6 * box.w, box.h, *_BODY_SIZE).astype(np.float32)


# -- tracking ---------------------------------------------------------------------------------

@dataclass
class _Box:
    cx: float
    cy: float
    w: float
    h: float


class _Tracker:
    """One face: found by the cascade, followed by template matching, confirmed now and then."""

    T = 24            # template side (px); sub-pixel peak refinement gives ~0.1 px of it
    ANCHOR_SCORE = 0.8
    MARGIN = 0.3      # search window margin, in box sizes, per sampled frame

    def __init__(self, s: FaceSettings):
        self.s = s
        self.box: _Box | None = None
        self.template: np.ndarray | None = None
        self.template_w = 0.0
        self.anchor: np.ndarray | None = None
        self.anchor_w = 0.0
        self.lost_t_s: float | None = None          # None: not started (counts as recent)
        self.last_search_t_s = -math.inf
        self.last_check_t_s = -math.inf
        self.last_confirm_t_s = -math.inf
        self.search_thumb: np.ndarray | None = None
        self.thumb: np.ndarray | None = None           # previous frame's, to notice cuts
        self.score_ema: float | None = None
        self.size_n, self.size_sum, self.size_sq = 0, 0.0, 0.0
        self.widths: deque[float] = deque(maxlen=9)
        self.long_widths: deque[float] = deque(maxlen=101)
        # A face size for descriptors that must not move: the first one, replaced only when
        # the median of the last ~100 detections leaves it by 25 % (the presenter moved).
        self.fixed_size = 0.0
        self.searches = 0

    def step(self, gray: np.ndarray, t_s: float) -> tuple[_Box | None, bool]:
        """The face box at this frame (None: no face) and whether it continues the last one."""
        import cv2

        if self.lost_t_s is None:
            self.lost_t_s = t_s
        thumb = _thumbnail(gray)
        cut = (self.thumb is not None
               and float(cv2.norm(thumb, self.thumb, cv2.NORM_L1)) / thumb.size > self.s.cut_search_delta)
        self.thumb = thumb
        if self.box is not None and not self._follow(gray):
            self._lose(t_s)
        continuous = self.box is not None
        if self.box is not None:
            # A cut may land the template on a look-alike patch of the new scene: check now.
            if cut or t_s - self.last_check_t_s >= 1.0 / self.s.confirm_hz:
                self.last_check_t_s = t_s
                found, snapped = self._confirm(gray, t_s)
                continuous = continuous and not snapped
                if cut and not found:
                    self._lose(t_s)
            if self.box is not None and t_s - self.last_confirm_t_s > self.s.max_unconfirmed_s:
                self._lose(t_s)
        elif self._search_due(gray, t_s):
            found = self._search(gray, t_s)
            if found is not None:
                self._start(gray, found, t_s)
        return self.box, continuous and self.box is not None

    # -- no face: search ------------------------------------------------------------------------
    def _search_due(self, gray: np.ndarray, t_s: float) -> bool:
        import cv2

        recent = t_s - self.lost_t_s <= self.s.recent_loss_s
        interval = 1.0 / (self.s.search_hz if recent else self.s.idle_search_hz)
        if t_s - self.last_search_t_s >= interval:
            return True
        # A cut (the camera back on the presenter) is worth a search now; cheap to check.
        if self.search_thumb is None or t_s - self.last_search_t_s < 0.25:
            return False
        return float(cv2.norm(self.thumb, self.search_thumb, cv2.NORM_L1)) / self.thumb.size > self.s.cut_search_delta

    def _search(self, gray: np.ndarray, t_s: float) -> _Box | None:
        import cv2

        self.last_search_t_s = t_s
        self.searches += 1
        self.search_thumb = self.thumb
        scale = min(1.0, self.s.detect_side_px / max(gray.shape))
        small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else gray
        faces = _cascade(self.s.cascade).detectMultiScale(small, scaleFactor=1.15, minNeighbors=2, minSize=(20, 20))
        if len(faces) == 0:
            return None
        x, y, w, h = max(faces, key=lambda f: f[2] * f[3])     # the presenter: the largest face
        return _Box((x + w / 2) / scale, (y + h / 2) / scale, w / scale, h / scale)

    def _start(self, gray: np.ndarray, box: _Box, t_s: float) -> None:
        self._record_size(box.w)
        box.w = box.h = self._size()
        self.box = box
        self._cut_template(gray)
        self.last_check_t_s = self.last_confirm_t_s = t_s

    def _lose(self, t_s: float) -> None:
        self.box = self.template = self.score_ema = None
        self.lost_t_s = t_s
        self.last_search_t_s = -math.inf            # look again at once: it may have jumped

    # -- a face: follow and confirm ---------------------------------------------------------------
    # The template is the upper 60 % of the box (hair, brows, eyes, nose): the rigid part of
    # a head. A talking mouth and jaw would pull a whole-face match by a pixel or so, and so
    # would a re-synthesised mouth; the track must not depend on the mouth.
    TOP, TALL = -0.2, 0.6       # template centre offset and height, in box heights

    def _cut_template(self, gray: np.ndarray) -> None:
        b, T = self.box, self.T
        self.template = _crop(gray, b.cx, b.cy + self.TOP * b.h, b.w, self.TALL * b.h, T, round(self.TALL * T))
        self.template_w = b.w
        if self.anchor is None:
            self.anchor, self.anchor_w = self.template, b.w

    def _follow(self, gray: np.ndarray) -> bool:
        import cv2

        b, T = self.box, self.T
        tall = round(self.TALL * T)
        margin = round(self.MARGIN * T)
        unit_x, unit_y = b.w / T, self.TALL * b.h / tall          # analysis px per template px
        window = _crop(gray, b.cx, b.cy + self.TOP * b.h, (T + 2 * margin) * unit_x, (tall + 2 * margin) * unit_y,
                       T + 2 * margin, tall + 2 * margin)
        result = cv2.matchTemplate(window, self.template, cv2.TM_CCOEFF_NORMED)
        _, score, _, (px, py) = cv2.minMaxLoc(result)
        # Gone: a poor match, or one far below this face's usual match (also NaN: flat window).
        if not (score >= self.s.track_min_score and score >= (self.score_ema or 0.0) - 0.25):
            return False
        self.score_ema = score if self.score_ema is None else self.score_ema + 0.1 * (score - self.score_ema)
        dx = px + _peak_offset(result[py, max(px - 1, 0):px + 2], px) - margin
        dy = py + _peak_offset(result[max(py - 1, 0):py + 2, px], py) - margin
        b.cx += dx * unit_x
        b.cy += dy * unit_y
        if score < self.s.template_refresh_score:
            self._cut_template(gray)
        return True

    def anchored_centre(self, gray: np.ndarray) -> tuple[float, float]:
        """The face centre refined against the anchor (the first template of the clip, never
        re-cut) when the face looks like it; the box's own centre otherwise. The running
        template is re-cut as the face changes, so the track can drift by a pixel or so,
        differently in two showings of the same footage; the anchor gives both showings the
        same position. (Only the recycled-footage descriptors need this; the box is left
        alone, so that motion measurements see no jumps.)"""
        import cv2

        b, T = self.box, self.T
        if self.anchor is None or abs(b.w / self.anchor_w - 1) > 0.1:
            return b.cx, b.cy
        tall = self.anchor.shape[0]
        margin = 3
        unit_x, unit_y = self.anchor_w / T, self.TALL * self.anchor_w / tall
        # Offsets in the anchor's own size, so that the position is a fixed point of the face
        # whatever the current size estimate.
        window = _crop(gray, b.cx, b.cy + self.TOP * self.anchor_w, (T + 2 * margin) * unit_x,
                       (tall + 2 * margin) * unit_y, T + 2 * margin, tall + 2 * margin)
        result = cv2.matchTemplate(window, self.anchor, cv2.TM_CCOEFF_NORMED)
        _, score, _, (px, py) = cv2.minMaxLoc(result)
        if not score >= self.ANCHOR_SCORE or not (0 < px < 2 * margin and 0 < py < 2 * margin):
            return b.cx, b.cy
        return (b.cx + (px + _peak_offset(result[py, px - 1:px + 2], px) - margin) * unit_x,
                b.cy + (py + _peak_offset(result[py - 1:py + 2, px], py) - margin) * unit_y)

    def _confirm(self, gray: np.ndarray, t_s: float) -> tuple[bool, bool]:
        """Look for the face near the box; snap to it if the track drifted.
        Returns (found, snapped)."""

        b = self.box
        grow = 1.7
        scale = min(1.0, 28.0 / b.w)                  # the cascade's best size: ~28 px
        side = max(24, round(b.w * grow * scale))
        window = _crop(gray, b.cx, b.cy, b.w * grow, b.h * grow, side, side)
        expected = b.w * scale
        smallest = max(20, int(0.75 * expected))
        faces = _cascade(self.s.cascade).detectMultiScale(
            window, scaleFactor=1.1, minNeighbors=2,
            minSize=(smallest, smallest), maxSize=(max(smallest + 1, int(1.35 * expected) + 1),) * 2)
        if len(faces) == 0:
            return False, False
        centre = side / 2
        x, y, w, h = min(faces, key=lambda f: (f[0] + f[2] / 2 - centre) ** 2 + (f[1] + f[3] / 2 - centre) ** 2)
        unit = b.w * grow / side                      # analysis px per window px
        found = _Box(b.cx + (x + w / 2 - centre) * unit, b.cy + (y + h / 2 - centre) * unit, w * unit, h * unit)
        self.last_confirm_t_s = t_s
        self._record_size(found.w)
        drift = math.hypot(found.cx - b.cx, found.cy - b.cy) / b.w
        b.w = b.h = self._size()
        if drift > 0.25:
            b.cx, b.cy = found.cx, found.cy
            self._cut_template(gray)
            return True, True
        if abs(b.w / self.template_w - 1) > 0.05:
            self._cut_template(gray)
        return True, False

    def _size(self) -> float:
        """The face size used: the median of the last few detections. A single Haar box is
        +-15 % off; the median keeps patches, masks and descriptors at one scale, also
        across a lost and re-found track (two showings of the same footage then agree)."""
        widths = sorted(self.widths)
        return widths[len(widths) // 2]

    def _record_size(self, w: float) -> None:
        self.widths.append(w)
        self.long_widths.append(w)
        recent = sorted(self.long_widths)[len(self.long_widths) // 2]
        if not self.fixed_size or abs(recent / self.fixed_size - 1) > 0.25:
            self.fixed_size = recent
        self.size_n += 1
        self.size_sum += w
        self.size_sq += w * w

    def size_cv(self) -> float:
        if self.size_n < 2:
            return math.nan
        mean = self.size_sum / self.size_n
        return math.sqrt(max(self.size_sq / self.size_n - mean * mean, 0.0)) / mean


def _thumbnail(gray: np.ndarray) -> np.ndarray:
    """A 32 x 32 grid of single pixels, for noticing cuts: their mean absolute change over
    1024 points is steady under sensor noise (~2-3 levels) and jumps at a cut, and sampling
    costs a few microseconds where block means would cost ~15."""
    height, width = gray.shape
    sy, sx = max(1, height // 32), max(1, width // 32)
    return np.ascontiguousarray(gray[sy // 2::sy, sx // 2::sx][:32, :32])


def _peak_offset(values: np.ndarray, index: int) -> float:
    """Sub-pixel offset of a correlation peak from a parabola through it and its neighbours."""
    if len(values) != 3 or index == 0:
        return 0.0
    left, mid, right = values.tolist()
    denom = left - 2 * mid + right
    return 0.0 if denom >= 0 else max(-0.5, min(0.5, 0.5 * (left - right) / denom))


# -- presence ---------------------------------------------------------------------------------

class _Presence:
    """Time with and without a face; every absence as a span."""

    def __init__(self) -> None:
        self.first_t_s: float | None = None
        self.last_t_s = 0.0
        self.present_s = 0.0
        self.absent_since: float | None = None
        self.absences: list[tuple[float, float]] = []     # only the long ones are kept
        self.longest_s = 0.0

    def add(self, t_s: float, present: bool) -> None:
        if self.first_t_s is None:
            self.first_t_s = t_s
        elif present:
            self.present_s += t_s - self.last_t_s
        self.last_t_s = t_s
        if not present and self.absent_since is None:
            self.absent_since = t_s
        elif present and self.absent_since is not None:
            self._close(t_s)

    def _close(self, end_s: float) -> None:
        start_s, self.absent_since = self.absent_since, None
        self.longest_s = max(self.longest_s, end_s - start_s)
        if end_s - start_s >= 1.0:
            self.absences.append((start_s, end_s))

    def share(self) -> float:
        span = self.last_t_s - (self.first_t_s or 0.0)
        if self.first_t_s is None:
            return math.nan
        if span <= 0:
            return 1.0 if self.absent_since is None else 0.0
        return min(1.0, self.present_s / span)

    def longest_absence_s(self) -> float:
        if self.absent_since is not None:
            self._close(self.last_t_s)
        return self.longest_s if self.first_t_s is not None else math.nan

    def evidence(self, s: FaceSettings) -> list[Evidence]:
        if self.absent_since is not None:
            self._close(self.last_t_s)
        return [
            Evidence("no_presenter", a, b, min(1.0, (b - a) / s.no_presenter_full_score_s),
                     detail={"duration_s": round(b - a, 2)})
            for a, b in self.absences if b - a >= s.no_presenter_min_s
        ]


# -- motion of mouth, upper face, cheeks and body ---------------------------------------------------

def _noise_sigma(diff: np.ndarray) -> float:
    """Std of the noise in a difference image, robust to the (sparse, smooth) real change:
    median absolute Laplacian (on every other pixel), which structured change barely moves."""
    import cv2

    lap = np.abs(cv2.Laplacian(diff, cv2.CV_32F, ksize=1)[::2, ::2]).ravel()
    half = lap.size // 2
    return 1.4826 * float(np.partition(lap, half)[half]) / _LAPLACE_NORM


def _change(diff: np.ndarray) -> float:
    """Mean absolute change, ignoring a uniform brightness shift (auto-exposure).
    (cv2.mean: numpy's mean costs ~20 us of overhead per call on these tiny arrays.)"""
    import cv2

    return cv2.mean(cv2.absdiff(diff, cv2.mean(diff)[0]))[0]


class _RunningNoise:
    """Noise level of patch differences, re-estimated every few frames (it drifts slowly and
    a robust estimate costs more than the rest of the motion measurement)."""

    EVERY = 3

    def __init__(self) -> None:
        self.sigma = 1.0
        self.n = 0
        self.calls = 0

    def update(self, diff: np.ndarray) -> float:
        if self.calls % self.EVERY == 0:
            self.n += 1
            self.sigma += (max(0.5, _noise_sigma(diff)) - self.sigma) / min(self.n, 10)
        self.calls += 1
        return self.sigma


class _Motion:
    KEYS = ("mouth_motion", "upper_face_motion", "body_motion", "mouth_upper_ratio", "mouth_body_ratio",
            "mouth_upper_corr", "mouth_seam_ratio", "mouth_only_share")

    def __init__(self, s: FaceSettings):
        self.s = s
        self.face_noise, self.body_noise = _RunningNoise(), _RunningNoise()
        self.n = 0
        self.mouth = self.upper = self.cheeks = 0.0
        self.mm = self.uu = self.mu = 0.0
        self.body_n = 0
        self.body = self.body_mouth = 0.0
        self.time_s = 0.0
        self.windows: list[list[float]] = []    # merged flagged spans [start, end, mouth, upper, n]
        self.flagged_s = 0.0
        self._window_reset(None)

    def _window_reset(self, t_s: float | None) -> None:
        self.w_start, self.w_last, self.w_n, self.w_mouth, self.w_upper = t_s, t_s, 0, 0.0, 0.0

    def add(self, t_s, face, body, prev_face, prev_body) -> None:
        diff = face - prev_face
        unit = _MEAN_ABS * self.face_noise.update(diff)
        mouth = _change(diff[_MOUTH]) / unit
        upper = _change(diff[_UPPER]) / unit
        cheeks = 0.5 * (_change(diff[_CHEEK_L]) + _change(diff[_CHEEK_R])) / unit
        self.n += 1
        self.mouth += mouth
        self.upper += upper
        self.cheeks += cheeks
        self.mm += mouth * mouth
        self.uu += upper * upper
        self.mu += mouth * upper
        if body is not None and prev_body is not None:
            body_diff = body - prev_body
            body_unit = _MEAN_ABS * self.body_noise.update(body_diff)
            self.body_n += 1
            self.body += _change(body_diff) / body_unit
            self.body_mouth += mouth
        self._window_add(t_s, mouth, upper)

    def _window_add(self, t_s: float, mouth: float, upper: float) -> None:
        if self.w_start is None:
            self._window_reset(t_s)
        self.time_s += t_s - self.w_last if self.w_n else 0.0
        self.w_last = t_s
        self.w_n += 1
        self.w_mouth += mouth
        self.w_upper += upper
        if t_s - self.w_start >= self.s.mouth_only_window_s:
            self.end_window()

    def end_window(self) -> None:
        """Judge the current window: does the mouth move while the upper face does not?"""
        n = self.w_n
        if n >= 5:
            mouth, upper = self.w_mouth / n, self.w_upper / n
            ratio = (mouth + _RATIO_EPS) / (upper + _RATIO_EPS)
            if mouth >= self.s.mouth_only_min_motion and ratio >= self.s.mouth_only_ratio:
                self.flagged_s += self.w_last - self.w_start
                last = self.windows[-1] if self.windows else None
                if last is not None and self.w_start - last[1] <= 0.5:
                    last[1], last[2], last[3], last[4] = self.w_last, last[2] + self.w_mouth, last[3] + self.w_upper, last[4] + n
                else:
                    self.windows.append([self.w_start, self.w_last, self.w_mouth, self.w_upper, n])
        self._window_reset(None)

    def features(self) -> dict[str, float]:
        nan = math.nan
        n = self.n
        if n == 0:
            return dict.fromkeys(self.KEYS, nan)
        mouth, upper, cheeks = self.mouth / n, self.upper / n, self.cheeks / n
        var_m, var_u = self.mm / n - mouth ** 2, self.uu / n - upper ** 2
        corr = (self.mu / n - mouth * upper) / math.sqrt(var_m * var_u) if n > 2 and var_m > 1e-9 and var_u > 1e-9 else nan
        body = self.body / self.body_n if self.body_n else nan
        body_mouth = self.body_mouth / self.body_n if self.body_n else nan
        return {
            "mouth_motion": mouth,
            "upper_face_motion": upper,
            "body_motion": body,
            "mouth_upper_ratio": (mouth + _RATIO_EPS) / (upper + _RATIO_EPS),
            "mouth_body_ratio": (body_mouth + _RATIO_EPS) / (body + _RATIO_EPS) if self.body_n else nan,
            "mouth_upper_corr": max(-1.0, min(1.0, corr)),
            "mouth_seam_ratio": (mouth + _RATIO_EPS) / (cheeks + _RATIO_EPS),
            "mouth_only_share": min(1.0, self.flagged_s / self.time_s) if self.time_s > 0 else nan,
        }

    def evidence(self) -> list[Evidence]:
        out = []
        for start_s, end_s, mouth, upper, n in self.windows:
            mouth, upper = mouth / n, upper / n
            ratio = (mouth + _RATIO_EPS) / (upper + _RATIO_EPS)
            out.append(Evidence("mouth_only_motion", start_s, end_s, min(1.0, ratio / (2 * self.s.mouth_only_ratio)),
                                detail={"mouth_motion": round(mouth, 2), "upper_face_motion": round(upper, 2),
                                        "ratio": round(ratio, 2)}))
        return out


# -- blinks ---------------------------------------------------------------------------------

class _Blinks:
    """Blink events: the eye band loses detail for 1-4 sampled frames (<= `blink_max_s`)
    while the frames just before and just after keep it.

    Detail is the mean absolute gradient of the stabilised eye band: an open eye (iris,
    sclera, lashes) is full of edges, a closed lid is smooth skin. Unlike the band's picture,
    its detail barely changes when the head turns or nods, and bracketing the dip by its
    neighbours makes slow changes (lighting, distance) cancel. A dip must exceed `blink_k`
    times the running typical deviation of one frame from its neighbours' midpoint, and
    `blink_min_dip` of the detail, and be larger than the before/after difference.
    """

    KEYS = ("blink_rate_per_min", "blink_interval_cv")
    MAX_FRAMES = 4        # longest closure considered, in sampled frames

    def __init__(self, s: FaceSettings):
        self.s = s
        self.times = array("d")            # blink onsets
        self.segments = array("l")         # which continuous track each belongs to
        self.segment = 0
        self.end_segment()

    def end_segment(self) -> None:
        self.segment += 1
        self.buffer: deque[tuple[float, float]] = deque(maxlen=self.MAX_FRAMES + 2)
        self.typical: float | None = None
        self.typical_n = 0
        self.last_blink_end_s = -math.inf

    def add(self, t_s: float, eyes: np.ndarray) -> None:
        import cv2

        detail = cv2.mean(cv2.absdiff(eyes[1:, :], eyes[:-1, :]))[0] + cv2.mean(cv2.absdiff(eyes[:, 1:], eyes[:, :-1]))[0]
        self.buffer.append((t_s, detail))
        if len(self.buffer) < 3 or detail <= 0:
            return
        threshold = math.inf
        if self.typical is not None and self.typical_n >= 5:
            threshold = max(self.s.blink_k * self.typical, self.s.blink_min_dip)
        for frames in range(1, min(self.MAX_FRAMES, len(self.buffer) - 2) + 1):
            first_t, last_t = self.buffer[-1 - frames][0], self.buffer[-2][0]
            if first_t <= self.last_blink_end_s or last_t - first_t > self.s.blink_max_s:
                break
            dip, bracket = self._dip(frames)
            if dip > threshold and dip > 2.0 * bracket:
                self.times.append(first_t)
                self.segments.append(self.segment)
                self.last_blink_end_s = last_t
                return
        single = abs(self._dip(1)[0])
        if single < threshold:          # ordinary frames set the typical deviation
            self.typical_n += 1
            rate = 1.0 / min(self.typical_n, 20)
            self.typical = single if self.typical is None else self.typical + rate * (single - self.typical)

    def _dip(self, frames: int) -> tuple[float, float]:
        """(relative drop of the least detailed of the last `frames` middle samples below the
        midpoint of the samples that bracket them, relative before/after difference)."""
        before, after = self.buffer[-2 - frames][1], self.buffer[-1][1]
        midpoint = 0.5 * (before + after)
        lowest = min(self.buffer[-1 - i][1] for i in range(1, frames + 1))
        return (midpoint - lowest) / midpoint, abs(after - before) / midpoint

    def _intervals(self) -> np.ndarray:
        times, segs = np.asarray(self.times), np.asarray(self.segments)
        if len(times) < 2:
            return np.empty(0)
        same = segs[1:] == segs[:-1]
        return np.diff(times)[same]

    def interval_cv(self) -> float:
        intervals = self._intervals()
        if len(self.times) < self.s.blink_min_events or len(intervals) < self.s.blink_min_events - 1:
            return math.nan
        return float(intervals.std() / intervals.mean())

    def features(self, present_s: float) -> dict[str, float]:
        rate = 60.0 * len(self.times) / present_s if present_s >= 5.0 else math.nan
        return {"blink_rate_per_min": rate, "blink_interval_cv": self.interval_cv()}

    def evidence(self) -> list[Evidence]:
        cv = self.interval_cv()
        if not cv < self.s.blink_regular_cv or len(self.times) < self.s.blink_evidence_min:
            return []
        intervals = self._intervals()
        return [Evidence("regular_blinks", float(self.times[0]), float(self.times[-1]),
                         max(0.0, min(1.0, 1.0 - cv / (2 * self.s.blink_regular_cv))),
                         detail={"blinks": len(self.times), "interval_cv": round(cv, 3),
                                 "interval_mean_s": round(float(intervals.mean()), 3)})]


# -- head sway ------------------------------------------------------------------------------

class _Sway:
    """Speed of the face-box centre and how concentrated its velocity spectrum is (Welch)."""

    KEYS = ("sway_speed_mean", "sway_speed_std", "sway_peakiness")

    def __init__(self, window_n: int, rate_hz: float):
        self.window_n, self.rate_hz = window_n, rate_hz
        self.n, self.speed, self.speed_sq = 0, 0.0, 0.0
        self.spectrum = np.zeros(window_n // 2 + 1)
        self.windows = 0
        self.taper = np.hanning(window_n)
        self.buffer: list[tuple[float, float]] = []
        self.prev: tuple[float, float] | None = None

    def end_segment(self) -> None:
        self.buffer.clear()
        self.prev = None

    def add(self, box: _Box, dt_s: float) -> None:
        if self.prev is not None and dt_s > 0:
            vx = (box.cx - self.prev[0]) / box.w / dt_s
            vy = (box.cy - self.prev[1]) / box.w / dt_s
            speed = math.hypot(vx, vy)
            self.n += 1
            self.speed += speed
            self.speed_sq += speed * speed
            self.buffer.append((vx, vy))
            if len(self.buffer) == self.window_n:
                self._add_window()
        self.prev = (box.cx, box.cy)

    def _add_window(self) -> None:
        v = np.asarray(self.buffer)
        v = (v - v.mean(axis=0)) * self.taper[:, None]
        power = np.abs(np.fft.rfft(v, axis=0)) ** 2
        self.spectrum += power.sum(axis=1)
        self.windows += 1
        del self.buffer[: self.window_n // 2]

    def features(self) -> dict[str, float]:
        nan = math.nan
        mean = self.speed / self.n if self.n else nan
        std = math.sqrt(max(self.speed_sq / self.n - mean * mean, 0.0)) if self.n > 1 else nan
        peakiness = nan
        if self.windows:
            freqs = np.fft.rfftfreq(self.window_n, 1.0 / self.rate_hz)
            band = self.spectrum[(freqs >= 0.1) & (freqs <= min(3.0, self.rate_hz / 2))]
            total = float(band.sum())
            if len(band) >= 3 and total > 0:
                peakiness = float(np.convolve(band, np.ones(3), "valid").max() / total)
        return {"sway_speed_mean": mean, "sway_speed_std": std, "sway_peakiness": peakiness}


# -- recycled footage with a new mouth -----------------------------------------------------------

class _RecycleMatcher:
    """Does the frame, lower face weighted out, repeat an earlier moment while the mouth does not?

    At `descriptor_hz`, the frame as ~256 square cell means in frame coordinates (the
    tracker's state cannot make two showings of the same footage differ), centred on their
    median (brightness shifts), scaled to pixel noise, with the lower face and jaw (what a
    lip-sync model re-synthesises) and everything below the chin (where live rooms scroll
    their comments) weighted out around a face position and a face size that stay put, then
    randomly projected to 64 dimensions.
    Each query is compared with every stored sample and with the segment between consecutive
    samples (linear interpolation: the replayed moment usually falls between two of them).

    A sample is a sharp match when its nearest earlier moment (older than `repeat_exclude_s`)
    is (a) within `repeat_ratio` of the median earlier distance (a still scene matches
    everything equally, so it repeats nothing) and (b) within `repeat_change_k` of how much
    the frame typically changes between two samples (80th percentile of recent medians over
    cells). A *repeat* is a run of at least MIN_RUN sharp matches at one lag whose matched
    moments advance with time (a pose that happens to resemble a stretch is not a replay).
    Lags point at the first showing: a match on a copy that was itself a sharp match inherits
    that copy's source, so a clip replayed twice is one span at one lag.

    The mouth is kept for every sampled frame (it moves too fast to interpolate) as 12 x 7
    cells of ~w/16 px on a lattice fixed to the frame, so two showings of the same footage
    compare the very same pixels. Mouth novelty = clip((r - 1) / 2, 0, 1), where r is the
    distance from the mouth now to the closest stored mouth within a frame or so of the
    matched moment, over the frame's match distance: an untouched replay matches its mouth
    about as well as the rest (r ~0.5, rarely above 1); a re-synthesised one does not.
    """

    KEYS = ("upper_repeat_share", "mouth_novelty_on_repeat", "mouth_only_novelty")
    MIN_HISTORY = 8
    MIN_RUN = 4           # samples (~1 s) in a replayed span
    MOUTH_WINDOW_S = 0.12
    CANDIDATES = 16       # nearest samples whose neighbouring segments are measured
    LAG_TOLERANCE_S = 0.3 # a replay keeps its lag (interpolated matches are ~0.05 s precise)
    GRID_CELLS = 256
    # Stored grids are randomly projected to this many dimensions (distances kept within
    # ~20 %, Johnson-Lindenstrauss): the search over 10 minutes then costs ~0.1 ms.
    PROJECTED = 64
    CHANGE_WINDOW = 16    # recent per-sample change estimates (~4 s)

    def __init__(self, s: FaceSettings, rate_hz: float):
        self.s = s
        self.cap = max(self.MIN_HISTORY + 1, math.ceil(s.history_s * s.descriptor_hz) + 1)
        self.times = np.full(self.cap, math.inf)
        self.roots = np.full(self.cap, math.inf)         # time of the first showing of each sample
        self.norms = np.zeros(self.cap, np.float32)      # squared norm of each stored grid
        self.steps = np.zeros(self.cap, np.float32)      # squared distance to its predecessor
        self.has_prev = np.zeros(self.cap, bool)         # slot - 1 holds its predecessor
        self.prev = (np.arange(self.cap) - 1) % self.cap
        self.grid: np.ndarray | None = None              # (cap, cells), allocated on first use
        self.shape: tuple[int, int, int, int, int] | None = None   # cols, rows, cell px, x/y offset
        self.count = 0
        self.last_t_s = -math.inf
        self.last_grid: np.ndarray | None = None
        self.last_mask: np.ndarray | None = None
        self.last_cells: np.ndarray | None = None
        self.projection: np.ndarray | None = None
        self.cells_n = 1.0                               # effective cells of the last grid
        self.change_recent: deque[float] = deque(maxlen=self.CHANGE_WINDOW)
        self.mouth_cap = math.ceil(s.history_s * max(rate_hz, s.descriptor_hz) * 1.2) + 1
        self.mouth_times = np.full(self.mouth_cap, math.inf)
        self.mouth = np.zeros((self.mouth_cap, _MOUTH_CELLS[1], _MOUTH_CELLS[0]), np.float32)
        self.mouth_origin = np.zeros((self.mouth_cap, 2), np.int32)   # window origin, in cells
        self.mouth_cell_px = 0                                          # fixed for the clip
        self.mouth_count = 0
        # One record per queried sample: time, nearest/median, nearest/change, lag to the
        # first showing, mouth novelty.
        self.rec_t, self.rec_ratio, self.rec_change_ratio = array("d"), array("f"), array("f")
        self.rec_lag, self.rec_novelty = array("f"), array("f")

    def add(self, t_s: float, gray: np.ndarray, box: _Box, tracker: _Tracker) -> None:
        """The frame descriptor is placed by the tracker's anchored centre and fixed size:
        it must not depend on the box's own state, which differs by a pixel or a few % between
        two showings of the same footage."""
        if not self.mouth_cell_px:
            self.mouth_cell_px = max(2, round(box.w / 16))
        mouth = _mouth_window(gray, box, self.mouth_cell_px)
        slot = self.mouth_count % self.mouth_cap
        self.mouth_times[slot] = t_s
        self.mouth_origin[slot], self.mouth[slot] = mouth
        self.mouth_count += 1
        if t_s - self.last_t_s < 0.999 / self.s.descriptor_hz:
            return
        follows = self.count > 0 and t_s - self.last_t_s <= 1.6 / self.s.descriptor_hz
        self.last_t_s = t_s
        if self.shape is None:
            # Whole square cells (OpenCV's area resize is ~8x faster at an integer factor),
            # centred; the frame's margins beyond the last whole cell are left out.
            height, width = gray.shape
            cell = max(2, round(math.sqrt(width * height / self.GRID_CELLS)))
            cols, rows = max(1, width // cell), max(1, height // cell)
            self.shape = (cols, rows, cell, (width - cols * cell) // 2, (height - rows * cell) // 2)
            n = cols * rows
            rng = np.random.default_rng(0)     # fixed: the same footage projects the same way
            self.projection = (rng.standard_normal((n, self.PROJECTED)) / math.sqrt(self.PROJECTED)).astype(np.float32)
            self.grid = np.zeros((self.cap, self.PROJECTED), np.float32)
        cx, cy = tracker.anchored_centre(gray)
        cells, mask, weight = _frame_grid(gray, cx, cy, tracker.fixed_size, self.shape)
        # Distances are per weighted cell, so that how much of the frame is weighted out does
        # not scale them.
        self.cells_n = max(1.0, weight)
        grid = cells @ self.projection
        if follows:
            both = mask & self.last_mask
            still = np.abs(cells - self.last_cells)[both]
            if still.size:
                self.change_recent.append(1.4826 * float(np.partition(still, still.size // 2)[still.size // 2]))
        root = self._query(t_s, grid, mouth)
        slot = self.count % self.cap
        self.times[slot] = t_s
        self.roots[slot] = root
        self.grid[slot] = grid
        self.norms[slot] = float(grid @ grid)
        self.has_prev[slot] = follows
        if follows:
            step = grid - self.last_grid
            self.steps[slot] = float(step @ step)
        self.last_grid, self.last_cells, self.last_mask = grid, cells, mask
        self.count += 1

    def _mouth_distance(self, mouth: tuple[np.ndarray, np.ndarray], when_s: float) -> float:
        """RMS distance from `mouth` to the closest stored mouth within a frame or so of
        `when_s` (sampling phase and interpolated times are only that precise), over the
        cells their windows share (both lie on one lattice fixed to the frame)."""
        best = math.nan
        # The ring holds times in increasing order from its oldest slot: two sorted runs.
        head = self.mouth_count % self.mouth_cap
        for lo, hi in ((head, self.mouth_cap), (0, head)):
            run = self.mouth_times[lo:hi]
            a = lo + int(np.searchsorted(run, when_s - self.MOUTH_WINDOW_S, side="left"))
            b = lo + int(np.searchsorted(run, when_s + self.MOUTH_WINDOW_S, side="right"))
            for slot in range(a, b):
                d = _window_distance(mouth, (self.mouth_origin[slot], self.mouth[slot]))
                if not math.isnan(d) and (math.isnan(best) or d < best):
                    best = d
        return best

    def _change(self) -> float:
        """How much the unmasked frame typically changes between two samples (the 80th
        percentile of recent medians over cells: keyframe refreshes and camera shake count)."""
        if not self.change_recent:
            return math.nan
        values = sorted(self.change_recent)
        return max(_MATCH_NOISE_FLOOR, values[int(0.8 * (len(values) - 1))])

    def _query(self, t_s: float, grid: np.ndarray, mouth: tuple[np.ndarray, np.ndarray]) -> float:
        """Record the best earlier match of this sample; return its first showing's time."""
        eligible = self.times <= t_s - self.s.repeat_exclude_s
        change = self._change()
        if int(eligible.sum()) < self.MIN_HISTORY or math.isnan(change):
            return t_s
        cells = self.cells_n
        # Squared distances (per cell) to every stored sample, in one matrix-vector product.
        d2 = np.maximum(self.norms + float(grid @ grid) - 2.0 * (self.grid @ grid), 0.0) / cells
        # The median earlier distance (from every 4th sample: plenty for a median).
        sample = d2[eligible][::4]
        typical = math.sqrt(float(np.partition(sample, sample.size // 2)[sample.size // 2]))
        d2[~eligible] = np.inf
        # ... and to the segment from each sample's predecessor to it, for the few samples
        # nearest to the query (a segment's end points bound its distance from above).
        near = np.argpartition(d2, self.CANDIDATES)[:self.CANDIDATES] if d2.size > self.CANDIDATES else np.arange(d2.size)
        ends = np.unique(np.concatenate([near, (near + 1) % self.cap]))
        starts = self.prev[ends]
        ok = self.has_prev[ends] & eligible[ends] & eligible[starts]
        ends, starts = ends[ok], starts[ok]
        d2_end, d2_start = d2[ends], d2[starts]
        length2 = np.maximum(self.steps[ends] / cells, 1e-9)
        along = np.clip((d2_start + length2 - d2_end) / (2 * length2), 0.0, 1.0)
        d2_seg = np.maximum(d2_start - along * (d2_start + length2 - d2_end) + along * along * length2, 0.0)
        k_point = int(np.argmin(d2))
        if d2_seg.size and float(d2_seg.min()) < float(d2[k_point]):
            i = int(np.argmin(d2_seg))
            k, p, beta, nearest2 = int(ends[i]), int(starts[i]), float(along[i]), float(d2_seg[i])
            source_s = float(self.times[p] + beta * (self.times[k] - self.times[p]))
            root_s = float(self.roots[p] + beta * (self.roots[k] - self.roots[p]))
        else:
            k, nearest2 = k_point, float(d2[k_point])
            source_s, root_s = float(self.times[k]), float(self.roots[k])
        nearest = math.sqrt(nearest2)
        # Mouth novelty: the mouth now vs. the mouth at the matched moment, relative to the
        # frame's match distance (both in pixel-noise units): an untouched replay matches
        # its mouth about as well as the rest (ratio ~0.5, rarely above 1), a new mouth does not.
        mouth_dist = self._mouth_distance(mouth, source_s)
        novelty = 0.0 if math.isnan(mouth_dist) else (mouth_dist / max(nearest, _MATCH_NOISE_FLOOR) - 1.0) / 2.0
        ratio = nearest / typical if typical > 0 else 1.0
        self.rec_t.append(t_s)
        self.rec_ratio.append(ratio)
        self.rec_change_ratio.append(nearest / change)
        self.rec_lag.append(t_s - root_s)
        self.rec_novelty.append(min(1.0, max(0.0, novelty)))
        sharp = ratio <= self.s.repeat_ratio and nearest <= self.s.repeat_change_k * change
        return root_s if sharp else t_s

    def _runs(self) -> list[tuple[int, int]]:
        """Replayed spans, as record index ranges [a, b)."""
        t, lag = np.asarray(self.rec_t), np.asarray(self.rec_lag)
        sharp = ((np.asarray(self.rec_ratio) <= self.s.repeat_ratio)
                 & (np.asarray(self.rec_change_ratio) <= self.s.repeat_change_k))
        step = 1.6 / self.s.descriptor_hz
        runs, start = [], None
        for i in range(len(t) + 1):
            joins = (i < len(t) and sharp[i] and start is not None
                     and t[i] - t[i - 1] <= step and abs(lag[i] - lag[i - 1]) <= self.LAG_TOLERANCE_S)
            if start is not None and not joins:
                span_s = t[i - 1] - t[start]
                advance = (t[i - 1] - lag[i - 1]) - (t[start] - lag[start])
                if i - start >= self.MIN_RUN and span_s > 0 and 0.7 <= advance / span_s <= 1.3:
                    runs.append((start, i))
                start = None
            if i < len(t) and sharp[i] and start is None:
                start = i
        return runs

    def features(self) -> dict[str, float]:
        nan = math.nan
        if not len(self.rec_t):
            return dict.fromkeys(self.KEYS, nan)
        repeats = np.zeros(len(self.rec_t), bool)
        for a, b in self._runs():
            repeats[a:b] = True
        novelty = np.asarray(self.rec_novelty)
        on_repeat = float(novelty[repeats].mean()) if repeats.any() else nan
        return {"upper_repeat_share": float(repeats.mean()), "mouth_novelty_on_repeat": on_repeat,
                "mouth_only_novelty": float((novelty * repeats).sum() / len(repeats))}

    def evidence(self) -> list[Evidence]:
        t, lag, novelty = np.asarray(self.rec_t), np.asarray(self.rec_lag), np.asarray(self.rec_novelty)
        match = np.asarray(self.rec_change_ratio)
        out = []
        for a, b in self._runs():
            duration = float(t[b - 1] - t[a])
            mean_novelty = float(novelty[a:b].mean())
            if duration < self.s.recycled_min_s or mean_novelty < self.s.novelty_min:
                continue
            out.append(Evidence(
                "recycled_face", float(t[a]), float(t[b - 1]),
                mean_novelty * min(1.0, duration / self.s.recycled_full_score_s),
                source_start_s=float(t[a] - lag[a]), source_end_s=float(t[b - 1] - lag[b - 1]),
                detail={"lag_s": round(float(np.median(lag[a:b])), 2), "mouth_novelty": round(mean_novelty, 3),
                        "match_change_ratio": round(float(np.median(match[a:b])), 2), "samples": b - a}))
        return out


def _frame_grid(gray: np.ndarray, cx: float, cy: float, size: float,
                shape: tuple[int, int, int, int, int]) -> tuple[np.ndarray, np.ndarray, float]:
    """Cell means of the frame (median-centred, scaled to pixel noise) with the lower face,
    jaw and everything below the chin weighted out, and the mask of the cells fully clear of
    that, and the sum of squared weights (the effective number of cells). (cx, cy): face
    centre; `size`: face size; `shape`: (cols, rows, cell px, x offset, y offset).

    The weight ramps from 0 at that region to 1 a cell and a half away, rather than jumping:
    two showings of the same footage have slightly different boxes (the tracker's state),
    and a hard mask would then flip whole cells in and out of the descriptor.
    """
    import cv2

    cols, rows, cell, x_off, y_off = shape
    region = gray[y_off:y_off + rows * cell, x_off:x_off + cols * cell]
    cells = cv2.resize(region, (cols, rows), interpolation=cv2.INTER_AREA).astype(np.float32)
    xs = x_off + (np.arange(cols, dtype=np.float32) + 0.5) * cell
    ys = y_off + (np.arange(rows, dtype=np.float32) + 0.5) * cell
    # Distance (in cells) to the weighted-out region: the lower face and jaw (below the face
    # centre, 1.2 face sizes wide) and everything below the chin line (body, product tags and
    # the scrolling comments live rooms overlay on the lower part of the frame).
    to_jaw = np.maximum((np.maximum(cy - ys, 0.0) / cell)[:, None],
                        (np.maximum(np.abs(xs - cx) - 0.6 * size, 0.0) / cell)[None, :])
    to_below = (np.maximum(cy + 0.5 * size - ys, 0.0) / cell)[:, None]
    weight = np.clip(np.minimum(to_jaw, to_below) / 1.5, 0.0, 1.0)
    mask = weight >= 1.0
    # Centred on the weighted mean: smooth in the face position (a median over the unmasked
    # cells would jump with the mask) and blind to the lower face (a median over all cells
    # shifts by a fraction of a level when a new mouth opens, which adds up over ~150 cells).
    total = float(weight.sum())
    centre = float((cells * weight).sum()) / total if total > 0 else float(cells.mean())
    grid = (cells - centre) * weight * float(cell)
    return grid.ravel(), mask.ravel(), float(np.sum(weight * weight))


def _mouth_window(gray: np.ndarray, box: _Box, cell: int) -> tuple[np.ndarray, np.ndarray]:
    """(origin in lattice cells, cell means scaled to pixel noise) of the window around the
    mouth (box rows ~0.68-0.96) on a `cell`-pixel lattice anchored at the frame's corner."""
    import cv2

    nx, ny = _MOUTH_CELLS
    height, width = gray.shape
    ox = min(max(0, int((box.cx - nx * cell / 2) // cell)), max(0, width // cell - nx))
    oy = min(max(0, int((box.cy + 0.32 * box.h - ny * cell / 2) // cell)), max(0, height // cell - ny))
    crop = gray[oy * cell:(oy + ny) * cell, ox * cell:(ox + nx) * cell]
    cells = np.zeros((ny, nx), np.float32)
    if crop.shape[0] >= cell and crop.shape[1] >= cell:
        h, w = crop.shape[0] // cell, crop.shape[1] // cell
        cells[:h, :w] = cv2.resize(crop[:h * cell, :w * cell], (w, h), interpolation=cv2.INTER_AREA)
    return np.array([ox, oy], np.int32), cells * float(cell)


def _window_distance(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """RMS difference over the cells two lattice windows share (each mean-centred there);
    NaN when they share under half their cells."""
    (ax, ay), cells_a = a
    (bx, by), cells_b = b
    ny, nx = cells_a.shape
    dx, dy = int(bx - ax), int(by - ay)
    if abs(dx) > nx // 2 or abs(dy) > ny // 2:
        return math.nan
    # The shared block, in each window's own cell coordinates.
    part_a = cells_a[max(0, dy):ny + min(0, dy), max(0, dx):nx + min(0, dx)]
    part_b = cells_b[max(0, -dy):ny + min(0, -dy), max(0, -dx):nx + min(0, -dx)]
    diff = part_a - part_b
    diff = diff - diff.mean()
    return math.sqrt(float(np.mean(diff * diff)))
