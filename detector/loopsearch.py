"""Finding replayed spans among one stream's fingerprints, in near-linear time.

A repeat is a sharp alignment, not a similar frame. The search runs in three steps:

1. **Candidates** (linear): random-hyperplane hashes of key fingerprints' appearance and
   motion vectors put moments into buckets; every key is looked up, also mirrored, flipped
   and time-reversed, and (forward) also in the bucket across its least certain bit
   (multi-probe: a crop of a crop rotates the hashed vector a little). The hyperplanes come in orbits of the four flips, so one projection of
   the stream gives the codes of every flip. Over-full buckets (a still scene matches itself
   everywhere) are skipped, and a vote counts only where another vote shares its (time,
   offset) cell: chance resemblance hours apart spreads thinly, a replay stacks its votes.
   Queries are hashed in chunks of stream time, so memory stays bounded.
2. **Alignments**: votes cluster along lines s = slope * t + intercept (slope ~1 for a
   replay, 0.92-1.08 under a speed change, ~-1 for a boomerang). Clusters are found as
   connected cells of a coarse (t, offset) grid and a robust line is fitted to each of the
   strongest clusters. Where speed 1 and a fitted speed both explain the votes, the other
   reading is verified too, and the one whose runs match more frames is kept.
3. **Verification** (budgeted, strongest alignments first): along each line, thumbnails are
   compared with a trimmed distance (the cells that differ most, where overlays sit, are
   ignored, and the rest normalised again), after estimating any crop, zoom, shift or
   rotation between the two spans (per 8 s window; a frame may take a neighbour window's
   geometry, so that passes cropped differently each get their own). A run counts only if the exact alignment beats the same
   line shifted by 1-2 s by a wide margin with the same cells ignored: footage that replays
   matches at one offset only, a still or slowly changing room matches everywhere, and a
   camera panning back over a room needs a much closer match.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

from detector.fingerprint import (
    CENTRE,
    DESCRIPTOR_SIDE,
    THUMB_SIDE,
    MOTION_LAG_S,
    appearance,
    mirrored,
    normalise_rows,
)

log = logging.getLogger(__name__)

TRANSFORMS = ("none", "mirror", "vflip", "mirror+vflip")
DIRECTIONS = ("forward", "reversed")
# Trim, normalise again over the kept cells, trim again: 2 rounds of each (see _trimmed).
TRIM_ITERATIONS = 3


@dataclass(frozen=True)
class SearchSettings:
    # Replays closer than this to their source are not loops (it is also the shortest period).
    min_offset_s: float = 4.0
    # A reversed replay starts right where its source ends (boomerang): only a small gap.
    min_reversed_offset_s: float = 0.6
    # Shortest replayed span reported.
    min_span_s: float = 4.0
    hash_bits: int = 20
    hash_tables: int = 12            # a multiple of 4: tables come in orbits of the four flips
    # Neighbouring buckets probed per forward query and table: the code with one of its least
    # certain bits flipped (multi-probe LSH; a crop or new overlays flip the bits nearest a
    # hyperplane). Crop/zoom recall 0.79 -> 0.88 with 1 probe.
    query_probes: int = 1
    # ... in chunks whose exact lookups gave at most this many distinct pairs per key. Clips:
    # 0.2-1.3; a live room: 2-20 over its first 2-3 hours, then more (every query looks back
    # over a longer past); a low-dimensional room that resembles itself everywhere: 48-115 in
    # its first hour. Probes there only add chance votes that fill the verification budget.
    max_probe_density: float = 20.0
    # Fingerprints hashed, one every this many seconds. Hashing every 0.2 s fingerprint of a
    # smoothly changing room pairs each query's neighbours with each match's neighbours:
    # 20x the chance votes of 0.4 s keys for 2x the true ones (measured on 10 h of room).
    key_step_s: float = 0.4
    # Buckets holding more frames than this are skipped: a still scene collides everywhere.
    max_bucket: int = 64
    # Queries are hashed in chunks of this much stream time (bounded memory at any length).
    query_chunk_s: float = 600.0
    # Votes needed in one (cell_t_s x cell_offset_s) cell of a chunk for its votes to count.
    min_cell_votes: int = 2
    # Motion weight in the hashed vector: the motion pattern is what makes a moment unique
    # in a room whose background never changes.
    motion_weight: float = 1.4
    # Appearance change per second (normalised units) under which a frame has no motion to
    # anchor an alignment. A waving arm in a still room changes 0.04-0.08 (at 0.08 a looped
    # gesture clip kept 7-20 % of its keys and drew no votes).
    min_motion: float = 0.04
    # Grid for clustering votes: seconds of stream time x seconds of offset.
    cell_t_s: float = 6.0
    cell_offset_s: float = 2.0
    min_votes: int = 4
    min_vote_density: float = 0.35   # votes per second of the line's extent (+ min_span_s)
    always_verify: int = 10          # the strongest alignments are verified whatever their density
    max_candidates: int = 400
    # Verification budget: alignments are verified strongest first; after always_verify,
    # stop once this many in a row found nothing (the rest have even fewer votes).
    max_failed_streak: int = 25
    # Alignments whose votes lie in airtime this much explained already are not verified.
    explained_skip_share: float = 0.9
    max_components: int = 500        # vote clusters fitted with lines, per variant
    # Verification.
    trim_share: float = 0.25          # share of cells ignored as overlays
    # No crop/zoom search where the identity already matches every sampled frame this closely.
    geometry_skip_distance: float = 0.1
    # Where the coordinate descent leaves frames further apart than this, zoom and shift are
    # also searched jointly (an off-centre crop).
    joint_geometry_distance: float = 0.15
    # Identity-geometry screen before the crop search: exact/shifted distance below this.
    identity_screen_ratio: float = 0.85
    match_distance: float = 0.35      # trimmed distance under which two frames are the same footage
    sharpness_ratio: float = 0.3      # exact alignment must be this much closer than shifted ones
    long_run_bonus: float = 0.1       # ... relaxed by up to this for runs 8 s longer than min_span_s
    # Shifted distance needed: the span must really change. A replay loose enough to need
    # the consistent path (ratio up to consistent_ratio) must change clearly; a sharp one
    # (ratio <= sharpness_ratio, pinned) may change little: a looped arm waving in a still
    # room, filmed hand-held, changes 0.02-0.03 over 1-2 s and its replay fits at 0.007
    # (corpus gesture loops; 6 in 100 were missed at 0.035). A still room stays below 0.01.
    min_change: float = 0.035
    sharp_min_change: float = 0.012
    max_gap_s: float = 1.2            # gaps in a run shorter than this are bridged
    verify_margin_s: float = 12.0     # stream time verified beyond an alignment's votes
    slope_tolerance: float = 0.1      # |slope| within 1 +- this
    moving_camera_ratio: float = 0.1   # sharpness required where the camera pans
    # Share of a run's frames whose best offset within +-2 s is the line itself (+-0.3 s).
    min_pinned_share: float = 0.8
    # The consistent path for heavily disguised replays: a run this long whose every frame is
    # pinned to the line (best offset within +-0.3 s of +-2 s), covering this share of its
    # span, with exact/shifted distance below consistent_ratio.
    consistent_min_s: float = 5.0
    consistent_density: float = 0.6
    consistent_ratio: float = 0.92
    # Follow-up lines (half a verified replay's offset, see verify_all) are verified only
    # where their sampled frames match this closely under some flip (identity geometry;
    # crops and overlays leave replays at 0.1-0.45).
    follow_up_distance: float = 0.45
    # Where speed 1 and a fitted speed both verify, the fitted one must pin this many times as
    # many frames to the line to win.
    unit_slope_preference: float = 1.05
    # A verified run extends over frames at its ends pinned to the line and at least this
    # much closer than 1-2 s away.
    extend_ratio: float = 0.8
    extend_offset_s: float = 0.6
    # A cut in the source (a jump between consecutive fingerprints at least cut_ratio times
    # the largest step within +-0.6 s, and at least cut_min_distance): footage across it is
    # another shot, or at a seam between passes another airing under another disguise.
    cut_ratio: float = 3.0
    cut_min_distance: float = 0.05


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


# Flips of the 6x6 appearance grid as index permutations (involutions that commute):
# 0 none, 1 mirror, 2 vflip, 3 mirror+vflip; composing two flips XORs their numbers.
def _flip_permutations() -> np.ndarray:
    side = DESCRIPTOR_SIDE
    r, c = np.divmod(np.arange(side * side), side)
    grid = [r * side + c, r * side + (side - 1 - c), (side - 1 - r) * side + c, (side - 1 - r) * side + (side - 1 - c)]
    # The hashed vector is [appearance, motion]: the same flip applies to both halves.
    return np.stack([np.concatenate([g, g + side * side]) for g in grid])


def _hash_planes(settings: SearchSettings) -> np.ndarray:
    """(tables, bits, 72) hyperplanes in orbits of four tables: table 4*o + g holds the
    planes of table 4*o with flip g applied to their coordinates.

    A flipped query projected on a table's planes equals the unflipped query projected on
    the planes of the table flipped the other way (x[perm] . p = x . p[perm] for an
    involution), so the codes of all four flips come from one projection of the stream:
    the mirrored query's code in table (o, g) is the plain code in table (o, g xor 1).
    """
    if settings.hash_tables % 4:
        raise ValueError(f"hash_tables must be a multiple of 4, got {settings.hash_tables}")
    rng = np.random.default_rng(20261129)   # fixed: the same stream always gives the same votes
    dims = 2 * DESCRIPTOR_SIDE * DESCRIPTOR_SIDE
    perms = _flip_permutations()
    orbits = rng.standard_normal((settings.hash_tables // 4, settings.hash_bits, dims)).astype(np.float32)
    return np.stack([orbit[:, perms[g]] for orbit in orbits for g in range(4)])


def _pack(projections: np.ndarray, settings: SearchSettings) -> np.ndarray:
    """(n, tables) integer bucket keys from (n, tables * bits) projections."""
    n, tables, bits = len(projections), settings.hash_tables, settings.hash_bits
    if bits > 24:
        raise ValueError(f"hash_bits must be at most 24 (int32 bucket keys and bounds), got {bits}")
    packed = np.packbits((projections > 0).reshape(n, tables, bits), axis=2, bitorder="little")
    # Little-endian bytes padded to 4 and read as one uint32 per table.
    padded = np.zeros((n, tables, 4), np.uint8)
    padded[:, :, : packed.shape[2]] = packed
    return padded.view("<u4")[:, :, 0].astype(np.int32)


def _with_probes(projections: np.ndarray, settings: SearchSettings) -> np.ndarray:
    """(n, 1 + query_probes, tables) bucket keys: the code itself, then the code with one of
    its least certain bits (smallest |projection|) flipped, per probe. A disguised replay (a
    crop of a crop, new overlays) differs from its source by a small rotation of the hashed
    vector: the bits it loses are the ones closest to their hyperplane (multi-probe LSH)."""
    n, tables, bits = len(projections), settings.hash_tables, settings.hash_bits
    codes = _pack(projections, settings)
    if not settings.query_probes:
        return codes[:, None, :]
    certainty = np.abs(projections.reshape(n, tables, bits))
    weakest = certainty.argmin(axis=2)[:, :, None] if settings.query_probes == 1 else \
        np.argpartition(certainty, settings.query_probes - 1, axis=2)[:, :, : settings.query_probes]
    probes = codes[:, :, None] ^ (np.int32(1) << weakest.astype(np.int32))
    return np.concatenate([codes[:, None, :], probes.transpose(0, 2, 1)], axis=1)


def _key_codes(app_now: np.ndarray, app_then: np.ndarray, mot: np.ndarray, settings: SearchSettings,
               chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """(forward, reversed) bucket keys of the key fingerprints: forward (keys, 1 +
    query_probes, tables), [:, 0] the code itself (the index), the rest its probes; reversed
    (keys, 1, tables), not probed (see candidate_pairs).

    Forward: [appearance, motion_weight * motion]. Reversed: played backwards, the change
    over the last second is minus the source's change over the second that *ends* where
    the lagged frame sits: the query pairs that frame's appearance (`app_then`) with the
    negated motion, so it looks like the index entry of that source moment. (Normalising
    the concatenated vector would not change the signs, so it is skipped.)
    """
    planes = _hash_planes(settings)
    half = DESCRIPTOR_SIDE * DESCRIPTOR_SIDE
    flat_planes = planes.reshape(-1, planes.shape[2])
    plane_app, plane_mot = flat_planes[:, :half].T, settings.motion_weight * flat_planes[:, half:].T
    forward = np.empty((len(mot), 1 + settings.query_probes, settings.hash_tables), np.int32)
    reverse = np.empty((len(mot), 1, settings.hash_tables), np.int32)
    for c0 in range(0, len(mot), chunk):
        part = slice(c0, c0 + chunk)
        moving = mot[part] @ plane_mot
        forward[part] = _with_probes(app_now[part] @ plane_app + moving, settings)
        reverse[part, 0] = _pack(app_then[part] @ plane_app - moving, settings)
    return forward, reverse


_PAIR_DTYPE = [("q", np.int32), ("j", np.int32), ("v", np.int8)]


def candidate_pairs(times_s: np.ndarray, thumbs: np.ndarray, settings: SearchSettings) -> np.ndarray:
    """Structured array of (later, earlier, variant) index pairs whose hashes collide.

    Work and memory stay linear in the stream length: the stream is hashed at key
    fingerprints every `key_step_s` (all of them by default), queries are processed in
    chunks of `query_chunk_s` of stream time, and within a chunk a vote survives only if
    another vote shares its (stream time, offset) cell. A replay lays its votes densely
    along one offset; a live room that merely resembles itself hours apart spreads single
    votes over the whole (time, offset) plane, and those would otherwise grow
    quadratically with the stream's length.
    """
    n = len(times_s)
    empty = np.zeros(0, dtype=_PAIR_DTYPE)
    lagged = _lagged(times_s)
    step_s = float(np.median(np.diff(times_s))) if n > 1 else 1.0
    stride = max(1, round(settings.key_step_s / max(step_s, 1e-6)))
    keys = np.arange(0, n, stride)
    keys = keys[lagged[keys] > 0]          # a full second of history for the motion vector
    if len(keys) < 2:
        return empty
    # Appearance of the key fingerprints and of those one second before them only.
    app_now, app_then = appearance(thumbs[keys]), appearance(thumbs[lagged[keys]])
    diff = app_now - app_then
    moving = np.sqrt((diff * diff).mean(axis=1)) >= settings.min_motion
    keys, app_now, app_then, mot = keys[moving], app_now[moving], app_then[moving], normalise_rows(diff[moving])
    if len(keys) < 2:
        return empty
    forward, reverse = _key_codes(app_now, app_then, mot, settings)
    del app_now, app_then, mot, diff
    tables = settings.hash_tables
    # Direct-address bucket bounds: bucket c of a table holds orders[table, bounds[table, c]:
    # bounds[table, c + 1]] (2^bits + 1 int32 per table; a lookup is two gathers instead of a
    # binary search).
    orders = np.empty((tables, len(keys)), np.int32)
    bounds = np.zeros((tables, (1 << settings.hash_bits) + 1), np.int32)
    for table in range(tables):
        orders[table] = np.argsort(forward[:, 0, table], kind="stable")
        np.cumsum(np.bincount(forward[:, 0, table], minlength=1 << settings.hash_bits), out=bounds[table, 1:])
    t_keys = times_s[keys]
    # Chunk edges on multiples of the chunk length (itself a multiple of cell_t_s): no cell
    # is split between two chunks.
    first = np.floor(t_keys[0] / settings.query_chunk_s) * settings.query_chunk_s
    chunk_edges = np.searchsorted(t_keys, np.arange(first, t_keys[-1] + settings.query_chunk_s,
                                                    settings.query_chunk_s))
    chunk_edges = np.unique(np.append(chunk_edges, len(keys)))
    table_of = np.arange(tables)
    table_base = (table_of * bounds.shape[1]).astype(np.int32)
    bounds_flat, orders_flat = bounds.ravel(), orders.ravel()

    def votes(codes: np.ndarray, c0: int, flip: int, reversed_: bool) -> tuple[np.ndarray, np.ndarray]:
        """(later, earlier) frames of the raw votes of queries c0.. with bucket keys `codes`
        (queries, probes, tables): every table and probe at once, flat gathers."""
        where = codes[:, :, table_of ^ flip] + table_base      # positions in `bounds`
        lo = bounds_flat[where]
        size = bounds_flat[where + 1] - lo
        ok = (size > 0) & (size <= settings.max_bucket)
        hits = np.flatnonzero(ok)
        if len(hits) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        size_ok, lo_ok = size.ravel()[hits], lo.ravel()[hits]
        # Flat positions into `orders` of every member of every hit bucket.
        start = lo_ok + (hits % tables) * len(keys)
        first_vote = np.cumsum(size_ok) - size_ok
        member = np.arange(int(first_vote[-1] + size_ok[-1])) + np.repeat(start - first_vote, size_ok)
        q_frame = keys[np.repeat(hits // (tables * codes.shape[1]) + c0, size_ok)]
        j_frame = keys[orders_flat[member]]
        if reversed_:
            # The reversed query carried its lagged frame's appearance (see _key_codes): that
            # frame is the one that corresponds to the index entry.
            q_frame = lagged[q_frame]
        keep = times_s[q_frame] - times_s[j_frame] >= (settings.min_reversed_offset_s if reversed_
                                                         else settings.min_offset_s)
        return q_frame[keep], j_frame[keep]

    def distinct(q_frame: np.ndarray, j_frame: np.ndarray) -> np.ndarray:
        """Sorted distinct pair keys (a pair collides in several tables). A sort and a
        comparison of neighbours: np.unique's hash path is several times slower here."""
        pair_key = np.sort(q_frame.astype(np.int64) * n + j_frame)
        return pair_key[np.concatenate([[True], pair_key[1:] != pair_key[:-1]])] if len(pair_key) else pair_key

    found = []
    for c0, c1 in pairwise(chunk_edges):
        if c1 <= c0:
            continue
        exact = [votes((reverse if d == "reversed" else forward)[c0:c1, :1], c0, TRANSFORMS.index(f), d == "reversed")
                 for f, d in _variants()]
        # Probes (forward only: a boomerang is a plain copy played backwards and collects plenty
        # of exact votes) only where exact votes are not already plentiful: in a room that
        # resembles itself everywhere (a low-dimensional scene) they add chance votes only.
        density = sum(len(distinct(q, j)) for q, j in exact) / (c1 - c0)
        probing = settings.query_probes > 0 and density <= settings.max_probe_density
        for variant, ((transform, direction), (q_frame, j_frame)) in enumerate(zip(_variants(), exact)):
            reversed_ = direction == "reversed"
            if probing and not reversed_:
                q_probe, j_probe = votes(forward[c0:c1, 1:], c0, TRANSFORMS.index(transform), False)
                q_frame, j_frame = np.concatenate([q_frame, q_probe]), np.concatenate([j_frame, j_probe])
            if len(q_frame) == 0:
                continue
            pair_key = distinct(q_frame, j_frame)
            q_frame, j_frame = (pair_key // n).astype(np.int32), (pair_key % n).astype(np.int32)
            t, s = times_s[q_frame], times_s[j_frame]
            offset = t + s if reversed_ else t - s
            cell = (np.floor(t / settings.cell_t_s).astype(np.int64) << 32) + \
                np.floor(offset / settings.cell_offset_s).astype(np.int64)
            _, cell_of_pair, counts = np.unique(cell, return_inverse=True, return_counts=True)
            keep = counts[cell_of_pair] >= settings.min_cell_votes
            if keep.any():
                pairs = np.empty(int(keep.sum()), dtype=_PAIR_DTYPE)
                pairs["q"], pairs["j"], pairs["v"] = q_frame[keep], j_frame[keep], variant
                found.append(pairs)
    if not found:
        return empty
    pairs = np.concatenate(found)
    # Grouped by variant, as before (alignments() selects per variant).
    return pairs[np.argsort(pairs["v"], kind="stable")]


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
    # The other plausible slope and intercept for the same votes (speed 1 when a speed was
    # fitted, the fitted speed when speed 1 was kept); verified too when this one verifies.
    alternative: tuple[float, float] | None = None


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
        strong = np.flatnonzero(votes >= settings.min_votes)
        # Fit lines only through the components with the most votes: a long live stream has
        # many small chance clusters, and only max_candidates alignments are verified anyway.
        strong = strong[np.argsort(-votes[strong], kind="stable")][: settings.max_components]
        if len(strong) == 0:
            continue
        # Group the pairs by component once (sorting), instead of one scan per component.
        pair_label = label[cell_of_pair]
        chosen = np.isin(pair_label, strong)
        idx = np.flatnonzero(chosen)
        idx = idx[np.argsort(pair_label[idx], kind="stable")]
        bounds = np.searchsorted(pair_label[idx], strong)
        ends = np.searchsorted(pair_label[idx], strong, side="right")
        for lo, hi in zip(bounds, ends):
            members = idx[lo:hi]
            for slope, intercept, inliers, other in _fit_lines(t[members], s[members], reversed_, settings):
                found.append(Alignment(int(variant), slope, intercept, float(t[members][inliers].min()),
                                       float(t[members][inliers].max()), int(inliers.sum()), other))
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
        ti, si = tt[best_inliers], ss[best_inliers]
        # The other reading of the same votes: speed 1, or the fitted speed.
        unit = (sign, float(np.median(si - sign * ti)))
        other = unit
        if np.ptp(ti) >= 4.0:
            fit_slope, fit_intercept = np.polyfit(ti, si, 1)
            if abs(abs(fit_slope) - 1.0) <= settings.slope_tolerance and np.sign(fit_slope) == sign:
                slope, intercept = float(fit_slope), float(fit_intercept)
                # Votes sit on a grid of key times (+-half a key step each way), so a fitted
                # slope of 0.98 or 1.03 over a few seconds can be noise: keep speed 1 unless
                # the fitted line explains the votes clearly better.
                unit_residual = np.mean(np.abs(si - (sign * ti + unit[1])))
                fit_residual = np.mean(np.abs(si - (fit_slope * ti + fit_intercept)))
                if unit_residual <= 1.15 * fit_residual + 0.01:
                    other, (slope, intercept) = (slope, intercept), unit
        inliers_all = np.zeros(len(t), bool)
        inliers_all[idx[best_inliers]] = True
        lines.append((float(slope), float(intercept), inliers_all,
                      None if abs(other[0] - slope) < 0.005 else (float(other[0]), float(other[1]))))
        remaining &= ~inliers_all
    return lines


# -- step 3: verification -------------------------------------------------------------------

# Relative geometry between a replay and its source: (zoom, dx, dy in thumbnail cells,
# rotation in degrees). Each pass may be cropped (5-12 %, off-centre) and rotated (up to 4
# degrees) on its own, so the relative zoom runs both ways.
_GEOMETRY_AXES = (
    (1.0, 0.88, 0.91, 0.94, 0.97, 1.03, 1.06, 1.09, 1.12, 1.15),
    (0.0, -1.6, -1.2, -0.8, -0.4, 0.4, 0.8, 1.2, 1.6),
    (0.0, -1.6, -1.2, -0.8, -0.4, 0.4, 0.8, 1.2, 1.6),
    (0.0, -4.5, -3.0, -1.5, 1.5, 3.0, 4.5),
)
IDENTITY = (1.0, 0.0, 0.0, 0.0)
# Zooms and shifts searched jointly for an off-centre crop (a zoom *and* a shift): crops of
# 5-12 % (zoom 1.06-1.12 or, source and replay swapped, 0.91-0.94) shifted by up to 1.2
# cells. 60 trials, not the full 180 of these two axes: a low-dimensional room, whose chance
# lines all get this search, verified in 2x the time with the full grid.
_JOINT_ZOOMS = (0.91, 0.94, 1.06, 1.09, 1.12)
_JOINT_SHIFTS = (-1.2, -0.8, -0.4, 0.4, 0.8, 1.2)
_WINDOW_S = 8.0
_SIDE = 16


class _Geometries:
    """Registry of the geometries used so far, each as a sparse bilinear warp: for every
    central cell of the replay's 16x16 thumbnail, the 4 source cells and their weights.
    Built on first use (the full grid has 5,670 geometries, a search visits ~60)."""

    def __init__(self) -> None:
        self.ids: dict[tuple, int] = {}
        self.params: list[tuple] = []
        self.cells: list[np.ndarray] = []
        self.weights: list[np.ndarray] = []
        self.id(IDENTITY)

    def id(self, geometry: tuple) -> int:
        geometry = tuple(float(v) for v in geometry)
        if geometry not in self.ids:
            zoom, dx, dy, rot = geometry
            ys, xs = np.mgrid[CENTRE, CENTRE].astype(np.float64)
            c = (_SIDE - 1) / 2.0
            # Source coordinates of each output cell: the replay shows the source zoomed by
            # `zoom` and rotated by `rot` about the centre, then shifted.
            u, v = (xs - c - dx) / zoom, (ys - c - dy) / zoom
            angle = np.radians(rot)
            sx = np.clip(np.cos(angle) * u + np.sin(angle) * v + c, 0, _SIDE - 1.001).ravel()
            sy = np.clip(-np.sin(angle) * u + np.cos(angle) * v + c, 0, _SIDE - 1.001).ravel()
            x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
            fx, fy = sx - x0, sy - y0
            self.cells.append(np.stack([y0 * _SIDE + x0, y0 * _SIDE + x0 + 1,
                                        (y0 + 1) * _SIDE + x0, (y0 + 1) * _SIDE + x0 + 1], axis=1))
            self.weights.append(np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy],
                                         axis=1).astype(np.float32))
            self.ids[geometry] = len(self.params)
            self.params.append(geometry)
        return self.ids[geometry]

    def warp(self, flat: np.ndarray, g: int) -> np.ndarray:
        """(n, 144) central cells of `flat` (n, 256) seen through geometry g."""
        return (flat[:, self.cells[g]] * self.weights[g]).sum(axis=-1)


