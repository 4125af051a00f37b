"""Shot boundaries: hard cuts, jump cuts, dissolves and fades, each with its time.

A live room is one continuous take from one camera; edited footage is cut. An edit changes
the picture's *structure* in a way that is *sudden* (one sampled step carries it, or a
steady cross-fade does), *persistent* (the new content stays) and *not motion* (neither
the camera nor things moving explain it). The common false cuts each break one of these:
a flash or a gesture returns to the previous content within a few frames; a pan is undone
by global-motion compensation; fast motion changes the picture over several consecutive
steps; a scrolling-comment band changes in every step (so its blocks never stand out from
their own baseline) and covers too few blocks to move a median; a change of light (a
flash, exposure hunting, a lamp switched off) changes brightness, not structure.

How it works, on a 64 px thumbnail of each sampled frame (10 Hz by default):
- Each thumbnail is locally contrast-normalised (local mean removed, divided by the local
  contrast over ~one block), leaving structure: smooth gain changes of any kind cancel.
- Each sampled step i-1 -> i gets a vector of block changes: the mean absolute difference
  per block of an 8x4 grid (4x8 in portrait), after undoing the global shift found by
  phase correlation with sub-pixel accuracy (per block, the smaller of the compensated and
  the raw difference, so a big foreground object that captures the shift estimate cannot
  invent change in a still background).
- **Hard and jump cuts**: steps in which at least two blocks change several times more than
  in the steps just before and after and than their own median over +-1.5 s. The change
  must persist: every frame in the 0.3 s before must differ from every frame in the 0.3 s
  after over those blocks (a flash or a gesture that comes back fails). It is a *jump* when
  the view stays (a third of the blocks do not change at all, as when a presenter
  teleports in front of a fixed background, or the new picture is the old one shifted and
  zoomed by up to 12 %, as at a loop seam with a zoom jump), and the camera is steady
  (during a fast pan, local residue is not evidence); otherwise it is a *hard* cut. A jump
  must move what was moving: graphics that pop up over still parts of the picture (stickers,
  comment boxes, gift banners: live-room apps draw them all the time) are not jump cuts. The cut
  time is the first sampled frame of the new shot (detail `previous_s` is the last of the
  old one: the true cut lies between them).
- **Dissolves** ("twin comparison"): a run of steps whose median block change is raised
  above the recent calm level, adding up to a shot-sized change that the run's two ends
  still show, with no single step doing most of it. It is verified on the raw thumbnails:
  every frame of the run must fit a blend (1-a)*first + a*last with a small residual in
  most blocks (motion inside either shot or an overlay band spoils a few blocks; a pan, a
  zoom or someone walking through spoils all of them), and a loose fit only when the blocks
  agree on the mix (a product raised to the lens covers them one after another). The span
  is the run: from the first mixed frame to the first frame of the new shot.
- **Fades**: a stretch of blank (flat black or colour) frames with different content on
  either side. The span runs from the first frame whose contrast falls to the first frame
  at full contrast again; a fade-out then fade-in is one fade. A blank glitch between views
  of the same content (a dropped frame, a covered lens, lights off and on) is not an edit,
  and neither is a blank stretch at the very start or end of a clip (no second shot).
- Events closer than `min_gap_s` are one transition, reported once (a fade or dissolve
  wins over an abrupt cut inside it).

Limits: a movement completed within one sampling interval (a person stepping aside in
0.1 s) cannot be told from a jump cut; at lower sampling rates (5 Hz) this gets likelier,
so keep the default 10 Hz or more. A cut between two views of the same set with nearly
the same framing is reported as a jump. Dissolves slower than ~3 s raise each step too
little to be seen.

Cost: per sampled frame one 320 -> 64 px resize, two small box filters, one 64x36 phase
correlation with a warp, and a few vector operations on 32 numbers: ~0.15 ms of CPU. The
pairwise and zoom checks behind a candidate cut run only for candidates. State: a ring of
~7 s of thumbnails (~1.3 MB at 10 Hz), a few counters, and one small record per reported
edit; no frame is kept.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from detector.extractors.base import ColumnDoc, FeatureExtractor
from detector.types import Evidence, Frame, VideoMeta

log = logging.getLogger(__name__)

# Local contrast below which normalisation would only amplify sensor noise (luma levels).
_STD_FLOOR = 8.0
# Fallback sampling rate when the scan takes every frame and the container has no rate.
_FALLBACK_RATE_HZ = 30.0


@dataclass(frozen=True)
class ShotsSettings:
    # Long side of the thumbnail every comparison runs on: small enough to be cheap and to
    # average away sensor noise, large enough for phase correlation to find a pan.
    thumb_long_side_px: int = 64
    # Blocks along the long side of the change grid (the short side gets proportionally
    # fewer). A scrolling-comment band over the bottom quarter then covers a quarter of the
    # blocks: too few to move a median, and its blocks are always busy.
    grid_long_blocks: int = 8
    # Half-width of the window whose per-block median is the baseline a step must beat.
    context_s: float = 1.5
    # A block "spikes" when its change exceeds spike_ratio x max(its baseline, the same
    # block's change in the steps just before and after) + spike_margin (z units: 1.0 is
    # the contrast of the whole picture, so 0.12 is ~5 luma levels on a typical frame).
    spike_ratio: float = 3.0
    spike_margin: float = 0.12
    # Share of blocks that must spike for an abrupt edit (2 of 32 blocks: a person jumping).
    min_spike_area: float = 0.06
    # Persistence: within flash_s before and after the step, every pair of frames must still
    # differ by persist_frac of the step's change (a flash or a gesture comes back).
    flash_s: float = 0.3
    persist_frac: float = 0.5
    # ... and by at least this much (z units) in absolute terms.
    min_persistent_change: float = 0.2
    # The view is "the same" (jump cut, not hard cut) when at least still_share of blocks do
    # not change by more than spike_margin, or when the frames after the step match the
    # frames before once shifted and zoomed by one of zoom_factors, to a median block change
    # of at most same_view_change (a zoom jump at a loop seam; crops of 5-12 % are common).
    still_share: float = 0.35
    same_view_change: float = 0.3
    zoom_factors: tuple[float, ...] = (0.89, 0.92, 0.95, 0.975, 1.025, 1.05, 1.08, 1.12)
    # A jump is only accepted while the camera is steady: not when the picture shifts by
    # more than this share of its long side in the step or the steps beside it.
    jump_max_shift: float = 0.05
    # ... and where what was moving jumps: the spiking blocks' median step change over the
    # context is >= jump_min_motion (z units; a still block after encoding stays below), or
    # they are >= jump_min_moving_share of the blocks that move that much. A sticker popping
    # up over a wall moves neither.
    jump_min_motion: float = 0.02
    jump_min_moving_share: float = 0.3
    # A thumbnail with less contrast than this (luma levels) is blank: black or a flat colour.
    blank_std: float = 4.0
    # Dissolves ("twin comparison"): a run of steps whose median block change exceeds
    # max(gradual_step_ratio x the recent quiet level, that level + gradual_step_margin)
    # that adds up to at least gradual_min_change (z units; two different shots differ by
    # ~1), that the ends of the run still show (motion that comes back does not), with no
    # single step doing most of it (that is a hard cut), and whose frames fit blends of the
    # run's ends with a median block residual of at most blend_residual_max (relative to
    # the ends' difference in that block).
    # 2.0: a 0.9 s dissolve between moving shots raises each 10 Hz step to only ~2x the
    # footage's own level (at 2.5 its run broke up); the blend fit below is what tells a
    # dissolve from motion (previous corpus: edits found in its fades, cuts_and_fades and
    # film clips 66 -> 76 of 101; the same 7 of 100 live clips with a false edit).
    gradual_step_ratio: float = 2.0
    gradual_step_margin: float = 0.03
    gradual_min_change: float = 0.35
    blend_residual_max: float = 0.45
    # ... and, when the residual exceeds blend_strict_residual, whose blocks agree on the mix:
    # the median distance of the per-block mix from the frame's mix at most blend_max_spread
    # (an object covering the picture block by block mixes each block 0 or 1).
    blend_strict_residual: float = 0.3
    blend_max_spread: float = 0.06
    # Longest fade ramp or dissolve considered; slower changes are not edits.
    max_transition_s: float = 4.0
    # Two edits closer than this are one transition.
    min_gap_s: float = 0.5


@dataclass(frozen=True)
class _Thumb:
    t_s: float
    raw: np.ndarray          # float32 luma thumbnail (blends are linear in it)
    z: np.ndarray            # float32, locally contrast-normalised: the structure
    mean: float
    std: float
    blank: bool


@dataclass(frozen=True)
class _Cut:
    kind: str                # "hard" | "jump" | "dissolve" | "fade"
    start_s: float
    end_s: float
    score: float
    detail: dict
    samples: int             # sampled steps the transition occupies (for transition_share)


class ShotsExtractor(FeatureExtractor):
    name = "shots"
    # 2: overlays popping up and objects covering the lens are not edits.
    # 3: a dissolve of ~1 s over moving footage starts a run (gradual_step_ratio 2.5 -> 2.0).
    VERSION = 3
    Settings = ShotsSettings
    COLUMN_DOCS = {
        "cuts_per_min": ColumnDoc("edits of any type (hard, jump, dissolve, fade) per minute", "1/min", ">= 0", "prerecorded"),
        "hard_per_min": ColumnDoc("hard cuts to a different view per minute", "1/min", ">= 0", "prerecorded"),
        "jump_per_min": ColumnDoc("jump cuts per minute: the view stays but its content jumps (includes zoom jumps at loop seams)", "1/min", ">= 0", "prerecorded"),
        "dissolve_per_min": ColumnDoc("dissolves (cross-fades between two shots) per minute", "1/min", ">= 0", "prerecorded"),
        "fade_per_min": ColumnDoc("fades through black or a flat colour between two shots, per minute", "1/min", ">= 0", "prerecorded"),
        "mean_shot_s": ColumnDoc("mean shot length: clip duration / (edits + 1); the whole clip when there is no edit", "s", "> 0", "live"),
        "longest_shot_share": ColumnDoc("longest uninterrupted shot as a share of the clip (1 with no edit)", "share", "0-1", "live"),
        "shot_length_cv": ColumnDoc("coefficient of variation of the lengths of shots between two edits (low: edits at a regular period); missing with fewer than 3 edits", "ratio", ">= 0", "looped"),
        "max_cut_score": ColumnDoc("confidence of the strongest reported edit (0 with no edit)", "score", "0-1", "prerecorded"),
        "transition_share": ColumnDoc("share of sampled steps that are part of an edit (one per hard/jump cut, the whole span of fades and dissolves)", "share", "0-1", "prerecorded"),
    }
    FEATURES = tuple(COLUMN_DOCS)

    # -- lifecycle ----------------------------------------------------------------------

    def reset(self, meta: VideoMeta) -> None:
        super().reset(meta)
        s = self.settings
        rate = self.config.sample_fps or meta.declared_fps or _FALLBACK_RATE_HZ
        self._context = max(2, round(s.context_s * rate))
        self._flash = max(1, min(self._context, round(s.flash_s * rate)))
        self._max_span = max(3, round(s.max_transition_s * rate))
        # The ring holds the widest look-back any check needs: a dissolve run or a fade ramp
        # (up to max_span) plus the abrupt judge's context on both sides.
        self._ring_len = self._max_span + 2 * self._context + 4
        self._thumbs: deque[_Thumb] = deque(maxlen=self._ring_len)
        self._steps: deque[np.ndarray | None] = deque(maxlen=self._ring_len)  # block change into frame i
        self._shifts: deque[float] = deque(maxlen=self._ring_len)             # camera shift into frame i
        self._n = 0                     # frames seen; the newest has index n - 1
        self._shape: tuple[int, int] | None = None
        self._grid = (1, 1)
        self._windows: dict[tuple[int, int], np.ndarray] = {}
        self._next_abrupt = 1           # next step to judge as an abrupt edit
        self._quiet: deque[float] = deque(maxlen=2 * self._context)  # recent calm step levels
        self._run: list[int] = []       # first and last raised step of the change being followed
        self._calm_from = 0             # first step a run may start at (not in a fade's ramp)
        self._gap = 0
        self._fade: dict | None = None  # a blank stretch being followed
        self._cuts: list[_Cut] = []
        self._first_t_s: float | None = None
        self._last_t_s = 0.0

    def update(self, frame: Frame) -> None:
        thumb = self._thumbnail(frame)
        if self._first_t_s is None:
            self._first_t_s = thumb.t_s
        self._last_t_s = thumb.t_s
        previous = self._thumbs[-1] if self._thumbs else None
        self._thumbs.append(thumb)
        change, shift = (None, 0.0) if previous is None else self._compare(previous.z, thumb.z)
        self._steps.append(change)
        self._shifts.append(shift)
        self._n += 1
        newest = self._n - 1
        self._follow_fade(newest)
        if previous is not None:
            self._follow_gradual(newest)
        # Abrupt edits are judged once the step has `context` steps of future.
        while self._next_abrupt <= newest - self._context:
            self._judge_abrupt(self._next_abrupt)
            self._next_abrupt += 1

    def finalize(self) -> tuple[dict[str, float], list[Evidence]]:
        # Judge the tail with whatever future there is (at least one frame after a step).
        while self._next_abrupt <= self._n - 2:
            self._judge_abrupt(self._next_abrupt)
            self._next_abrupt += 1
        self._close_run()
        self._finish_fade(self._n - 1)
        cuts = _merge(sorted(self._cuts, key=lambda c: c.start_s), self.settings.min_gap_s)
        features = self._features(cuts)
        evidence = [
            Evidence(kind="cut", start_s=c.start_s, end_s=c.end_s, score=c.score,
                     detail={"type": c.kind, **c.detail})
            for c in cuts
        ]
        return features, evidence

    # -- measurements -----------------------------------------------------------------------

    def _thumbnail(self, frame: Frame) -> _Thumb:
        import cv2

        gray = frame.gray
        if self._shape is None:
            h, w = gray.shape[:2]
            scale = min(1.0, self.settings.thumb_long_side_px / max(h, w))
            self._shape = (max(8, round(h * scale)), max(8, round(w * scale)))
            long_blocks = self.settings.grid_long_blocks
            short_blocks = max(2, round(long_blocks * min(h, w) / max(h, w)))
            self._grid = (long_blocks, short_blocks) if w >= h else (short_blocks, long_blocks)
            # Normalisation window about one block wide (odd, so it is centred).
            self._norm_px = max(3, round(max(self._shape) / long_blocks) | 1)
        th, tw = self._shape
        small = gray if gray.shape[:2] == (th, tw) else cv2.resize(gray, (tw, th), interpolation=cv2.INTER_AREA)
        small = small.astype(np.float32)
        mean, std = cv2.meanStdDev(small)
        mean, std = float(mean[0, 0]), float(std[0, 0])
        return _Thumb(frame.t_s, small, self._normalise(small), mean, std, std < self.settings.blank_std)

    def _normalise(self, small: np.ndarray) -> np.ndarray:
        """Local contrast normalisation: subtract the local mean, divide by the local contrast.

        What stays is structure. A smooth change of light (exposure hunting, a lamp switched
        off on one side of the room, a flash) multiplies the picture by a gain field that is
        nearly constant over one window, so it cancels; so does the drift of the global mean
        and contrast while a pan brings new content in. The floor keeps flat walls from
        turning sensor noise into structure.
        """
        import cv2

        size = (self._norm_px, self._norm_px)
        local_mean = cv2.blur(small, size)
        local_var = cv2.blur(small * small, size) - local_mean * local_mean
        local_std = np.sqrt(np.maximum(local_var, _STD_FLOOR * _STD_FLOOR))
        return (small - local_mean) / local_std

    def _block_change(self, za: np.ndarray, zb: np.ndarray) -> np.ndarray:
        return self._compare(za, zb)[0]

    def _compare(self, za: np.ndarray, zb: np.ndarray) -> tuple[np.ndarray, float]:
        """Per-block mean |difference| of two normalised thumbnails, the smaller of raw and
        global-shift compensated; and the camera's shift as a share of the long side (0 when
        the shift found does not explain most of the picture)."""
        import cv2

        h, w = za.shape
        raw = cv2.resize(cv2.absdiff(za, zb), self._grid, interpolation=cv2.INTER_AREA)
        window = self._windows.get((h, w))
        if window is None:
            window = self._windows[(h, w)] = cv2.createHanningWindow((w, h), cv2.CV_32F)
        # Window copies ourselves: cv2.phaseCorrelate(a, b, window) multiplies its inputs by
        # the window in place when no DFT padding is needed, corrupting the stored thumbnails.
        (dx, dy), _response = cv2.phaseCorrelate(cv2.multiply(za, window), cv2.multiply(zb, window))
        mx, my = math.ceil(abs(dx)), math.ceil(abs(dy))
        camera_shift = 0.0
        if (mx or my) and mx <= w // 2 and my <= h // 2:
            # zb(x + dx, y + dy) shows what za showed at (x, y); sub-pixel, because rounding
            # the shift leaves an edge residue along every texture during a pan. Only the
            # overlap is compared: what entered the view has nothing to be compared with.
            shift = np.float32([[1, 0, dx], [0, 1, dy]])
            moved = cv2.warpAffine(za, shift, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            overlap = (slice(my, h) if dy > 0 else slice(0, h - my), slice(mx, w) if dx > 0 else slice(0, w - mx))
            compensated = cv2.resize(cv2.absdiff(moved[overlap], zb[overlap]), self._grid, interpolation=cv2.INTER_AREA)
            # The peak is the camera's move only if it explains most of the picture; on a
            # still background it may be a foreground object's (a person who jumped).
            if _median(compensated) < 0.7 * _median(raw):
                camera_shift = math.hypot(dx, dy) / max(h, w)
            raw = np.minimum(raw, compensated)
        return raw.ravel(), camera_shift

    def _view_change(self, za: np.ndarray, zb: np.ndarray) -> tuple[float, float]:
        """Median block change of zb against za shifted and magnified to fit best, and that
        magnification (1.08: zb looks like za zoomed in by 8 %).

        Only the central part is compared, so the borders a zoom out leaves empty do not count.
        """
        import cv2

        h, w = za.shape
        my, mx = max(1, round(0.12 * h)), max(1, round(0.12 * w))
        inner = (slice(my, h - my), slice(mx, w - mx))
        best = (_median(self._block_change(za[inner].copy(), zb[inner].copy())), 1.0)
        for zoom in self.settings.zoom_factors:
            matrix = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), 0.0, zoom)
            zoomed = cv2.warpAffine(za, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            change = _median(self._block_change(zoomed[inner].copy(), zb[inner].copy()))
            best = min(best, (change, zoom))
        return best

    def _thumb(self, index: int) -> _Thumb:
        return self._thumbs[index - (self._n - len(self._thumbs))]

    def _step(self, index: int) -> np.ndarray | None:
        return self._steps[index - (self._n - len(self._steps))]

    def _shift(self, index: int) -> float:
        return self._shifts[index - (self._n - len(self._shifts))] if self._held(index) else 0.0

    def _held(self, index: int) -> bool:
        return self._n - len(self._thumbs) <= index < self._n

    # -- abrupt edits: hard and jump cuts ------------------------------------------------

    def _judge_abrupt(self, i: int) -> None:
        s = self.settings
        if not (self._held(i - 1) and self._held(i + 1)):
            return
        before, after = self._thumb(i - 1), self._thumb(i)
        change = self._step(i)
        if change is None or before.blank or after.blank:
            return                                  # blank frames belong to fades
        # Cheap gate: the step must beat its neighbouring steps in enough blocks.
        previous = self._step(i - 1)
        neighbours = np.maximum(previous if previous is not None else 0.0, self._step(i + 1))
        spiking = change > s.spike_ratio * neighbours + s.spike_margin
        if spiking.mean() < s.min_spike_area:
            return
        # Full test against each block's own median over the context window.
        around = [self._step(j) for j in range(i - self._context, i + self._context + 1)
                  if j != i and self._held(j) and self._step(j) is not None]
        baseline = np.median(np.stack(around), axis=0)
        spiking &= change > s.spike_ratio * baseline + s.spike_margin
        area = float(spiking.mean())
        if area < s.min_spike_area:
            return
        level = float(change[spiking].mean())
        persist = self._persistence(i, spiking)
        if persist < s.min_persistent_change:
            return
        if persist < s.persist_frac * level:
            log.debug("step at %.2f s returns to earlier content (flash or gesture): %.3f < %.3f",
                      after.t_s, persist, s.persist_frac * level)
            return
        still = float(np.mean(change <= s.spike_margin))
        # What was moving: blocks whose own median step over the context is clearly above
        # an encoded still block's.
        moving = baseline >= s.jump_min_motion
        motion = float(np.median(baseline[spiking]))
        moving_share = float((spiking & moving).sum() / moving.sum()) if moving.any() else 0.0
        view_change, zoom = self._view_change(before.z, after.z)
        jump = still >= s.still_share or view_change <= s.same_view_change
        if jump and motion < s.jump_min_motion and moving_share < s.jump_min_moving_share:
            # A jump cut removes time, so what jumps is what was moving: the jumping blocks
            # were moving, or they hold most of what was (a presenter who jumps away leaves
            # still wall behind). Graphics popping up over still parts of the picture (a
            # sticker, a comment box) change blocks that were still, beside a presenter who
            # moves on unchanged: not a cut.
            log.debug("local jump at %.2f s in still blocks (%.3f; %.2f of the moving blocks): "
                      "an overlay, not a cut", after.t_s, motion, moving_share)
            return
        if jump and max(self._shift(j) for j in (i - 1, i, i + 1)) > s.jump_max_shift:
            # A jump cut is a jump in a fixed view. While the camera sweeps, blur, parallax
            # and starved compression leave local residue after compensation: no evidence.
            log.debug("local jump at %.2f s during fast camera motion: ignored", after.t_s)
            return
        # Confidence: enough of the picture jumped, by clearly more than the margin.
        area_term = min(1.0, area / (0.1 if jump else 0.4))
        size_term = _clip01((persist - s.spike_margin) / 0.3)
        self._cuts.append(_Cut(
            kind="jump" if jump else "hard", start_s=after.t_s, end_s=after.t_s,
            score=_clip01(area_term * size_term),
            detail={"previous_s": round(before.t_s, 3),
                    "changed_share": round(area, 3), "change": round(level, 3),
                    "persistent_change": round(persist, 3), "still_share": round(still, 3),
                    "view_change": round(view_change, 3), "zoom": zoom,
                    "motion": round(motion, 3), "moving_share": round(moving_share, 3)},
            samples=1))

    def _persistence(self, i: int, mask: np.ndarray) -> float:
        """Smallest change over `mask` between any frame just before step i and any just after."""
        lowest = math.inf
        for a in range(i - self._flash, i):
            if not self._held(a) or self._thumb(a).blank:
                continue
            for b in range(i, i + self._flash + 1):
                if not self._held(b) or self._thumb(b).blank:
                    continue
                if (a, b) == (i - 1, i):
                    value = float(self._step(i)[mask].mean())
                else:
                    value = float(self._block_change(self._thumb(a).z, self._thumb(b).z)[mask].mean())
                lowest = min(lowest, value)
        return lowest

    # -- dissolves ------------------------------------------------------------------------

    def _follow_gradual(self, i: int) -> None:
        """Twin comparison: collect a run of moderately raised steps, judge it when it ends."""
        s = self.settings
        if self._thumb(i - 1).blank or self._thumb(i).blank:
            # Fades are followed separately, and so is the contrast ramp out of a blank
            # stretch (a blend of blank and picture): no run starts before it has settled.
            self._run, self._gap = [], 0
            self._calm_from = i + 1 + self._flash
            return
        if i < self._calm_from:
            return
        level = _median(self._step(i))
        if len(self._quiet) < 3:
            self._quiet.append(level)
            return
        quiet = sorted(self._quiet)[len(self._quiet) // 2]
        if level > max(s.gradual_step_ratio * quiet, quiet + s.gradual_step_margin):
            self._run = [self._run[0] if self._run else i, i]    # first and last raised step
            self._gap = 0
            if i - self._run[0] >= self._max_span:
                # Change that goes on this long is a new level of motion, not a transition.
                self._quiet.extend(_median(self._step(j)) for j in range(i - self._context + 1, i + 1))
                self._run = []
            return
        self._quiet.append(level)
        if self._run:
            self._gap += 1
            if self._gap > 1:
                self._close_run()

    def _close_run(self) -> None:
        s = self.settings
        run, self._run, self._gap = self._run, [], 0
        if not run:
            return
        first, last = run[0], run[-1]
        if not self._held(first - 1):
            return
        levels = [_median(self._step(j)) for j in range(first, last + 1)]
        total = sum(levels)
        if total < s.gradual_min_change or max(levels) > 0.6 * total:
            return                                  # too little, or one step did it: abrupt
        thumbs = [self._thumb(k) for k in range(first - 1, last + 1)]
        end_change = _median(self._block_change(thumbs[0].z, thumbs[-1].z))
        # Structure is compared after local normalisation, which is not linear in a blend
        # (mid-dissolve the mix has less contrast, so its steps look bigger): a dissolve's
        # ends keep ~0.4-0.5 of the summed steps, motion that comes back keeps much less.
        if end_change < max(s.gradual_min_change, 0.3 * total):
            log.debug("change %.2f-%.2f s comes back (%.3f of %.3f): motion, not a dissolve",
                      thumbs[0].t_s, thumbs[-1].t_s, end_change, total)
            return
        alphas, residual, spread = self._blend_fit(thumbs)
        steps = np.diff(alphas)
        # A dissolve mixes every part of the picture at the same rate. An object moving in
        # front of the camera (a product raised to the lens) covers blocks one after another:
        # a loose fit must at least have every block agree on the mix.
        mixed_evenly = residual <= s.blend_strict_residual or spread <= s.blend_max_spread
        blend = (residual <= s.blend_residual_max and mixed_evenly
                 and bool(np.any((alphas > 0.15) & (alphas < 0.85))) and steps.max() <= 0.6 and steps.min() >= -0.2)
        log.debug("gradual change %.2f-%.2f s: residual %.3f, mix %s", thumbs[0].t_s, thumbs[-1].t_s,
                  residual, np.round(alphas, 2))
        if not blend:
            return
        fit = _clip01(1.0 - residual / (2 * s.blend_residual_max))
        self._cuts.append(_Cut(
            kind="dissolve", start_s=thumbs[1].t_s, end_s=thumbs[-1].t_s,
            score=_clip01(fit * min(1.0, end_change / 0.6) * 1.25),
            detail={"duration_s": round(thumbs[-1].t_s - thumbs[1].t_s, 3),
                    "blend_residual": round(residual, 3), "change": round(end_change, 3),
                    "alpha_spread": round(spread, 3)},
            samples=last - first + 1))

    def _blend_fit(self, thumbs: list[_Thumb]) -> tuple[np.ndarray, float, float]:
        """Fit each frame as (1-a)*first + a*last: the a's, the worst median block residual,
        and the worst spread of the blocks' own mix around the frame's a.

        The residual is judged per block, relative to how much that block changes between the
        ends, and summarised by the median over the blocks that change: shapes moving inside
        either shot or an overlay band spoil a few blocks, a pan or a zoom spoils all. The
        spread is the median |block mix - a| over those blocks: ~0 in a dissolve, large when
        an object covers the blocks one after another (each then mixes 0 or 1).
        """
        import cv2

        stack = np.stack([t.raw for t in thumbs]).astype(np.float32)
        first = stack[0]
        direction = stack[-1] - first
        norm_sq = float(np.vdot(direction, direction))
        if norm_sq <= 1e-6:
            return np.zeros(len(thumbs)), math.inf, math.inf
        offsets = stack - first
        alphas = offsets.reshape(len(thumbs), -1) @ direction.ravel() / norm_sq
        change = cv2.resize(direction * direction, self._grid, interpolation=cv2.INTER_AREA).ravel()
        moving = change >= 0.5 * _median(change)
        worst = spread = 0.0
        for offset, alpha in zip(offsets[1:-1], alphas[1:-1]):
            residual = offset - np.float32(alpha) * direction
            energy = cv2.resize(residual * residual, self._grid, interpolation=cv2.INTER_AREA).ravel()
            worst = max(worst, _median(np.sqrt(energy[moving] / np.maximum(change[moving], 1e-6))))
            block_alpha = (cv2.resize(offset * direction, self._grid, interpolation=cv2.INTER_AREA).ravel()[moving]
                           / np.maximum(change[moving], 1e-6))
            spread = max(spread, float(np.median(np.abs(block_alpha - alpha))))
        return alphas, worst, spread

    # -- fades ----------------------------------------------------------------------------

    def _follow_fade(self, n: int) -> None:
        thumb = self._thumb(n)
        state = self._fade
        if state is None:
            if thumb.blank and self._held(n - 1) and not self._thumb(n - 1).blank:
                pre = self._ramp_start(n)
                self._fade = {"pre": pre, "pre_thumb": self._thumb(pre),
                              "start_thumb": self._thumb(pre + 1), "blank_from": thumb, "blank_to": None}
            return
        if thumb.blank:
            # Still blank, or blank again before the picture came fully back: one stretch.
            state["blank_to"] = None
            return
        if state["blank_to"] is None:
            state["blank_to"] = self._thumb(n - 1)
            state["post_from"] = n
            return
        # Fading in: the shot has arrived when its contrast stops rising.
        if not _rising(self._thumb(n - 1), thumb):
            self._finish_fade(n - 1)
        elif n - state["post_from"] >= self._max_span:
            self._finish_fade(n)

    def _ramp_start(self, blank_index: int) -> int:
        """Last frame at full contrast before a fade-out into the blank frame."""
        j = blank_index - 1
        while (blank_index - j < self._max_span and self._held(j - 1) and not self._thumb(j - 1).blank
               and _rising(self._thumb(j), self._thumb(j - 1))):
            j -= 1
        return j

    def _finish_fade(self, post: int) -> None:
        state, self._fade = self._fade, None
        if state is None or state["blank_to"] is None or not self._held(post):
            return                                  # nothing after the blank: no second shot
        s = self.settings
        p, q = state["pre_thumb"], self._thumb(post)
        still = float(np.mean(self._block_change(p.z, q.z) <= s.spike_margin))
        view_change, _zoom = self._view_change(p.z, q.z)
        if still >= s.still_share or view_change <= s.same_view_change:
            log.debug("blank from %.2f s between views of the same content: not an edit",
                      state["blank_from"].t_s)
            return
        start = state["start_thumb"]
        self._cuts.append(_Cut(
            kind="fade", start_s=start.t_s, end_s=q.t_s, score=_clip01(view_change / 0.6),
            detail={"duration_s": round(q.t_s - start.t_s, 3),
                    "blank_s": round(state["blank_to"].t_s - state["blank_from"].t_s, 3),
                    "blank_level": round(state["blank_from"].mean, 1),
                    "change": round(view_change, 3)},
            samples=post - state["pre"]))

    # -- summary --------------------------------------------------------------------------

    def _features(self, cuts: list[_Cut]) -> dict[str, float]:
        nan = math.nan
        if self._first_t_s is None:
            return {key: nan for key in self.FEATURES}
        span_s = self._last_t_s - self._first_t_s
        # The last sampled frame is shown for one sampling interval too.
        duration_s = span_s + (span_s / (self._n - 1) if self._n > 1 else 0.0)
        if duration_s <= 0:
            return {key: nan for key in self.FEATURES}
        minutes = duration_s / 60.0

        def per_min(kind: str | None) -> float:
            return sum(1 for c in cuts if kind is None or c.kind == kind) / minutes

        bounds = [self._first_t_s, *(c.start_s for c in cuts), self._first_t_s + duration_s]
        shots = np.diff(bounds)
        interior = shots[1:-1]        # the first and last shots are cut short by the clip
        return {
            "cuts_per_min": per_min(None),
            "hard_per_min": per_min("hard"),
            "jump_per_min": per_min("jump"),
            "dissolve_per_min": per_min("dissolve"),
            "fade_per_min": per_min("fade"),
            "mean_shot_s": float(shots.mean()),
            "longest_shot_share": float(shots.max() / duration_s),
            "shot_length_cv": float(interior.std() / interior.mean()) if len(interior) >= 2 else nan,
            "max_cut_score": max((c.score for c in cuts), default=0.0),
            "transition_share": min(1.0, sum(c.samples for c in cuts) / (self._n - 1)),
        }


def _rising(earlier: _Thumb, later: _Thumb) -> bool:
    """Contrast still growing (a fade in progress) beyond the jitter of a moving picture."""
    return later.std > earlier.std * 1.01 + 0.05


def _merge(cuts: list[_Cut], min_gap_s: float) -> list[_Cut]:
    """One cut per transition: overlapping or close events keep the spanning or stronger one."""
    rank = {"fade": 3, "dissolve": 2, "hard": 1, "jump": 0}
    merged: list[_Cut] = []
    for cut in cuts:
        if merged and cut.start_s - merged[-1].end_s < min_gap_s:
            keep = max(merged[-1], cut, key=lambda c: (rank[c.kind], c.score))
            merged[-1] = keep
            continue
        merged.append(cut)
    return merged


def _median(values: np.ndarray) -> float:
    """Median of a small array (np.median costs ~30 us of overhead; this ~3 us)."""
    flat = values.ravel()
    middle = len(flat) // 2
    return float(np.partition(flat, middle)[middle])


def _clip01(value: float) -> float:
    return float(min(1.0, max(0.0, value)))
