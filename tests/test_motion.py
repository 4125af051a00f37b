"""The motion extractor: camera motion (locked off, handheld, pan), local motion after
compensation, motion periodicity (a turntable's period, not a live scene's randomness) and
idle spans at the right time, on generated clips with known truth."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import pytest
from helpers import cached_extractions, written_clips

from detector.config import ScanConfig
from detector.extractors.basic import BasicStatsExtractor
from detector.extractors.motion import MotionExtractor, MotionSettings, _lag_correlation, _strongest_peak
from detector.pipeline import Extraction, extract
from detector.synth.scenes import moving_scene, static_scene
from detector.synth.writer import write_clip
from detector.types import Frame, VideoMeta

W, H, FPS = 320, 180, 25
Frames = Iterator[np.ndarray]

# Truths of the generated scenes.
PAN_PX_S = 30.0                               # scroll speed of the pan
PAN_PCT_S = 100.0 * PAN_PX_S / W              # ... in % of the frame width per second
TURNTABLE_PERIOD_S = 2.5
IDLE_START_S, IDLE_END_S = 6.0, 46.0          # moving 6 s, still 40 s, moving 6 s


# -- generated scenes with known truth ---------------------------------------------------

def _room(width: int, height: int, seed: int) -> np.ndarray:
    """A still furnished room (one noiseless frame of static_scene) larger than the view."""
    return next(static_scene(width, height, FPS, 1 / FPS, seed=seed))


def camera_scene(offsets: list[tuple[float, float]], margin: int = 60, seed: int = 5) -> Frames:
    """A camera looking at a still room from (sub-pixel) `offsets`, with sensor noise."""
    room = _room(W + 2 * margin, H + 2 * margin, seed)
    rng = np.random.default_rng(seed)
    for dx, dy in offsets:
        view = np.float32([[1, 0, -(margin + dx)], [0, 1, -(margin + dy)]])
        frame = cv2.warpAffine(room, view, (W, H), flags=cv2.INTER_LINEAR)
        yield np.clip(frame + rng.normal(0, 2.0, frame.shape), 0, 255).astype(np.uint8)


def handheld_offsets(duration_s: float, amplitude_px: float = 4.0, tau_s: float = 0.25) -> list:
    """A hand's shake: a mean-reverting random walk of ~`amplitude_px` that decorrelates in
    `tau_s` (a phone held at arm's length)."""
    rng = np.random.default_rng(1)
    dt, position, path = 1 / FPS, np.zeros(2), []
    for _ in range(round(duration_s * FPS)):
        position += -position * dt / tau_s + rng.normal(0, amplitude_px * math.sqrt(2 * dt / tau_s), 2)
        path.append((float(position[0]), float(position[1])))
    return path


def pan_offsets(duration_s: float) -> list:
    n = round(duration_s * FPS)
    start = -PAN_PX_S * duration_s / 2
    return [(start + PAN_PX_S * i / FPS, 0.0) for i in range(n)]


def turntable(frames: Frames, period_s: float = TURNTABLE_PERIOD_S, centre=(240, 90), radius=40) -> Frames:
    """A textured disc rotating once every `period_s` in part of the frame."""
    rng = np.random.default_rng(9)
    size = 2 * radius + 1
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (size, size, 3)).astype(np.float32), (0, 0), 2.0)
    texture = cv2.normalize(texture, None, 20, 235, cv2.NORM_MINMAX).astype(np.uint8)
    mask = np.zeros((size, size), np.uint8)
    cv2.circle(mask, (radius, radius), radius, 255, -1, cv2.LINE_AA)
    alpha = mask[..., None] / 255.0
    x0, y0 = centre[0] - radius, centre[1] - radius
    for i, frame in enumerate(frames):
        turn = cv2.getRotationMatrix2D((radius, radius), 360.0 * i / FPS / period_s, 1.0)
        disc = cv2.warpAffine(texture, turn, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        under = frame[y0:y0 + size, x0:x0 + size].astype(np.float32)
        frame[y0:y0 + size, x0:x0 + size] = (alpha * disc + (1 - alpha) * under).astype(np.uint8)
        yield frame


def blinking(frames: Frames, at=(60, 40), size=6, period_s=1.0) -> Frames:
    """A small light (6x6 px, 0.06 % of the frame) blinking on and off."""
    for i, frame in enumerate(frames):
        if (i / FPS) % period_s < period_s / 2:
            cv2.rectangle(frame, at, (at[0] + size - 1, at[1] + size - 1), (255, 255, 255), -1)
        yield frame


def idle_scene() -> Frames:
    """A live room, then 40 s where nothing happens but a blinking light, then live again."""
    return itertools.chain(
        moving_scene(W, H, FPS, IDLE_START_S, seed=3),
        blinking(static_scene(W, H, FPS, IDLE_END_S - IDLE_START_S, seed=4)),
        moving_scene(W, H, FPS, 6.0, seed=7),
    )


SCENES: dict[str, Callable[[], Frames]] = {
    "locked": lambda: camera_scene([(0.0, 0.0)] * (12 * FPS)),
    "handheld": lambda: camera_scene(handheld_offsets(12.0)),
    "pan": lambda: camera_scene(pan_offsets(12.0), margin=200),
    "live": lambda: moving_scene(W, H, FPS, 20.0, seed=3),
    "turntable_live": lambda: turntable(moving_scene(W, H, FPS, 20.0, seed=3)),
    "turntable_still_room": lambda: turntable(static_scene(W, H, FPS, 20.0, seed=4)),
    "idle": idle_scene,
}


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Callable[[str], object]:
    """Path of a scene's clip, written once per module."""
    return written_clips(tmp_path_factory.mktemp("motion"), SCENES, FPS)


@pytest.fixture(scope="module")
def scanned(clip) -> Callable[[str], Extraction]:
    """Motion and basic extraction of a scene at the default settings, run once per module."""
    return cached_extractions(clip, lambda: [MotionExtractor(), BasicStatsExtractor()])


def motion(result: Extraction) -> dict[str, float]:
    return {k.removeprefix("motion__"): v for k, v in result.features.items() if k.startswith("motion__")}


# -- camera motion -------------------------------------------------------------------------

@dataclass(frozen=True)
class CameraCase:
    scene: str
    locked_share: tuple[float, float]
    jitter_pct: tuple[float, float]
    pan_share: tuple[float, float]


CAMERA_CASES = [
    CameraCase("locked", locked_share=(0.9, 1.0), jitter_pct=(0.0, 0.05), pan_share=(0.0, 0.0)),
    # 4 px of shake at 320 px is ~1.25 % of the width.
    CameraCase("handheld", locked_share=(0.0, 0.2), jitter_pct=(0.4, 3.0), pan_share=(0.0, 0.05)),
    CameraCase("pan", locked_share=(0.0, 0.1), jitter_pct=(0.0, 0.3), pan_share=(0.8, 1.0)),
]


@pytest.mark.parametrize("case", CAMERA_CASES, ids=lambda c: c.scene)
def test_camera_motion_is_locked_off_handheld_or_panning(scanned, case):
    values = motion(scanned(case.scene))
    assert values["global_reliable_share"] > 0.95
    for key in ("locked_share", "jitter_pct", "pan_share"):
        low, high = getattr(case, key)
        assert low <= values[key] <= high, (key, values[key])


def test_pan_speed_is_measured(scanned):
    # The maximum of a 1 s mean of noisy per-step estimates runs a little high.
    assert PAN_PCT_S * 0.85 <= motion(scanned("pan"))["pan_speed_max"] <= PAN_PCT_S * 1.35


def test_objects_moving_on_a_plain_wall_are_not_camera_motion(scanned):
    """moving_scene has big shapes over a smooth wall: phase correlation locks onto them, the
    region check must not take that for a moving camera."""
    values = motion(scanned("live"))
    assert values["locked_share"] > 0.9
    assert values["pan_share"] == 0.0
    assert values["jitter_pct"] < 0.1


def test_local_motion_excludes_camera_shake(scanned):
    """A shaken camera on a still room: almost all change is the camera's, so what is left
    after compensation is far below the whole-frame change that `basic` sees."""
    result = scanned("handheld")
    assert motion(result)["local_mean"] < 0.5 * result.features["basic__motion_mean"]
    assert motion(scanned("locked"))["local_mean"] < 0.2


# -- local motion distribution ----------------------------------------------------------------

def test_motion_in_one_corner_has_low_region_entropy(scanned):
    corner, everywhere = motion(scanned("turntable_still_room")), motion(scanned("live"))
    assert corner["region_entropy"] < everywhere["region_entropy"]
    assert corner["region_active_share"] < 0.4 < everywhere["region_active_share"]


def test_nothing_moving_leaves_region_entropy_undefined(scanned):
    assert math.isnan(motion(scanned("locked"))["region_entropy"])


# -- periodicity -----------------------------------------------------------------------------

@pytest.mark.parametrize("scene", ["turntable_still_room", "turntable_live"], ids=["still-room", "live-room"])
def test_turntable_period_is_found_within_5_percent(scanned, scene):
    values = motion(scanned(scene))
    assert values["periodicity_strength"] >= 0.7
    assert abs(values["periodicity_period_s"] - TURNTABLE_PERIOD_S) <= 0.05 * TURNTABLE_PERIOD_S
    assert values["periodic_share"] == 1.0


@pytest.mark.parametrize("scene", ["live", "handheld", "pan"])
def test_random_motion_is_not_periodic(scanned, scene):
    values = motion(scanned(scene))
    assert values["periodicity_strength"] < 0.45
    assert values["periodic_share"] == 0.0


def test_still_picture_has_zero_periodicity_not_missing(scanned):
    """Encoder keyframes pulse every 2 s in a still room; that is not periodic motion."""
    values = motion(scanned("locked"))
    assert values["periodicity_strength"] == 0.0
    assert math.isnan(values["periodicity_period_s"])


def test_turntable_period_does_not_depend_on_the_sampling_rate(clip):
    config = ScanConfig(sample_fps=0.0)     # every frame, 25 Hz
    values = motion(extract(clip("turntable_live"), config, [MotionExtractor(config)]))
    assert abs(values["periodicity_period_s"] - TURNTABLE_PERIOD_S) <= 0.05 * TURNTABLE_PERIOD_S


@dataclass(frozen=True)
class PeakCase:
    name: str
    series: Callable[[np.random.Generator], np.ndarray]
    periodic: bool


PEAK_CASES = [
    PeakCase("sine-3s", lambda rng: np.sin(2 * np.pi * np.arange(600) / 30.0) + rng.normal(0, 0.3, 600), True),
    PeakCase("spikes-7s", lambda rng: (np.arange(600) % 70 < 3) + rng.normal(0, 0.1, 600), True),
    PeakCase("random-walk", lambda rng: np.cumsum(rng.normal(0, 1, 600)), False),
    PeakCase("white-noise", lambda rng: rng.normal(0, 1, 600), False),
]


@pytest.mark.parametrize("case", PEAK_CASES, ids=lambda c: c.name)
def test_autocorrelation_peak_search(case):
    series = case.series(np.random.default_rng(0))
    strength, lag = _strongest_peak(_lag_correlation(series, 402), 5, 200)
    if case.periodic:
        assert strength > 0.6
        assert abs(lag - float(case.name.split("-")[1][:-1]) * 10) <= 1.0
    else:
        assert strength < 0.3


# -- idle ------------------------------------------------------------------------------------

def test_idle_span_is_reported_at_the_right_time(scanned):
    result = scanned("idle")
    idle = [e for e in result.evidence if e.kind == "idle"]
    assert len(idle) == 1
    assert abs(idle[0].start_s - IDLE_START_S) <= 1.0
    assert abs(idle[0].end_s - IDLE_END_S) <= 1.0
    assert 0.0 < idle[0].score <= 1.0
    assert set(idle[0].detail) == {"active_share_max"}
    values = motion(result)
    assert abs(values["longest_idle_s"] - (IDLE_END_S - IDLE_START_S)) <= 1.5
    assert abs(values["idle_share"] - (IDLE_END_S - IDLE_START_S) / result.duration_s) <= 0.05


@pytest.mark.parametrize("scene", ["live", "locked", "handheld"], ids=["live", "still-12s", "handheld"])
def test_no_idle_span_in_a_live_or_short_clip(scanned, scene):
    result = scanned(scene)
    assert not [e for e in result.evidence if e.kind == "idle"]
    assert motion(result)["idle_share"] == 0.0


def test_idle_tolerates_a_bigger_blinking_light_than_static_does(tmp_path):
    """`static` (basic) ends whenever a 0.2 % of pixels change; a 16x16 px blinking light
    (0.44 %) keeps ending it, while `idle` spans the whole still room."""
    path = write_clip(tmp_path / "blink.mp4", blinking(static_scene(W, H, FPS, 34.0, seed=4), size=16), FPS)
    result = extract(path, ScanConfig(), [MotionExtractor(), BasicStatsExtractor()])
    idle = [e for e in result.evidence if e.kind == "idle"]
    assert len(idle) == 1 and idle[0].end_s - idle[0].start_s >= 32.0
    assert result.features["basic__longest_static_s"] < 30.0


def test_idle_settings_come_from_the_config(clip):
    config = ScanConfig(extractor_settings={"motion": {"idle_min_s": 50.0}})
    result = extract(clip("idle"), config, [MotionExtractor(config)])
    assert not [e for e in result.evidence if e.kind == "idle"]


# -- contract details ----------------------------------------------------------------------

def test_every_column_is_returned_and_documented(scanned):
    values = motion(scanned("live"))
    assert list(values) == list(MotionExtractor.FEATURES)
    assert set(MotionExtractor.COLUMN_DOCS) == set(MotionExtractor.FEATURES)


def _meta(width=W, height=H) -> VideoMeta:
    return VideoMeta(location="synthetic", container_format="mp4", codec="h264", width=width,
                     height=height, rotation_deg=0, declared_fps=10.0, declared_duration_s=None,
                     declared_frames=0, is_stream=False, analysis_width=width, analysis_height=height)


def test_a_single_frame_gives_missing_values_not_zeros():
    extractor = MotionExtractor()
    extractor.reset(_meta())
    extractor.update(Frame(index=0, t_s=0.0, gray=np.zeros((H, W), np.uint8)))
    values, evidence = extractor.finalize()
    assert evidence == []
    for key in ("locked_share", "jitter_pct", "local_mean", "periodicity_strength", "idle_share"):
        assert math.isnan(values[key]), key


def test_state_stays_bounded_on_a_long_input():
    """Ten minutes of frames: the periodicity window slides instead of growing."""
    extractor = MotionExtractor()
    extractor.reset(_meta(96, 54))
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (54, 96), dtype=np.uint8)
    for i in range(6000):                                   # 600 s at 10 Hz
        gray = np.roll(base, i % 7, axis=1)
        extractor.update(Frame(index=i, t_s=i / 10.0, gray=gray))
    window = extractor._periodicity
    assert window.n <= len(window.t)
    assert window.t[window.n - 1] - window.t[0] <= MotionSettings().periodicity_window_s
    values, _ = extractor.finalize()
    assert len(window.results) >= 5
    assert all(isinstance(v, float) for v in values.values())
