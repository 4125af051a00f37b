"""The sampler: true timestamps, sampling rate, rotation, sizes, triage, and one decode pass."""

from __future__ import annotations

import numpy as np
import pytest

from detector.config import ScanConfig
from detector.extractors import build_extractors
from detector.extractors.base import FeatureExtractor
from detector.pipeline import extract, feature_columns
from detector.source import SourceError, VideoSource, analysis_size
from detector.synth.scenes import moving_scene
from detector.synth.writer import write_clip
from helpers import CountingSource


def sampled(path, **config) -> tuple[list, VideoSource]:
    with VideoSource(path, ScanConfig(**config)) as source:
        frames = [(f.t_s, f.gray.shape) for f in source.frames()]
    return frames, source


def test_default_sampling_takes_ten_frames_per_second_with_true_times(moving_clip):
    frames, source = sampled(moving_clip)
    times = np.array([t for t, _ in frames])
    assert times[0] == 0.0
    assert len(frames) == 40
    np.testing.assert_allclose(np.diff(times), 0.1, atol=1e-3)
    assert source.stats.frames_decoded == 120
    assert source.stats.duration_s == pytest.approx(4.0, abs=1e-3)


def test_sample_fps_zero_takes_every_frame(moving_clip):
    frames, source = sampled(moving_clip, sample_fps=0)
    assert len(frames) == source.stats.frames_decoded == 120


def test_sampling_a_25fps_clip_follows_the_time_grid(media_dir):
    path = media_dir / "p25.mp4"
    write_clip(path, moving_scene(160, 120, 25, 2.0, seed=3), 25)
    frames, _ = sampled(path, sample_fps=10)
    times = np.array([t for t, _ in frames])
    # 25 fps cannot hit 0.1 s exactly: each sample is the first frame at or after the grid time.
    grid = np.arange(len(times)) * 0.1
    assert np.all(times >= grid - 1e-3) and np.all(times < grid + 0.04 + 1e-3)
    assert len(times) == 20


def test_variable_frame_rate_timestamps_come_from_pts(media_dir):
    rng = np.random.default_rng(0)
    pts_s = np.cumsum(rng.uniform(0.02, 0.09, 60))
    pts_s -= pts_s[0]
    path = media_dir / "vfr.mkv"
    write_clip(path, moving_scene(160, 120, 30, 2.0, seed=4), 30, pts_s=list(pts_s))
    frames, source = sampled(path, sample_fps=0)
    np.testing.assert_allclose([t for t, _ in frames], pts_s, atol=2e-3)
    assert source.stats.interval_cv > 0.2
    assert source.stats.duration_s == pytest.approx(pts_s[-1] + np.diff(pts_s).mean(), abs=1e-2)


def test_rotation_metadata_is_applied(media_dir):
    # A landscape picture with a bright block top-left, stored with a 90 degree
    # counter-clockwise display rotation: the analysed frame is portrait, block bottom-left.
    image = np.full((180, 320, 3), 40, np.uint8)
    image[:40, :40] = 255
    path = media_dir / "rot90.mp4"
    write_clip(path, [image] * 15, 15, rotation_deg=90)
    with VideoSource(path) as source:
        frame = next(source.frames())
        assert source.meta.rotation_deg == 90
    assert frame.gray.shape == (320, 180)
    assert frame.gray[-20:, :20].mean() > 200 and frame.gray[:20, :20].mean() < 80
    assert frame.bgr.shape == (320, 180, 3)


@pytest.mark.parametrize(
    "size, long_side, expected",
    [((1280, 720), 320, (320, 180)), ((720, 1280), 320, (180, 320)), ((160, 120), 320, (160, 120)),
     ((1921, 1081), 320, (320, 180))],
    ids=["landscape", "portrait", "never-upscaled", "odd-size"],
)
def test_analysis_size_keeps_aspect_and_even_sides(size, long_side, expected):
    assert analysis_size(*size, long_side) == expected


