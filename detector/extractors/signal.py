"""Signal cues: is this picture fresh from a camera, or a rendered / converted / re-encoded file?

What editing and playback physically do to the pixels, measured on the analysis-size luma:

* **Temporal sensor noise.** A camera adds fresh noise to every frame, flat wall included; a
  render has none, and denoising, blurring or re-encoding a file smooths it away. For each pair
  of consecutive sampled frames we apply Immerkaer's noise operator (a second difference in
  both directions: it passes white noise and nearly cancels smooth shading) to the temporal
  difference (linear: the difference of the two frames' responses, each computed once) and
  take the median of its block mean |value| over the 8x8 blocks that are flattest in both
  frames (a quarter of them): texture is excluded and the median ignores the edges of moving
  objects. Where nothing is flat (a pan over a textured wall) the residual is texture sliding
  past, not noise; it is caught because it is not white (the plain difference is far larger
  than its second difference; `max_whiteness`) and the pair's noise is left unmeasured. The
  reading becomes a noise sigma in *source* luma levels by dividing by what the estimator
  reads for unit white noise pushed through the same INTER_AREA downscale (simulated once per
  geometry on a small patch): a downscale by f divides white noise by ~f, so 720p and 1080p
  cameras with the same noise read the same (within ~10 % for sigma >= 4). Real noise is
  somewhat spatially correlated, so large downscales overstate it a little, and 8-bit rounding
  of the analysis frame inflates readings below ~0.5 analysis levels (~2 source levels at
  720p, ~3 at 1080p). Encoders matter most: x264 at CRF 23 holds the noise of still areas
  between keyframes and codes fresh noise only at keyframes (a sigma-4 camera then reads ~0
  between them), so besides the typical level (`noise_sigma`) we report the share of pairs in
  which any noise is alive.
* **Motion.** A pair *moves* when at least `change_blocks` block means changed by
  `change_levels`: averaging 64 pixels divides noise by 8, while a moving edge shifts a block
  mean by a good part of its contrast, so noise alone does not count as motion.
* **Frozen pictures and repeated frames.** Runs of pairs without motion are split by length and
  noise. A run of at most `dup_max_run` pairs between moving pairs, carrying no noise beyond
  re-coding residue (`repeat_noise_ratio` of the noise around it), is a *repeat*: a duplicated
  frame or a short stall. A run without motion *and* without live noise lasting `frozen_min_s`
  is a *frozen* picture (a paused file, a still image shown as video: not even a keyframe
  refreshed the noise). Anything else is an ordinary still scene; a still room is `static`
  (basic extractor), never frozen or duplicated, as long as its noise is refreshed within
  `frozen_min_s`, which must therefore exceed the stream's keyframe interval (platforms ask for
  2 s; a local x264 recording at default settings can use 8-10 s). A frozen picture under a
  live overlay (scrolling comments) is not detected: the overlay moves.
* **Frame-rate conversion cadence.** A 24 fps file played into a 30 fps stream repeats every 5th
  frame (25 -> 30: every 6th; 24 -> 60: runs of 1 and 2 repeats, every 5 frames). This is only
  visible between consecutive *decoded* frames (Frame.index advancing by 1), i.e. at
  `sample_fps=0` or a sampling rate at or above the frame rate; at the default 10 Hz the
  cadence columns are NaN and `repeat_share` only sees stalls of >= 100 ms (where an encoder has
  erased the noise, also a moving presenter pausing for a tenth of a second). The same cadence
  comes from a live webcam delivering 25 or 15 fps (low light) into a 30 fps encoder, so a
  `content_fps` near 24 (film) speaks loudest. Measuring it at 10 Hz needs a per-decoded-frame
  hook from the spine (see the report for the integrator).
* **Over-smoothing.** The 8x8 block grid of a compressed source does not survive the downscale
  to the analysis size (720p -> 320 px: 2 px per block; 1080p: 1.33 px; 960x540: 2.67 px), and
  H.264's deblocking filter hides it anyway, so we do not measure blockiness. What survives is
  the spectrum: content upscaled from a lower resolution, blurred, or starved by re-encoding
  lacks the top octave. `detail_ratio` is high-frequency energy (frame minus its 3x3 mean) over
  mid-frequency energy (3x3 mean minus its 5x5 mean) in the most textured blocks, on every
  `detail_every`-th sampled frame. It sees upscaling only from below the analysis size (e.g.
  160x90 content in a 640x360 stream, not 540p content in a 720p one); sensor noise raises it.
* **Metadata** (weak hints an operator can strip or forge): bits per pixel per frame and
  whether the encoder tag names an editing or transcoding application. Frame rate, frame-rate
  mode (interval CV) and timestamp irregularities are already `stream__*` columns. The ffmpeg
  muxer tag (`Lavf...`) is deliberately *not* counted as an editor: every file that passed
  through ffmpeg carries it, including stream recordings downloaded with yt-dlp, OBS remuxes
  and all our synthetic clips.

Cost: per sampled frame one separable 3x3 filter, three block-mean resizes, two absolute
differences and a few partitions of ~900 block values (the whiteness check only on pairs that
move, on 48 blocks); every 4th frame two box filters and two more resizes for detail_ratio.
Measured ~0.18 ms of CPU per sampled frame at 320x180 on a 720p clip (the basic extractor:
~0.10 ms on the same frames). State: the previous frame's luma and noise response and three
40x22 block maps, one float per sampled pair and per 4th frame, and the decoded positions of
repeats (for the cadence).
"""

