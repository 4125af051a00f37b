"""Decoded-frame steps: jump cuts and frame-rate conversion seen at the default 10 Hz sampling.

Every clip has a known truth: where stretches were cut out, which frames a conversion
repeated. The camera-like clips (continuous motion, overlays popping over still parts, a
still room) must stay clean.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_signal import converted, scene

from detector.config import ScanConfig
from detector.extractors.cadence import CadenceExtractor, CadenceSettings, conversion_fit
from detector.pipeline import extract
from detector.synth.scenes import moving_scene
from detector.synth.writer import write_clip

W, H = 320, 180
CUT_AT_S = (3.0, 6.0)           # where the jump-cut clip's two splices fall (output time)
REMOVED_S = 1.6                  # seconds of the take cut out at each


def jump_cut(fps: float, duration_s: float, seed: int):
    """One continuous take with REMOVED_S cut out at each of CUT_AT_S: the view stays."""
    take = list(moving_scene(W, H, fps, duration_s + REMOVED_S * len(CUT_AT_S), seed))
    keep, offset = [], 0
    for k in range(round(duration_s * fps)):
        offset = sum(round(REMOVED_S * fps) for cut in CUT_AT_S if k / fps >= cut - 1e-9)
        keep.append(take[k + offset])
    return keep


def with_popping_sticker(frames, fps: float, every_s: float = 1.0):
    """A price sticker that appears and disappears over the top-left wall every `every_s`."""
    for i, frame in enumerate(frames):
        if int(i / fps / every_s) % 2:
            frame = frame.copy()
            cv2.rectangle(frame, (8, 8), (110, 50), (0, 0, 255), -1)
            cv2.putText(frame, "-50%", (14, 42), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
        yield frame


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("cadence")
    specs = {
        "native30": (scene(W, H, 30, 8, 3, noise=3), 30),
        "conv24_30": (converted(scene(W, H, 24, 8, 3, noise=3), 24, 30), 30),
        "conv12_25": (converted(scene(W, H, 12, 8, 4, noise=3), 12, 25), 25),
        "jump_cut": (jump_cut(25, 9, 5), 25),
        "sticker": (with_popping_sticker(scene(W, H, 25, 8, 6, noise=3), 25), 25),
        "still": (scene(W, H, 25, 6, 7, noise=3, still=True), 25),
    }
    return {name: write_clip(out / f"{name}.mp4", frames, fps, crf=20) for name, (frames, fps) in specs.items()}


@pytest.fixture(scope="module")
def results(clips):
    """At the default 10 Hz sampling: the steps between samples come from the source."""
    return {name: extract(path, ScanConfig(), [CadenceExtractor()]) for name, path in clips.items()}


def _col(result, key: str) -> float:
    return result.features[f"cadence__{key}"]


@pytest.mark.parametrize("name", ["native30", "sticker"])
def test_continuous_camera_footage_has_no_jump_and_no_repeat(results, name):
    result = results[name]
    assert _col(result, "measured_share") > 0.5
    assert _col(result, "jump_per_min") == 0.0
    assert _col(result, "repeat_share") < 0.02
    assert not [e for e in result.evidence if e.kind in ("content_jump", "rate_conversion")]


def test_jump_cuts_are_found_where_the_take_was_cut(results):
    result = results["jump_cut"]
    jumps = [e for e in result.evidence if e.kind == "content_jump"]
    assert len(jumps) == len(CUT_AT_S)
    for jump, cut_s in zip(jumps, CUT_AT_S):
        assert jump.start_s == pytest.approx(cut_s, abs=0.05)
        assert jump.detail["ratio"] >= 4.0
    assert _col(result, "jump_per_min") == pytest.approx(60 * len(CUT_AT_S) / 9, rel=0.1)


@pytest.mark.parametrize("name, share, gap, source_fps", [("conv24_30", 1 / 5, 5, 24.0), ("conv12_25", 13 / 25, 2, 12.0)])
def test_rate_conversion_cadence_at_the_default_sampling(results, name, share, gap, source_fps):
    """24 -> 30 repeats one frame in five; 12 -> 25 about every other one. The repeats fall
    on the source's frame clock, and the evidence names its rate."""
    result = results[name]
    assert _col(result, "repeat_share") == pytest.approx(share, abs=0.06)
    assert _col(result, "repeat_regularity") >= 0.7
    assert _col(result, "conversion_fit") >= 0.9
    found = [e for e in result.evidence if e.kind == "rate_conversion"]
    assert len(found) == 1
    assert found[0].start_s < 1.0 and found[0].end_s > 7.0
    assert found[0].detail["pattern_gap_frames"] in (gap - 1, gap, gap + 1)
    assert found[0].detail["source_fps"] == source_fps


