"""Finding replayed spans among one stream's fingerprints, in near-linear time.

A repeat is a sharp alignment, not a similar frame. The search runs in three steps:

1. **Candidates** (near-linear): random-hyperplane hashes of each fingerprint's appearance
   and motion vectors put frames into buckets; every later frame is looked up, also as its
   mirrored and time-reversed variants. Over-full buckets (a still scene matches itself
   everywhere) are skipped. Each colliding pair (later t, earlier s) is a vote.
2. **Alignments**: votes cluster along lines s = slope * t + intercept (slope ~1 for a
   replay, 0.92-1.08 under a speed change, ~-1 for a boomerang). Clusters are found as
   connected cells of a coarse (t, offset) grid and a robust line is fitted to each.
3. **Verification**: along each line, thumbnails are compared with a trimmed distance (the
   cells that differ most, where overlays sit, are ignored), after estimating any crop, zoom
   or shift between the two spans. A run counts only if the exact alignment beats the same
   line shifted by 1-2 s by a wide margin with the same cells ignored: footage that
   replays matches at one offset only, a still or slowly changing room matches everywhere.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

import numpy as np

from detector.fingerprint import CENTRE, MOTION_LAG_S, appearance, mirrored, normalise_rows

log = logging.getLogger(__name__)

TRANSFORMS = ("none", "mirror", "vflip")
DIRECTIONS = ("forward", "reversed")


@dataclass(frozen=True)
class SearchSettings:
    # Replays closer than this to their source are not loops (it is also the shortest period).
    min_offset_s: float = 4.0
    # A reversed replay starts right where its source ends (boomerang): only a small gap.
    min_reversed_offset_s: float = 0.6
    # Shortest replayed span reported.
    min_span_s: float = 4.0
    hash_bits: int = 20
    hash_tables: int = 10
    # Buckets holding more frames than this are skipped: a still scene collides everywhere.
    max_bucket: int = 64
    # Motion weight in the hashed vector: the motion pattern is what makes a moment unique
    # in a room whose background never changes.
    motion_weight: float = 1.4
    # Appearance change per second (normalised units) under which a frame has no motion to
    # anchor an alignment.
    min_motion: float = 0.08
    # Grid for clustering votes: seconds of stream time x seconds of offset.
    cell_t_s: float = 6.0
    cell_offset_s: float = 2.0
    min_votes: int = 4
    min_vote_density: float = 0.35   # votes per second of the line's extent (+ min_span_s)
    always_verify: int = 10          # the strongest alignments are verified whatever their density
    max_candidates: int = 400
    # Verification.
    trim_share: float = 0.25          # share of cells ignored as overlays
    match_distance: float = 0.35      # trimmed distance under which two frames are the same footage
    sharpness_ratio: float = 0.3      # exact alignment must be this much closer than shifted ones
    long_run_bonus: float = 0.1       # ... relaxed by up to this for runs 8 s longer than min_span_s
    min_change: float = 0.06          # shifted distance needed: the span must really change
    max_gap_s: float = 1.2            # gaps in a run shorter than this are bridged
    slope_tolerance: float = 0.1      # |slope| within 1 +- this
    moving_camera_ratio: float = 0.1   # sharpness required where the camera pans


@dataclass(frozen=True)
class Repeat:
    """The span start_s..end_s replays source_start_s..source_end_s."""

    start_s: float
    end_s: float
    source_start_s: float
    source_end_s: float
    similarity: float
    transform: str            # "none", "mirror", "vflip", "reversed", "speed 1.05", "crop 1.10", combined with "+"
    slope: float
    distance: float
    shifted_distance: float
    detail: dict = field(default_factory=dict)


# -- step 1: candidates ---------------------------------------------------------------------

def _lagged(times_s: np.ndarray) -> np.ndarray:
    """Index of the fingerprint MOTION_LAG_S before each one (0 where there is none)."""
    return np.clip(np.searchsorted(times_s, times_s - MOTION_LAG_S, side="left"), 0, None)


def _motion(app: np.ndarray, times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Change of appearance over the last MOTION_LAG_S: (normalised vectors, energy per frame)."""
    lagged = _lagged(times_s)
    diff = app - app[lagged]
    energy = np.sqrt((diff * diff).mean(axis=1))
    energy[lagged <= 0] = 0.0          # no full second of history yet
    return normalise_rows(diff), energy


