"""Signal cues on clips with known truth: sensor noise, frozen pictures, frame-rate conversion
cadence, over-smoothing and metadata.

Clips that must carry live noise are encoded at CRF 18: x264 at its default CRF 23 keeps the
noise of still areas frozen between keyframes (measured: a sigma-4 camera reads as ~0 between
keyframes), which is itself covered by the still-room cases below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from detector.config import ScanConfig
from detector.extractors.signal import SignalExtractor, encoder_is_editor
from detector.pipeline import extract
from detector.source import analysis_size
from detector.synth.writer import write_clip
from detector.types import Evidence, Frame, VideoMeta

FPS = 25


# -- scenes ------------------------------------------------------------------------------------
def _background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Blotchy texture with a flat 'wall' in the top-left, as rooms have."""
    acc = np.full((height, width), 120.0, np.float32)
    for cell_frac, amplitude in ((0.15, 30.0), (0.04, 12.0)):
        cell = max(2, int(cell_frac * width))
        grid = rng.standard_normal((height // cell + 3, width // cell + 3)).astype(np.float32)
        acc += amplitude * cv2.resize(cv2.GaussianBlur(grid, (0, 0), 0.8), (width, height),
                                      interpolation=cv2.INTER_CUBIC)
    acc[: height // 3, : width // 2] = 150.0
    return cv2.cvtColor(np.clip(acc, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def scene(width: int, height: int, fps: float, duration_s: float, seed: int, *, noise: float = 0.0,
          blur: float = 0.0, still: bool = False, render_size: tuple[int, int] | None = None):
    """Moving shapes that always stay in view over a textured room; optional camera noise
    (fresh every frame), blur (a smoothing re-encode) and low-resolution rendering (upscaled)."""
    rng = np.random.default_rng(seed)
    rw, rh = render_size or (width, height)
    background = _background(rw, rh, rng)
    radius = 0.1 * min(rw, rh)
    pos = rng.uniform([radius, radius], [rw - radius, rh - radius], (3, 2))
    vel = rng.uniform(0.2, 0.4, (3, 2)) * np.array([rw, rh]) * rng.choice([-1, 1], (3, 2))
    colours = [(40, 200, 90), (220, 60, 40), (30, 30, 200)]
    noise_rng = np.random.default_rng(seed + 1)
    for _ in range(max(1, round(duration_s * fps))):
        frame = background.copy()
        if not still:
            pos += vel / fps
            for axis, limit in ((0, rw), (1, rh)):
                low, high = pos[:, axis] < radius, pos[:, axis] > limit - radius
                vel[low | high, axis] *= -1
                pos[:, axis] = np.clip(pos[:, axis], radius, limit - radius)
            for (x, y), colour in zip(pos, colours):
                cv2.circle(frame, (int(x * 16), int(y * 16)), int(radius * 16), colour, -1, cv2.LINE_AA, 4)
        if (rw, rh) != (width, height):
            frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_CUBIC)
        if noise:
            grain = noise_rng.standard_normal((height, width, 1)).astype(np.float32) * noise
            frame = np.clip(frame + grain, 0, 255).astype(np.uint8)
        if blur:
            frame = cv2.GaussianBlur(frame, (0, 0), blur)
        yield frame


def pan(width: int, height: int, fps: float, duration_s: float, seed: int, *, noise: float = 0.0,
        speed_px_s: float = 40.0):
    """The camera pans over a wall textured everywhere (no flat area to read noise in)."""
    rng = np.random.default_rng(seed)
    grid = rng.standard_normal((height // 2, width // 2)).astype(np.float32)
    texture = cv2.resize(cv2.GaussianBlur(grid, (0, 0), 1.0), (2 * width, 2 * height), interpolation=cv2.INTER_CUBIC)
    wall = cv2.cvtColor(np.clip(128 + 30 * texture / texture.std(), 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    noise_rng = np.random.default_rng(seed + 1)
    for i in range(round(duration_s * fps)):
        shift = speed_px_s * i / fps
        frame = cv2.warpAffine(wall, np.float32([[1, 0, -shift], [0, 1, -0.3 * shift]]), (width, height))
        if noise:
            grain = noise_rng.standard_normal((height, width, 1)).astype(np.float32) * noise
            frame = np.clip(frame + grain, 0, 255).astype(np.uint8)
        yield frame


def converted(frames, source_fps: float, target_fps: float):
    """Frame-rate conversion by repetition, as a player does: 24 -> 30 shows every 4th frame twice."""
    frames = list(frames)
    for i in range(int(len(frames) * target_fps / source_fps)):
        yield frames[min(int(i * source_fps / target_fps + 1e-9), len(frames) - 1)]


def paused(frames, fps: float, start_s: float, end_s: float):
    """Playback paused from start_s to end_s: the picture (noise included) holds still."""
    held = None
    for i, frame in enumerate(frames):
        if start_s <= i / fps < end_s:
            held = frame if held is None else held
            yield held
        else:
            yield frame


# -- running -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Result:
    features: dict[str, float]
    evidence: list[Evidence]

    def __getitem__(self, key: str) -> float:
        return self.features[f"signal__{key}"]

    def of_kind(self, kind: str) -> list[Evidence]:
        return [e for e in self.evidence if e.kind == kind]


def run(path: Path, sample_fps: float = 10.0, **settings) -> Result:
    config = ScanConfig(sample_fps=sample_fps, extractor_settings={"signal": settings} if settings else {})
    result = extract(path, config, [SignalExtractor(config)])
    return Result(result.features, result.evidence)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """Every clip of this module, written once."""
    out = tmp_path_factory.mktemp("signal")
    w, h = 320, 180
    specs = {
        # Noise: the same content with camera noise, without, and noisy then smoothed.
        "noisy": (scene(w, h, FPS, 6, 1, noise=4), FPS, {"crf": 18}),
        "clean": (scene(w, h, FPS, 12, 1), FPS, {"crf": 18}),
        "smoothed": (scene(w, h, FPS, 6, 1, noise=4, blur=1.5), FPS, {"crf": 18}),
        # A pan over texture: a render must not read as camera noise.
        "pan_render": (pan(w, h, FPS, 5, 10), FPS, {"crf": 18}),
        "pan_camera": (pan(w, h, FPS, 5, 10, noise=3), FPS, {"crf": 18}),
        # Frame-rate conversion of a played-back file.
        "conv24_30": (converted(scene(w, h, 24, 6, 3, noise=3), 24, 30), 30, {"crf": 18}),
        "conv24_30_crf23": (converted(scene(w, h, 24, 6, 3, noise=3), 24, 30), 30, {}),
        "conv25_30": (converted(scene(w, h, 25, 6, 3, noise=3), 25, 30), 30, {}),
        "native30": (scene(w, h, 30, 6, 3, noise=3), 30, {"crf": 18}),
        # Stillness: a paused playback, a rendered still, a still room with live noise.
        "paused": (paused(scene(w, h, FPS, 14, 6, noise=3), FPS, 4.0, 10.0), FPS, {"crf": 18}),
        "still_render": (scene(w, h, FPS, 8, 7, still=True), FPS, {}),
        "still_noisy": (scene(w, h, FPS, 8, 7, noise=3, still=True), FPS, {"crf": 18}),
        # Over-smoothing: native 640x360 vs rendered at 160x90 and upscaled.
        "native360": (scene(640, 360, FPS, 5, 8), FPS, {"crf": 18}),
        "upscaled360": (scene(640, 360, FPS, 5, 8, render_size=(160, 90)), FPS, {"crf": 18}),
        # Metadata: a known bit rate.
        "cbr": (scene(w, h, FPS, 4, 9, noise=2), FPS, {"bitrate_kbps": 600}),
    }
    paths = {}
    for name, (frames, fps, options) in specs.items():
        paths[name] = write_clip(out / f"{name}.mp4", frames, fps, **options)
    paths["tagged"] = _retagged(paths["cbr"], out / "tagged.mp4", "HandBrake 1.7.2 2024010100")
    return paths


def _retagged(source: Path, target: Path, encoder: str) -> Path:
    """Remux `source` with an encoder tag, as an editing application leaves one."""
    with av.open(str(source)) as src, av.open(str(target), "w", format="mp4") as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        # libavformat overwrites the file-level tag with its own (Lavf...); the track-level tag,
        # which the source reads first, survives.
        stream.metadata["encoder"] = encoder
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is None:
                continue
            packet.stream = stream
            out.mux(packet)
    return target


@pytest.fixture(scope="module")
def results(clips) -> dict[str, Result]:
    return {name: run(path) for name, path in clips.items()}


# -- sensor noise ----------------------------------------------------------------------------------
def test_noise_orders_camera_above_smoothed_above_render(results):
    noisy, smoothed, clean = (results[k] for k in ("noisy", "smoothed", "clean"))
    assert noisy["noise_sigma"] > 1.5
    assert noisy["noise_sigma"] > 4 * smoothed["noise_sigma"]
    assert smoothed["noise_sigma"] >= clean["noise_sigma"]
    assert clean["noise_sigma"] < 0.1
    assert noisy["noise_alive_share"] > 0.9
    assert clean["noise_alive_share"] == 0.0
    assert noisy["noise_cv"] < 0.5           # a camera's noise is steady
    assert math.isnan(clean["noise_cv"])     # no live noise to measure


def test_noise_free_moving_footage_is_evidence(results):
    found = results["clean"].of_kind("no_sensor_noise")
    assert len(found) == 1
    assert found[0].start_s < 0.2 and found[0].end_s > 11.5
    assert not results["noisy"].of_kind("no_sensor_noise")


def test_texture_in_motion_is_not_noise(results):
    """A noise-free pan over texture leaves a temporal residual everywhere; it is not white."""
    render, camera = results["pan_render"], results["pan_camera"]
    assert math.isnan(render["noise_sigma"]) or render["noise_sigma"] < 0.3
    assert camera["noise_sigma"] > 1.0


@dataclass(frozen=True)
class Geometry:
    id: str
    width: int
    height: int
    rotation_deg: int = 0


GEOMETRIES = [Geometry("360p", 640, 360), Geometry("720p", 1280, 720), Geometry("1080p", 1920, 1080),
              Geometry("480p-non-integer", 854, 480), Geometry("720p-portrait", 720, 1280),
              Geometry("720p-rotated", 1280, 720, rotation_deg=90)]


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=[g.id for g in GEOMETRIES])
@pytest.mark.parametrize("sigma", [4.0, 8.0], ids=["sigma4", "sigma8"])
def test_noise_is_in_source_levels_whatever_the_downscale(geometry, sigma):
    """White noise of a known sigma, downscaled as the sampler does, reads as that sigma.

    (Below ~0.5 levels at the analysis size, i.e. ~3 source levels for 1080p, 8-bit rounding of
    the analysis frame inflates the reading; the docstring of the module says so.)
    """
    assert _synthetic_noise_sigma(geometry, sigma) == pytest.approx(sigma, rel=0.15)


def _synthetic_noise_sigma(geometry: Geometry, sigma: float, n_frames: int = 12) -> float:
    w, h = geometry.width, geometry.height
    aw, ah = analysis_size(w, h, 320)
    if geometry.rotation_deg in (90, 270):
        aw, ah = ah, aw
    meta = _meta(w, h, aw, ah, rotation_deg=geometry.rotation_deg)
    extractor = SignalExtractor()
    extractor.reset(meta)
    rng = np.random.default_rng(int(sigma))
    base = np.tile(np.linspace(60, 200, w, dtype=np.float32), (h, 1))
    for i in range(n_frames):
        picture = base + rng.standard_normal((h, w), dtype=np.float32) * sigma
        cv2.rectangle(picture, (40 + 9 * i, h // 3), (40 + 9 * i + w // 8, h // 2), 30, -1)
        source = np.clip(np.rint(picture), 0, 255).astype(np.uint8)
        if geometry.rotation_deg:
            source = cv2.rotate(source, cv2.ROTATE_90_COUNTERCLOCKWISE)
        gray = cv2.resize(source, (aw, ah), interpolation=cv2.INTER_AREA)
        extractor.update(Frame(index=3 * i, t_s=i / 10, gray=gray))
    features, _ = extractor.finalize()
    return features["noise_sigma"]


def _meta(width, height, analysis_width, analysis_height, *, rotation_deg=0, encoder="", bit_rate=None, fps=30.0):
    return VideoMeta(
        location="synthetic", container_format="mp4", codec="h264", width=width, height=height,
        rotation_deg=rotation_deg, declared_fps=fps, declared_duration_s=None, declared_frames=0,
        is_stream=False, analysis_width=analysis_width, analysis_height=analysis_height,
        encoder=encoder, bit_rate=bit_rate)


# -- frozen pictures vs still scenes -----------------------------------------------------------------
def test_paused_playback_is_frozen_at_the_right_time(results):
    paused_clip = results["paused"]
    found = paused_clip.of_kind("frozen")
    assert len(found) == 1
    assert found[0].start_s == pytest.approx(4.0, abs=0.2)
    assert found[0].end_s == pytest.approx(10.0, abs=0.2)
    assert paused_clip["frozen_share"] == pytest.approx(6.0 / 14.0, abs=0.05)
    # Outside the pause the camera noise is alive.
    assert paused_clip["noise_sigma"] > 0.5


@dataclass(frozen=True)
class StillCase:
    id: str
    clip: str
    frozen: bool


STILL_CASES = [
    StillCase("rendered-still-is-frozen", "still_render", True),
    StillCase("still-room-with-live-noise", "still_noisy", False),
    # conftest's static room at CRF 23: the encoder holds the noise between keyframes, but each
    # keyframe codes fresh noise, so runs never reach frozen_min_s.
    StillCase("still-room-noise-held-by-encoder", "static_clip", False),
]


@pytest.mark.parametrize("case", STILL_CASES, ids=[c.id for c in STILL_CASES])
def test_frozen_picture_is_not_a_still_room(case, results, static_clip):
    result = run(static_clip) if case.clip == "static_clip" else results[case.clip]
    assert result["repeat_share"] == 0.0    # stillness is never "duplicate frames"
    if case.frozen:
        assert result["frozen_share"] > 0.9
        assert result.of_kind("frozen")
        assert result["noise_alive_share"] == 0.0
    else:
        assert result["frozen_share"] == 0.0
        assert not result.of_kind("frozen")
        assert result["noise_alive_share"] > 0.0


# -- frame-rate conversion cadence ---------------------------------------------------------------------
@dataclass(frozen=True)
class CadenceCase:
    id: str
    clip: str
    content_fps: float
    period_frames: int | None          # None: no cadence expected


CADENCE_CASES = [
    CadenceCase("24-to-30", "conv24_30", 24.0, 5),
    CadenceCase("24-to-30-crf23", "conv24_30_crf23", 24.0, 5),
    CadenceCase("25-to-30", "conv25_30", 25.0, 6),
    CadenceCase("native-30", "native30", 30.0, None),
]


@pytest.fixture(scope="module")
def dense(clips) -> dict[str, Result]:
    """Every decoded frame: the cadence is only visible between consecutive decoded frames."""
    return {case.clip: run(clips[case.clip], sample_fps=0) for case in CADENCE_CASES}


@pytest.mark.parametrize("case", CADENCE_CASES, ids=[c.id for c in CADENCE_CASES])
def test_duplicate_cadence_at_full_frame_rate(case, dense):
    result = dense[case.clip]
    assert result["content_fps"] == pytest.approx(case.content_fps, abs=0.8)
    found = result.of_kind("dup_cadence")
    if case.period_frames is None:
        assert result["repeat_share"] < 0.02
        assert not found
        return
    assert result["cadence_regularity"] >= 0.8
    assert result["repeat_share"] == pytest.approx(1.0 / case.period_frames, abs=0.03)
    assert len(found) == 1
    assert found[0].detail["period_frames"] == case.period_frames
    assert found[0].start_s < 0.5 and found[0].end_s > 5.0     # the whole clip


def test_cadence_is_not_claimed_from_sparse_samples(results):
    """At 10 Hz consecutive decoded frames are never both sampled: say so with NaN."""
    result = results["conv24_30"]
    assert math.isnan(result["content_fps"])
    assert math.isnan(result["cadence_regularity"])
    assert result["repeat_share"] == 0.0
    assert not result.of_kind("dup_cadence")


# -- over-smoothing --------------------------------------------------------------------------------------
def test_upscaled_and_smoothed_footage_lacks_detail(results):
    native, upscaled = results["native360"]["detail_ratio"], results["upscaled360"]["detail_ratio"]
    assert upscaled < 0.8 * native
    assert results["smoothed"]["detail_ratio"] < 0.8 * results["noisy"]["detail_ratio"]


# -- metadata ----------------------------------------------------------------------------------------------
def test_bits_per_pixel_follows_the_bit_rate(results):
    expected = 600_000 / (320 * 180 * FPS)
    assert results["cbr"]["bits_per_pixel"] == pytest.approx(expected, rel=0.35)
    assert results["clean"]["bits_per_pixel"] < results["noisy"]["bits_per_pixel"]


def test_editor_tag_is_reported(results):
    assert results["tagged"]["encoder_is_editor"] == 1.0
    (found,) = results["tagged"].of_kind("editor_tag")
    assert found.detail["encoder"].startswith("HandBrake")
    # Our writer's clips carry ffmpeg's own tag, which is not an editor.
    assert results["cbr"]["encoder_is_editor"] == 0.0
    assert not results["cbr"].of_kind("editor_tag")


@pytest.mark.parametrize("tag, expected", [
    ("Lavf61.7.100", False), ("", False), ("HandBrake 1.7.2", True), ("Adobe Premiere Pro 2024", True),
    ("剪映", True), ("CapCut", True), ("x264 core 164", False),
], ids=["lavf", "none", "handbrake", "premiere", "jianying", "capcut", "x264"])
def test_encoder_tags(tag, expected):
    assert encoder_is_editor(tag) is expected


def test_metadata_columns_are_missing_without_metadata():
    extractor = SignalExtractor()
    extractor.reset(_meta(320, 180, 320, 180, bit_rate=None))
    features, evidence = extractor.finalize()
    assert math.isnan(features["bits_per_pixel"])
    assert math.isnan(features["noise_sigma"]) and math.isnan(features["detail_ratio"])
    assert set(features) == set(SignalExtractor.FEATURES)
    assert evidence == []


# -- contract -----------------------------------------------------------------------------------------------
def test_every_column_and_sane_evidence(results, clips):
    for name, result in results.items():
        columns = [c for c in result.features if c.startswith("signal__")]
        assert columns == list(SignalExtractor.columns()), name
        for evidence in result.evidence:
            assert 0.0 <= evidence.score <= 1.0, (name, evidence)
            assert 0.0 <= evidence.start_s <= evidence.end_s, (name, evidence)


def test_settings_override_frozen_min_s(clips):
    result = run(clips["paused"], frozen_min_s=7.0)
    assert not result.of_kind("frozen")
    assert result["frozen_share"] == 0.0
