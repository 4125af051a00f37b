"""Replayed footage inside one stream: loops, shuffled playlists, boomerangs.

`update` only stores a 256-byte thumbnail per fingerprint (5 per second by default, ~0.05 ms
each); `finalize` runs the near-linear search in `detector.loopsearch` and groups what it
finds into a clip library: each distinct recycled clip and every time it aired.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from detector.extractors.base import ColumnDoc, FeatureExtractor
from detector.fingerprint import FingerprintStore, thumbnail
from detector.loopsearch import Repeat, SearchSettings, find_repeats
from detector.regional import RegionalSettings, find_regional_repeat
from detector.types import Evidence, Frame, VideoMeta


@dataclass(frozen=True)
class RepetitionSettings(SearchSettings):
    # Fingerprints per second. Loops last seconds to minutes; 5 Hz places a seam within
    # 0.2 s and halves memory and search work compared with the 10 Hz sampling rate.
    fingerprint_fps: float = 5.0
    # Fingerprints kept before the oldest half is thinned (memory bound: 256 B each,
    # 200k = 51 MB, 11 hours at 5 Hz before any thinning). The search over 180k (10 h)
    # peaks under 300 MB, so a stream of any length stays within that.
    max_fingerprints: int = 200_000
    # A replay whose offset to its source is a multiple of the period within this share
    # counts as periodic.
    period_tolerance: float = 0.02


class RepetitionExtractor(FeatureExtractor):
    name = "repetition"
    # 2: period_regularity counts k x P chains of the same clip (its meaning changed).
    # 3: crop, picture-in-picture and boundary recall changed values; regional_replay_share added.
    # 4: regional_loop only for a window whose picture returns, on no faster beat, filling a
    #    rectangle of >= 4x4 cells (turntables, gestures, slideshows no longer count).
    # 5: replayed_share (whole-frame and window replays together).
    # 6: slow footage (a waving arm in a still room) is keyed and verified: min_motion 0.04,
    #    sharp replays need only sharp_min_change.
    # 7: zoom and shift searched jointly where the descent leaves a replay far from its
    #    source (an off-centre crop).
    # 8: that joint search on the crop range only (60 trials instead of 180).
    VERSION = 8
    Settings = RepetitionSettings
    COLUMN_DOCS = {
        "replay_share": ColumnDoc("share of the clip's airtime that replays earlier footage", "share", "0-1", "looped"),
        "repeat_count": ColumnDoc("replayed spans found (each pass of a loop counts once)", "count", ">= 0", "looped"),
        "distinct_clips": ColumnDoc("distinct recycled clips in the clip library", "count", ">= 0", "looped"),
        "longest_repeat_s": ColumnDoc("longest single replayed span", "s", ">= 0", "looped"),
        "period_s": ColumnDoc("loop period when the replay is periodic (missing otherwise)", "s", "> 0", "looped"),
        "period_regularity": ColumnDoc("share of replayed airtime explained by the period: offset P, or k x P with the footage P earlier the same clip (missing without repeats)", "share", "0-1", "looped"),
        "similarity_mean": ColumnDoc("mean similarity of replayed spans to their sources (missing without repeats)", "score", "0-1", "looped"),
        "sharpness": ColumnDoc("best ratio of shifted to exact alignment distance, 1 - exact/shifted (missing without repeats)", "score", "0-1", "looped"),
        "mirrored_share": ColumnDoc("share of replayed airtime seen through a mirror flip", "share", "0-1", "looped"),
        "reversed_share": ColumnDoc("share of replayed airtime played backwards (boomerang)", "share", "0-1", "looped"),
        "speed_deviation": ColumnDoc("mean |speed - 1| of replays (speed disguise); missing without repeats", "ratio", "0-0.1", "looped"),
        "regional_share": ColumnDoc("area share of a window that loops on its own while the rest does not (picture in picture: a rectangle whose picture returns one period later); 0 if none", "share", "0-1", "looped"),
        "regional_period_s": ColumnDoc("period of that regional loop (missing if none)", "s", "> 0", "looped"),
        "regional_correlation": ColumnDoc("how exactly the region repeats: correlation of its changes one period apart (missing if none)", "score", "0-1", "looped"),
        "regional_replay_share": ColumnDoc("share of the clip's airtime in which that region replays what it showed one period earlier (picture in picture: a recorded window looping over live footage); 0 if none", "share", "0-1", "looped"),
        "replayed_share": ColumnDoc("share of the clip's airtime that replays earlier footage in the whole frame or in a window (replay_share and regional_replay_share together)", "share", "0-1", "looped"),
        "first_repeat_s": ColumnDoc("time the first replay starts (late-start loops); missing without repeats", "s", ">= 0", "context"),
        "fingerprints": ColumnDoc("fingerprints searched", "count", ">= 0", "context"),
    }
    FEATURES = tuple(COLUMN_DOCS)

    def reset(self, meta: VideoMeta) -> None:
        super().reset(meta)
        self._store = FingerprintStore(max_count=self.settings.max_fingerprints)
        self._step_s = 1.0 / self.settings.fingerprint_fps
        self._next_s = 0.0
        self._last_t_s = 0.0

    def update(self, frame: Frame) -> None:
        self._last_t_s = frame.t_s
        if frame.t_s + 1e-3 < self._next_s:
            return
        self._next_s = max(self._next_s + self._step_s, frame.t_s + 0.5 * self._step_s)
        self._store.add(frame.t_s, thumbnail(frame.gray))

    def finalize(self) -> tuple[dict[str, float], list[Evidence]]:
        times_s, thumbs = self._store.times_s, self._store.thumbs
        step_s = float(np.median(np.diff(times_s))) if len(times_s) > 1 else self._step_s
        repeats = split_passes(find_repeats(times_s, thumbs, self.settings, step_s))
        duration_s = self._last_t_s + step_s
        clips = clip_library(repeats)
        period_s, regularity = _period(repeats, clips, self.settings.period_tolerance)
        features = _features(repeats, clips, duration_s, period_s, regularity, len(times_s))
        evidence = [_loop_evidence(r, clips) for r in repeats]
        evidence += [_clip_evidence(k, airings) for k, airings in enumerate(clips)]
        regional = find_regional_repeat(times_s, thumbs, RegionalSettings(min_period_s=self.settings.min_offset_s))
        features.update(_regional_features(regional, duration_s))
        features["replayed_share"] = _replayed_share(repeats, regional, duration_s)
        if regional is not None:
            # One record per pass of the region, each pointing at the pass before it.
            evidence += [Evidence(
                kind="regional_loop", start_s=lo, end_s=hi, score=float(np.clip(regional.correlation, 0, 1)),
                source_start_s=lo - regional.period_s, source_end_s=hi - regional.period_s,
                detail={"box": [round(v, 3) for v in regional.box], "area_share": round(regional.area_share, 3),
                        "period_s": round(regional.period_s, 2),
                        "rest_correlation": round(regional.rest_correlation, 3)})
                for lo, hi in regional.spans]
        return features, evidence


def split_passes(repeats: list[Repeat]) -> list[Repeat]:
    """A forward replay longer than its offset to the source is several passes of a loop: one
    record per pass (the scan lists each pass; `detector watch` alerts on each)."""
    out = []
    for r in repeats:
        offset = r.start_s - r.source_start_s
        length = r.end_s - r.start_s
        if r.slope < 0 or offset <= 0 or length <= offset * 1.05:
            out.append(r)
            continue
        # One pass ends where the source reaches the span's own start: after offset / speed
        # of airtime (a replay with dropped frames plays a little faster than its source).
        pass_s = offset / r.slope
        start = r.start_s
        while start < r.end_s - 1e-6:
            end = min(start + pass_s, r.end_s)
            if end - start >= 1.0:
                src = r.source_start_s + (start - r.start_s) * r.slope
                out.append(Repeat(start, end, src, src + (end - start) * r.slope, r.similarity, r.transform,
                                  r.slope, r.distance, r.shifted_distance, r.detail))
            start = end
    return out


def clip_library(repeats: list[Repeat]) -> list[list[tuple[float, float]]]:
    """Group aired intervals into distinct clips: each clip is the list of its airings.

    Replay and source of each repeat are the same clip; intervals that overlap by more than
    half of the shorter one are the same airing.
    """
    intervals: list[tuple[float, float]] = []
    parent: list[int] = []

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def interval_id(lo: float, hi: float) -> int:
        for i, (a, b) in enumerate(intervals):
            if min(hi, b) - max(lo, a) > 0.5 * min(hi - lo, b - a):
                return i
        intervals.append((lo, hi))
        parent.append(len(parent))
        return len(intervals) - 1

    for (src_lo, src_hi), (lo, hi) in _pieces(repeats):
        a, b = interval_id(src_lo, src_hi), interval_id(lo, hi)
        parent[find(a)] = find(b)
    groups: dict[int, list[tuple[float, float]]] = {}
    for i, interval in enumerate(intervals):
        groups.setdefault(find(i), []).append(interval)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: g[0][0])


def _pieces(repeats: list[Repeat], min_piece_s: float = 2.0):
    """(source, replay) interval pairs, cut where other airings begin or end.

    Two clips aired back to back in the same order twice are found as one long replay;
    the other airings of those clips tell where one clip ends and the next begins.
    """
    cuts = sorted({t for r in repeats for t in (r.start_s, r.end_s, r.source_start_s, r.source_end_s)})
    for r in repeats:
        speed = (r.source_end_s - r.source_start_s) / max(r.end_s - r.start_s, 1e-6)
        # Cut points inside this replay, expressed in its own airtime.
        inner = [t for t in cuts if r.start_s < t < r.end_s]
        inner += [r.start_s + (t - r.source_start_s) / speed for t in cuts if r.source_start_s < t < r.source_end_s]
        edges = sorted({r.start_s, r.end_s, *inner})
        for lo, hi in zip(edges, edges[1:]):
            if hi - lo >= min_piece_s:
                src_lo = r.source_start_s + (lo - r.start_s) * speed
                yield (src_lo, src_lo + (hi - lo) * speed), (lo, hi)


def _period(repeats: list[Repeat], clips, tolerance: float) -> tuple[float, float]:
    """(period, regularity): the period that explains most replayed airtime, and that share.

    A loop of period P makes the stream equal to itself P earlier. A replay may be explained
    by any earlier pass (pass 3 by pass 1, offset 2P), so an offset k * P counts for P when
    the footage P earlier is an airing of the same clip too: a chain of passes P apart. A
    shuffled playlist of equal-length clips also has offsets that are multiples of the clip
    length, but P earlier there is a different clip, so it has no period.
    """
    if not repeats:
        return math.nan, math.nan
    forward = [r for r in repeats if r.slope > 0]
    if not forward:
        return math.nan, 0.0
    # Offsets between the middles of replay and source: a slope a little off 1 then moves
    # the offset by half as much as at the start.
    offsets = np.array([(r.start_s + r.end_s - r.source_start_s - r.source_end_s) / 2 for r in forward])
    weights = np.array([r.end_s - r.start_s for r in forward])
    total = sum(r.end_s - r.start_s for r in repeats)
    clip_of = [_clip_index(clips, r.start_s, r.end_s) for r in forward]
    best = (0.0, math.nan, None)
    # Candidates: each offset, and their airtime-weighted mean (passes with dropped or
    # duplicated frames drift a little either way around the period).
    candidates = np.unique(np.concatenate([np.round(offsets, 1), [np.average(offsets, weights=weights)]]))
    for candidate in candidates:
        multiple = np.maximum(np.round(offsets / candidate), 1)
        consistent = np.abs(offsets - multiple * candidate) <= tolerance * offsets
        for k, r in enumerate(forward):
            if consistent[k] and multiple[k] > 1:
                consistent[k] = clip_of[k] >= 0 and \
                    _clip_index(clips, r.start_s - candidate, r.end_s - candidate) == clip_of[k]
        share = float(weights[consistent].sum() / total)
        if share > best[0] + 1e-6:
            period = float(np.average(offsets[consistent] / multiple[consistent], weights=weights[consistent]))
            best = (share, period, consistent)
    regularity, period, _ = best
    return (period if regularity >= 0.8 else math.nan), regularity


def _features(repeats, clips, duration_s, period_s, regularity, n_fingerprints) -> dict[str, float]:
    nan = math.nan
    covered = union_length([(r.start_s, r.end_s) for r in repeats])
    airtime = sum(r.end_s - r.start_s for r in repeats) or 1.0

    def share(predicate) -> float:
        return sum(r.end_s - r.start_s for r in repeats if predicate(r)) / airtime if repeats else 0.0

    return {
        "replay_share": min(1.0, covered / duration_s) if duration_s > 0 else nan,
        "repeat_count": float(len(repeats)),
        "distinct_clips": float(len(clips)),
        "longest_repeat_s": max((r.end_s - r.start_s for r in repeats), default=0.0),
        "period_s": period_s,
        "period_regularity": regularity,
        "similarity_mean": float(np.mean([r.similarity for r in repeats])) if repeats else nan,
        "sharpness": max((1 - r.distance / max(r.shifted_distance, 1e-6) for r in repeats), default=nan),
        "mirrored_share": share(lambda r: "mirror" in r.transform or "vflip" in r.transform),
        "reversed_share": share(lambda r: r.slope < 0),
        "speed_deviation": float(np.mean([abs(abs(r.slope) - 1) for r in repeats])) if repeats else nan,
        "first_repeat_s": min((r.start_s for r in repeats), default=nan),
        "fingerprints": float(n_fingerprints),
    }


def _regional_features(regional, duration_s: float) -> dict[str, float]:
    if regional is None:
        return {"regional_share": 0.0, "regional_period_s": math.nan, "regional_correlation": math.nan,
                "regional_replay_share": 0.0}
    replayed = union_length(list(regional.spans))
    return {"regional_share": regional.area_share, "regional_period_s": regional.period_s,
            "regional_correlation": regional.correlation,
            "regional_replay_share": min(1.0, replayed / duration_s) if duration_s > 0 else math.nan}


def _replayed_share(repeats, regional, duration_s: float) -> float:
    """Share of airtime that replays earlier footage in the whole frame or in a window: one
    measure of how much of the clip is a recording aired again, however it is framed."""
    if duration_s <= 0:
        return math.nan
    spans = [(r.start_s, r.end_s) for r in repeats] + (list(regional.spans) if regional is not None else [])
    return min(1.0, union_length(spans) / duration_s)


def union_length(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, -math.inf
    for lo, hi in sorted(intervals):
        if hi > end:
            total += hi - max(lo, end)
            end = hi
    return total


def _clip_index(clips, lo: float, hi: float) -> int:
    for k, airings in enumerate(clips):
        for a, b in airings:
            if min(hi, b) - max(lo, a) > 0.5 * min(hi - lo, b - a):
                return k
    return -1


def _loop_evidence(r: Repeat, clips) -> Evidence:
    return Evidence(
        kind="loop",
        start_s=r.start_s,
        end_s=r.end_s,
        score=r.similarity,
        source_start_s=r.source_start_s,
        source_end_s=r.source_end_s,
        detail={
            "transform": r.transform,
            "clip": _clip_index(clips, r.start_s, r.end_s),
            "speed": round(abs(r.slope), 3),
            "distance": round(r.distance, 4),
            "shifted_distance": round(r.shifted_distance, 4),
            **{k: v for k, v in r.detail.items()},
        },
    )


def _clip_evidence(index: int, airings: list[tuple[float, float]]) -> Evidence:
    first = airings[0]
    return Evidence(
        kind="recycled_clip",
        start_s=first[0],
        end_s=first[1],
        score=min(1.0, (len(airings) - 1) / 3.0),
        detail={"clip": index, "airings": len(airings),
                "aired_at_s": [[round(a, 2), round(b, 2)] for a, b in airings]},
    )
