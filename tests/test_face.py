"""The face and presenter extractor on talking-head clips with known truth.

The clips animate a real portrait (see face_media.py): a live-like presenter, a still
portrait with a pasted speech-driven mouth and clockwork blinks, recycled footage replayed
with and without a re-synthesised mouth, a presenter who leaves for 12 s, and a room with
nobody in it. Each test checks that a cue moves the right way or that evidence points at the
right time.
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from dataclasses import dataclass

import pytest

from detector.config import ScanConfig
from detector.extractors.face import FaceExtractor
from detector.pipeline import extract
from detector.synth.scenes import moving_scene
from detector.synth.writer import write_clip

if importlib.util.find_spec("skimage") is None:
    pytest.skip("the face clips are built from the portrait scikit-image ships (test extra)",
                allow_module_level=True)

import face_media as fm  # noqa: E402  (needs the portrait)

# Recycled footage: 8 s of live presenter, then chunks of it played again.
RECYCLED_SOURCE_S = 8.0
RECYCLED_CHUNKS_S = ((1.0, 5.0), (3.0, 8.0), (0.0, 4.0))
# The presenter leaves (the camera shows a product) for 12 s.
GAP_S = (7.0, 19.0)
GAP_CLIP_S = 26.0
NO_FACE_S = 12.0
PORTRAIT_BLINK_PERIOD_S = 2.0


@dataclass(frozen=True)
class Clip:
    path: object
    duration_s: float
    blinks_s: tuple[float, ...] = ()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Clip]:
    folder = tmp_path_factory.mktemp("face")
    live, live_blinks = fm.live_states(18.0, seed=1)
    portrait, portrait_blinks = fm.portrait_states(16.0, seed=2, blink_period_s=PORTRAIT_BLINK_PERIOD_S)
    source, _ = fm.live_states(RECYCLED_SOURCE_S, seed=3)
    gap, _ = fm.live_states(GAP_CLIP_S, seed=5)
    new_mouth = fm.replay(source, RECYCLED_CHUNKS_S, new_mouth_seed=7)
    untouched = fm.replay(source, RECYCLED_CHUNKS_S, new_mouth_seed=None)
    # name: (states, true blinks, scrolling comments over the lower half, encoder options)
    states = {
        "live": (live, live_blinks, False, {}),
        "portrait": (portrait, portrait_blinks, False, {}),
        "recycled_new_mouth": (new_mouth, (), False, {}),
        "recycled_untouched": (untouched, (), False, {}),
        "presenter_leaves": (fm.with_absence(gap, *GAP_S), (), False, {}),
        # What live rooms add: viewer comments over the picture and a starved encoder.
        "live_comments_250k": (live, live_blinks, True, {"bitrate_kbps": 250}),
        "recycled_new_mouth_comments": (new_mouth, (), True, {}),
        "recycled_untouched_comments": (untouched, (), True, {}),
    }
    out = {}
    for index, (name, (s, blinks, comments, encoding)) in enumerate(states.items()):
        path = fm.write_states(folder / f"{name}.mp4", s, seed=index, comments=comments, **encoding)
        out[name] = Clip(path, len(s) / fm.FPS, tuple(blinks))
    path = folder / "nobody.mp4"
    write_clip(path, moving_scene(fm.WIDTH, fm.HEIGHT, fm.FPS, NO_FACE_S, seed=6), fm.FPS)
    out["nobody"] = Clip(path, NO_FACE_S)
    return out


@pytest.fixture(scope="module")
def results(clips):
    """One extraction per clip, shared by the tests: (features without prefix, evidence)."""
    out = {}
    for name, clip in clips.items():
        extraction = extract(clip.path, ScanConfig(), [FaceExtractor()])
        features = {k.split("__", 1)[1]: v for k, v in extraction.features.items() if k.startswith("face__")}
        out[name] = (features, extraction.evidence)
    return out


def _evidence(results, clip: str, kind: str):
    return [e for e in results[clip][1] if e.kind == kind]


# -- the contract ----------------------------------------------------------------------------

def test_every_column_is_documented_and_returned(results):
    assert set(FaceExtractor.COLUMN_DOCS) == set(FaceExtractor.FEATURES)
    for name, (features, evidence) in results.items():
        assert set(features) == set(FaceExtractor.FEATURES), name
        assert all(isinstance(v, float) for v in features.values()), name
        for e in evidence:
            assert 0.0 <= e.score <= 1.0, (name, e)
            assert e.start_s <= e.end_s, (name, e)


def test_importing_the_module_loads_no_cascade_and_no_opencv():
    code = ("import sys, detector.extractors.face as f; "
            "print('cv2' in sys.modules, hasattr(f._local, 'cascades'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_settings_override_from_config(clips):
    config = ScanConfig(extractor_settings={"face": {"no_presenter_min_s": 20.0}})
    extractor = FaceExtractor(config)
    assert extractor.settings.no_presenter_min_s == 20.0
    extraction = extract(clips["presenter_leaves"].path, config, [extractor])
    assert not [e for e in extraction.evidence if e.kind == "no_presenter"], "a 12 s absence is under 20 s"


# -- presenter on screen ------------------------------------------------------------------------

def test_nobody_on_screen_gives_no_presenter_over_the_whole_clip(clips, results):
    features, _ = results["nobody"]
    assert features["presenter_share"] < 0.05
    spans = _evidence(results, "nobody", "no_presenter")
    assert len(spans) == 1
    assert spans[0].start_s <= 0.5 and spans[0].end_s >= clips["nobody"].duration_s - 0.5
    # Face cues cannot be measured without a face: missing, not zero.
    for key in ("mouth_upper_ratio", "blink_rate_per_min", "sway_speed_mean", "mouth_only_novelty"):
        assert math.isnan(features[key]), key


def test_presenter_leaving_for_12_s_is_reported_there(results):
    spans = _evidence(results, "presenter_leaves", "no_presenter")
    assert len(spans) == 1
    assert abs(spans[0].start_s - GAP_S[0]) <= 1.0
    assert abs(spans[0].end_s - GAP_S[1]) <= 1.0
    features, _ = results["presenter_leaves"]
    expected = 1 - (GAP_S[1] - GAP_S[0]) / GAP_CLIP_S
    assert features["presenter_share"] == pytest.approx(expected, abs=0.05)
    assert features["longest_absence_s"] == pytest.approx(GAP_S[1] - GAP_S[0], abs=1.0)


@pytest.mark.parametrize("clip", ["live", "portrait", "recycled_new_mouth", "recycled_untouched",
                                  "live_comments_250k", "recycled_new_mouth_comments"])
def test_a_presenter_on_screen_throughout_has_no_absence(results, clip):
    features, _ = results[clip]
    assert features["presenter_share"] > 0.95
    assert not _evidence(results, clip, "no_presenter")


# -- cues that separate a live face from a synthetic one ------------------------------------------

@dataclass(frozen=True)
class Direction:
    """`column` is higher on clip `high` than on clip `low`, by `min_gap` and `min_factor`."""

    id: str
    column: str
    high: str
    low: str
    min_gap: float
    min_factor: float = 1.0


DIRECTIONS = [
    # A pasted mouth on a frozen (or rigidly swayed) face moves the mouth, not the upper face.
    Direction("mouth-moves-face-frozen", "mouth_upper_ratio", "portrait", "live", 1.0, 1.5),
    Direction("mouth-only-windows", "mouth_only_share", "portrait", "live", 0.5),
    # The change stops at the pasted patch; a real jaw moves the cheeks beside the mouth.
    Direction("seam-around-pasted-mouth", "mouth_seam_ratio", "portrait", "live", 1.0, 1.5),
    # A sine sway is one spectral line; a real head's velocity spectrum is broad.
    Direction("sway-too-regular", "sway_peakiness", "portrait", "live", 0.3),
    # Real blink intervals are irregular; scripted ones are clockwork.
    Direction("blinks-irregular-when-live", "blink_interval_cv", "live", "portrait", 0.2),
    # The test: recycled footage with a re-synthesised mouth scores higher on the
    # mouth-only novelty column than the same footage untouched.
    Direction("new-mouth-on-recycled-footage", "mouth_only_novelty", "recycled_new_mouth", "recycled_untouched", 0.15, 3.0),
    Direction("mouth-novelty-given-a-repeat", "mouth_novelty_on_repeat", "recycled_new_mouth", "recycled_untouched", 0.2, 2.0),
    Direction("recycled-footage-repeats", "upper_repeat_share", "recycled_untouched", "live", 0.4),
    # Scrolling comments over the lower half must not hide it (they are weighted out with the
    # rest of the frame below the chin).
    Direction("new-mouth-under-comments", "mouth_only_novelty", "recycled_new_mouth_comments", "recycled_untouched_comments", 0.1, 3.0),
]


@pytest.mark.parametrize("case", DIRECTIONS, ids=lambda c: c.id)
def test_cue_moves_the_right_way(results, case):
    high = results[case.high][0][case.column]
    low = results[case.low][0][case.column]
    assert high >= low + case.min_gap, f"{case.column}: {case.high}={high:.3f} vs {case.low}={low:.3f}"
    assert high >= low * case.min_factor, f"{case.column}: {case.high}={high:.3f} vs {case.low}={low:.3f}"


@pytest.mark.parametrize("clip", ["live", "live_comments_250k"])
def test_live_presenter_shows_no_synthetic_signs(results, clip):
    features, _ = results[clip]
    assert features["presenter_share"] > 0.95
    assert features["upper_repeat_share"] < 0.1
    assert features["mouth_only_novelty"] < 0.05
    for kind in ("recycled_face", "regular_blinks", "mouth_only_motion", "no_presenter"):
        assert not _evidence(results, clip, kind), kind


# -- blinks -----------------------------------------------------------------------------------

@pytest.mark.parametrize("clip", ["live", "portrait", "live_comments_250k"])
def test_blink_rate_matches_the_truth(clips, results, clip):
    truth = clips[clip].blinks_s
    features, _ = results[clip]
    expected_rate = 60.0 * len(truth) / clips[clip].duration_s
    assert features["blink_rate_per_min"] == pytest.approx(expected_rate, rel=0.25)


def test_clockwork_blinks_are_evidence(results):
    (spans,) = _evidence(results, "portrait", "regular_blinks")
    assert spans.detail["interval_mean_s"] == pytest.approx(PORTRAIT_BLINK_PERIOD_S, abs=0.15)
    assert spans.detail["interval_cv"] < 0.1
    assert spans.start_s == pytest.approx(1.0, abs=0.3)


# -- recycled footage with a new mouth ---------------------------------------------------------------

def _source_of(t_s: float) -> float | None:
    """Where in the first showing the recycled clip's moment t_s comes from."""
    if t_s < RECYCLED_SOURCE_S:
        return t_s
    start = RECYCLED_SOURCE_S
    for a, b in RECYCLED_CHUNKS_S:
        if t_s < start + (b - a):
            return a + (t_s - start)
        start += b - a
    return None


def test_recycled_face_evidence_points_at_the_replay_and_its_source(results):
    spans = _evidence(results, "recycled_new_mouth", "recycled_face")
    assert spans, "no recycled_face evidence on recycled footage with a new mouth"
    covered = 0.0
    for span in spans:
        assert span.start_s >= RECYCLED_SOURCE_S - 0.5, span
        assert span.source_start_s == pytest.approx(_source_of(span.start_s + 0.05), abs=0.5)
        assert span.source_end_s == pytest.approx(_source_of(span.end_s - 0.05), abs=0.5)
        assert span.detail["mouth_novelty"] >= 0.4
        covered += span.end_s - span.start_s
    assert covered >= 4.0


@pytest.mark.parametrize("clip", ["recycled_untouched", "recycled_untouched_comments"])
def test_untouched_recycled_footage_is_not_a_new_mouth(results, clip):
    assert not _evidence(results, clip, "recycled_face")