def _hash_planes(settings: SearchSettings, dims: int) -> np.ndarray:
    rng = np.random.default_rng(20261129)   # fixed: the same stream always gives the same votes
    return rng.standard_normal((settings.hash_tables * settings.hash_bits, dims)).astype(np.float32)


def _codes(vectors: np.ndarray, planes: np.ndarray, settings: SearchSettings) -> np.ndarray:
    """(n, tables) integer bucket keys."""
    bits = (vectors @ planes.T) > 0
    bits = bits.reshape(len(vectors), settings.hash_tables, settings.hash_bits)
    weights = (1 << np.arange(settings.hash_bits, dtype=np.int64))
    return (bits * weights).sum(axis=2)


def _vectors(thumbs: np.ndarray, times_s: np.ndarray, transform: str, reverse: bool,
             settings: SearchSettings) -> tuple[np.ndarray, np.ndarray]:
    app = appearance(mirrored(thumbs, transform))
    mot, energy = _motion(app, times_s)
    if reverse:
        # Played backwards, the change over the last second is minus the source's change
        # over the second that *ends* where the lagged frame sits: pair it with that frame's
        # appearance, so the query looks like the index entry of that source moment.
        mot = -mot
        app = app[_lagged(times_s)]
    vec = np.concatenate([app, settings.motion_weight * mot], axis=1)
    vec /= np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-6)
    return vec.astype(np.float32), energy


def candidate_pairs(times_s: np.ndarray, thumbs: np.ndarray, settings: SearchSettings) -> np.ndarray:
    """Structured array of (later, earlier, variant) index pairs whose hashes collide."""
    n = len(times_s)
    planes = _hash_planes(settings, 72)
    base, energy = _vectors(thumbs, times_s, "none", False, settings)
    active = np.flatnonzero(energy >= settings.min_motion)
    if len(active) < 2:
        return np.zeros(0, dtype=[("q", np.int32), ("j", np.int32), ("v", np.int8)])
    index_codes = _codes(base[active], planes, settings)
    lagged = _lagged(times_s)
    found = []
    for variant, (transform, direction) in enumerate(_variants()):
        if variant == 0:
            q_codes = index_codes
        else:
            vec, _ = _vectors(thumbs, times_s, transform, direction == "reversed", settings)
            q_codes = _codes(vec[active], planes, settings)
        for table in range(settings.hash_tables):
            order = np.argsort(index_codes[:, table], kind="stable")
            keys = index_codes[order, table]
            lo = np.searchsorted(keys, q_codes[:, table], side="left")
            hi = np.searchsorted(keys, q_codes[:, table], side="right")
            size = hi - lo
            ok = (size > 0) & (size <= settings.max_bucket)
            if not ok.any():
                continue
            q_idx = np.repeat(np.flatnonzero(ok), size[ok])
            starts = np.repeat(lo[ok], size[ok])
            within = np.arange(len(q_idx)) - np.repeat(np.cumsum(size[ok]) - size[ok], size[ok])
            j_idx = order[starts + within]
            q_frame, j_frame = active[q_idx], active[j_idx]
            if direction == "reversed":
                # The reversed query carried its lagged frame's appearance (see _vectors):
                # that frame is the one that corresponds to the index entry.
                q_frame = lagged[q_frame]
            min_offset = settings.min_reversed_offset_s if direction == "reversed" else settings.min_offset_s
            keep = times_s[q_frame] - times_s[j_frame] >= min_offset
            if keep.any():
                pairs = np.empty(int(keep.sum()), dtype=[("q", np.int32), ("j", np.int32), ("v", np.int8)])
                pairs["q"], pairs["j"], pairs["v"] = q_frame[keep], j_frame[keep], variant
                found.append(pairs)
    if not found:
        return np.zeros(0, dtype=[("q", np.int32), ("j", np.int32), ("v", np.int8)])
    pairs = np.concatenate(found)
    key = (pairs["q"].astype(np.int64) * n + pairs["j"]) * 8 + pairs["v"]
    _, first = np.unique(key, return_index=True)
    return pairs[first]


def _variants() -> list[tuple[str, str]]:
    return [(t, d) for d in DIRECTIONS for t in TRANSFORMS]


# -- step 2: alignments ---------------------------------------------------------------------

@dataclass(frozen=True)
class Alignment:
    variant: int
    slope: float
    intercept: float
    t_lo_s: float
    t_hi_s: float
    votes: int


