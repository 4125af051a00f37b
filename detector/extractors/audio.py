"""Audio cues: does the soundtrack replay itself? (an audio loop often survives a video disguise)

The soundtrack is decoded in the scanner's single pass (`VideoSource.media()`) and reaches
this extractor as mono AudioChunks with true timestamps. What it does with them:

* **Fingerprint** (while decoding, small state): the audio is box-decimated to ~8 kHz
  (48 kHz / 6, 44.1 kHz / 5); every `hop_s` (50 ms) a Hann-windowed `window_s` (200 ms)
  spectrum is summed into 32 log-spaced bands between `band_low_hz` and `band_high_hz`, and
  each bit says whether a band's log energy is above its own mean over the `history_s`
  (0.5 s) around the hop, after removing the hop's median over bands. Syllables and notes
  starting and ending set the bits; a band's gain (equalisation) or the whole track's volume
  changes none. (Haitsma and Kalker's sign of the band-difference change over one hop was
  tried first: on sustained harmonic notes that change is ~0, its sign is noise, and a
  replay matched at a bit error rate of ~0.3 instead of ~0.1.) Hops quieter than
  `silence_dbfs` are marked silent and never match (silence is similar to itself
  everywhere). Memory: ~17 bytes per hop (20 hops/s, ~1.2 MB per hour).
* **Search** (at the end, near-linear): each 16-bit half of each code is bucketed; pairs of
  hops in the same bucket vote for their time offset (buckets with more than `bucket_cap`
  members are skipped: such codes come from stationary sound and say nothing). Only the
  `max_offsets` best-voted offsets are verified, each in one O(n) pass: the bit error rate
  (BER) between every hop and the hop one offset earlier, smoothed over `match_window_s`;
  runs below `max_ber` (unrelated audio sits at ~0.5), extended while below `extend_ber`,
  lasting `min_span_s` and with a mean BER under `max_ber`, are replays.
* **A repeat is a sharp alignment**: a run is kept only if shifting the alignment by a few
  tenths of a second makes the match clearly worse (`sharpness_margin`), so a steady hum or
  a held note, which matches itself at every offset, is not a loop. Offsets under
  `min_lag_s` are not searched: a musical bar repeating is rhythm, not a replay.

Limits, honestly: music built from identical samples (a beat that repeats for minutes)
is, physically, a repeat and can be reported as one if its bars are longer than
`min_lag_s`; the classifier weighs `repeat_share` against the rest. A replay must keep its
offset within one hop (50 ms) over a span, so a replay sped up by more than ~0.5 % splits
into short pieces or is missed (no speed search yet). Noise-like sounds (applause, hiss)
match poorly because AAC re-synthesises noise bands (PNS); the hysteresis above carries a
span across them. The last ~0.35 s of a track is not fingerprinted (a hop needs 0.25 s of
audio after it). Clips without an audio track get NaN in every column (missing, not zero).

Cost, measured on this project's 2-core machine while other jobs ran: fingerprinting 48 kHz
audio ~0.1 ms of CPU per 100 ms of audio (batched a second at a time; decoding AAC happens
on the decoding thread, not here); the search ~0.15 s for an hour of audio and ~2 s for
ten hours (bucket voting is O(n * bucket_cap), each verified offset O(n)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from detector.extractors.base import ColumnDoc, FeatureExtractor
from detector.types import AudioChunk, Evidence, Frame, VideoMeta

_BITS = 32
_TARGET_RATE_HZ = 8000        # decimate to the integer factor that keeps at least this rate
_NEUTRAL_BER = 0.5            # what a silent or missing hop counts as when matching


@dataclass(frozen=True)
class AudioSettings:
    hop_s: float = 0.05
    window_s: float = 0.2
    band_low_hz: float = 250.0
    band_high_hz: float = 3800.0
    # Audio is fingerprinted in batches of this much (fewer, larger numpy calls).
    batch_s: float = 1.0
    # Each band's energy is compared with its own mean over this much audio around the hop.
    history_s: float = 0.5
    # Hops whose RMS level is below this (dB relative to full scale) are silence.
    silence_dbfs: float = -55.0
    # Shortest time offset searched: shorter periods are rhythm, not a replay.
    min_lag_s: float = 4.0
    # Shortest repeated span reported.
    min_span_s: float = 3.0
    # BER is averaged over this window before thresholding.
    match_window_s: float = 1.0
    # A smoothed BER below this is a match (unrelated audio ~0.5, a re-encoded copy ~0.05-0.2).
    max_ber: float = 0.3
    # A match extends through neighbouring hops while the smoothed BER stays below this
    # (noise-like sounds are re-synthesised by AAC and match less well inside a replay).
    extend_ber: float = 0.4
    # Codes shared by more hops than this are uninformative (stationary sound) and skipped.
    bucket_cap: int = 24
    # Offsets verified, best-voted first.
    max_offsets: int = 40
    # An offset needs at least this many votes (summed over +-1 hop) to be verified.
    min_votes: int = 4
    # The match must beat the alignment shifted by 0.2-0.8 s by this much BER.
    sharpness_margin: float = 0.12
    # A repeated span this long scores 1 (times the match quality).
    full_score_s: float = 30.0


class AudioExtractor(FeatureExtractor):
    name = "audio"
    Settings = AudioSettings
    USES_AUDIO = True
    COLUMN_DOCS = {
        "duration_s": ColumnDoc("seconds of audio decoded (missing: the clip has no audio track)", "s", ">= 0", "context"),
        "silent_share": ColumnDoc("share of the analysed audio quieter than the silence level", "share", "0-1", "context"),
        "repeat_share": ColumnDoc("share of the non-silent audio that replays earlier audio of the clip", "share", "0-1", "looped"),
        "longest_repeat_s": ColumnDoc("longest span of audio that replays an earlier span (0: none)", "s", ">= 0", "looped"),
        "repeat_spans": ColumnDoc("number of audio spans that replay an earlier span", "count", ">= 0", "looped"),
        "repeat_score_max": ColumnDoc("highest `audio_loop` evidence score (length x match quality; 0: none)", "score", "0-1", "looped"),
        "repeat_offset_s": ColumnDoc("time between the longest repeated span and its source (the loop period; missing if none)", "s", "> 0", "looped"),
        "level_std_db": ColumnDoc("variation over time of the non-silent loudness (per 50 ms)", "dB", ">= 0", "context"),
    }
    FEATURES = tuple(COLUMN_DOCS)

    def reset(self, meta: VideoMeta) -> None:
        super().reset(meta)
        self._fingerprinter: _Fingerprinter | None = None
        self._rate_in = 0
        self._codes: list[np.ndarray] = []
        self._times: list[np.ndarray] = []
        self._levels: list[np.ndarray] = []
        self._fresh: list[np.ndarray] = []
        self._expected_t_s: float | None = None
        self._received_s = 0.0
        self._pending: list[np.ndarray] = []
        self._pending_n = 0

    def update(self, frame: Frame) -> None:
        """Pictures are for the other extractors."""
        return None

    def update_audio(self, chunk: AudioChunk) -> None:
        if not len(chunk.samples):
            return
        gap = self._expected_t_s is None or abs(chunk.t_s - self._expected_t_s) > 0.02
        if self._fingerprinter is None or chunk.rate_hz != self._rate_in or gap:
            self._flush()
        if self._fingerprinter is None or chunk.rate_hz != self._rate_in:
            self._rate_in = chunk.rate_hz
            self._fingerprinter = _Fingerprinter(chunk.rate_hz, self.settings)
            gap = True
        if gap:
            # A hole in the soundtrack (or its start): fingerprints never straddle it.
            self._fingerprinter.restart(chunk.t_s)
        # Chunks come every ~100 ms; fingerprinting a second at a time amortises the
        # per-call overhead (it was most of the cost at 2 hops per call).
        self._pending.append(chunk.samples)
        self._pending_n += len(chunk.samples)
        if self._pending_n >= self.settings.batch_s * chunk.rate_hz:
            self._flush()
        self._expected_t_s = chunk.t_s + chunk.duration_s
        self._received_s += chunk.duration_s

    def _flush(self) -> None:
        if not self._pending:
            return
        samples = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
        self._pending, self._pending_n = [], 0
        codes, times, levels, fresh = self._fingerprinter.add(samples)
        if len(codes):
            self._codes.append(codes)
            self._times.append(times)
            self._levels.append(levels)
            self._fresh.append(fresh)

    def finalize(self) -> tuple[dict[str, float], list[Evidence]]:
        features = {key: math.nan for key in self.FEATURES}
        if self._fingerprinter is None:
            return features, []          # no audio track: every column missing
        self._flush()
        s = self.settings
        codes = np.concatenate(self._codes) if self._codes else np.zeros(0, np.uint32)
        times = np.concatenate(self._times) if self._times else np.zeros(0)
        levels = np.concatenate(self._levels) if self._levels else np.zeros(0)
        fresh = np.concatenate(self._fresh) if self._fresh else np.zeros(0, dtype=bool)
        audible = levels > s.silence_dbfs
        # A code compares two hops: both must be audible, and the first after a gap has no pair.
        valid = audible & np.concatenate([[False], audible[:-1]]) & ~fresh
        n = len(codes)
        features["duration_s"] = self._received_s
        features["silent_share"] = float(1.0 - audible.mean()) if n else math.nan
        features["level_std_db"] = float(np.std(levels[audible])) if audible.sum() >= 2 else math.nan
        spans = find_repeats(codes, valid, s) if n else []
        hop = s.hop_s
        evidence = []
        for a, b, offset, ber in spans:
            length_s = (b - a) * hop
            quality = float(np.clip(1.0 - ber / _NEUTRAL_BER, 0.0, 1.0))
            evidence.append(Evidence(
                kind="audio_loop",
                start_s=float(times[a] - hop / 2), end_s=float(times[b - 1] + hop / 2),
                score=min(1.0, length_s / s.full_score_s) * quality,
                source_start_s=float(times[a - offset] - hop / 2), source_end_s=float(times[b - 1 - offset] + hop / 2),
                detail={"offset_s": round(float(times[a] - times[a - offset]), 3), "bit_error_rate": round(ber, 3)},
            ))
        repeated = np.zeros(n, dtype=bool)
        for a, b, _, _ in spans:
            repeated[a:b] = True
        audible_n = int(audible.sum())
        features["repeat_share"] = float((repeated & audible).sum() / audible_n) if audible_n else 0.0
        features["repeat_spans"] = float(len(spans))
        longest = max(evidence, key=lambda e: e.end_s - e.start_s, default=None)
        features["longest_repeat_s"] = longest.end_s - longest.start_s if longest else 0.0
        features["repeat_offset_s"] = float(longest.detail["offset_s"]) if longest else math.nan
        features["repeat_score_max"] = max((e.score for e in evidence), default=0.0)
        return features, evidence


class _Fingerprinter:
    """Streaming log-band-energy fingerprints of one sample rate (see the module docstring)."""

    def __init__(self, rate_hz: int, s: AudioSettings) -> None:
        self.s = s
        self.factor = max(1, rate_hz // _TARGET_RATE_HZ)
        self.rate = rate_hz / self.factor
        self.hop = max(1, int(round(s.hop_s * self.rate)))
        self.window = max(2 * self.hop, int(round(s.window_s * self.rate)))
        self.nfft = 1 << (self.window - 1).bit_length()
        self.taper = np.hanning(self.window).astype(np.float32)
        freqs = np.fft.rfftfreq(self.nfft, 1.0 / self.rate)
        high = min(s.band_high_hz, 0.48 * self.rate)
        edges = np.geomspace(s.band_low_hz, high, _BITS + 1)
        # Each band is a run of FFT bins [lo, hi) (at least the one nearest its centre), summed
        # as differences of a cumulative sum: no matrix product, so no BLAS thread pool
        # (whose spinning workers cost more CPU than the sums themselves).
        lo = np.searchsorted(freqs, edges[:-1], side="left")
        hi = np.searchsorted(freqs, edges[1:], side="left")
        empty = hi <= lo
        nearest = np.clip(np.searchsorted(freqs, np.sqrt(edges[:-1] * edges[1:])), 0, len(freqs) - 1)
        self.band_lo = np.where(empty, nearest, lo)
        self.band_hi = np.where(empty, nearest + 1, hi)
        # Scale so a full-scale sine reads ~0 dBFS: mean square of the tapered window.
        self.level_scale = 1.0 / float(np.mean(self.taper ** 2))
        self.shifts = np.arange(_BITS, dtype=np.uint32)
        self.half = max(1, int(round(s.history_s / s.hop_s / 2)))
        self.restart(0.0)

    def restart(self, t_s: float) -> None:
        self.buffer = np.zeros(0, dtype=np.float32)    # decimated samples not yet consumed
        self.raw_rest = np.zeros(0, dtype=np.float32)   # input samples short of one decimation step
        self.t0_s = t_s                                 # time of buffer[0]
        # Log band energies, times and levels of hops not yet coded, after `context` coded ones.
        self.rows = np.zeros((0, _BITS))
        self.row_times = np.zeros(0)
        self.row_levels = np.zeros(0, dtype=np.float32)
        self.context = 0
        self.dropped = 0                                # rows forgotten since the restart

    def add(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Consume samples; return the codes, centre times, levels (dBFS) of new hops, and
        which hops are the first after a (re)start (their code compares with nothing)."""
        raw = np.concatenate([self.raw_rest, samples.astype(np.float32, copy=False)]) if len(self.raw_rest) else samples
        usable = len(raw) - len(raw) % self.factor
        self.raw_rest = raw[usable:].astype(np.float32, copy=True)
        if self.factor > 1:
            decimated = raw[:usable].reshape(-1, self.factor).mean(axis=1, dtype=np.float32)
        else:
            decimated = raw[:usable].astype(np.float32, copy=False)
        buffer = np.concatenate([self.buffer, decimated]) if len(self.buffer) else decimated
        count = 0 if len(buffer) < self.window else 1 + (len(buffer) - self.window) // self.hop
        empty = np.zeros(0, dtype=np.uint32), np.zeros(0), np.zeros(0, dtype=np.float32), np.zeros(0, dtype=bool)
        if count == 0:
            self.buffer = np.array(buffer, dtype=np.float32, copy=True)
            return empty
        windows = np.lib.stride_tricks.sliding_window_view(buffer, self.window)[:: self.hop][:count]
        tapered = windows * self.taper
        power = np.abs(np.fft.rfft(tapered, self.nfft, axis=1)).astype(np.float32) ** 2
        cumulative = np.zeros((count, power.shape[1] + 1))
        np.cumsum(power, axis=1, out=cumulative[:, 1:])
        energy = np.log(cumulative[:, self.band_hi] - cumulative[:, self.band_lo] + 1e-12)
        levels = 10.0 * np.log10(np.mean(tapered * tapered, axis=1) * self.level_scale + 1e-12)
        times = self.t0_s + (np.arange(count) * self.hop + self.window / 2) / self.rate
        consumed = count * self.hop
        self.buffer = np.array(buffer[consumed:], dtype=np.float32, copy=True)
        self.t0_s += consumed / self.rate
        return self._codes(energy, times, levels.astype(np.float32))

    def _codes(self, energy: np.ndarray, times: np.ndarray, levels: np.ndarray):
        """Codes of the hops whose context is complete (a hop needs `half` hops after it).

        Each band is compared with its own mean over the `history_s` around the hop: onsets
        and decays of notes and syllables, whatever the band's gain; then the hop's median
        is removed so that the whole track getting louder changes no bit. The window is
        centred so that a replay's first and last hops are disturbed alike.
        """
        self.rows = np.vstack([self.rows, energy])
        self.row_times = np.concatenate([self.row_times, times])
        self.row_levels = np.concatenate([self.row_levels, levels])
        half = self.half
        ready = np.arange(self.context, max(self.context, len(self.rows) - half))
        if not len(ready):
            return np.zeros(0, dtype=np.uint32), np.zeros(0), np.zeros(0, dtype=np.float32), np.zeros(0, dtype=bool)
        sums = np.concatenate([np.zeros((1, _BITS)), np.cumsum(self.rows, axis=0)])
        first = np.maximum(ready - half, 0)
        last = ready + half + 1
        reference = (sums[last] - sums[first]) / (last - first)[:, None]
        residual = self.rows[ready] - reference
        residual -= np.median(residual, axis=1, keepdims=True)
        codes = np.bitwise_or.reduce((residual > 0).astype(np.uint32) << self.shifts, axis=1)
        # Too little audio before the hop since the (re)start: its code is not comparable.
        fresh = ready + self.dropped < half
        out = codes, self.row_times[ready], self.row_levels[ready], fresh
        # Keep `half` emitted rows as the past context of the next hops.
        keep_from = max(0, int(ready[-1]) + 1 - half)
        self.rows, self.row_times, self.row_levels = self.rows[keep_from:], self.row_times[keep_from:], self.row_levels[keep_from:]
        self.context = int(ready[-1]) + 1 - keep_from
        self.dropped += keep_from
        return out


