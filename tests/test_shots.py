"""The shots extractor: edits are found at the right time and with the right type, the
common false cuts (flashes, pans, motion, overlays, light changes) are not, and the columns
and evidence come out as documented."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Iterator

import cv2
import numpy as np
import pytest
from helpers import cached_extractions, written_clips

from detector.config import ScanConfig
from detector.extractors.shots import ShotsExtractor
from detector.pipeline import Extraction, extract
from detector.scan import build_record
from detector.synth.disguise import draw_overlays
from detector.synth.scenes import cut_scene, moving_scene, static_scene
from detector.synth.writer import write_clip
from detector.types import VideoMeta

W, H, FPS = 320, 180, 30
# A cut is located at the first sampled frame of the new shot: at 10 Hz at most 0.1 s late.
TOLERANCE_S = 0.2
EDIT_TYPES = {"hard", "jump", "dissolve", "fade"}
DETAIL_KEYS = {
    "hard": {"previous_s", "changed_share", "change", "persistent_change", "still_share", "view_change", "zoom", "motion", "moving_share"},
    "jump": {"previous_s", "changed_share", "change", "persistent_change", "still_share", "view_change", "zoom", "motion", "moving_share"},
    "dissolve": {"duration_s", "blend_residual", "change", "alpha_spread"},
    "fade": {"duration_s", "blank_s", "blank_level", "change"},
}

Frames = Iterator[np.ndarray]


# -- generated scenes with known truth ---------------------------------------------------

CUTS_S = [3.0, 7.4, 11.9, 16.3]
DISSOLVE_S = (6.0, 7.0)
FADE_OUT_S, FADE_BLACK_S, FADE_IN_S = (5.0, 5.5), (5.5, 6.0), (6.0, 6.5)
JUMP_S = 6.0
SEAM_S = 6.0


def _mix(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    return cv2.addWeighted(a, 1.0 - k, b, k, 0.0)


def dissolve_scene() -> Frames:
    """One moving scene cross-fades linearly into another over DISSOLVE_S."""
    t0, t1 = DISSOLVE_S
    a, b = moving_scene(W, H, FPS, 12.0, seed=11), moving_scene(W, H, FPS, 12.0, seed=12)
    for i, (fa, fb) in enumerate(zip(a, b)):
        yield _mix(fa, fb, min(1.0, max(0.0, (i / FPS - t0) / (t1 - t0))))


def fade_scene() -> Frames:
    """Scene A fades to black, black holds, scene B fades in from black."""
    a, b = moving_scene(W, H, FPS, 11.0, seed=21), moving_scene(W, H, FPS, 11.0, seed=22)
    black = np.zeros((H, W, 3), np.uint8)
    for i, (fa, fb) in enumerate(zip(a, b)):
        t = i / FPS
        if t < FADE_OUT_S[0]:
            yield fa
        elif t < FADE_OUT_S[1]:
            yield _mix(fa, black, (t - FADE_OUT_S[0]) / 0.5)
        elif t < FADE_BLACK_S[1]:
            yield black.copy()
        elif t < FADE_IN_S[1]:
            yield _mix(black, fb, (t - FADE_IN_S[0]) / 0.5)
        else:
            yield fb


def _draw_person(frame: np.ndarray, x: float, y: float, scale: float = 1.0) -> None:
    """A crude presenter: head with eyes over a torso."""
    def p(dx, dy):
        return int(x + dx * scale), int(y + dy * scale)
    cv2.ellipse(frame, p(0, -45), (int(14 * scale), int(18 * scale)), 0, 0, 360, (120, 160, 210), -1, cv2.LINE_AA)
    cv2.rectangle(frame, p(-22, -25), p(22, 40), (60, 40, 150), -1, cv2.LINE_AA)
    for dx in (-5, 5):
        cv2.circle(frame, p(dx, -48), 2, (20, 20, 20), -1)


def jump_scene() -> Frames:
    """A fixed camera on a still room; the presenter sways as they talk, then jumps 90 px
    at JUMP_S (the stretch in which they walked was cut out)."""
    for i, room in enumerate(static_scene(W, H, FPS, 12.0, seed=31)):
        t = i / FPS
        x = 100 + 10 * math.sin(2.5 * t) + 3 * t + (90 if t >= JUMP_S else 0)
        _draw_person(room, x, 110 + 4 * math.sin(3.1 * t))
        yield room


def sticker_scene() -> Frames:
    """A presenter swaying in a still room while price stickers and a like counter pop up,
    move and change every 3 s over the still parts of the picture, as live-room apps draw
    them: graphics changing at once, not a cut."""
    for i, room in enumerate(static_scene(W, H, FPS, 12.0, seed=32)):
        t = i / FPS
        _draw_person(room, 160 + 10 * math.sin(2.5 * t), 110 + 4 * math.sin(3.1 * t))
        yield draw_overlays(room, t, "stickers", seed=int(t // 3))


def zoom_seam_scene() -> Frames:
    """A 6 s stretch replayed from its start with a 6 % off-centre zoom: a disguised loop seam."""
    def zoomed(frames: Frames) -> Frames:
        cw, ch = int(W / 1.06) // 2 * 2, int(H / 1.06) // 2 * 2
        x0, y0 = (W - cw) // 2 + 4, (H - ch) // 2
        for frame in frames:
            yield cv2.resize(frame[y0:y0 + ch, x0:x0 + cw], (W, H), interpolation=cv2.INTER_LINEAR)
    return itertools.chain(moving_scene(W, H, FPS, SEAM_S, seed=41),
                           zoomed(moving_scene(W, H, FPS, 12.0 - SEAM_S, seed=41)))


def flash_scene() -> Frames:
    """A moving scene with a 3-frame camera flash at 3 s and a 3-frame white-out at 6 s."""
    for i, frame in enumerate(moving_scene(W, H, FPS, 10.0, seed=51)):
        if 90 <= i < 93:
            frame = cv2.convertScaleAbs(frame, alpha=1.9, beta=60)
        elif 180 <= i < 183:
            frame = np.full_like(frame, 250)
        yield frame


def _wide_room(width: int, seed: int) -> np.ndarray:
    """A long textured wall with furniture-like boxes, for the camera to pan along."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(0, 1, (H // 12 + 2, width // 12 + 2, 3)).astype(np.float32)
    wall = 120 + 35 * cv2.resize(coarse, (width, H), interpolation=cv2.INTER_CUBIC)
    wall = np.clip(wall, 0, 255).astype(np.uint8)
    for _ in range(width // 25):
        x, y = int(rng.uniform(0, width - 60)), int(rng.uniform(0, H - 60))
        size = rng.uniform(10, 60, 2).astype(int)
        cv2.rectangle(wall, (x, y), (x + size[0], y + size[1]), tuple(float(c) for c in rng.uniform(20, 230, 3)), -1)
    return wall


def _pan(speed_px: Callable[[float], float], duration_s: float, seed: int) -> Frames:
    wall = _wide_room(W * 16, seed)
    noise = np.random.default_rng(seed + 1)
    x = 0.0
    for i in range(round(duration_s * FPS)):
        x += speed_px(i / FPS)
        view = wall[:, int(x):int(x) + W].astype(np.float32)
        yield np.clip(view + noise.normal(0, 2, view.shape), 0, 255).astype(np.uint8)


def pan_scene() -> Frames:
    """A steady fast pan: 15 px per frame, 1.4 frame widths per second."""
    return _pan(lambda t: 15.0, 10.0, seed=61)


def whip_pan_scene() -> Frames:
    """Two sudden whip pans (40 px per frame, starting at once) in an otherwise steady view."""
    return _pan(lambda t: 40.0 if 3.0 <= t < 3.5 or 6.0 <= t < 6.4 else 0.5, 9.0, seed=63)


COMMENTS = ["so cute!!", "price?", "link pls", "666666", "hello from Lyon", "buy now", "wow", "is this live?"]


def _comments(frame: np.ndarray, i: int, band: bool) -> np.ndarray:
    """Scrolling comments in the bottom quarter, as live-room overlays draw them."""
    frame = frame.copy()
    if band:
        cv2.rectangle(frame, (0, int(H * 0.75)), (W, H), (30, 30, 30), -1)
    for k, word in enumerate(COMMENTS):
        x = int(W - (i * 4 + k * 90) % (W + 200))
        cv2.putText(frame, word, (x, int(H * 0.8) + (k % 3) * 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return frame


def overlay_scene() -> Frames:
    return (_comments(f, i, band=False) for i, f in enumerate(moving_scene(W, H, FPS, 10.0, seed=71)))


def cuts_under_overlay_scene() -> Frames:
    frames, _ = cut_scene(W, H, FPS, 15.0, seed=99, cut_times_s=[5.0, 10.0])
    return (_comments(f, i, band=True) for i, f in enumerate(frames))


def light_change_scene() -> Frames:
    """Lights dimmed at once at 3 s (whole room) and a lamp switched off on one side at 6 s."""
    lamp = (0.55 + 0.45 * np.linspace(0, 1, W, dtype=np.float32))[None, :, None]
    for i, frame in enumerate(moving_scene(W, H, FPS, 10.0, seed=95)):
        t = i / FPS
        if 3.0 <= t < 6.0:
            frame = cv2.convertScaleAbs(frame, alpha=0.55)
        elif t >= 6.0:
            frame = np.clip(frame * lamp, 0, 255).astype(np.uint8)
        yield frame


def handheld_scene() -> Frames:
    """A still room filmed handheld: a few pixels of jitter and a little roll every frame."""
    rng = np.random.default_rng(81)
    for frame in static_scene(W + 40, H + 40, FPS, 8.0, seed=82):
        matrix = cv2.getRotationMatrix2D(((W + 40) / 2, (H + 40) / 2), rng.normal(0, 0.4), 1.0)
        matrix[:, 2] += rng.normal(0, 3.0, 2)
        steady = cv2.warpAffine(frame, matrix, (W + 40, H + 40))
        yield np.ascontiguousarray(steady[20:20 + H, 20:20 + W])


SCENES: dict[str, Callable[[], Frames]] = {
    "cut_at_12s": lambda: cut_scene(W, H, FPS, 15.0, seed=3, cut_times_s=[12.0])[0],
    "four_cuts": lambda: cut_scene(W, H, FPS, 20.0, seed=4, cut_times_s=CUTS_S)[0],
    "cuts_under_overlay": cuts_under_overlay_scene,
    "dissolve": dissolve_scene,
    "fade": fade_scene,
    "jump": jump_scene,
    "zoom_seam": zoom_seam_scene,
    "moving": lambda: moving_scene(W, H, FPS, 15.0, seed=5),
    "still_room": lambda: static_scene(W, H, FPS, 10.0, seed=6),
    "flash": flash_scene,
    "fast_pan": pan_scene,
    "whip_pan": whip_pan_scene,
    "comment_overlay": overlay_scene,
    "stickers": sticker_scene,
    "light_change": light_change_scene,
    "handheld": handheld_scene,
}


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Callable[[str], object]:
    """Path of a scene's clip, written once per module."""
    return written_clips(tmp_path_factory.mktemp("shots"), SCENES, FPS)


@pytest.fixture(scope="module")
def scanned(clip) -> Callable[[str], Extraction]:
    """The shots extraction of a scene at the default settings, run once per module."""
    return cached_extractions(clip, lambda: [ShotsExtractor()])


def cuts(result: Extraction) -> list:
    return [e for e in result.evidence if e.kind == "cut"]


def shots(result: Extraction) -> dict[str, float]:
    return {k.removeprefix("shots__"): v for k, v in result.features.items() if k.startswith("shots__")}


# -- edits are found, at the right time, once --------------------------------------------

@pytest.mark.parametrize("sample_fps", [10.0, 15.0, 0.0], ids=["10Hz", "15Hz", "every-frame"])
def test_a_cut_at_12s_is_reported_within_0_2s(clip, sample_fps):
    config = ScanConfig(sample_fps=sample_fps)
    found = cuts(extract(clip("cut_at_12s"), config, [ShotsExtractor(config)]))
    assert len(found) == 1
    assert abs(found[0].start_s - 12.0) <= TOLERANCE_S
    assert found[0].detail["type"] == "hard"
    assert found[0].detail["previous_s"] < 12.0 <= found[0].start_s + 1e-6


@pytest.mark.parametrize("name, truth_s", [("four_cuts", CUTS_S), ("cuts_under_overlay", [5.0, 10.0])],
                         ids=["four-cuts", "under-comment-overlay"])
def test_several_cuts_are_all_found_and_nothing_else(scanned, name, truth_s):
    found = cuts(scanned(name))
    assert len(found) == len(truth_s), [(e.start_s, e.detail["type"]) for e in found]
    for cut, truth in zip(found, truth_s):
        assert abs(cut.start_s - truth) <= TOLERANCE_S
        assert cut.detail["type"] == "hard"
        assert cut.score > 0.5


def test_a_dissolve_is_one_cut_inside_the_transition(scanned, tmp_path):
    result = scanned("dissolve")
    found = cuts(result)
    assert len(found) == 1
    cut = found[0]
    t0, t1 = DISSOLVE_S
    assert cut.detail["type"] == "dissolve"
    assert t0 - 0.1 <= cut.start_s < cut.end_s <= t1 + TOLERANCE_S
    assert cut.end_s - cut.start_s >= 0.5 * (t1 - t0)        # it spans the transition
    # The scanner turns it into exactly one entry of cuts_s.
    record = build_record("dissolve.mp4", result, ScanConfig(), None)
    assert record.cuts_s == [round(cut.start_s, 3)]
    assert "cuts" in record.flags


def test_a_dissolve_between_fast_moving_real_footage_is_found(tmp_path):
    """Animation dissolving over 0.9 s into hand-held phone footage (the packaged clips of
    the corpus's film recipe): each 10 Hz step of the dissolve changes only ~2x as much as
    the animation's own steps, which once broke the run up and missed the edit."""
    from detector.corpus.footage import footage_frames

    t0, t1, fps = 3.6, 4.5, 25
    cartoon = list(itertools.islice(footage_frames("bigbuckbunny", W, H, fps), int(5.0 * fps)))
    phone = list(itertools.islice(footage_frames("carphone", W, H, fps), int(3.9 * fps)))
    start = int(t0 * fps)
    frames = cartoon[:start] + [
        _mix(a, b, min(1.0, k / ((t1 - t0) * fps))) for k, (a, b) in enumerate(zip(cartoon[start:], phone))
    ] + phone[len(cartoon) - start:]
    path = tmp_path / "film_dissolve.mp4"
    write_clip(path, iter(frames), fps)
    found = cuts(extract(path, ScanConfig(), [ShotsExtractor()]))
    assert [c.detail["type"] for c in found] == ["dissolve"]
    assert t0 - 0.1 <= found[0].start_s < found[0].end_s <= t1 + TOLERANCE_S


def test_a_fade_to_black_and_back_is_one_fade(scanned):
    found = cuts(scanned("fade"))
    assert len(found) == 1
    cut = found[0]
    assert cut.detail["type"] == "fade"
    assert FADE_OUT_S[0] - 0.1 <= cut.start_s <= FADE_OUT_S[1]       # starts with the fade-out
    assert abs(cut.end_s - FADE_IN_S[1]) <= TOLERANCE_S              # ends when B is fully in
    assert cut.detail["blank_s"] == pytest.approx(FADE_BLACK_S[1] - FADE_BLACK_S[0], abs=0.25)
    assert cut.detail["blank_level"] < 30


@pytest.mark.parametrize("name, truth_s", [("jump", JUMP_S), ("zoom_seam", SEAM_S)],
                         ids=["presenter-jumps", "loop-seam-zoom-jump"])
def test_a_jump_in_a_fixed_view_is_a_jump_cut(scanned, name, truth_s):
    found = cuts(scanned(name))
    assert len(found) == 1
    assert found[0].detail["type"] == "jump"
    assert abs(found[0].start_s - truth_s) <= TOLERANCE_S
    assert found[0].start_s == found[0].end_s


def test_the_zoom_of_a_zoom_jump_is_measured(scanned):
    (cut,) = cuts(scanned("zoom_seam"))
    assert cut.detail["zoom"] == pytest.approx(1.06, abs=0.03)


# -- the common false cuts are not cuts --------------------------------------------------

@pytest.mark.parametrize("name", [
    "moving", "still_room", "flash", "fast_pan", "whip_pan", "comment_overlay", "stickers", "light_change",
    "handheld",
])
def test_no_cut_in_a_single_continuous_take(scanned, name):
    result = scanned(name)
    assert cuts(result) == [], [(e.start_s, dict(e.detail)) for e in cuts(result)]
    values = shots(result)
    assert values["cuts_per_min"] == 0.0
    assert values["longest_shot_share"] == 1.0
    assert values["max_cut_score"] == 0.0
    assert values["transition_share"] == 0.0
    assert values["mean_shot_s"] == pytest.approx(result.duration_s, abs=0.2)
    assert math.isnan(values["shot_length_cv"])
    assert "cuts" not in build_record(name, result, ScanConfig(), None).flags


# -- columns and evidence as documented ------------------------------------------------

def test_every_column_is_documented_and_returned(scanned):
    assert set(ShotsExtractor.COLUMN_DOCS) == set(ShotsExtractor.FEATURES)
    for key, doc in ShotsExtractor.COLUMN_DOCS.items():
        assert doc.meaning and doc.unit and doc.range and doc.speaks_for, key
        assert "__" not in key
    values = shots(scanned("four_cuts"))
    assert list(values) == list(ShotsExtractor.FEATURES)
    assert all(isinstance(v, float) for v in values.values())


def test_columns_summarise_the_cuts(scanned):
    result = scanned("four_cuts")
    values = shots(result)
    found = [e.start_s for e in cuts(result)]
    minutes = result.duration_s / 60
    lengths = np.diff([0.0, *found, result.duration_s])
    interior = lengths[1:-1]
    assert values["cuts_per_min"] == pytest.approx(4 / minutes, rel=0.02)
    assert values["hard_per_min"] == values["cuts_per_min"]
    assert values["jump_per_min"] == values["dissolve_per_min"] == values["fade_per_min"] == 0.0
    assert values["mean_shot_s"] == pytest.approx(result.duration_s / 5, abs=0.1)
    assert values["longest_shot_share"] == pytest.approx(lengths.max() / result.duration_s, abs=0.01)
    assert values["shot_length_cv"] == pytest.approx(interior.std() / interior.mean(), abs=0.02)
    assert values["max_cut_score"] == pytest.approx(max(e.score for e in cuts(result)))
    steps = result.duration_s * 10 - 1              # sampled steps at 10 Hz
    assert values["transition_share"] == pytest.approx(4 / steps, rel=0.05)


@pytest.mark.parametrize("name, column", [("dissolve", "dissolve_per_min"), ("fade", "fade_per_min"),
                                          ("jump", "jump_per_min")], ids=["dissolve", "fade", "jump"])
def test_each_type_has_its_own_rate(scanned, name, column):
    result = scanned(name)
    values = shots(result)
    assert values[column] == pytest.approx(60 / result.duration_s, rel=0.02)
    assert values["cuts_per_min"] == values[column]
    assert math.isnan(values["shot_length_cv"])                 # fewer than 3 edits
    if name in ("dissolve", "fade"):                            # a span, not one step
        assert values["transition_share"] > 2 / (result.duration_s * 10)


@pytest.mark.parametrize("name", ["four_cuts", "dissolve", "fade", "jump", "zoom_seam", "cuts_under_overlay"])
def test_evidence_is_shaped_as_documented(scanned, name):
    result = scanned(name)
    found = cuts(result)
    assert found
    for cut in found:
        kind = cut.detail["type"]
        assert kind in EDIT_TYPES
        assert set(cut.detail) == {"type"} | DETAIL_KEYS[kind]
        assert 0.0 <= cut.score <= 1.0
        assert 0.0 <= cut.start_s <= cut.end_s <= result.duration_s
        if kind in ("hard", "jump"):
            assert cut.start_s == cut.end_s
        json.dumps(cut.to_dict())                               # JSON-ready


def test_nothing_measured_means_missing_values_not_zeros():
    meta = VideoMeta(location="empty", container_format="mp4", codec="h264", width=W, height=H,
                     rotation_deg=0, declared_fps=30.0, declared_duration_s=None, declared_frames=0,
                     is_stream=False, analysis_width=W, analysis_height=H)
    extractor = ShotsExtractor()
    extractor.reset(meta)
    values, evidence = extractor.finalize()
    assert evidence == []
    assert set(values) == set(ShotsExtractor.FEATURES)
    assert all(math.isnan(v) for v in values.values())


def test_settings_come_from_the_config(clip):
    # A spike threshold no cut can reach: the clear cut at 12 s is no longer reported.
    config = ScanConfig(extractor_settings={"shots": {"spike_ratio": 1000.0}})
    extractor = ShotsExtractor(config)
    assert extractor.settings.spike_ratio == 1000.0
    assert cuts(extract(clip("cut_at_12s"), config, [extractor])) == []
