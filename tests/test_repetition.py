"""The repetition engine: disguised loops are found, hard negatives are not.

Every case is a generated clip with known truth (detector.synth.loops), encoded to H.264 and
scanned through the real pipeline. A truth replay counts as found when at least half of its
airtime is covered by reported `loop` spans; span boundaries must be within 1 s and periods
within 2 %. bench/bench_repetition.py runs the same checks over many seeds and parameters.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from conftest import run_cli

from detector.config import ScanConfig
from detector.corpus import sources
from detector.extractors.repetition import RepetitionExtractor, clip_library
from detector.loopsearch import find_repeats
from detector.pipeline import extract
from detector.synth import hard_negatives
from detector.synth.disguise import Disguise
from detector.synth.loops import Air, LoopPlan, picture_in_picture, render, whole_loop
from detector.synth.scenes import moving_scene, static_scene
from detector.synth.writer import write_clip

W, H, FPS = 320, 180, 25


@dataclass(frozen=True)
class LoopCase:
    id: str
    plan: LoopPlan
    transform: str | None = None       # a word the reported transform must contain
    period_s: float | None = None


LOOP_CASES = [
    LoopCase("reencode", whole_loop(10, 3, [Disguise(reencode_quality=25, rescale=0.5)]), period_s=10),
    LoopCase("overlays_change_between_passes",
             LoopPlan([Air(0, Disguise(overlay="all", overlay_seed=k)) for k in range(3)], {0: 10}), period_s=10),
    LoopCase("mirror_every_other_pass", whole_loop(10, 4, [Disguise(mirror=True), Disguise()]), "mirror"),
    LoopCase("vertical_mirror", whole_loop(10, 3, [Disguise(vflip=True)]), "vflip"),
    LoopCase("speed_changes", whole_loop(10, 3, speeds=[1.0, 1.08, 0.92]), "speed"),
    LoopCase("dropped_and_duplicated_frames",
             LoopPlan([Air(0), Air(0, drop_share=0.05), Air(0, drop_share=0.05)], {0: 10})),
    LoopCase("crop_12pct_off_centre", whole_loop(10, 3, [Disguise(crop=0.12, crop_centre=(0.8, 0.3))]), period_s=10),
    LoopCase("crop_5pct", whole_loop(10, 3, [Disguise(crop=0.05, crop_centre=(0.2, 0.7))]), period_s=10),
    # Each pass cropped elsewhere, the first at the very edge (bench crop/zoom seed 3): a zoom
    # that is also a shift, which a one-axis-at-a-time geometry search missed; the first
    # replay was found from 2.7 s after its start.
    LoopCase("crops_at_the_edges_differ_per_pass",
             LoopPlan([Air(0)] + [Air(0, Disguise(crop=c, crop_centre=centre)) for c, centre in
                                  ((0.098, (0.988, 0.593)), (0.085, (0.238, 0.073)), (0.066, (0.056, 0.434)))],
                      {0: 11.3}), period_s=11.3),
    LoopCase("rotation_4deg", whole_loop(10, 3, [Disguise(rotation_deg=4)]), period_s=10),
    LoopCase("colour_shifts", whole_loop(10, 3, [Disguise(brightness=20, contrast=0.8, gamma=1.3, hue_shift_deg=30)]),
             period_s=10),
    LoopCase("noise_and_grain", whole_loop(10, 3, [Disguise(noise_sigma=8)]), period_s=10),
    LoopCase("late_start_after_live_footage", whole_loop(10, 3, lead_in_s=45), period_s=10),
    LoopCase("shuffled_playlist", LoopPlan([Air(c) for c in (0, 1, 2, 1, 0, 2, 2, 0, 1)], {0: 8, 1: 8, 2: 8})),
    LoopCase("boomerang", LoopPlan([Air(0), Air(0, reversed=True), Air(0), Air(0, reversed=True)], {0: 8}),
             "reversed"),
    LoopCase("several_disguises_on_one_pass",
             LoopPlan([Air(0), Air(0, Disguise(mirror=True, crop=0.08, brightness=-15, overlay="comments",
                                               overlay_seed=1)),
                       Air(0, Disguise(overlay="stickers", overlay_seed=2, hue_shift_deg=-20))], {0: 12}),
             "mirror"),
    LoopCase("mirror_and_vertical_flip", whole_loop(10, 3, [Disguise(mirror=True, vflip=True)]), "mirror+vflip",
             period_s=10),
]


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    """Render, encode and scan each case once; cache by id."""
    folder = tmp_path_factory.mktemp("loops")
    cache = {}

    def scan(case_id: str, frames, truth=None):
        if case_id not in cache:
            path = folder / f"{case_id}.mp4"
            write_clip(path, frames, FPS)
            cache[case_id] = (extract(path, ScanConfig(), [RepetitionExtractor()]), truth)
        return cache[case_id]

    return scan


def _loops(result):
    return [e for e in result.evidence if e.kind == "loop"]


def _covered(truth, loops) -> float:
    """Share of a truth replay's airtime covered by found loop spans."""
    covered = sum(max(0.0, min(truth.end_s, e.end_s) - max(truth.start_s, e.start_s)) for e in loops)
    return covered / (truth.end_s - truth.start_s)