def find_repeats(codes: np.ndarray, valid: np.ndarray, s: AudioSettings) -> list[tuple[int, int, int, float]]:
    """Replayed spans as (start hop, end hop, offset in hops, mean BER), not overlapping.

    `start..end` (end exclusive) replays `start - offset .. end - offset`.
    """
    n = len(codes)
    min_lag = max(1, int(round(s.min_lag_s / s.hop_s)))
    if n <= min_lag:
        return []
    offsets = _voted_offsets(codes, valid, min_lag, s)
    found = []
    for offset in offsets:
        found.extend(_verify(codes, valid, int(offset), s))
    # Keep the longest spans; a later, shorter one that mostly overlaps them says nothing new
    # (a loop aired three times matches at one and at two periods).
    found.sort(key=lambda span: span[1] - span[0], reverse=True)
    kept: list[tuple[int, int, int, float]] = []
    covered = np.zeros(n, dtype=bool)
    for span in found:
        a, b = span[0], span[1]
        if covered[a:b].mean() <= 0.5:
            kept.append(span)
            covered[a:b] = True
    kept.sort()
    return kept


def _voted_offsets(codes: np.ndarray, valid: np.ndarray, min_lag: int, s: AudioSettings) -> np.ndarray:
    """Offsets (hops) with the most hash-bucket coincidences, strongest first."""
    index = np.flatnonzero(valid)
    n = len(codes)
    votes = np.zeros(n + 2, dtype=np.int64)
    for half in (codes[index] & 0xFFFF, codes[index] >> 16):
        order = np.argsort(half, kind="stable")
        keys, hops = half[order], index[order]
        # Bucket sizes, to skip the crowded ones (stationary sound).
        starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
        sizes = np.diff(np.concatenate([starts, [len(keys)]]))
        size_of = np.repeat(sizes, sizes)
        small = size_of <= s.bucket_cap
        for step in range(1, min(s.bucket_cap, len(keys))):
            same = (keys[step:] == keys[:-step]) & small[step:]
            if not same.any():
                break
            lag = np.abs(hops[step:][same] - hops[:-step][same])
            votes += np.bincount(lag[lag >= min_lag], minlength=len(votes))[: len(votes)]
    smooth = votes.copy()
    smooth[1:] += votes[:-1]
    smooth[:-1] += votes[1:]
    smooth[:min_lag] = 0
    # Local maxima only (an offset and its neighbour are the same alignment).
    peak = smooth >= np.maximum(np.concatenate([[0], smooth[:-1]]), np.concatenate([smooth[1:], [0]]))
    candidates = np.flatnonzero(peak & (smooth >= s.min_votes))
    candidates = candidates[np.argsort(-smooth[candidates], kind="stable")]
    return candidates[: s.max_offsets]