def alignments(times_s: np.ndarray, pairs: np.ndarray, settings: SearchSettings) -> list[Alignment]:
    """Lines through clusters of votes, strongest first."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    found: list[Alignment] = []
    variants = _variants()
    for variant in np.unique(pairs["v"]) if len(pairs) else []:
        sel = pairs[pairs["v"] == variant]
        t, s = times_s[sel["q"]], times_s[sel["j"]]
        reversed_ = variants[variant][1] == "reversed"
        offset = t + s if reversed_ else t - s
        ct = np.floor(t / settings.cell_t_s).astype(np.int64)
        co = np.floor(offset / settings.cell_offset_s).astype(np.int64)
        cell_key = ct * (1 << 32) + co
        cells, cell_of_pair, counts = np.unique(cell_key, return_inverse=True, return_counts=True)
        cell_t, cell_o = cells >> 32, cells - ((cells >> 32) << 32)
        rows, cols = [], []
        for dt, do in ((0, 1), (1, -1), (1, 0), (1, 1)):
            neighbour = (cell_t + dt) * (1 << 32) + (cell_o + do)
            pos = np.searchsorted(cells, neighbour)
            pos = np.minimum(pos, len(cells) - 1)
            hit = cells[pos] == neighbour
            rows.append(np.flatnonzero(hit))
            cols.append(pos[hit])
        rows_a, cols_a = np.concatenate(rows), np.concatenate(cols)
        graph = coo_matrix((np.ones(len(rows_a)), (rows_a, cols_a)), shape=(len(cells), len(cells)))
        _, label = connected_components(graph, directed=False)
        votes = np.bincount(label, weights=counts)
        for component in np.flatnonzero(votes >= settings.min_votes):
            members = np.flatnonzero(label[cell_of_pair] == component)
            for slope, intercept, inliers in _fit_lines(t[members], s[members], reversed_, settings):
                found.append(Alignment(int(variant), slope, intercept, float(t[members][inliers].min()),
                                       float(t[members][inliers].max()), int(inliers.sum())))
    found.sort(key=lambda a: -a.votes)
    # A replay collects votes densely along its span (about one a second or more); chance
    # collisions spread thinly. The strongest few are verified whatever their density, so a
    # heavily disguised replay with few votes still gets its chance.
    kept = [a for k, a in enumerate(found)
            if k < settings.always_verify or a.votes / (a.t_hi_s - a.t_lo_s + settings.min_span_s) >= settings.min_vote_density]
    return kept[: settings.max_candidates]


def _fit_lines(t: np.ndarray, s: np.ndarray, reversed_: bool, settings: SearchSettings):
    """Lines s = slope * t + intercept through the votes, |slope| near 1 (sequential RANSAC).

    One cluster of votes can hold several lines: pass 2 of a loop at speed 1.08 and pass 3 at
    0.92 match pass 1 along two lines with nearby offsets.
    """
    sign = -1.0 if reversed_ else 1.0
    rng = np.random.default_rng(len(t))
    remaining = np.ones(len(t), bool)
    lines = []
    while remaining.sum() >= settings.min_votes and len(lines) < 6:
        idx = np.flatnonzero(remaining)
        tt, ss = t[idx], s[idx]
        # Hypotheses: slope +-1 through each vote's offset, and lines through random vote pairs.
        hypotheses = [(sign, float(np.median(ss - sign * tt)))]
        a, b = rng.integers(0, len(idx), (2, 128))
        dt = tt[b] - tt[a]
        # Pairs a few seconds apart: far enough for a slope, close enough to sit on one line
        # when two lines with different slopes cross inside the cluster.
        ok = (np.abs(dt) >= 2.0) & (np.abs(dt) <= 12.0)
        slopes = (ss[b][ok] - ss[a][ok]) / dt[ok]
        good = np.abs(np.abs(slopes) - 1.0) <= settings.slope_tolerance
        good &= np.sign(slopes) == sign
        for slope, ta, sa in zip(slopes[good], tt[a][ok][good], ss[a][ok][good]):
            hypotheses.append((float(slope), float(sa - slope * ta)))
        best, best_inliers = None, None
        for slope, intercept in hypotheses:
            inliers = np.abs(ss - (slope * tt + intercept)) <= 0.3
            if best_inliers is None or inliers.sum() > best_inliers.sum():
                best, best_inliers = (slope, intercept), inliers
        if best_inliers.sum() < settings.min_votes:
            break
        slope, intercept = best
        if np.ptp(tt[best_inliers]) >= 4.0:
            fit_slope, fit_intercept = np.polyfit(tt[best_inliers], ss[best_inliers], 1)
            if abs(abs(fit_slope) - 1.0) <= settings.slope_tolerance and np.sign(fit_slope) == sign:
                slope, intercept = float(fit_slope), float(fit_intercept)
        inliers_all = np.zeros(len(t), bool)
        inliers_all[idx[best_inliers]] = True
        lines.append((float(slope), float(intercept), inliers_all))
        remaining &= ~inliers_all
    return lines


# -- step 3: verification -------------------------------------------------------------------

_GEOMETRY_ZOOMS = (1.0, 0.89, 0.94, 1.06, 1.12)
_GEOMETRY_SHIFTS = (0.0, -1.5, -0.75, 0.75, 1.5)     # thumbnail cells
# Identity first: no disguise is claimed unless another geometry is clearly better.
GEOMETRIES = [(z, dx, dy) for z in _GEOMETRY_ZOOMS for dx in _GEOMETRY_SHIFTS for dy in _GEOMETRY_SHIFTS]
_WINDOW_S = 8.0


def _warp_matrices() -> np.ndarray:
    """(geometries, 256, 144) bilinear resampling matrices: the central 12x12 cells of a 16x16
    thumbnail as the replay would show it under each zoom/shift. Warping a stack of
    thumbnails is then one matrix product per geometry."""
    side = 16
    ys, xs = np.mgrid[CENTRE, CENTRE]
    c = (side - 1) / 2.0
    out = np.zeros((len(GEOMETRIES), side * side, ys.size), np.float32)
    cols = np.arange(ys.size)
    for g, (zoom, dx, dy) in enumerate(GEOMETRIES):
        # Source coordinates of each output cell: the replay shows the source zoomed by `zoom`
        # about the centre and shifted.
        sx = np.clip((xs - c - dx) / zoom + c, 0, side - 1.001).ravel()
        sy = np.clip((ys - c - dy) / zoom + c, 0, side - 1.001).ravel()
        x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
        fx, fy = sx - x0, sy - y0
        for ox, oy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
            np.add.at(out[g], ((y0 + oy) * side + x0 + ox, cols), w)
    return out


_MATRICES = None
_IDENTITY_CELLS = (np.arange(16)[CENTRE, None] * 16 + np.arange(16)[None, CENTRE]).ravel()


def _matrices() -> np.ndarray:
    """Per-geometry resampling matrices, built once per process."""
    global _MATRICES
    if _MATRICES is None:
        _MATRICES = _warp_matrices()
    return _MATRICES


def _warped(flat: np.ndarray, geometry: np.ndarray) -> np.ndarray:
    """Normalised central vectors of thumbnails `flat` (n, 256) under per-row `geometry` ids."""
    per_geometry = _matrices()
    out = flat[:, _IDENTITY_CELLS]              # geometry 0 is the identity: no product needed
    if np.any(geometry):
        out = out.copy()
        for g in np.unique(geometry[geometry > 0]):
            rows = geometry == g
            out[rows] = flat[rows] @ per_geometry[g]
    return normalise_rows(out, floor=2.0)


def _centre_vectors(thumbs: np.ndarray) -> np.ndarray:
    return normalise_rows(thumbs[:, CENTRE, CENTRE].reshape(len(thumbs), -1), floor=2.0)


def _trimmed(a: np.ndarray, b: np.ndarray, trim_share: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-row mean |a-b| over the cells that agree best, and the mask of those cells."""
    diff = np.abs(a - b)
    keep = int(round(diff.shape[-1] * (1 - trim_share)))
    threshold = np.partition(diff, keep - 1, axis=-1)[..., keep - 1: keep]
    mask = diff <= threshold
    return (diff * mask).sum(axis=-1) / np.maximum(mask.sum(axis=-1), 1), mask