@pytest.mark.parametrize("case", LOOP_CASES, ids=[c.id for c in LOOP_CASES])
def test_disguised_loop_is_found(case, scanned):
    frames, truth, _ = render(case.plan, W, H, FPS, seed=3)
    result, truth = scanned(case.id, frames, truth)
    loops = _loops(result)
    assert truth, "the plan has no replay"
    for replay in truth:
        assert _covered(replay, loops) >= 0.5, (replay, [(e.start_s, e.end_s) for e in loops])
    # Boundaries: the first replay starts where the truth says, within 1 s.
    first = min(loops, key=lambda e: e.start_s)
    assert abs(first.start_s - truth[0].start_s) <= 1.0
    # Sources point at earlier footage and lie inside the clip.
    for e in loops:
        assert e.source_start_s < e.start_s and e.source_start_s >= -0.3
        assert 0.0 <= e.score <= 1.0
    if case.transform:
        assert any(case.transform in e.detail["transform"] for e in loops), [e.detail["transform"] for e in loops]
    if case.period_s:
        assert result.features["repetition__period_s"] == pytest.approx(case.period_s, rel=0.02)
    truth_share = sum(t.end_s - t.start_s for t in truth) / result.duration_s
    assert result.features["repetition__replay_share"] >= 0.8 * truth_share


def test_shuffled_playlist_reports_its_clip_library(scanned):
    case = next(c for c in LOOP_CASES if c.id == "shuffled_playlist")
    frames, truth, _ = render(case.plan, W, H, FPS, seed=3)
    result, _ = scanned(case.id, frames, truth)
    library = [e for e in result.evidence if e.kind == "recycled_clip"]
    assert result.features["repetition__distinct_clips"] == 3 == len(library)
    assert sorted(e.detail["airings"] for e in library) == [3, 3, 3]
    assert np.isnan(result.features["repetition__period_s"])     # shuffled: no period


def test_every_seam_between_colour_shifted_passes_is_within_1s(tmp_path):
    """Each pass under its own colour disguise: at a seam the source 1-2 s on is another
    airing under another disguise, which once fitted the replay frame better than its own
    moment and cut spans 1.5-2 s short of every seam (bench colour seed 1; the engine before
    this test ended the last pass 1.8 s early here)."""
    plan = LoopPlan([Air(0),
                     Air(0, Disguise(brightness=25.1, contrast=0.798, gamma=0.805, hue_shift_deg=-58.7)),
                     Air(0, Disguise(brightness=4.1, contrast=1.018, gamma=1.158, hue_shift_deg=-23.1))], {0: 24.48})
    frames, truth, _ = render(plan, 180, 320, FPS, seed=1)        # portrait, as on the bench
    path = tmp_path / "colour_passes.mp4"
    write_clip(path, frames, FPS)
    result = extract(path, ScanConfig(), [RepetitionExtractor()])
    loops = _loops(result)
    for replay in truth:
        mine = [e for e in loops if min(e.end_s, replay.end_s) - max(e.start_s, replay.start_s) >= 1.0]
        assert mine, (replay, [(e.start_s, e.end_s) for e in loops])
        assert min(abs(e.start_s - replay.start_s) for e in mine) <= 1.0, (replay, [(e.start_s, e.end_s) for e in mine])
        assert min(abs(e.end_s - replay.end_s) for e in mine) <= 1.0, (replay, [(e.start_s, e.end_s) for e in mine])
    assert result.features["repetition__period_s"] == pytest.approx(24.48, rel=0.02)