from __future__ import annotations

import functools
import logging
import math
from array import array
from dataclasses import dataclass

import numpy as np

from detector.extractors.base import ColumnDoc, FeatureExtractor
from detector.types import Evidence, Frame, VideoMeta

log = logging.getLogger(__name__)

# E|M(x1 - x0)| for two frames of unit white noise at full resolution, M the high-pass below
# (gain 6: the kernel's squared weights sum to 36), E|N(0, s)| = s * sqrt(2/pi). Only a
# fallback: the response is simulated for each geometry (_unit_noise_response).
_NOISE_GAIN = math.sqrt(2.0 / math.pi) * 6.0 * math.sqrt(2.0)

_SECOND_DIFF = np.array([1.0, -2.0, 1.0], dtype=np.float32)

# Blocks sampled for the whiteness check of a noise reading.
_WHITENESS_BLOCKS = 48

# Substrings of encoder tags written by editing / transcoding applications (lower case).
_EDITOR_TAGS = (
    "handbrake", "premiere", "adobe", "after effects", "media encoder", "capcut", "剪映",
    "jianying", "davinci", "resolve", "final cut", "imovie", "kinemaster", "inshot", "filmora",
    "wondershare", "vegas", "camtasia", "shotcut", "openshot", "avidemux", "movavi",
    "powerdirector", "cyberlink", "clipchamp", "快影", "kuaiying", "必剪", "bcut", "vn video",
    "格式工厂", "format factory", "xmedia recode", "mediacoder", "videoproc", "any video converter",
)