def _masked(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return (np.abs(a - b) * mask).sum(axis=-1) / np.maximum(mask.sum(axis=-1), 1)


def _nearest(times_s: np.ndarray, targets_s: np.ndarray, tolerance_s: float) -> tuple[np.ndarray, np.ndarray]:
    pos = np.clip(np.searchsorted(times_s, targets_s), 1, len(times_s) - 1)
    left_closer = np.abs(times_s[pos - 1] - targets_s) <= np.abs(times_s[pos] - targets_s)
    nearest = np.where(left_closer, pos - 1, pos)
    return nearest, np.abs(times_s[nearest] - targets_s) <= tolerance_s


def _window_geometry(replay: np.ndarray, flat: np.ndarray, j: np.ndarray, t: np.ndarray,
                     rough: np.ndarray, settings: SearchSettings) -> np.ndarray:
    """Per-frame geometry id: the zoom/shift that best maps source onto replay in each 8 s
    window (crop disguises may differ from pass to pass, so not one geometry per line)."""
    geometry = np.zeros(len(t), np.int64)
    window = np.floor((t - t[0]) / _WINDOW_S).astype(int)
    for w in np.unique(window):
        members = np.flatnonzero(window == w)
        near_match = rough[members] <= 1.5 * settings.match_distance
        if near_match.sum() < 2:
            continue                 # nothing here that a crop could rescue
        pick = members[np.linspace(0, len(members) - 1, num=min(8, len(members))).astype(int)]
        best, hits_best, cost_best = _descend_geometry(replay[pick], flat[j[pick]], settings)
        if best != 0:
            geometry[members] = best
    return geometry


_GEOMETRY_INDEX = {g: k for k, g in enumerate(GEOMETRIES)}


def _descend_geometry(replay: np.ndarray, source_flat: np.ndarray, settings: SearchSettings):
    """Best (zoom, dx, dy) by two rounds of coordinate descent over the grid (~28 evaluations, not 125).

    A geometry is judged by how many frames it matches (a window may straddle the start of
    a replay), then by their mean distance; the identity wins ties unless another geometry
    is clearly (0.03) closer.
    """
    def score(g: int) -> tuple[int, float]:
        cost = _trimmed(replay, _warped(source_flat, np.full(len(replay), g)), settings.trim_share)[0]
        hit = cost <= settings.match_distance
        return int(hit.sum()), float(cost[hit].mean()) if hit.any() else np.inf

    current = (1.0, 0.0, 0.0)
    hits0, cost0 = score(0)
    best_hits, best_cost = hits0, cost0
    for axis, values in ((0, _GEOMETRY_ZOOMS), (1, _GEOMETRY_SHIFTS), (2, _GEOMETRY_SHIFTS)) * 2:
        for value in values:
            trial = list(current)
            trial[axis] = value
            trial = tuple(trial)
            if trial == current:
                continue
            hits, cost = score(_GEOMETRY_INDEX[trial])
            if hits > best_hits or (hits == best_hits and cost < best_cost - 0.01):
                current, best_hits, best_cost = trial, hits, cost
    g = _GEOMETRY_INDEX[current]
    if g != 0 and not (best_hits > hits0 or (best_hits == hits0 > 0 and best_cost < cost0 - 0.03)):
        g = 0
    return g, best_hits, best_cost


# Offsets (s) at which the source is also compared: a true alignment is a local minimum
# (|delta| < 0.3 s) and clearly better than 1-2 s away.
_DELTAS_S = np.round(np.arange(-2.0, 2.01, 0.2), 3)


@dataclass(frozen=True)
class Run:
    """A verified stretch of one alignment: which fingerprints replay which source times."""

    q: np.ndarray              # fingerprint indices of the matched replay frames
    s: np.ndarray              # source time of each
    d: np.ndarray              # per-frame score: exact distance plus misalignment penalty
    d_exact: float
    d_shift: float
    slope: float
    transform: str
    direction: str
    geometry: tuple[float, float, float]


def verify(times_s: np.ndarray, thumbs: np.ndarray, alignment: Alignment, settings: SearchSettings,
           fingerprint_step_s: float) -> list[Run]:
    """Runs along `alignment` that really replay earlier footage."""
    transform, direction = _variants()[alignment.variant]
    slope, intercept = alignment.slope, alignment.intercept
    # Look beyond the votes: hashing finds only part of a replay; verification finds its ends.
    margin = 30.0
    q = np.flatnonzero((times_s >= alignment.t_lo_s - margin) & (times_s <= alignment.t_hi_s + margin))
    if len(q) == 0:
        return []
    t = times_s[q]
    s = slope * t + intercept
    tolerance = 0.6 * fingerprint_step_s + 0.02
    j, ok = _nearest(times_s, s, tolerance)
    min_offset = settings.min_reversed_offset_s if direction == "reversed" else settings.min_offset_s - 1.0
    ok &= (s >= times_s[0] - tolerance) & (t - s >= min_offset)
    q, j, t, s = q[ok], j[ok], t[ok], s[ok]
    if len(q) < 3:
        return []
    flat = thumbs.reshape(len(thumbs), -1).astype(np.float32)
    replay = _centre_vectors(mirrored(thumbs[q], transform).astype(np.float32))
    # Cheap test before the crop search: the coarse thumbnails absorb crops up to ~12 %, so
    # a replay matches for at least half of min_span_s even without any geometry; most
    # coincidental lines do not.
    rough = _trimmed(replay, _warped(flat[j], np.zeros(len(j), int)), settings.trim_share)[0]
    if (rough <= settings.match_distance).sum() * fingerprint_step_s < 0.5 * settings.min_span_s:
        return []
    geometry = _window_geometry(replay, flat, j, t, rough, settings)
    exact, mask = _trimmed(replay, _warped(flat[j], geometry), settings.trim_share)
    # A lenient sharpness screen before the full offset scan.
    enough, candidates = _sharp_enough(times_s, flat, replay, s, exact, mask, geometry, tolerance, settings,
                                       fingerprint_step_s)
    if not enough:
        return []
    # Distances at nearby offsets, for the matched frames only.
    n_d = len(_DELTAS_S)
    near = np.full((len(q), n_d), np.inf, np.float32)
    far_masked = np.full(len(q), np.inf, np.float32)
    c = candidates
    for k, delta in enumerate(_DELTAS_S):
        j_d, ok_d = _nearest(times_s, s[c] + delta, tolerance)
        src = _warped(flat[j_d], geometry[c])
        d, _ = _trimmed(replay[c], src, settings.trim_share)
        near[c, k] = np.where(ok_d, d, np.inf)
        if abs(delta) >= 1.0:
            far_masked[c] = np.where(ok_d, np.minimum(far_masked[c], _masked(replay[c], src, mask[c])), far_masked[c])
    best_delta = _DELTAS_S[np.argmin(near, axis=1)]
    # Where the footage barely changes over +-2 s every offset fits about as well: such
    # frames do not contradict the line (the run-level sharpness test still has to pass).
    contrast = near.max(axis=1, initial=0, where=np.isfinite(near)) - near.min(axis=1)
    local_min = (np.abs(best_delta) <= 0.3) | (exact - near.min(axis=1) <= 0.2 * contrast + 0.005)
    # Per frame, leniently: the line must fit clearly better than 1-2 s away. This cuts a run
    # where the line leaves the replay it was fitted to and only loosely fits what follows.
    screened = np.zeros(len(q), bool)
    screened[candidates] = True
    frame_sharp = ~np.isfinite(far_masked) | (exact <= 2.0 * settings.sharpness_ratio * far_masked)
    matched = screened & (exact <= settings.match_distance) & local_min & frame_sharp
    repeats = []
    for lo, hi in _runs(t, matched, settings.max_gap_s):
        sel = slice(lo, hi + 1)
        span_t = t[sel]
        if span_t[-1] - span_t[0] + fingerprint_step_s < settings.min_span_s:
            continue
        good = matched[sel]
        d_exact = float(np.mean(exact[sel][good]))
        far = far_masked[sel][good]
        far = far[np.isfinite(far)]
        if len(far) < 3:
            continue
        d_shift = float(np.mean(far))
        log.debug("run %.1f-%.1f exact %.3f shifted %.3f", span_t[0], span_t[-1], d_exact, d_shift)
        # Evidence accumulates with length: a coincidental alignment that stays sharp frame
        # after frame for 12 s is rarer than one for 4 s, so long runs may be a little less
        # sharp (a cropped replay on coarse thumbnails).
        length_s = span_t[-1] - span_t[0] + fingerprint_step_s
        ratio = settings.sharpness_ratio + settings.long_run_bonus * float(
            np.clip((length_s - settings.min_span_s) / 8.0, 0.0, 1.0))
        if d_shift < settings.min_change or d_exact > ratio * d_shift:
            continue
        # A camera that pans over the same room again (or back) re-creates a sequence of
        # views without replaying footage; only the people in it differ, and they are few
        # cells. Where the camera moves, ask for a much closer match.
        if _camera_moving_share(flat, q[sel][good], times_s) >= 0.5 and \
                d_exact > settings.moving_camera_ratio * d_shift:
            continue
        shift_s = _refine_offset(near[sel][good])
        dominant = int(np.bincount(geometry[sel][good]).argmax())
        # Per-frame score for choosing between overlapping runs: its distance, plus how much
        # better a nearby offset would fit (a line slightly off the true one loses to it).
        score = exact + 2.0 * (exact - np.where(np.isfinite(near), near, np.inf).min(axis=1))
        repeats.append(Run(q[sel][good], s[sel][good] + shift_s, score[sel][good], d_exact, d_shift, slope,
                           transform, direction, GEOMETRIES[dominant]))
    return repeats


def _camera_moving_share(flat: np.ndarray, q: np.ndarray, times_s: np.ndarray) -> float:
    """Share of frames whose view shifted since the fingerprint ~1 s earlier (a pan)."""
    previous, ok = _nearest(times_s, times_s[q] - 1.0, 0.15)
    q, previous = q[ok], previous[ok]
    if len(q) == 0:
        return 0.0
    shifts = [g for g, (zoom, dx, dy) in enumerate(GEOMETRIES) if zoom == 1.0]
    current = _centre_vectors(flat[q].reshape(len(q), 16, 16))
    costs = np.stack([_trimmed(current, _warped(flat[previous], np.full(len(q), g)), 0.25)[0] for g in shifts], axis=1)
    best = costs.argmin(axis=1)
    moved = (best != 0) & (costs.min(axis=1) < 0.8 * costs[:, 0])
    return float(moved.mean())


def _sharp_enough(times_s, flat, replay, s, exact, mask, geometry, tolerance, settings, step_s,
                  screen: float = 1.5) -> tuple[bool, np.ndarray]:
    """(passes, frames that pass): frames on the line that match and fit better than 1 and
    2 s away on the same cells, by `screen` times the sharpness ratio (a lenient screen; the
    run-level test is stricter)."""
    candidates = np.flatnonzero(exact <= settings.match_distance)
    if len(candidates) * step_s < 0.5 * settings.min_span_s:
        return False, candidates
    far = np.full(len(candidates), np.inf, np.float32)
    for delta in (-2.0, -1.0, 1.0, 2.0):
        j_d, ok_d = _nearest(times_s, s[candidates] + delta, tolerance)
        d = _masked(replay[candidates], _warped(flat[j_d], geometry[candidates]), mask[candidates])
        far = np.where(ok_d, np.minimum(far, d), far)
    sharp = exact[candidates] <= screen * settings.sharpness_ratio * far
    return bool(sharp.sum() * step_s >= 0.5 * settings.min_span_s), candidates[sharp]


def _refine_offset(near: np.ndarray) -> float:
    """Sub-step offset correction from a parabola through the mean distances at -0.2, 0, +0.2 s."""
    centre = int(np.flatnonzero(_DELTAS_S == 0)[0])
    rows = np.isfinite(near[:, centre - 1: centre + 2]).all(axis=1)
    if rows.sum() < 3:
        return 0.0
    left, mid, right = near[rows, centre - 1: centre + 2].mean(axis=0)
    curvature = left - 2 * mid + right
    if curvature <= 1e-6:
        return 0.0
    step = float(_DELTAS_S[centre + 1])
    return float(np.clip(0.5 * (left - right) / curvature, -1, 1) * step)


def _runs(t: np.ndarray, matched: np.ndarray, max_gap_s: float) -> list[tuple[int, int]]:
    """Index ranges of matched frames, bridging gaps shorter than max_gap_s."""
    idx = np.flatnonzero(matched)
    if len(idx) == 0:
        return []
    runs, start, prev = [], idx[0], idx[0]
    for i in idx[1:]:
        if t[i] - t[prev] > max_gap_s:
            runs.append((start, prev))
            start = i
        prev = i
    runs.append((start, prev))
    return runs


def _repeat(run: Run, members: np.ndarray, times_s: np.ndarray, step_s: float) -> Repeat:
    span_t, span_s = times_s[run.q[members]], run.s[members]
    parts = []
    if run.transform != "none":
        parts.append(run.transform)
    if run.direction == "reversed":
        parts.append("reversed")
    speed = abs(run.slope)
    if abs(speed - 1.0) >= 0.015:
        parts.append(f"speed {speed:.2f}")
    zoom, dx, dy = run.geometry
    if zoom != 1.0 or dx or dy:
        parts.append(f"crop {zoom:.2f}" if zoom != 1.0 else "shift")
    start_s, end_s = float(span_t[0]), float(span_t[-1] + step_s)
    # A replay's source cannot start before the stream did (sub-step refinement can say -0.06).
    source_start_s = max(0.0, float(span_s.min()))
    source_end_s = max(source_start_s, float(span_s.max()) + step_s * speed)
    similarity = float(np.clip(1.0 - run.d_exact / max(run.d_shift, 1e-6), 0.0, 1.0))
    return Repeat(start_s, end_s, source_start_s, source_end_s, similarity, "+".join(parts) or "none",
                  run.slope, run.d_exact, run.d_shift, {"zoom": zoom, "shift_cells": [dx, dy]})


# -- all together ---------------------------------------------------------------------------

def find_repeats(times_s: np.ndarray, thumbs: np.ndarray, settings: SearchSettings | None = None,
                 fingerprint_step_s: float = 0.2) -> list[Repeat]:
    """Every replayed span with the span it repeats; each moment of airtime explained once."""
    settings = settings or SearchSettings()
    if len(times_s) < 4:
        return []
    pairs = candidate_pairs(times_s, thumbs, settings)
    runs: list[Run] = []
    for alignment in alignments(times_s, pairs, settings):
        runs.extend(verify(times_s, thumbs, alignment, settings, fingerprint_step_s))
    return _assign(runs, times_s, settings, fingerprint_step_s)


def _assign(runs: list[Run], times_s: np.ndarray, settings: SearchSettings, step_s: float) -> list[Repeat]:
    """Explain each replayed fingerprint by its best run, then cut runs into spans.

    Several alignments can cover the same airtime: pass 3 of a loop matches pass 2 and pass 1;
    a line fitted between two speed-changed passes matches both loosely. Per frame, the run
    with the smallest distance wins; near-ties (within 30 % + 0.01) go to the longer run, then to the
    smaller offset, so that a periodic loop is explained pass by previous pass.
    """
    if not runs:
        return []
    n = len(times_s)
    lengths = np.array([len(r.q) for r in runs])
    offsets = np.array([float(np.median(times_s[r.q] - r.s)) for r in runs])
    order = np.lexsort((np.abs(offsets), -lengths))        # preferred runs first
    usable = [np.ones(len(r.q), bool) for r in runs]
    for _ in range(4):
        best_d = np.full(n, np.inf)
        for run, use in zip(runs, usable):
            np.minimum.at(best_d, run.q[use], run.d[use])
        owner = np.full(n, -1)
        for k in order:
            run = runs[k]
            free = usable[k] & (owner[run.q] < 0) & (run.d <= best_d[run.q] * 1.3 + 0.01)
            owner[run.q[free]] = k
        segments, changed = [], False
        for k, run in enumerate(runs):
            mine = owner[run.q] == k
            for lo, hi in _runs(times_s[run.q], mine, settings.max_gap_s):
                members = np.arange(lo, hi + 1)[mine[lo: hi + 1]]
                span = times_s[run.q[members[-1]]] - times_s[run.q[members[0]]] + step_s
                if span >= settings.min_span_s:
                    segments.append((k, members))
                else:
                    # Too short to stand alone: give these frames back to the runner-up.
                    usable[k][members] = False
                    changed = True
        if not changed:
            break
    repeats = sorted((_repeat(runs[k], members, times_s, step_s) for k, members in segments),
                     key=lambda r: (r.start_s, -r.end_s))
    return _without_overlaps(repeats, settings.min_span_s)


def _without_overlaps(repeats: list[Repeat], min_span_s: float) -> list[Repeat]:
    """Frames alternating between two runs leave overlapping spans: trim each span to start
    where the previous one ends (one explanation per moment of airtime)."""
    out: list[Repeat] = []
    for r in repeats:
        if out and r.start_s < out[-1].end_s:
            # The remainder belongs to a verified run of at least min_span_s: keep any
            # useful piece of it.
            if r.end_s - out[-1].end_s < min(1.0, min_span_s):
                continue
            cut = out[-1].end_s - r.start_s
            speed = (r.source_end_s - r.source_start_s) / max(r.end_s - r.start_s, 1e-6)
            if r.slope > 0:
                r = dataclasses.replace(r, start_s=out[-1].end_s, source_start_s=r.source_start_s + cut * speed)
            else:
                r = dataclasses.replace(r, start_s=out[-1].end_s, source_end_s=r.source_end_s - cut * speed)
        out.append(r)
    return out