def test_loop_of_slow_footage_is_found(tmp_path):
    """A presenter waving an arm in an otherwise still room, filmed hand-held (1 px of shake),
    looped: the picture changes by a few per cent per second, too little to hash or to pass
    the general change floor (corpus gesture loops were missed 6 times in 100). Each pass
    replays the arm and the camera's shake exactly, so the line is sharp; the live gesture
    scene (a hard negative below) repeats only the arm's beat."""
    def filmed_gesture(width, height, fps, duration_s, seed):
        return sources.take("gesture", width, height, fps, duration_s, seed, shake_px=1.0, drift=0.01)

    frames, truth, _ = render(whole_loop(10, 3), W, H, FPS, seed=5, scene=filmed_gesture)
    path = tmp_path / "gesture_loop.mp4"
    write_clip(path, frames, FPS)
    result = extract(path, ScanConfig(), [RepetitionExtractor()])
    loops = _loops(result)
    for replay in truth:
        assert _covered(replay, loops) >= 0.5, (replay, [(e.start_s, e.end_s) for e in loops])
    assert result.features["repetition__period_s"] == pytest.approx(10, rel=0.02)


@dataclass(frozen=True)
class NegativeCase:
    id: str
    make: Callable
    static: bool = False


NEGATIVE_CASES = [
    NegativeCase("live_moving_room", lambda: moving_scene(W, H, FPS, 60, 11)),
    NegativeCase("still_room_is_static_not_a_loop", lambda: static_scene(W, H, FPS, 40, 12), static=True),
    NegativeCase("presenter_repeating_a_gesture", lambda: hard_negatives.gesture_scene(W, H, FPS, 40, 13)),
    NegativeCase("turntable_in_a_corner", lambda: hard_negatives.turntable_scene(W, H, FPS, 40, 14)),
    NegativeCase("camera_pans_back_to_the_same_view", lambda: hard_negatives.pan_back_scene(W, H, FPS, 40, 15)),
    NegativeCase("slideshow_each_slide_once", lambda: hard_negatives.slideshow_scene(W, H, FPS, 40, 16)),
]


@pytest.mark.parametrize("case", NEGATIVE_CASES, ids=[c.id for c in NEGATIVE_CASES])
def test_hard_negative_has_no_loop(case, tmp_path):
    path = tmp_path / f"{case.id}.mp4"
    write_clip(path, case.make(), FPS)
    result = extract(path, ScanConfig(), [RepetitionExtractor()])
    assert _loops(result) == []
    assert result.features["repetition__replay_share"] == 0.0
    if case.static:
        from detector.extractors.basic import BasicStatsExtractor

        still = extract(path, ScanConfig(), [BasicStatsExtractor()])
        assert still.features["basic__static_share"] > 0.9


# Live scenes that change periodically in one place (issue 3: a product turntable, a repeated
# gesture, a slideshow). Each of these configurations was reported as a `regional_loop` by the
# engine before the picture / beat / window tests (the bench's hard negatives).
PERIODIC_LIVE_CASES = [
    ("turntable_in_a_corner", lambda: hard_negatives.turntable_scene(320, 180, 25, 50, 100), 25),
    ("presenter_repeating_a_gesture", lambda: hard_negatives.gesture_scene(180, 320, 25, 59.2, 106), 25),
    ("slideshow_slides_on_a_beat", lambda: hard_negatives.slideshow_scene(180, 320, 25, 53.1, 108), 25),
]


@pytest.mark.parametrize("make,fps", [c[1:] for c in PERIODIC_LIVE_CASES], ids=[c[0] for c in PERIODIC_LIVE_CASES])
def test_periodic_live_scene_is_not_a_regional_loop(make, fps, tmp_path):
    path = tmp_path / "periodic.mp4"
    write_clip(path, make(), fps)
    result = extract(path, ScanConfig(), [RepetitionExtractor()])
    assert _loops(result) == []
    assert [e for e in result.evidence if e.kind == "regional_loop"] == []
    assert result.features["repetition__regional_share"] == 0.0
    assert result.features["repetition__regional_replay_share"] == 0.0