GEOMETRIES = _Geometries()
_IDENTITY_CELLS = (np.arange(16)[CENTRE, None] * 16 + np.arange(16)[None, CENTRE]).ravel()


def _warped(flat: np.ndarray, geometry: np.ndarray) -> np.ndarray:
    """Normalised central vectors of thumbnails `flat` (n, 256) under per-row `geometry` ids."""
    out = flat[:, _IDENTITY_CELLS]              # geometry 0 is the identity: no warp needed
    if np.any(geometry):
        out = out.copy()
        for g in np.unique(geometry[geometry > 0]):
            rows = geometry == g
            out[rows] = GEOMETRIES.warp(flat[rows], int(g))
    return normalise_rows(out, floor=2.0)


class _Rows:
    """Thumbnails as float32 rows of 256 cells, converted only for the rows asked for (a
    whole 10-hour stream converted at once would be 184 MB, for every alignment verified)."""

    def __init__(self, thumbs: np.ndarray) -> None:
        self._flat = thumbs.reshape(len(thumbs), -1)

    def __getitem__(self, index) -> np.ndarray:
        return self._flat[index].astype(np.float32)


def _centre_vectors(thumbs: np.ndarray) -> np.ndarray:
    return normalise_rows(thumbs[:, CENTRE, CENTRE].reshape(len(thumbs), -1), floor=2.0)