@dataclass(frozen=True)
class SignalSettings:
    # Side of the square blocks (analysis pixels) over which noise, change and texture are averaged.
    block_px: int = 8
    # Noise is read in this share of blocks, the flattest in both frames of a pair.
    flat_quantile: float = 0.25
    # Noise below this sigma (analysis luma levels) is not alive in a pair. Identical pictures
    # read 0; 8-bit rounding of a changing picture alone would read ~0.3.
    noise_floor_levels: float = 0.1
    # The temporal residual of noise is white. When its plain difference exceeds its second
    # difference by more than this multiple of white noise's ratio, it is texture sliding past
    # (a pan over a wall with no flat area) and the pair's noise is not measured. Measured (10th
    # to 90th percentile of pairs): compressed camera noise 0.4-1.2x, noise-free textured pans
    # 3-16x.
    max_whiteness: float = 1.8
    # A pair moves when at least `change_blocks` block means changed by `change_levels` (analysis
    # luma levels). Re-coding a keyframe of the same picture moves block means by ~0.5, an
    # encoder refreshing a few blocks of a still picture by up to ~1.5, a moving object by tens.
    change_levels: float = 2.0
    change_blocks: int = 3
    # A repeated frame's noise (re-coding residue) stays below this share of the noise between
    # the distinct frames around it.
    repeat_noise_ratio: float = 0.7
    # A motionless run of at most this many pairs between moving pairs can be a repeat (2 covers
    # the triple frames of 24 -> 60 conversion).
    dup_max_run: int = 2
    # A run without motion or noise at least this long is a frozen picture; must exceed the
    # stream's keyframe interval (a still room's noise is refreshed at each keyframe).
    frozen_min_s: float = 4.0
    # A frozen stretch this long is as suspicious as it gets (evidence score 1).
    frozen_full_score_s: float = 30.0
    # Moving footage with no live noise for this long is reported as `no_sensor_noise` evidence.
    noise_dead_min_s: float = 10.0
    # Cadence needs at least this many repeats between adjacent decoded frames...
    cadence_min_repeats: int = 6
    # ...and this regularity to be reported as `dup_cadence` evidence.
    cadence_min_regularity: float = 0.8
    # detail_ratio is read on every n-th sampled frame (texture changes slowly; saves ~30 %)...
    detail_every: int = 4
    # ...in blocks whose mid-frequency energy is above this quantile...
    texture_quantile: float = 0.75
    # ...and above this level (analysis luma levels): a flat picture has no detail to judge.
    texture_min_levels: float = 0.5