def test_recorded_window_looping_inside_a_live_frame_is_reported_as_regional(tmp_path):
    path = tmp_path / "pip.mp4"
    box = (0.6, 0.1, 0.32, 0.32)
    write_clip(path, picture_in_picture(W, H, FPS, 40, 3, period_s=8.0, box=box), FPS)
    result = extract(path, ScanConfig(), [RepetitionExtractor()])
    assert _loops(result) == []                       # the frame as a whole does not loop
    passes = [e for e in result.evidence if e.kind == "regional_loop"]
    # One record per pass of the window after the first: 8-16 s, 16-24 s, ... (40 s clip).
    assert 3 <= len(passes) <= 5
    for regional in passes:
        x, y, w, h = regional.detail["box"]
        assert abs(x - box[0]) <= 0.07 and abs(y - box[1]) <= 0.07
        assert abs(w - box[2]) <= 0.1 and abs(h - box[3]) <= 0.1
        assert regional.detail["period_s"] == pytest.approx(8.0, rel=0.06)
        assert regional.start_s - regional.source_start_s == pytest.approx(regional.detail["period_s"])
        assert regional.end_s - regional.start_s <= regional.detail["period_s"] + 1e-6
    assert passes[0].start_s == pytest.approx(8.0, abs=1.0)
    assert passes[-1].end_s == pytest.approx(40.0, abs=1.0)
    assert result.features["repetition__regional_share"] > 0.05
    assert result.features["repetition__regional_replay_share"] == pytest.approx(0.8, abs=0.05)
    # The window's replays count as replayed airtime as much as a whole-frame loop's.
    assert result.features["repetition__replayed_share"] == pytest.approx(0.8, abs=0.05)


def test_small_live_window_over_a_recorded_loop_is_still_a_loop(tmp_path):
    path = tmp_path / "pip_live.mp4"
    write_clip(path, picture_in_picture(W, H, FPS, 40, 4, period_s=8.0, box=(0.65, 0.62, 0.3, 0.3),
                                        recorded_inside=False), FPS)
    result = extract(path, ScanConfig(), [RepetitionExtractor()])
    assert result.features["repetition__replay_share"] > 0.6
    assert result.features["repetition__period_s"] == pytest.approx(8.0, rel=0.02)


def test_clip_library_groups_airings():
    from detector.loopsearch import Repeat

    def rep(a, b, sa, sb):
        return Repeat(a, b, sa, sb, 0.9, "none", 1.0, 0.01, 0.2)

    library = clip_library([rep(24, 32, 8, 16), rep(32, 40, 0, 8), rep(56, 64, 0, 8), rep(40, 48, 16, 24)])
    assert library == [[(0, 8), (32, 40), (56, 64)], [(8, 16), (24, 32)], [(16, 24), (40, 48)]]


def test_search_is_empty_for_too_few_fingerprints():
    assert find_repeats(np.arange(3.0), np.zeros((3, 16, 16), np.uint8)) == []


def test_loops_appear_in_the_cli_outputs(tmp_path):
    frames, truth, _ = render(whole_loop(8, 3), W, H, FPS, seed=5)
    path = tmp_path / "loop.mp4"
    write_clip(path, frames, FPS)
    record = run_cli("scan", "-f", "jsonl", "--model", "none", str(path)).jsonl()[0]
    assert [round(loop["start_s"]) for loop in record["loops"]] == [8, 16]
    assert record["loops"][0]["source_start_s"] == pytest.approx(0.0, abs=0.5)
    assert set(record["loops"][0]) == {"start_s", "end_s", "source_start_s", "source_end_s", "similarity", "transform"}
    assert record["loop_period_s"] == pytest.approx(8.0, rel=0.02)
    table = run_cli("scan", "--model", "none", str(path)).stdout
    assert re.search(r"loop (8|16)\.0-(16|24)\.0 s repeats (0|8)\.0-(8|16)\.0 s", table), table
    csv_out = run_cli("scan", "-f", "csv", "--model", "none", str(path)).stdout
    assert ",2," in csv_out and "source_start_s" in csv_out


def _repeat(start, end, source_start, slope=1.0):
    from detector.loopsearch import Repeat

    length = end - start
    return Repeat(start, end, source_start, source_start + length * abs(slope), 0.9, "none", slope, 0.01, 0.2)


def test_period_counts_passes_explained_by_an_older_pass():
    from detector.extractors.repetition import _period

    # Pass 3 explained by pass 1 (offset 2P) is still a loop of period P.
    repeats = [_repeat(10, 20, 0), _repeat(20, 30, 0)]
    period, regularity = _period(repeats, clip_library(repeats), 0.02)
    assert period == pytest.approx(10.0) and regularity == pytest.approx(1.0)


def test_shuffled_equal_clips_have_no_period():
    from detector.extractors.repetition import _period

    # Clips 0, 1, 2 (8 s each) aired 0 1 2 1 0 2: every offset is a multiple of 8 s, but the
    # footage 8 s before a replay is another clip.
    repeats = [_repeat(24, 32, 8), _repeat(32, 40, 0), _repeat(40, 48, 16)]
    period, _ = _period(repeats, clip_library(repeats), 0.02)
    assert np.isnan(period)