def _span_ber(codes: np.ndarray, valid: np.ndarray, offset: int, a: int, b: int, spread: int = 1) -> np.ndarray:
    """Bit error rate of hops a..b-1 against the hops `offset` earlier: per hop the best of
    offset-spread..offset+spread (a replay need not start on the hop grid); neutral where
    undefined."""
    best = np.full(b - a, _NEUTRAL_BER, dtype=np.float32)
    for d in range(offset - spread, offset + spread + 1):
        lo = max(a, d)
        if d <= 0 or lo >= b:
            continue
        errors = _popcount(codes[lo:b] ^ codes[lo - d:b - d]).astype(np.float32) / _BITS
        errors[~(valid[lo:b] & valid[lo - d:b - d])] = _NEUTRAL_BER
        np.minimum(best[lo - a:], errors, out=best[lo - a:])
    return best


_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _popcount(words: np.ndarray) -> np.ndarray:
    """Set bits of each uint32 (np.bitwise_count from NumPy 2; a byte table before it)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(words)
    return _POPCOUNT8[np.ascontiguousarray(words).view(np.uint8)].reshape(-1, 4).sum(axis=1)


def _best_stretch(margin: np.ndarray) -> tuple[int, int]:
    """(start, end) of the contiguous stretch of `margin` with the largest sum (Kadane)."""
    total = np.concatenate([[0.0], np.cumsum(margin, dtype=np.float64)])
    lowest = np.minimum.accumulate(total)
    end = int(np.argmax(total - lowest))
    start = int(np.argmin(total[: end + 1])) if end > 0 else 0
    return start, end


def _moving_mean(errors: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average; beyond the ends counts as unrelated audio (not as a match)."""
    left = width // 2
    padded = np.pad(errors, (left, width - 1 - left), constant_values=_NEUTRAL_BER)
    return np.convolve(padded, np.full(width, 1.0 / width, dtype=np.float32), mode="valid")