class SignalExtractor(FeatureExtractor):
    name = "signal"
    Settings = SignalSettings
    COLUMN_DOCS = {
        "noise_sigma": ColumnDoc(
            "median over sampled pairs of the temporal sensor noise in the flattest areas, as a "
            "standard deviation in source-resolution luma levels (normalised for the downscale); "
            "0 for rendered, frozen or heavily denoised/re-encoded pictures; missing when no pair "
            "could be measured (texture moving everywhere, fewer than two frames)", "luma level",
            ">= 0", "live"),
        "noise_alive_share": ColumnDoc(
            "share of measured sampled pairs in which any temporal noise is alive (an encoder that "
            "holds noise between keyframes still refreshes it at each keyframe)", "share", "0-1",
            "live"),
        "noise_cv": ColumnDoc(
            "instability of the noise level over time: (p90 - p10) / median over pairs with live "
            "noise; missing with fewer than 10 such pairs", "ratio", ">= 0", "prerecorded"),
        "repeat_share": ColumnDoc(
            "share of sampled pairs that repeat the previous picture inside moving footage (a "
            "duplicated frame or a short stall; no motion, no noise). Context: an encoder starved of "
            "bits stalls slow, small motion in live rooms too; `cadence__conversion_fit` is the "
            "evidence of a conversion", "share", "0-1", "context"),
        "frozen_share": ColumnDoc(
            "share of the clip's time in frozen stretches: picture unchanged, noise included, for at "
            "least frozen_min_s (a paused file, a still image; a still room keeps refreshing noise)",
            "share", "0-1", "prerecorded"),
        "content_fps": ColumnDoc(
            "frames per second of distinct pictures in moving footage (decoded rate minus repeated "
            "frames: 24 for film played at 30); missing unless consecutive decoded frames are sampled "
            "(sample_fps=0 or >= the frame rate)", "1/s", "> 0", "context"),
        "cadence_regularity": ColumnDoc(
            "how regular the repeats are: share of gaps between repeated frames that follow a fixed "
            "pattern (1 for frame-rate conversion, low for random stalls); missing with fewer than "
            "cadence_min_repeats repeats between consecutive decoded frames. Context, as "
            "repeat_share", "share", "0-1", "context"),
        "detail_ratio": ColumnDoc(
            "median over frames of high- over mid-frequency energy in the most textured blocks; low "
            "for content upscaled from below the analysis size, blurred or starved by re-encoding; "
            "missing for pictures with no texture", "ratio", ">= 0", "live"),
        "bits_per_pixel": ColumnDoc(
            "container bit rate / (width x height x declared fps), audio included; a weak hint an "
            "operator can change; missing for streams and files without a bit rate", "bit/pixel",
            ">= 0", "context"),
        "encoder_is_editor": ColumnDoc(
            "1 when the encoder tag names an editing or transcoding application (CapCut/剪映, "
            "Premiere, HandBrake, ...), else 0; the ffmpeg tag Lavf does not count; a weak hint an "
            "operator can strip", "0/1", "0-1", "prerecorded"),
    }
    FEATURES = tuple(COLUMN_DOCS)

    def reset(self, meta: VideoMeta) -> None:
        super().reset(meta)
        # What the noise estimator reads for unit white noise at the source resolution: turns
        # its reading into a source-level sigma whatever the downscale factor.
        self._unit_response, self._white = _unit_noise_response(
            *_source_and_analysis_size(meta), self.settings.block_px, self.settings.flat_quantile)
        # The floor as a reading: white noise of that sigma at the analysis size.
        self._floor = self.settings.noise_floor_levels * _NOISE_GAIN
        # Previous frame: its luma, high-pass, block flatness and block means (small arrays).
        self._prev: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._prev_t_s = 0.0
        self._prev_index = -1
        self._first_t_s: float | None = None
        self._last_t_s = 0.0
        self._noise = array("f")              # per pair, analysis levels
        self._ratios = array("f")             # detail ratio of every detail_every-th frame
        self._frames = 0
        self._pairs = 0
        self._unmeasured = 0                  # pairs whose residual was texture in motion
        self._repeat_pairs = 0
        self._quiet: _Run | None = None       # current run of pairs without motion
        self._before_noise: float | None = None   # noise of the moving pair before that run
        self._frozen: _Run | None = None      # current run without motion and without noise
        self._frozen_spans: list[_Run] = []
        self._dead: _Run | None = None        # current run without noise
        self._dead_spans: list[_Run] = []
        # Cadence, from pairs of consecutive decoded frames only.
        self._adjacent_pairs = 0
        self._adjacent_dt_sum_s = 0.0
        self._adjacent_moving = 0
        self._adjacent_repeats = 0
        self._repeat_starts = array("q")      # decoded index where each adjacent repeat starts
        self._repeat_span_s: tuple[float, float] | None = None   # first and last of them

    # -- per frame --------------------------------------------------------------------------
    def update(self, frame: Frame) -> None:
        import cv2

        block = self.settings.block_px
        high = _high_pass(frame.gray)
        flatness = _block_mean(np.abs(high), block)
        means = _block_mean(frame.gray.astype(np.float32), block)
        self._frames += 1
        if self.settings.detail_every <= 1 or self._frames % self.settings.detail_every == 1:
            self._detail(frame.gray)
        if self._first_t_s is None:
            self._first_t_s = frame.t_s
        self._last_t_s = frame.t_s
        if self._prev is not None and self._prev[0].shape == frame.gray.shape:
            prev_gray, prev_high, prev_flat, prev_means = self._prev
            mean_change = np.abs(means - prev_means)
            change = self._kth_largest(mean_change)
            # Texture can only pass for noise where something moves: check whiteness there.
            moving = change >= self.settings.change_levels
            noise, whiteness = _read_noise(
                cv2.absdiff(high, prev_high), cv2.absdiff(frame.gray, prev_gray), mean_change,
                np.maximum(flatness, prev_flat), block, self.settings.flat_quantile,
                need_whiteness=self._floor if moving else math.inf)
            if whiteness > self.settings.max_whiteness * self._white:
                noise = math.nan     # texture in motion, not noise: this pair cannot tell
            adjacent = frame.index == self._prev_index + 1
            self._add_pair(_Pair(self._prev_t_s, frame.t_s, self._prev_index, adjacent, noise, change))
        # A copy: the sampler's array must not be pinned by an extractor.
        self._prev = (frame.gray.copy(), high, flatness, means)
        self._prev_t_s = frame.t_s
        self._prev_index = frame.index

    def _kth_largest(self, mean_change: np.ndarray) -> float:
        """The k-th largest change of a block mean: motion, not noise.

        Averaging 64 pixels divides noise by 8, while a moving edge shifts a block mean by a
        good fraction of its contrast; taking the k-th largest lets a small moving object count
        and ignores the odd block an encoder re-codes in a still picture.
        """
        change = mean_change.ravel()
        k = min(self.settings.change_blocks, change.size)
        return float(np.partition(change, change.size - k)[change.size - k]) if k else 0.0

    def _detail(self, gray: np.ndarray) -> None:
        """High- over mid-frequency energy in the most textured blocks of one frame.

        Plain box-filter bands here, not the noise operator: this asks how sharp the content
        is, and the noise operator ignores smooth shading on purpose.
        """
        import cv2

        s = self.settings
        low = cv2.boxFilter(gray, cv2.CV_32F, (3, 3))
        high = _block_mean(np.abs(cv2.subtract(gray, low, dtype=cv2.CV_32F)), s.block_px)
        mid = _block_mean(cv2.absdiff(low, cv2.blur(low, (5, 5))), s.block_px)
        if mid.size == 0:
            return
        values = mid.ravel()
        k = min(int(s.texture_quantile * values.size), values.size - 1)
        cut = max(float(np.partition(values, k)[k]), s.texture_min_levels)
        chosen = mid >= cut
        total_mid = float(mid[chosen].sum())
        if total_mid > 0:
            self._ratios.append(float(high[chosen].sum()) / total_mid)

    # -- per pair ---------------------------------------------------------------------------
    def _add_pair(self, pair: _Pair) -> None:
        s = self.settings
        self._pairs += 1
        measured = not math.isnan(pair.noise)
        if measured:
            self._noise.append(pair.noise)
        else:
            self._unmeasured += 1
        moving = pair.change >= s.change_levels
        dead = measured and pair.noise < self._floor
        if pair.adjacent:
            self._adjacent_pairs += 1
            self._adjacent_dt_sum_s += pair.t1_s - pair.t0_s
        # Repeats: a short motionless run inside moving footage.
        if moving:
            self._close_quiet(after_noise=pair.noise)
            self._before_noise = pair.noise
            self._adjacent_moving += pair.adjacent
        else:
            self._quiet = _extend(self._quiet, pair)
        # Frozen: no motion and no noise at all.
        if moving or not dead:
            self._close_frozen()
        else:
            self._frozen = _extend(self._frozen, pair)
        # No sensor noise (evidence): noise dead, whether or not the picture moves.
        if dead:
            self._dead = _extend(self._dead, pair)
            self._dead.moving += moving
        else:
            self._close_dead()

    def _close_quiet(self, after_noise: float | None) -> None:
        run, self._quiet = self._quiet, None
        s = self.settings
        if run is None or self._before_noise is None or after_noise is None or run.pairs > s.dup_max_run:
            return
        # A repeated frame carries no new noise either: at most re-coding residue, well below
        # the noise between the distinct frames around it (or no noise at all).
        around = [n for n in (self._before_noise, after_noise) if not math.isnan(n)]
        limit = max([self._floor] + [s.repeat_noise_ratio * min(around)] * bool(around))
        if not run.max_noise <= limit:     # NaN (unmeasured) is not a repeat either
            return
        self._repeat_pairs += run.pairs
        if run.all_adjacent:
            self._adjacent_repeats += run.pairs
            self._adjacent_moving += run.pairs
            self._repeat_starts.append(run.start_index)
            first_s = self._repeat_span_s[0] if self._repeat_span_s else run.start_s
            self._repeat_span_s = (first_s, run.start_s)

    def _close_frozen(self) -> None:
        run, self._frozen = self._frozen, None
        if run is not None and run.duration_s >= self.settings.frozen_min_s:
            self._frozen_spans.append(run)

    def _close_dead(self) -> None:
        run, self._dead = self._dead, None
        # Moving footage only: a frozen picture is reported as frozen, not twice.
        if run is not None and run.duration_s >= self.settings.noise_dead_min_s and run.moving >= 0.5 * run.pairs:
            self._dead_spans.append(run)

    # -- report -----------------------------------------------------------------------------
    def finalize(self) -> tuple[dict[str, float], list[Evidence]]:
        self._close_quiet(after_noise=None)     # a run that reaches the end is not a repeat
        self._close_frozen()
        self._close_dead()
        nan = math.nan
        if self._unmeasured:
            log.debug("%s: noise unmeasured in %d of %d pairs (texture in motion, nothing flat)",
                      self.meta.location, self._unmeasured, self._pairs)
        noise = np.frombuffer(self._noise, dtype=np.float32)
        to_source = 1.0 / self._unit_response
        alive = noise[noise >= self._floor]
        span_s = self._last_t_s - (self._first_t_s or 0.0)
        frozen_s = sum(run.duration_s for run in self._frozen_spans)
        cadence = self._cadence()
        ratios = np.frombuffer(self._ratios, dtype=np.float32)
        features = {
            "noise_sigma": float(np.median(noise)) * to_source if noise.size else nan,
            "noise_alive_share": alive.size / noise.size if noise.size else nan,
            "noise_cv": _spread(alive) if alive.size >= 10 else nan,
            "repeat_share": self._repeat_pairs / self._pairs if self._pairs else nan,
            "frozen_share": min(1.0, frozen_s / span_s) if span_s > 0 else nan,
            "content_fps": cadence.content_fps,
            "cadence_regularity": cadence.regularity,
            "detail_ratio": float(np.median(ratios)) if ratios.size else nan,
            "bits_per_pixel": _bits_per_pixel(self.meta),
            "encoder_is_editor": float(encoder_is_editor(self.meta.encoder)),
        }
        return features, self._evidence(cadence, span_s, to_source)

    def _cadence(self) -> _Cadence:
        if self._adjacent_dt_sum_s <= 0 or not self._adjacent_moving:
            return _Cadence()
        decoded_fps = self._adjacent_pairs / self._adjacent_dt_sum_s
        content_fps = decoded_fps * (1.0 - self._adjacent_repeats / self._adjacent_moving)
        starts = np.frombuffer(self._repeat_starts, dtype=np.int64)
        if starts.size < max(self.settings.cadence_min_repeats, 3):
            return _Cadence(content_fps, decoded_fps, repeats=int(starts.size))
        regularity, period_frames = pattern_regularity(np.diff(starts))
        return _Cadence(content_fps, decoded_fps, regularity, period_frames, int(starts.size))

    def _evidence(self, cadence: _Cadence, span_s: float, to_source: float) -> list[Evidence]:
        s = self.settings
        found = [
            Evidence(
                kind="frozen", start_s=run.start_s, end_s=run.end_s,
                score=min(1.0, run.duration_s / s.frozen_full_score_s),
                detail={"max_change_levels": round(run.max_change, 3)},
            )
            for run in self._frozen_spans
        ]
        # Noise-free moving footage is suspicious, not proof: a starved encoder erases noise too.
        found += [
            Evidence(
                kind="no_sensor_noise", start_s=run.start_s, end_s=run.end_s,
                score=0.6 * min(1.0, run.duration_s / s.frozen_full_score_s),
                detail={"moving_share": round(run.moving / run.pairs, 3),
                        "max_noise_sigma": round(run.max_noise * to_source, 3)},
            )
            for run in self._dead_spans
        ]
        if self._repeat_span_s and not math.isnan(cadence.regularity) and cadence.regularity >= s.cadence_min_regularity:
            found.append(Evidence(
                kind="dup_cadence", start_s=self._repeat_span_s[0], end_s=self._repeat_span_s[1],
                score=cadence.regularity,
                detail={
                    "period_frames": cadence.period_frames,
                    "content_fps": round(cadence.content_fps, 3),
                    "decoded_fps": round(cadence.decoded_fps, 3),
                    "repeats": cadence.repeats,
                },
            ))
        if encoder_is_editor(self.meta.encoder):
            # Metadata is a weak hint (strippable, forgeable): a low score over the whole clip.
            found.append(Evidence(kind="editor_tag", start_s=0.0, end_s=max(span_s, 0.0), score=0.3,
                                  detail={"encoder": self.meta.encoder}))
        return found