def test_colour_is_converted_on_demand_and_right(media_dir):
    image = np.zeros((120, 160, 3), np.uint8)
    image[:, :80] = (0, 0, 255)      # red left half (BGR)
    image[:, 80:] = (255, 0, 0)      # blue right half
    path = media_dir / "colour.mp4"
    write_clip(path, [image] * 10, 10)
    with VideoSource(path) as source:
        frame = next(source.frames())
        assert "bgr" not in frame.__dict__          # nothing converted until asked
        bgr = frame.bgr.astype(int)
    left, right = bgr[:, :60].mean(axis=(0, 1)), bgr[:, 100:].mean(axis=(0, 1))
    assert left[2] > 200 and left[0] < 60
    assert right[0] > 200 and right[2] < 60


def test_unsampled_frames_are_never_converted(moving_clip, monkeypatch):
    converted = []
    original = VideoSource._convert

    def counting(self, av_frame, index, t_s, meta, decoded=()):
        converted.append(index)
        return original(self, av_frame, index, t_s, meta, decoded)

    monkeypatch.setattr(VideoSource, "_convert", counting)
    frames, source = sampled(moving_clip, sample_fps=5)
    assert len(converted) == len(frames) == source.stats.frames_sampled == 20
    assert source.stats.frames_decoded == 120


def test_triage_decodes_keyframes_only(moving_clip):
    frames, source = sampled(moving_clip, triage=True)
    # 1 s GOP over 4 s: four keyframes, nothing else decoded.
    assert source.stats.frames_decoded == 4
    assert [round(t, 3) for t, _ in frames] == [0.0, 1.0, 2.0, 3.0]


class RecordingExtractor(FeatureExtractor):
    name = "recording"
    FEATURES = ("frames",)

    def reset(self, meta):
        super().reset(meta)
        self.times = []

    def update(self, frame):
        self.times.append(frame.t_s)

    def finalize(self):
        return {"frames": float(len(self.times))}, []


def test_each_frame_is_decoded_once_however_many_extractors_run(moving_clip):
    counts = {}
    for n_extra in (0, 1, 4):
        CountingSource.decoded = 0
        registered = build_extractors()
        extras = [RecordingExtractor() for _ in range(n_extra)]
        result = extract(CountingSource(moving_clip), ScanConfig(), registered + extras)
        counts[n_extra] = CountingSource.decoded
        for extra in extras:
            assert extra.times == pytest.approx([i / 10 for i in range(40)], abs=1e-3)
        assert result.stats.frames_sampled == 40
    assert counts == {0: 120, 1: 120, 4: 120}


def test_extract_returns_every_declared_column(moving_clip):
    result = extract(moving_clip)
    assert list(result.features) == feature_columns()
    assert result.features["basic__sample_fps"] == pytest.approx(10.0, rel=0.01)
    assert result.features["stream__fps"] == pytest.approx(30.0, rel=0.01)
    assert result.meta.width == 640 and result.meta.analysis_width == 320


def test_still_room_is_static_and_moving_scene_is_not(static_clip, moving_clip):
    still = extract(static_clip)
    moving = extract(moving_clip)
    assert still.features["basic__static_share"] > 0.95
    assert [e.kind for e in still.evidence] == ["static"]
    assert still.evidence[0].end_s - still.evidence[0].start_s > 7.0
    assert moving.features["basic__static_share"] < 0.05
    assert moving.features["basic__motion_mean"] > still.features["basic__motion_mean"]
    assert not moving.evidence


def test_source_is_a_context_manager_that_releases_the_container(moving_clip):
    with VideoSource(moving_clip) as source:
        assert source._container is not None
    assert source._container is None


def test_frames_can_be_iterated_once_only(moving_clip):
    with VideoSource(moving_clip) as source:
        list(source.frames())
        with pytest.raises(RuntimeError):
            list(source.frames())


def test_missing_file_raises_a_one_line_source_error(tmp_path):
    with pytest.raises(SourceError, match="^no such file$"):
        VideoSource(tmp_path / "nope.mp4").open()


def test_max_duration_stops_decoding_early(moving_clip):
    frames, source = sampled(moving_clip, max_duration_s=1.0)
    assert source.stats.stopped_early == "time limit"
    assert max(t for t, _ in frames) <= 1.0