def _verify(codes: np.ndarray, valid: np.ndarray, offset: int, s: AudioSettings) -> list[tuple[int, int, int, float]]:
    n = len(codes)
    width = max(1, int(round(s.match_window_s / s.hop_s)))
    min_span = max(1, int(round(s.min_span_s / s.hop_s)))
    errors = _span_ber(codes, valid, offset, 0, n)
    smooth = _moving_mean(errors, width)
    # Hysteresis: runs below extend_ber that contain a core below max_ber of a second or more.
    core = smooth < s.max_ber
    loose = smooth < s.extend_ber
    core[:offset] = loose[:offset] = False
    core_count = np.concatenate([[0], np.cumsum(core)])
    edges = np.flatnonzero(np.diff(np.concatenate([[0], loose.astype(np.int8), [0]])))
    spans = []
    for a, b in zip(edges[::2], edges[1::2]):
        if core_count[b] - core_count[a] < width:
            continue
        # The single offset that fits best (the errors above take the best of three).
        exact = {d: _span_ber(codes, valid, d, a, b, spread=0) for d in (offset - 1, offset, offset + 1) if 0 < d <= a}
        if not exact:
            continue
        best = min(exact, key=lambda d: float(exact[d].mean()))
        # The 1 s average drags the run's ends outwards. The span is the stretch of that
        # offset's own errors with the largest total margin below the midpoint between a
        # match and the extension limit (a maximum-sum subarray): single odd hops inside do
        # not split it, and unrelated hops at the ends are cut off.
        lo, hi = _best_stretch(0.5 * (s.max_ber + s.extend_ber) - exact[best])
        a, b = a + lo, a + hi
        if b - a < min_span:
            continue
        ber = float(errors[a:b].mean())
        if ber >= s.max_ber:
            continue
        # Sharp alignment: the same hops against offsets a few tenths of a second away.
        shifted = []
        for delta_s in (0.2, 0.4, 0.8):
            delta = max(2, int(round(delta_s / s.hop_s)))
            for d in (offset - delta, offset + delta):
                if d <= 0 or d >= n:
                    continue
                shifted.append(float(_span_ber(codes, valid, d, a, b).mean()))
        if shifted and min(shifted) - ber < s.sharpness_margin:
            continue
        spans.append((int(a), int(b), best, ber))
    return spans