@dataclass(frozen=True)
class _Pair:
    """What one pair of consecutive sampled frames showed."""

    t0_s: float
    t1_s: float
    index0: int             # decoded position of the first frame (internal, for the cadence)
    adjacent: bool          # the two frames are consecutive decoded frames
    noise: float            # analysis luma levels
    change: float           # analysis luma levels


@dataclass
class _Run:
    """A run of consecutive pairs sharing a state."""

    start_s: float
    start_index: int
    end_s: float = 0.0
    pairs: int = 0
    moving: int = 0
    max_noise: float = 0.0
    max_change: float = 0.0
    all_adjacent: bool = True

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def _extend(run: _Run | None, pair: _Pair) -> _Run:
    run = run or _Run(pair.t0_s, pair.index0)
    run.end_s = pair.t1_s
    run.pairs += 1
    # An unmeasured pair makes the run's noise unknown (NaN stays NaN under max).
    run.max_noise = math.nan if math.isnan(pair.noise) else max(run.max_noise, pair.noise)
    run.max_change = max(run.max_change, pair.change)
    run.all_adjacent = run.all_adjacent and pair.adjacent
    return run


@dataclass(frozen=True)
class _Cadence:
    content_fps: float = math.nan
    decoded_fps: float = math.nan
    regularity: float = math.nan
    period_frames: int = 0
    repeats: int = 0