def test_hue_disguise_keeps_luma():
    import cv2

    from detector.synth.disguise import rotate_hue

    frame = next(iter(moving_scene(W, H, FPS, 1, 3)))
    for degrees in (30, -60):
        shifted = rotate_hue(frame, degrees)
        luma = np.abs(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).astype(float) -
                      cv2.cvtColor(shifted, cv2.COLOR_BGR2GRAY).astype(float))
        assert luma.mean() < 0.5                                  # luma kept ...
        assert np.abs(frame.astype(float) - shifted).mean() > 5   # ... colours changed


def test_flipped_queries_hash_like_flipped_tables():
    """Codes of all four flips come from one projection: x[perm] . p == x . p[perm]."""
    from detector.fingerprint import appearance, mirrored
    from detector.loopsearch import (
        TRANSFORMS,
        SearchSettings,
        _flip_permutations,
        _hash_planes,
    )

    rng = np.random.default_rng(0)
    thumbs = rng.integers(0, 255, (20, 16, 16)).astype(np.uint8)
    perms = _flip_permutations()
    planes = _hash_planes(SearchSettings())
    x = rng.standard_normal((5, planes.shape[2])).astype(np.float32)
    for flip, transform in enumerate(TRANSFORMS):
        assert np.allclose(appearance(mirrored(thumbs, transform)), appearance(thumbs)[:, perms[flip][:36]], atol=1e-5)
        for table in range(len(planes)):
            assert np.allclose(x[:, perms[flip]] @ planes[table].T, x @ planes[table ^ flip].T, atol=1e-4)


def test_trimmed_distance_ignores_an_overlay():
    """A dark band over a fifth of the cells shifts the whole row's normalisation; after
    normalising again over the kept cells the rest matches to the noise level."""
    from detector.loopsearch import _centre_vectors, _trimmed

    rng = np.random.default_rng(1)
    source = rng.normal(120, 30, (1, 16, 16)).astype(np.float32)
    replay = source.copy()
    replay[:, 10:14, 2:9] *= 0.4                                   # a comment band
    a, b = _centre_vectors(replay), _centre_vectors(source)
    assert _trimmed(a, b, 0.25, iterations=1)[0][0] > 0.1
    assert _trimmed(a, b, 0.25)[0][0] < 0.01


def test_probes_flip_the_least_certain_bit():
    """Each probe is the bucket key with exactly the bit nearest its hyperplane flipped."""
    from detector.loopsearch import SearchSettings, _hash_planes, _pack, _with_probes

    settings = SearchSettings()
    planes = _hash_planes(settings).reshape(-1, 72)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((50, 72)).astype(np.float32)
    projections = x @ planes.T
    keys = _with_probes(projections, settings)
    assert keys.shape == (50, 2, settings.hash_tables)
    assert np.array_equal(keys[:, 0], _pack(projections, settings))
    flipped = keys[:, 0] ^ keys[:, 1]
    weakest = np.abs(projections).reshape(50, settings.hash_tables, settings.hash_bits).argmin(axis=2)
    assert np.array_equal(flipped, 1 << weakest)


def test_regional_search_memory_is_bounded_on_long_streams():
    """Beyond max_steps the resampling step grows: a 4-hour stream with a window that loops
    every 40 s is still found, on a series of at most max_steps steps."""
    from detector.regional import RegionalSettings, find_regional_repeat

    rng = np.random.default_rng(3)
    times = np.arange(0, 4 * 3600, 0.5)

    def smooth(n: int, cells: int, scale_s: float) -> np.ndarray:
        """Smoothly changing footage: noise low-passed over about scale_s seconds."""
        from scipy.ndimage import gaussian_filter1d

        x = gaussian_filter1d(rng.normal(0, 1, (n, cells)), scale_s / 0.5, axis=0, mode="wrap")
        return 128 + 40 * x / x.std()

    thumbs = smooth(len(times), 256, 2.0).reshape(-1, 16, 16)            # live: never repeats
    recorded = smooth(80, 36, 2.0).reshape(-1, 6, 6)                      # a 40 s recorded clip
    thumbs[:, 2:8, 8:14] = recorded[np.arange(len(times)) % 80]
    thumbs = thumbs.clip(0, 255).astype(np.uint8)
    settings = RegionalSettings(max_steps=6000)
    found = find_regional_repeat(times, thumbs, settings)
    assert found is not None
    assert found.period_s == pytest.approx(40.0, rel=0.05)
    x, y, w, h = found.box
    assert (x, y) == pytest.approx((0.5, 0.125), abs=0.07) and (w, h) == pytest.approx((0.375, 0.375), abs=0.07)
    assert found.spans[0][0] < 120 and found.spans[-1][1] > 4 * 3600 - 120