def _renormalised(x: np.ndarray, weights: np.ndarray, count: np.ndarray, floor: float = 0.2) -> np.ndarray:
    """Rows of x (already normalised over all cells) normalised again over the cells with
    weight 1 (`count` of them per row)."""
    centred = x - (np.einsum("ij,ij->i", x, weights) / count)[:, None]
    std = np.sqrt(np.einsum("ij,ij,ij->i", centred, centred, weights) / count)
    return centred / np.maximum(std, floor)[:, None]


def _trimmed(a: np.ndarray, b: np.ndarray, trim_share: float,
             iterations: int = TRIM_ITERATIONS) -> tuple[np.ndarray, np.ndarray]:
    """Per-row mean |a-b| over the cells that agree best, and the mask of those cells.

    An overlay (a dark comment band, a price tag) moves the mean and spread of the whole
    row, so after the first trim both rows are normalised again over the kept cells only and
    trimmed again: the footage outside the overlay then matches to the noise level.
    """
    keep = round(a.shape[-1] * (1 - trim_share))
    diff = np.abs(a - b)
    for iteration in range(iterations):
        threshold = np.partition(diff, keep - 1, axis=-1)[..., keep - 1: keep]
        mask = diff <= threshold
        if iteration < iterations - 1:
            weights = mask.astype(np.float32)
            count = np.maximum(weights.sum(axis=-1), 1)
            diff = np.abs(_renormalised(a, weights, count) - _renormalised(b, weights, count))
    return (diff * mask).sum(axis=-1) / np.maximum(mask.sum(axis=-1), 1), mask