def pattern_regularity(gaps: np.ndarray, max_lag: int = 4) -> tuple[float, int]:
    """How periodic the gaps between repeats are, and the period in decoded frames.

    A fixed conversion repeats one pattern of gaps: 5,5,5 for 24 -> 30; 3,2,3,2 (runs of two
    and one repeated frames, 5 frames apart) for 24 -> 60. Regularity is the best share, over
    pattern lengths 1..max_lag, of gaps equal to the gap one pattern earlier; the period is
    the frames spanned by one pattern.
    """
    if gaps.size < 2:
        return math.nan, 0
    best, best_lag = 0.0, 1
    for lag in range(1, min(max_lag, gaps.size - 1) + 1):
        share = float(np.mean(gaps[lag:] == gaps[:-lag]))
        if share > best + 1e-9:
            best, best_lag = share, lag
    sums = np.convolve(gaps, np.ones(best_lag, dtype=np.int64), mode="valid")
    return best, int(np.median(sums))


def _read_noise(abs_high_diff: np.ndarray, abs_diff: np.ndarray, mean_change: np.ndarray,
                flatness: np.ndarray, block: int, flat_quantile: float, need_whiteness: float) -> tuple[float, float]:
    """Noise reading of one pair, and how white its temporal residual is.

    The reading is the median block mean |temporal high-pass| over the blocks flattest in both
    frames (analysis levels). Whiteness compares the plain temporal difference in those blocks
    (less its block-mean shift, i.e. lighting) with its high-pass: fixed for white noise, much
    larger when the residual is texture sliding past (a pan over a textured wall), whose
    difference is mostly low frequency. Only computed when the reading reaches need_whiteness
    (NaN otherwise).
    """
    residual = _block_mean(abs_high_diff, block)
    if residual.size == 0:
        return 0.0, math.nan
    flat = flatness.ravel()
    k = max(1, int(round(flat_quantile * flat.size)))
    # Threshold at the k-th flattest value (partition is ~5x cheaper than argpartition).
    chosen = flatness <= np.partition(flat, k - 1)[k - 1] if k < flat.size else np.ones_like(flatness, bool)
    values = residual[chosen]
    mid = values.size // 2
    reading = float(np.partition(values, mid)[mid])
    if reading <= 0 or reading < need_whiteness:
        return reading, math.nan
    rows, cols = np.nonzero(chosen)
    # A few dozen blocks give a stable median at a fifth of the cost of all of them.
    step = max(1, rows.size // _WHITENESS_BLOCKS)
    rows, cols = rows[::step], cols[::step]
    bh, bw = chosen.shape
    tiles = abs_diff[: bh * block, : bw * block].reshape(bh, block, bw, block)[rows, :, cols, :]
    sums = np.add.reduce(tiles.reshape(rows.size, block * block), axis=1, dtype=np.float32)
    spread = sums * (1.0 / (block * block)) - mean_change[rows, cols]
    mid = spread.size // 2
    return reading, float(np.partition(spread, mid)[mid]) / reading


def _source_and_analysis_size(meta: VideoMeta) -> tuple[int, int, int, int]:
    """(source w, h, analysis w, h) in the same orientation (the analysis size is rotated)."""
    aw, ah = meta.analysis_width, meta.analysis_height
    if meta.rotation_deg in (90, 270):
        aw, ah = ah, aw
    return max(meta.width, 1), max(meta.height, 1), max(aw, 1), max(ah, 1)


@functools.lru_cache(maxsize=64)
def _unit_noise_response(width: int, height: int, analysis_width: int, analysis_height: int,
                         block: int, flat_quantile: float) -> tuple[float, float]:
    """The noise estimator's reading and whiteness for white noise of sigma 1 in the source frame.

    Simulated once per geometry on a patch: the sampler's INTER_AREA downscale by a linear
    factor f averages ~f^2 source pixels, so white noise shrinks by ~f; at non-integer factors
    neighbouring analysis pixels share source pixels and the high-pass sees a little less. The
    simulation also absorbs the estimator's own bias (choosing the flattest blocks).
    """
    import cv2

    out_w, out_h = min(analysis_width, 128), min(analysis_height, 128)
    src_w = max(out_w, round(out_w * width / analysis_width))
    src_h = max(out_h, round(out_h * height / analysis_height))
    rng = np.random.default_rng(0)
    smalls, highs, flats = [], [], []
    for _ in range(2):
        noise = rng.standard_normal((src_h, src_w), dtype=np.float32)
        small = cv2.resize(noise, (out_w, out_h), interpolation=cv2.INTER_AREA) if (src_w, src_h) != (out_w, out_h) else noise
        high = _high_pass(small)
        smalls.append(small)
        highs.append(high)
        flats.append(_block_mean(np.abs(high), block))
    mean_change = np.abs(_block_mean(smalls[1], block) - _block_mean(smalls[0], block))
    reading, whiteness = _read_noise(np.abs(highs[1] - highs[0]), np.abs(smalls[1] - smalls[0]), mean_change,
                                     np.maximum(*flats), block, flat_quantile, need_whiteness=0.0)
    if not reading > 0 or not whiteness > 0:    # a degenerate geometry (smaller than a block)
        return _NOISE_GAIN, 1.0
    return reading, whiteness


def _high_pass(image: np.ndarray) -> np.ndarray:
    """Immerkaer's noise operator: [1 -2 1] x [1 -2 1], a second difference in both directions.

    It passes white noise (gain 6) but cancels ramps and nearly cancels smooth shading, so
    smooth texture sliding past leaves far less residual than with a plain high-pass (measured
    on a noise-free pan: 2-5x less), and what remains fails the whiteness check.
    """
    import cv2

    return cv2.sepFilter2D(image, cv2.CV_32F, _SECOND_DIFF, _SECOND_DIFF)


def _block_mean(image: np.ndarray, block: int) -> np.ndarray:
    """Mean of each whole block x block tile (the ragged border is dropped)."""
    import cv2

    h, w = image.shape[:2]
    bh, bw = h // block, w // block
    if bh == 0 or bw == 0:
        return np.zeros((0, 0), np.float32)
    return cv2.resize(image[: bh * block, : bw * block], (bw, bh), interpolation=cv2.INTER_AREA)


def _spread(values: np.ndarray) -> float:
    p10, p50, p90 = np.percentile(values, [10, 50, 90])
    return float((p90 - p10) / p50) if p50 > 0 else math.nan


def _bits_per_pixel(meta: VideoMeta) -> float:
    if not meta.bit_rate or not meta.declared_fps or meta.width <= 0 or meta.height <= 0:
        return math.nan
    return meta.bit_rate / (meta.width * meta.height * meta.declared_fps)


def encoder_is_editor(tag: str) -> bool:
    """Whether an encoder tag names an editing or transcoding application (not plain ffmpeg)."""
    lowered = (tag or "").lower()
    return any(name in lowered for name in _EDITOR_TAGS)