@pytest.mark.parametrize("stream_fps, source_fps", [(30.0, 24.0), (30.0, 20.0), (30.0, 15.0), (25.0, 12.0), (25.0, 20.0)])
def test_the_conversion_clock_is_found_from_the_repeats_detected(stream_fps, source_fps):
    """Even with 40 % of the repeats missed (the detector needs motion around them), the
    repeats left all sit on the source's clock."""
    times = np.arange(0, 20, 1 / stream_fps)
    shown = np.floor(np.arange(len(times)) * source_fps / stream_fps + 0.3)
    repeats = times[1:][shown[1:] == shown[:-1]]
    detected = repeats[np.random.default_rng(0).random(len(repeats)) < 0.6]
    fit, fps, z = conversion_fit(detected, stream_fps, CadenceSettings().source_fps_candidates)
    assert fit == pytest.approx(1.0)
    assert fps == source_fps
    assert z >= CadenceSettings().conversion_min_z


@pytest.mark.parametrize("count", [8, 20, 60, 150])
def test_repeats_at_random_fit_no_clock(count):
    """An encoder starved of bits freezes slow motion now and then: no clock explains that
    (some clock always fits a few stalls a little, never well and significantly)."""
    settings = CadenceSettings()
    times = np.arange(0, 20, 1 / 30)
    for seed in range(10):
        stalls = np.sort(np.random.default_rng([count, seed]).choice(times, count, replace=False))
        fit, _fps, z = conversion_fit(stalls, 30.0, settings.source_fps_candidates)
        assert not (fit >= settings.conversion_min_fit and z >= settings.conversion_min_z)
        if count >= 60:
            assert fit < 0.4


def test_a_still_room_is_not_measured(results):
    result = results["still"]
    assert _col(result, "measured_share") < 0.1
    assert _col(result, "jump_per_min") == 0.0
    assert math.isnan(_col(result, "repeat_share")) or _col(result, "repeat_share") < 0.05


def test_triage_mode_sees_no_decoded_steps(clips):
    """Keyframes alone say nothing about steps between frames: nothing is claimed."""
    result = extract(clips["jump_cut"], ScanConfig(triage=True), [CadenceExtractor()])
    assert _col(result, "measured_share") == 0.0
    assert not result.evidence


def test_source_gives_every_decoded_frame_once(clips):
    """The thumbnails between samples cover every decoded frame exactly once, in order, up to
    the last sampled frame (the few after it are not handed over)."""
    from detector.source import VideoSource

    with VideoSource(clips["native30"], ScanConfig()) as video:
        frames = [(frame.t_s, [thumb.t_s for thumb in frame.decoded]) for frame in video.frames(decoded_thumbs=True)]
        decoded = video.stats.frames_decoded
    times = [t for _, thumbs in frames for t in thumbs]
    assert decoded == 240 and 237 <= len(times) <= 240
    assert times == [k / 30 for k in range(len(times))] or np.allclose(times, np.arange(len(times)) / 30)
    assert all(thumbs[-1] == t_s for t_s, thumbs in frames)


def test_thumbnails_are_made_only_when_an_extractor_reads_them(clips):
    """The per-decoded-frame work is skipped for extractors that never look at it."""
    from detector.extractors.basic import BasicStatsExtractor
    from detector.source import VideoSource

    with VideoSource(clips["native30"], ScanConfig()) as video:
        assert all(frame.decoded == () for frame in video.frames())
    seen = []

    class Spy(BasicStatsExtractor):
        def update(self, frame):
            seen.append(len(frame.decoded))
            super().update(frame)

    extract(clips["native30"], ScanConfig(), [Spy()])
    assert seen and set(seen) == {0}
    extract(clips["native30"], ScanConfig(), [Spy(), CadenceExtractor()])
    assert sum(seen) >= 237