def _masked(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean |a-b| over the cells in mask, both rows normalised over those cells."""
    weights = mask.astype(np.float32)
    count = np.maximum(weights.sum(axis=-1), 1)
    diff = np.abs(_renormalised(a, weights, count) - _renormalised(b, weights, count))
    return np.einsum("ij,ij->i", diff, weights) / count


def _nearest(times_s: np.ndarray, targets_s: np.ndarray, tolerance_s: float) -> tuple[np.ndarray, np.ndarray]:
    pos = np.clip(np.searchsorted(times_s, targets_s), 1, len(times_s) - 1)
    left_closer = np.abs(times_s[pos - 1] - targets_s) <= np.abs(times_s[pos] - targets_s)
    nearest = np.where(left_closer, pos - 1, pos)
    return nearest, np.abs(times_s[nearest] - targets_s) <= tolerance_s


def _window_geometry(replay: np.ndarray, flat: np.ndarray, j: np.ndarray, t: np.ndarray,
                     rough: np.ndarray, settings: SearchSettings) -> np.ndarray:
    """Per-frame geometry id: the zoom/shift that best maps source onto replay in 8 s
    windows (crop disguises may differ from pass to pass, so not one geometry per line).

    A window that straddles the seam between two passes cropped differently fits one of
    them badly: each frame keeps the best fitting of its own and its neighbour windows'
    geometries (a neighbour lies inside the other pass)."""
    window = np.floor((t - t[0]) / _WINDOW_S).astype(int)
    per_window = {}
    for w in np.unique(window):
        members = np.flatnonzero(window == w)
        if (rough[members] <= settings.match_distance).sum() < 3:
            continue                 # nothing here that a crop could rescue
        pick = members[np.linspace(0, len(members) - 1, num=min(8, len(members))).astype(int)]
        per_window[w] = _descend_geometry(replay[pick], flat[j[pick]], settings)[0]
    geometry = np.array([per_window.get(w, 0) for w in window], np.int64)
    if len(set(per_window.values()) - {0}) == 0:
        return geometry
    source = flat[j]
    best = _trimmed(replay, _warped(source, geometry), settings.trim_share)[0]
    for step in (-1, 1):
        other = np.array([per_window.get(w + step, 0) for w in window], np.int64)
        differs = other != geometry
        if not differs.any():
            continue
        rows = np.flatnonzero(differs)
        cost = _trimmed(replay[rows], _warped(source[rows], other[rows]), settings.trim_share)[0]
        better = cost < best[rows]
        geometry[rows[better]] = other[rows[better]]
        best[rows[better]] = cost[better]
    return geometry


def _descend_geometry(replay: np.ndarray, source_flat: np.ndarray, settings: SearchSettings):
    """Best (zoom, dx, dy, rotation) by two rounds of coordinate descent over the grid; each
    axis's values are scored in one batch (~70 geometries, not 5,670).

    A geometry is judged by how many frames it matches (a window may straddle the start of
    a replay), then by their mean distance; the identity wins ties unless another geometry
    is clearly (0.03) closer.
    """
    def scores(trials: list[tuple]) -> list[tuple[int, float]]:
        m = len(replay)
        warped = np.concatenate([GEOMETRIES.warp(source_flat, GEOMETRIES.id(trial)) for trial in trials])
        cost = _trimmed(np.tile(replay, (len(trials), 1)), normalise_rows(warped, floor=2.0),
                        settings.trim_share)[0].reshape(len(trials), m)
        hit = cost <= settings.match_distance
        return [(int(h.sum()), float(c[h].mean()) if h.any() else np.inf) for h, c in zip(hit, cost)]

    current = IDENTITY
    ((hits0, cost0),) = scores([current])
    if hits0 >= 2 and cost0 <= settings.geometry_skip_distance:
        # The identity already fits the frames that match at all closely (the others lie
        # outside the replay: a window can straddle its start or end).
        return 0, hits0, cost0
    best_hits, best_cost = hits0, cost0

    def improve(trials: list[tuple]) -> None:
        nonlocal current, best_hits, best_cost
        for trial, (hits, cost) in zip(trials, scores(trials)):
            if hits > best_hits or (hits == best_hits and cost < best_cost - 0.01):
                current, best_hits, best_cost = trial, hits, cost

    def descend(rounds: int) -> None:
        for axis, values in tuple(enumerate(_GEOMETRY_AXES)) * rounds:
            improve([current[:axis] + (value,) + current[axis + 1:] for value in values if value != current[axis]])

    descend(2)
    if best_cost > settings.joint_geometry_distance:
        # A crop far off-centre is a zoom *and* a shift: neither alone brings the picture
        # closer, so the descent stays at the identity (bench crop/zoom seed 3: 9.8 % at the
        # right edge, 0.24 after the descent, 0.06 at zoom 1.12 and 0.8 cells). Zoom with each
        # shift axis jointly, then the descent once more.
        for axis in (1, 2):
            improve([tuple(zoom if k == 0 else shift if k == axis else current[k] for k in range(4))
                     for zoom in _JOINT_ZOOMS for shift in _JOINT_SHIFTS])
        descend(1)
    g = GEOMETRIES.id(current)
    if g != 0 and not (best_hits > hits0 or (best_hits == hits0 > 0 and best_cost < cost0 - 0.03)):
        g = 0
    return g, best_hits, best_cost


# Offsets (s) at which the source is also compared: a true alignment is a local minimum
# (|delta| < 0.3 s) and clearly better than 1-2 s away.
# Fine steps near the line (the local minimum, sub-step refinement), coarse ones beyond.
_DELTAS_S = np.array([-2.0, -1.5, -1.0, -0.6, -0.4, -0.2, 0.0, 0.2, 0.4, 0.6, 1.0, 1.5, 2.0])


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
    geometry: tuple[float, float, float, float]   # zoom, dx, dy (cells), rotation (degrees)
    pinned: int = 0            # matched frames whose best offset within +-2 s is the line itself


def verify(times_s: np.ndarray, thumbs: np.ndarray, alignment: Alignment, settings: SearchSettings,
           fingerprint_step_s: float) -> list[Run]:
    """Runs along `alignment` that really replay earlier footage.

    Verification looks `verify_margin_s` beyond the votes (hashing finds only part of a
    replay; verification finds its ends); a run that reaches the edge of that window is
    verified again over a window four times wider.
    """
    margin = settings.verify_margin_s
    runs = _verify_window(times_s, thumbs, alignment, settings, fingerprint_step_s, margin)
    lo, hi = alignment.t_lo_s - margin, alignment.t_hi_s + margin
    reach = settings.max_gap_s + 2 * fingerprint_step_s
    at_edge = any((times_s[r.q[0]] - lo <= reach and lo > times_s[0]) or
                  (hi - times_s[r.q[-1]] <= reach and hi < times_s[-1]) for r in runs)
    if at_edge:
        runs = _verify_window(times_s, thumbs, alignment, settings, fingerprint_step_s, 4 * margin)
    return runs


def _verify_window(times_s: np.ndarray, thumbs: np.ndarray, alignment: Alignment, settings: SearchSettings,
                   fingerprint_step_s: float, margin: float) -> list[Run]:
    transform, direction = _variants()[alignment.variant]
    slope, intercept = alignment.slope, alignment.intercept
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
    flat = _Rows(thumbs)
    replay = _centre_vectors(mirrored(thumbs[q], transform).astype(np.float32))
    # Cheap test before the crop search: the coarse thumbnails absorb crops up to ~12 %, so
    # a replay matches for at least half of min_span_s even without any geometry; most
    # coincidental lines do not.
    screen_geometry = np.zeros(len(j), int)
    rough, rough_mask = _trimmed(replay, _warped(flat[j], screen_geometry), settings.trim_share)

    def too_few(distance: np.ndarray) -> bool:
        return (distance <= settings.match_distance).sum() * fingerprint_step_s < 0.5 * settings.min_span_s

    if too_few(rough):
        # Crop, rotation and a flip together can push every frame past match_distance at the
        # identity: one coordinate descent on frames spread over the votes tells whether some
        # geometry makes the line match at all.
        voted = np.flatnonzero((t >= alignment.t_lo_s) & (t <= alignment.t_hi_s))
        if len(voted) < 3:
            return []
        pick = voted[np.linspace(0, len(voted) - 1, num=min(8, len(voted))).astype(int)]
        g, hits, _ = _descend_geometry(replay[pick], flat[j[pick]], settings)
        if g == 0 or hits < 3:
            log.debug("line %.1f-%.1f %s/%s slope %.3f: too few frames match at any geometry", alignment.t_lo_s,
                      alignment.t_hi_s, transform, direction, slope)
            return []
        screen_geometry = np.full(len(j), g)
        rough, rough_mask = _trimmed(replay, _warped(flat[j], screen_geometry), settings.trim_share)
        if too_few(rough):
            return []
    # Before the costly crop search, a very lenient sharpness screen: even a 12 % off-centre
    # crop fits its own moment better than 1-2 s away (ratio ~0.6), while a chance line
    # through a room that resembles itself fits everywhere about equally.
    if not _sharp_enough(times_s, flat, replay, t, s, rough, rough_mask, screen_geometry, tolerance, settings,
                         fingerprint_step_s, screen=settings.identity_screen_ratio / settings.sharpness_ratio)[0]:
        log.debug("line %.1f-%.1f %s/%s slope %.3f: not sharp enough to search for a crop", alignment.t_lo_s,
                  alignment.t_hi_s, transform, direction, slope)
        return []
    geometry = _window_geometry(replay, flat, j, t, rough, settings)
    exact, mask = _trimmed(replay, _warped(flat[j], geometry), settings.trim_share)
    # A lenient sharpness screen before the full offset scan.
    enough, candidates = _sharp_enough(times_s, flat, replay, t, s, exact, mask, geometry, tolerance, settings,
                                       fingerprint_step_s)
    # A replay under heavy disguise (crop + rotation + flip + new overlays) may fit its own
    # moment only a little better than 1-2 s away, but it does so at every frame, for as
    # long as it lasts. Such alignments get the full offset scan on every matching frame.
    dipped = _dips(times_s, flat, replay, t, s, exact, geometry, tolerance, settings)
    if not (enough or dipped):
        log.debug("line %.1f-%.1f %s/%s slope %.3f: neither sharp nor a dip", alignment.t_lo_s, alignment.t_hi_s,
                  transform, direction, slope)
        return []
    screened = np.zeros(len(q), bool)
    if enough:
        screened[candidates] = True
    # Comparisons 1-2 s off the line must stay within the source's shot. At the seam between
    # two passes the source 1-2 s on is another airing under another disguise (or a brightness
    # shift shared with the replay frame): resembling it more says nothing against the line,
    # and counting it cut runs 1.5-2 s short of every seam (measured on the bench's colour,
    # overlay and rotation rows).
    shot_lo = max(0, int(j.min()) - 16)
    shot_hi = min(len(times_s), int(j.max()) + 17)
    shots = _shots(flat, shot_lo, shot_hi, settings)

    def same_shot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a = np.clip(a - shot_lo, 0, len(shots) - 1)
        b = np.clip(b - shot_lo, 0, len(shots) - 1)
        return shots[a] == shots[b]

    # The offset scan covers every frame that fits, not only the sharp ones: runs found on
    # sharp frames are then extended over the frames that fit less sharply at their ends.
    candidates = np.flatnonzero(exact <= settings.match_distance)
    # Distances at nearby offsets, for the matched frames only.
    n_d = len(_DELTAS_S)
    near = np.full((len(q), n_d), np.inf, np.float32)
    far_masked = np.full(len(q), np.inf, np.float32)
    c = candidates
    for k, delta in enumerate(_DELTAS_S):
        j_d, ok_d = _nearest(times_s, s[c] + delta, tolerance)
        ok_d &= _apart(t[c], times_s[j_d]) & same_shot(j[c], j_d)
        src = _warped(flat[j_d], geometry[c])
        d, _ = _trimmed(replay[c], src, settings.trim_share)
        near[c, k] = np.where(ok_d, d, np.inf)
        if abs(delta) >= 1.0:
            far_masked[c] = np.where(ok_d, np.minimum(far_masked[c], _masked(replay[c], src, mask[c])), far_masked[c])
    best_delta = _DELTAS_S[np.argmin(near, axis=1)]
    pinned = np.abs(best_delta) <= 0.3
    # Where the footage barely changes over +-2 s every offset fits about as well: such
    # frames do not contradict the line (the run-level sharpness test still has to pass).
    contrast = near.max(axis=1, initial=0, where=np.isfinite(near)) - near.min(axis=1)
    local_min = pinned | (exact - near.min(axis=1) <= 0.2 * contrast + 0.005)
    # Per frame, leniently: the line must fit clearly better than 1-2 s away. This cuts a run
    # where the line leaves the replay it was fitted to and only loosely fits what follows.
    fits = exact <= settings.match_distance
    frame_sharp = ~np.isfinite(far_masked) | (exact <= 2.0 * settings.sharpness_ratio * far_masked)
    # Per-frame score for choosing between overlapping runs: its distance, plus how much
    # better a nearby offset would fit (a line slightly off the true one loses to it).
    score = exact + 2.0 * (exact - np.where(np.isfinite(near), near, np.inf).min(axis=1))

    def run(sel, good, d_exact, d_shift) -> Run:
        shift_s = _refine_offset(near[sel][good])
        dominant = int(np.bincount(geometry[sel][good]).argmax())
        return Run(q[sel][good], s[sel][good] + shift_s, score[sel][good], d_exact, d_shift, slope,
                   transform, direction, GEOMETRIES.params[dominant], int(pinned[sel][good].sum()))

    repeats = []
    strict = screened & fits & local_min & frame_sharp
    # Frames at a run's ends may also fit best a little off the line (dropped or duplicated
    # frames make a replay drift by a few tenths of a second over a pass): within
    # extend_offset_s, fitting there clearly better than 1-2 s away.
    nearest_best = np.where(np.isfinite(near), near, np.inf).min(axis=1)
    drifted = (np.abs(best_delta) <= settings.extend_offset_s) & (nearest_best <= settings.extend_ratio * far_masked)
    extendable = fits & ((pinned & (exact <= settings.extend_ratio * far_masked)) | drifted)
    for sel, good, d_exact, d_shift, length_s in _scored_runs(t, strict, exact, far_masked, settings,
                                                              fingerprint_step_s):
        log.debug("run %.1f-%.1f %s/%s slope %.3f exact %.3f shifted %.3f ratio %.2f pinned %.2f",
                  t[sel][0], t[sel][-1], transform, direction, slope, d_exact, d_shift,
                  d_exact / max(d_shift, 1e-6), np.mean(pinned[sel][good]))
        # Evidence accumulates with length: a coincidental alignment that stays sharp frame
        # after frame for 12 s is rarer than one for 4 s, so long runs may be a little less
        # sharp (a cropped replay on coarse thumbnails).
        ratio = settings.sharpness_ratio + settings.long_run_bonus * float(
            np.clip((length_s - settings.min_span_s) / 8.0, 0.0, 1.0))
        if d_shift < settings.sharp_min_change or d_exact > ratio * d_shift:
            continue
        # Replayed footage fits best at the line itself frame after frame; a coincidental
        # resemblance is best somewhere else within +-2 s for many of its frames.
        if np.mean(pinned[sel][good]) < settings.min_pinned_share:
            continue
        # A camera that pans over the same room again (or back) re-creates a sequence of
        # views without replaying footage; only the people in it differ, and they are few
        # cells. Where the camera moves, ask for a much closer match.
        if d_exact > settings.moving_camera_ratio * d_shift and \
                _camera_moving_share(flat, q[sel][good], times_s) >= 0.5:
            log.debug("run %.1f-%.1f: the camera moves and ratio %.2f > %.2f", t[sel][0], t[sel][-1],
                      d_exact / d_shift, settings.moving_camera_ratio)
            continue
        # Disguised frames at a replay's ends may fit less sharply; they still fit best at
        # the line and better than 1-2 s away: extend the run over them.
        lo, hi = _extend(t, sel.start, sel.stop - 1, extendable, settings.max_gap_s)
        sel = slice(lo, hi + 1)
        repeats.append(run(sel, (strict | extendable)[sel], d_exact, d_shift))
    if not dipped:
        return repeats
    # The consistent path: every frame's best offset within +-2 s is the line itself and
    # fits better than 1-2 s away, for at least `consistent_min_s`; only where no sharp run
    # already explains the frames, and never where the camera moves.
    taken = np.zeros(len(q), bool)
    for r in repeats:
        taken[np.isin(q, r.q)] = True
    weak = fits & pinned & (exact < far_masked) & ~taken
    for sel, good, d_exact, d_shift, length_s in _scored_runs(t, weak, exact, far_masked, settings,
                                                              fingerprint_step_s):
        density = good.sum() * fingerprint_step_s / length_s
        log.debug("consistent run %.1f-%.1f %s/%s slope %.3f exact %.3f shifted %.3f ratio %.2f density %.2f",
                  t[sel][0], t[sel][-1], transform, direction, slope, d_exact, d_shift,
                  d_exact / max(d_shift, 1e-6), density)
        if length_s < settings.consistent_min_s or density < settings.consistent_density or \
                d_shift < settings.min_change or d_exact > settings.consistent_ratio * d_shift or \
                _camera_moving_share(flat, q[sel][good], times_s) >= 0.5:
            continue
        # Its ends grow like a sharp run's: a replay drifting a few tenths of a second
        # (dropped frames) leaves the pinned frames before the pass ends (all combined seed 3
        # stopped 8 s before the end of its pass).
        lo, hi = _extend(t, sel.start, sel.stop - 1, extendable & ~taken, settings.max_gap_s)
        grown = slice(lo, hi + 1)
        repeats.append(run(grown, (weak | (extendable & ~taken))[grown], d_exact, d_shift))
    return repeats


def _shots(flat: "_Rows", lo: int, hi: int, settings: SearchSettings) -> np.ndarray:
    """Shot number of each fingerprint lo..hi-1: it grows by one after every cut, a jump between
    consecutive fingerprints that stands out from the steps around it (a hard cut, or the
    seam between two passes of a loop; fast motion changes every step and is no cut)."""
    if hi - lo < 2:
        return np.zeros(max(hi - lo, 0), int)
    vectors = _centre_vectors(flat[lo:hi].reshape(-1, THUMB_SIDE, THUMB_SIDE))
    step = _trimmed(vectors[1:], vectors[:-1], settings.trim_share)[0]
    around = np.zeros_like(step)
    for k in (1, 2, 3):
        around[k:] = np.maximum(around[k:], step[:-k])
        around[:-k] = np.maximum(around[:-k], step[k:])
    cut = (step >= settings.cut_ratio * around) & (step >= settings.cut_min_distance)
    return np.concatenate([[0], np.cumsum(cut)])


def _extend(t: np.ndarray, lo: int, hi: int, extendable: np.ndarray, max_gap_s: float,
            max_jump_s: float = 2.5, min_stretch_s: float = 3.0) -> tuple[int, int]:
    """Index range lo..hi grown over `extendable` frames, bridging gaps up to max_gap_s.

    One longer gap per end (up to max_jump_s) is bridged when at least min_stretch_s of
    extendable frames follows it: a replay does not pause and resume at the very same offset,
    but a still stretch under a colour disguise can fit 1-2 s off as well as at the line for
    a couple of seconds (colour seed 5: 2.2 s inside its first replay). Chance resemblance in
    live footage gives stretches of a second or two, not three."""
    def walk(start: int, direction: int, gap_s: float) -> int:
        last, i = start, start + direction
        while 0 <= i < len(t) and abs(t[i] - t[last]) <= gap_s:
            if extendable[i]:
                last = i
            i += direction
        return last

    def grow(start: int, direction: int) -> int:
        last = walk(start, direction, max_gap_s)
        beyond = walk(last, direction, max_jump_s)
        if beyond == last:
            return last
        # `beyond` is the farthest extendable frame within reach; the jump lands on the
        # nearest one after the gap and must open a long enough stretch.
        i = last + direction
        while not extendable[i]:
            i += direction
        end = walk(i, direction, max_gap_s)
        if abs(t[end] - t[i]) < min_stretch_s:
            return last
        return walk(end, direction, max_gap_s)

    return grow(lo, -1), grow(hi, 1)


def _scored_runs(t, matched, exact, far_masked, settings, step_s):
    """(slice, matched frames in it, mean exact distance, mean shifted distance, length) of
    each run of matched frames at least min_span_s long."""
    for lo, hi in _runs(t, matched, settings.max_gap_s):
        sel = slice(lo, hi + 1)
        length_s = t[hi] - t[lo] + step_s
        if length_s < settings.min_span_s:
            continue
        good = matched[sel]
        far = far_masked[sel][good]
        far = far[np.isfinite(far)]
        if len(far) < 3:
            continue
        yield sel, good, float(np.mean(exact[sel][good])), float(np.mean(far)), length_s


def _dips(times_s, flat, replay, t, s, exact, geometry, tolerance, settings, samples: int = 24) -> bool:
    """Whether the line is a dip in distance on a sample of its matching frames: the median
    distance at the line is below `consistent_ratio` times the medians 0.8 and 1.6 s away
    on either side (cheap: 4 offsets on 24 frames)."""
    frames = np.flatnonzero(exact <= settings.match_distance)
    if len(frames) * (t[1] - t[0] if len(t) > 1 else 0.2) < settings.consistent_min_s * 0.5:
        return False
    frames = frames[np.linspace(0, len(frames) - 1, num=min(samples, len(frames))).astype(int)]
    at_line = float(np.median(exact[frames]))
    for delta in (-1.6, -0.8, 0.8, 1.6):
        j_d, ok_d = _nearest(times_s, s[frames] + delta, tolerance)
        ok_d &= _apart(t[frames], times_s[j_d])
        if ok_d.sum() < 3:
            return False
        d = _trimmed(replay[frames][ok_d], _warped(flat[j_d[ok_d]], geometry[frames][ok_d]), settings.trim_share)[0]
        if at_line > settings.consistent_ratio * float(np.median(d)):
            return False
    return True


def _camera_moving_share(flat: _Rows, q: np.ndarray, times_s: np.ndarray, samples: int = 24) -> float:
    """Share of (sampled) frames whose view shifted by whole cells since 1 s or 3 s before:
    a pan. The 3 s lag catches slow pans (0.3-0.7 cell/s) that a 1 s lag cannot resolve
    on 16x16 thumbnails."""
    q = q[np.linspace(0, len(q) - 1, num=min(samples, len(q))).astype(int)]
    moved = np.zeros(len(q), bool)
    inner = slice(2, 14)
    for lag_s in (1.0, 3.0):
        previous, ok = _nearest(times_s, times_s[q] - lag_s, 0.15)
        if not ok.any():
            continue
        now = flat[q[ok]].reshape(-1, 16, 16)
        before = flat[previous[ok]].reshape(-1, 16, 16)
        current = normalise_rows(now[:, inner, inner].reshape(len(now), -1), floor=2.0)
        costs = []
        for dy in (-2, -1, 0, 1, 2):
            for dx in (-2, -1, 0, 1, 2):
                window = before[:, 2 + dy: 14 + dy, 2 + dx: 14 + dx].reshape(len(before), -1)
                costs.append(_trimmed(current, normalise_rows(window, floor=2.0), 0.25, iterations=1)[0])
        costs = np.stack(costs, axis=1)
        still = costs[:, 12]                      # (dx, dy) = (0, 0)
        moved[ok] |= (costs.argmin(axis=1) != 12) & (costs.min(axis=1) < 0.8 * still)
    return float(moved.mean()) if len(q) else 0.0


def _sharp_enough(times_s, flat, replay, t, s, exact, mask, geometry, tolerance, settings, step_s,
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
        ok_d &= _apart(t[candidates], times_s[j_d])
        d = _masked(replay[candidates], _warped(flat[j_d], geometry[candidates]), mask[candidates])
        far = np.where(ok_d, np.minimum(far, d), far)
    sharp = exact[candidates] <= screen * settings.sharpness_ratio * far
    return bool(sharp.sum() * step_s >= 0.5 * settings.min_span_s), candidates[sharp]


def _apart(t: np.ndarray, other_s: np.ndarray, min_gap_s: float = 1.0) -> np.ndarray:
    """Comparison frames far enough from the replay frame itself to be evidence: near the turn
    of a boomerang the source shifted by 1-2 s *is* the replay (distance 0, not a contrast)."""
    return np.abs(t - other_s) >= min_gap_s


def _refine_offset(near: np.ndarray) -> float:
    """Offset correction from the mean distances at -0.4..+0.4 s: the best of those offsets,
    refined by a parabola through it and its neighbours. A line fitted a step or more off the
    replay (votes sit on a 0.4 s grid) has its minimum at an edge of -0.2, 0, +0.2 s, where a
    parabola through those three is not convex and gave no correction at all."""
    centre = int(np.flatnonzero(_DELTAS_S == 0)[0])
    band = slice(centre - 2, centre + 3)
    rows = np.isfinite(near[:, band]).all(axis=1)
    if rows.sum() < 3:
        return 0.0
    profile = near[rows, band].mean(axis=0)
    deltas = _DELTAS_S[band]
    k = int(np.argmin(profile))
    if k == 0 or k == len(profile) - 1:
        return float(deltas[k])
    left, mid, right = profile[k - 1: k + 2]
    curvature = left - 2 * mid + right
    if curvature <= 1e-6:
        return float(deltas[k])
    step = float(deltas[k + 1] - deltas[k])
    return float(deltas[k] + np.clip(0.5 * (left - right) / curvature, -1, 1) * step)


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
    zoom, dx, dy, rotation = run.geometry
    if zoom != 1.0:
        parts.append(f"crop {zoom:.2f}")
    elif dx or dy:
        parts.append("shift")
    if rotation:
        parts.append(f"rotate {rotation:g}")
    start_s, end_s = float(span_t[0]), float(span_t[-1] + step_s)
    # A replay's source cannot start before the stream did (sub-step refinement can say -0.06).
    source_start_s = max(0.0, float(span_s.min()))
    source_end_s = max(source_start_s, float(span_s.max()) + step_s * speed)
    similarity = float(np.clip(1.0 - run.d_exact / max(run.d_shift, 1e-6), 0.0, 1.0))
    return Repeat(start_s, end_s, source_start_s, source_end_s, similarity, "+".join(parts) or "none",
                  run.slope, run.d_exact, run.d_shift,
                  {"zoom": zoom, "shift_cells": [dx, dy], "rotation_deg": rotation})


# -- all together ---------------------------------------------------------------------------

def find_repeats(times_s: np.ndarray, thumbs: np.ndarray, settings: SearchSettings | None = None,
                 fingerprint_step_s: float = 0.2) -> list[Repeat]:
    """Every replayed span with the span it repeats; each moment of airtime explained once."""
    settings = settings or SearchSettings()
    if len(times_s) < 4:
        return []
    pairs = candidate_pairs(times_s, thumbs, settings)
    found = alignments(times_s, pairs, settings)
    del pairs
    runs = verify_all(times_s, thumbs, found, settings, fingerprint_step_s)
    return _assign(runs, times_s, settings, fingerprint_step_s)


def verify_all(times_s: np.ndarray, thumbs: np.ndarray, found: list[Alignment], settings: SearchSettings,
               fingerprint_step_s: float) -> list[Run]:
    """Verify alignments strongest first, within the budget: after `always_verify` of them,
    stop once `max_failed_streak` in a row found nothing (the rest have even fewer votes).
    An alignment whose votes lie in airtime that verified runs already explain (pass 3 of a
    loop against pass 1, once pass 3 against pass 2 is verified) is skipped."""
    runs: list[Run] = []
    explained = np.zeros(len(times_s), bool)
    failed = 0
    for k, alignment in enumerate(found):
        lo, hi = np.searchsorted(times_s, [alignment.t_lo_s, alignment.t_hi_s + 1e-6])
        if hi > lo and explained[lo:hi].mean() >= settings.explained_skip_share:
            continue
        verified = verify(times_s, thumbs, alignment, settings, fingerprint_step_s)
        if verified and alignment.alternative is not None:
            # Votes sit on a 0.4 s key grid: over a short span a slope of 1.02 and of 1 explain
            # them about equally, but a wrong slope drifts off the replay towards its ends.
            # The reading whose runs match more frames (then more closely) wins.
            slope, intercept = alignment.alternative
            other = verify(times_s, thumbs, dataclasses.replace(alignment, slope=slope, intercept=intercept,
                                                                alternative=None), settings, fingerprint_step_s)
            # Speed 1 is the common case and keeps a loop's period exact: the fitted speed has to
            # pin clearly more frames (a replay with dropped frames drifts a little either way).
            fitted_is_other = abs(abs(alignment.slope) - 1.0) < 1e-9
            bias = settings.unit_slope_preference
            mine, theirs = _run_quality(verified), _run_quality(other)
            if fitted_is_other:
                better = (theirs[0] > bias * mine[0]) or (theirs[0] == mine[0] and theirs[1] > mine[1])
            else:
                better = (bias * theirs[0] >= mine[0]) and theirs != mine
            if better:
                verified = other
        for r in verified:
            explained[r.q[0]: r.q[-1] + 1] = True
        runs.extend(verified)
        failed = 0 if verified else failed + 1
        if k + 1 >= settings.always_verify and failed >= settings.max_failed_streak:
            break
    # A pass may draw no hash votes at all under heavy disguise. Where a replay verified at
    # offset D is at most about half as long as D, a pass fits between it and its source:
    # the loop may be periodic with D/2, the pass between replaying at D/2. These few lines
    # are verified whatever their votes.
    for alignment in _follow_ups(runs, times_s, thumbs, settings):
        lo, hi = np.searchsorted(times_s, [alignment.t_lo_s, alignment.t_hi_s + 1e-6])
        if hi <= lo or explained[lo:hi].mean() >= settings.explained_skip_share:
            continue
        verified = verify(times_s, thumbs, alignment, settings, fingerprint_step_s)
        for r in verified:
            explained[r.q[0]: r.q[-1] + 1] = True
        runs.extend(verified)
    return runs


def _follow_ups(runs: list[Run], times_s: np.ndarray, thumbs: np.ndarray, settings: SearchSettings) -> list[Alignment]:
    """Lines at half the offset D of each verified forward replay,
    over it and the pass before it, each with the flip under which its frames match best."""
    proposals = []
    for r in runs:
        if r.direction != "forward" or len(r.q) < 3:
            continue
        t = times_s[r.q]
        offset = float(np.median(t - r.s))
        lo, hi = float(t[0]), float(t[-1])
        # A run may carry on across seams (pass 3 against pass 1 after pass 2 against pass 0),
        # so its length says nothing; verify_all skips the line where airtime is explained.
        if offset / 2 < settings.min_offset_s:
            continue
        a, b = max(lo - offset / 2, float(times_s[0]) + offset / 2), hi
        if b - a < settings.min_span_s:
            continue
        # Judge the flip (and whether the line fits at all) where the missing pass would
        # air, between the source and the run: the run itself may carry on over later passes.
        gap_end = lo if lo - a >= settings.min_span_s else b
        flip = _best_flip(times_s, thumbs, a, gap_end, r.slope, offset / 2, settings)
        if flip is not None:
            # s = slope * t + intercept passes through (middle, middle - D/2).
            middle = 0.5 * (a + b)
            proposals.append(Alignment(flip, r.slope, middle - offset / 2 - r.slope * middle, a, b, 0))
    return proposals


def _best_flip(times_s, thumbs, t_lo_s, t_hi_s, slope, offset, settings, samples: int = 16) -> int | None:
    """Forward variant (flip) under which frames along the line match their sources best, on a
    sample of frames; None when too few frames have a source."""
    t = np.linspace(t_lo_s, t_hi_s, samples)
    q, ok = _nearest(times_s, t, 0.3)
    middle = 0.5 * (t_lo_s + t_hi_s)
    j, ok_j = _nearest(times_s, middle - offset + slope * (t - middle), 0.3)
    ok &= ok_j
    if ok.sum() < 4:
        return None
    source = _centre_vectors(thumbs[j[ok]].astype(np.float32))
    costs = [float(np.median(_trimmed(_centre_vectors(mirrored(thumbs[q[ok]], flip).astype(np.float32)), source,
                                      settings.trim_share)[0])) for flip in TRANSFORMS]
    best = int(np.argmin(costs))
    if costs[best] > settings.follow_up_distance:
        return None
    # A pass at half the offset fits its own moment better than 1-2 s off it; in live footage
    # between a replay and its source the line fits nowhere in particular (a 10-hour live
    # room proposed 48 such lines, each a full verification).
    replay = _centre_vectors(mirrored(thumbs[q[ok]], TRANSFORMS[best]).astype(np.float32))
    for delta in (-1.5, 1.5):
        j_d, ok_d = _nearest(times_s, times_s[j[ok]] + delta, 0.3)
        if ok_d.sum() < 4:
            continue
        shifted = float(np.median(_trimmed(replay[ok_d], _centre_vectors(thumbs[j_d[ok_d]].astype(np.float32)),
                                           settings.trim_share)[0]))
        if costs[best] > settings.consistent_ratio * shifted:
            return None
    return best


def _run_quality(runs: list[Run]) -> tuple[int, float]:
    """(frames pinned to the line, -mean exact distance) of one alignment's verified runs: a
    slightly wrong slope drifts off the replay and keeps its frames only through the
    drift-tolerant end extension."""
    frames = sum(r.pinned for r in runs)
    return frames, -float(np.mean([r.d_exact for r in runs])) if runs else 0.0


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
    gap = max(1, int(round(settings.max_gap_s / step_s)))
    for _ in range(10):
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
                first, last = run.q[members[0]], run.q[members[-1]]
                around = owner[np.r_[max(0, first - gap): first, last + 1: min(n, last + 1 + gap)]]
                # A piece too short to stand alone still tells where a replayed stretch begins
                # or ends when another run's span carries on right next to it (each pass of a
                # loop cropped differently: the line that fits the later passes takes over
                # partway through the first one).
                if span >= settings.min_span_s or ((around >= 0) & (around != k)).any():
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
