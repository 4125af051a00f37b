"""Tests of the synthetic media tools: the clip writer, the scenes, and the
broken-media writers (whose docstrings must describe what PyAV really does)."""

from __future__ import annotations

import itertools
import struct
import weakref
from fractions import Fraction

import av
import broken_media
import cv2
import numpy as np
import pytest

from detector.synth import scenes
from detector.synth.writer import write_audio_only, write_clip, write_image

W, H, FPS = 160, 120, 30


def _frames(n, width=W, height=H):
    """Cheap frames with a moving bar, so every frame differs."""
    for index in range(n):
        frame = np.full((height, width, 3), 60, np.uint8)
        x = (index * 4) % (width - 10)
        frame[:, x:x + 10] = (255, 200, 40)
        yield frame


def _decode(path):
    """(video stream facts, decoded frames' times, rotations, sizes)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        facts = {"rate": stream.average_rate, "frames": stream.frames,
                 "streams": [s.type for s in container.streams]}
        times, rotations, sizes = [], set(), set()
        for frame in container.decode(stream):
            times.append(frame.time)
            rotations.add(frame.rotation % 360)
            sizes.add((frame.width, frame.height))
    return facts, times, rotations, sizes


def _blur_diff(a, b):
    """Mean absolute difference after a blur that averages sensor noise away."""
    a = cv2.GaussianBlur(a, (0, 0), 2).astype(np.float32)
    b = cv2.GaussianBlur(b, (0, 0), 2).astype(np.float32)
    return float(np.abs(a - b).mean())


# --- writer ---------------------------------------------------------------

def test_write_clip_round_trips_count_size_rate_and_gop(tmp_path):
    path = write_clip(tmp_path / "clip.mp4", _frames(60), FPS, gop_s=0.5)
    facts, times, rotations, sizes = _decode(path)
    assert len(times) == 60 and sizes == {(W, H)} and rotations == {0}
    assert facts["rate"] == FPS
    assert np.allclose(np.diff(times), 1 / FPS, atol=1e-4)
    with av.open(str(path)) as container:
        keys = [i for i, p in enumerate(p for p in container.demux(video=0) if p.size)
                if p.is_keyframe]
    # Packets come in decode order, but keyframes sit at GOP starts anyway.
    assert keys == [0, 15, 30, 45]


@pytest.mark.parametrize("name, codec", [
    ("a.mp4", "libx264"), ("b.mp4", "mpeg4"), ("c.mov", "libx264"), ("d.mov", "mpeg4"),
    ("e.mkv", "libx264"), ("f.webm", "libvpx"), ("g.flv", "flv"), ("h.flv", "libx264"),
    ("i.ts", "libx264"), ("j.avi", "mpeg4"), ("k.avi", "libx264"),
])
def test_each_container_format_round_trips(tmp_path, name, codec):
    path = write_clip(tmp_path / name, _frames(30), FPS, codec=codec)
    facts, times, _, sizes = _decode(path)
    assert len(times) == 30 and sizes == {(W, H)}
    # Presentation order must come back monotonic, one frame apart.
    assert np.allclose(np.diff(times), 1 / FPS, atol=2e-3)


def test_explicit_container_format_overrides_suffix(tmp_path):
    path = write_clip(tmp_path / "clip.bin", _frames(10), FPS, container_format="matroska")
    with av.open(str(path)) as container:
        assert "matroska" in container.format.name


def test_bitrate_mode_and_ntsc_rate(tmp_path):
    path = write_clip(tmp_path / "clip.mp4", _frames(30), 29.97, bitrate_kbps=200)
    facts, times, _, _ = _decode(path)
    assert facts["rate"] == Fraction(30000, 1001) and len(times) == 30


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_rotation_metadata_reads_back(tmp_path, degrees):
    path = write_clip(tmp_path / "rot.mp4", _frames(5), FPS, rotation_deg=degrees)
    _, _, rotations, sizes = _decode(path)
    # PyAV reports e.g. 270 as -90, hence the modulo in _decode.
    assert rotations == {degrees} and sizes == {(W, H)}


@pytest.mark.parametrize("name", ["vfr.mp4", "vfr.mkv"])
def test_variable_frame_rate_pts_read_back(tmp_path, name):
    pts_s = [0.0, 0.05, 0.06, 0.2, 0.21, 0.5, 0.52, 0.9, 1.0, 1.5]
    path = write_clip(tmp_path / name, _frames(len(pts_s)), FPS, pts_s=pts_s)
    _, times, _, _ = _decode(path)
    assert np.allclose(times, pts_s, atol=1e-3)  # Matroska keeps milliseconds


def test_audio_track_is_muxed_alongside_video(tmp_path):
    audio = (0.2 * np.sin(np.arange(2 * 16000) * 0.1)).astype(np.float32)
    path = write_clip(tmp_path / "av.mp4", _frames(60), FPS, audio=audio)
    with av.open(str(path)) as container:
        (astream,) = container.streams.audio
        assert astream.codec_context.name == "aac" and astream.sample_rate == 16000
        samples = sum(frame.samples for frame in container.decode(astream))
        assert samples == pytest.approx(len(audio), abs=2048)
    facts, times, _, _ = _decode(path)
    assert len(times) == 60


def test_faststart_puts_moov_before_mdat(tmp_path):
    def top_level(path):
        data = path.read_bytes()
        return [kind for kind, *_ in broken_media._iter_boxes(data, 0, len(data))]

    fast = top_level(write_clip(tmp_path / "fast.mp4", _frames(10), FPS, faststart=True))
    slow = top_level(write_clip(tmp_path / "slow.mp4", _frames(10), FPS))
    assert fast.index("moov") < fast.index("mdat")
    assert slow.index("moov") > slow.index("mdat")


def test_write_audio_only_and_image(tmp_path):
    m4a = write_audio_only(tmp_path / "a.m4a", np.zeros(16000, np.float32), 16000)
    with av.open(str(m4a)) as container:
        assert [s.type for s in container.streams] == ["audio"]
    png = write_image(tmp_path / "still.png", next(_frames(1)))
    assert cv2.imread(str(png)).shape == (H, W, 3)


@pytest.mark.parametrize("frames", [
    [np.zeros((121, 160, 3), np.uint8)],                               # odd height
    [np.zeros((120, 160, 3), np.uint8), np.zeros((120, 162, 3), np.uint8)],  # size change
    [np.zeros((120, 160), np.uint8)],                                  # not BGR
    [],                                                                 # nothing
])
def test_bad_frames_raise_value_error(tmp_path, frames):
    with pytest.raises(ValueError):
        write_clip(tmp_path / "bad.mp4", frames, FPS)


@pytest.mark.parametrize("count, pts_s", [
    (3, [0.0, 0.1]), (2, [0.0, 0.1, 0.2]), (3, [0.0, 0.2, 0.1]),
])
def test_pts_must_match_frames_and_increase(tmp_path, count, pts_s):
    with pytest.raises(ValueError):
        write_clip(tmp_path / "vfr.mp4", _frames(count), FPS, pts_s=pts_s)
    assert not (tmp_path / "vfr.mp4").exists()  # no half-written clip left behind


def test_frames_are_streamed_not_collected(tmp_path):
    refs = []

    def frames():
        for frame in _frames(20):
            # By the time a frame is requested, the writer has let go of the
            # one before last: it never accumulates frames.
            if len(refs) >= 2:
                assert refs[-2]() is None
            refs.append(weakref.ref(frame))
            yield frame

    write_clip(tmp_path / "s.mp4", frames(), FPS)
    assert len(refs) == 20


# --- scenes ---------------------------------------------------------------

SCENES = {
    "moving": lambda seed: scenes.moving_scene(W, H, FPS, 1.0, seed),
    "static": lambda seed: scenes.static_scene(W, H, FPS, 1.0, seed),
    "cut": lambda seed: scenes.cut_scene(W, H, FPS, 1.0, seed, [0.5])[0],
    "looped": lambda seed: scenes.looped_scene(W, H, FPS, 1.0, seed, 0.4)[0],
}


@pytest.mark.parametrize("kind", SCENES)
def test_scenes_are_deterministic_for_a_seed(kind):
    first, again, other = (list(SCENES[kind](seed)) for seed in (3, 3, 4))
    assert len(first) == FPS and first[0].shape == (H, W, 3) and first[0].dtype == np.uint8
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], other[0])


def test_looped_scene_repeats_with_fresh_noise():
    frames, period_s = scenes.looped_scene(W, H, FPS, 3.0, 5, 1.0)
    frames = list(frames)
    period = round(period_s * FPS)
    assert period_s == 1.0 and len(frames) == 90
    for index in range(0, len(frames) - period, 7):
        a, b = frames[index], frames[index + period]
        assert _blur_diff(a, b) < 0.6          # same content ...
        assert not np.array_equal(a, b)        # ... under different noise
    # The first pass is exactly moving_scene with the same seed.
    moving = itertools.islice(scenes.moving_scene(W, H, FPS, 3.0, 5), period)
    assert all(np.array_equal(a, b) for a, b in zip(frames, moving))


def test_moving_scene_never_repeats():
    frames = list(scenes.moving_scene(W, H, FPS, 3.0, 5))
    for lag in (15, 30, 45):
        diffs = [_blur_diff(frames[i], frames[i + lag]) for i in range(0, len(frames) - lag, 5)]
        assert min(diffs) > 4.0
    consecutive = [_blur_diff(a, b) for a, b in zip(frames, frames[1:])]
    assert min(consecutive) > 0.5  # something moves between every pair of frames


def test_static_scene_changes_only_by_sensor_noise():
    frames = list(scenes.static_scene(W, H, FPS, 1.0, 5))
    assert max(_blur_diff(frames[0], f) for f in frames[1:]) < 0.6
    # Two independent sigma-2 noises differ with sigma 2 * sqrt(2).
    delta = frames[0].astype(np.float32) - frames[1]
    assert 2.3 < float(delta.std()) < 3.4


def test_cut_scene_cuts_exactly_at_the_returned_times():
    frames, cuts_s = scenes.cut_scene(W, H, FPS, 3.0, 5, [1.0, 2.02])
    frames = list(frames)
    assert cuts_s == [1.0, pytest.approx(61 / FPS)]  # 2.02 s rounds up to frame 61
    diffs = [_blur_diff(a, b) for a, b in zip(frames, frames[1:])]
    cut_frames = {round(t * FPS) for t in cuts_s}
    for index, diff in enumerate(diffs, start=1):
        if index in cut_frames:
            assert diff > 20
        else:
            assert diff < 5


def test_cut_scene_rejects_cuts_outside_the_clip():
    with pytest.raises(ValueError):
        scenes.cut_scene(W, H, FPS, 1.0, 0, [1.5])


# --- broken media ---------------------------------------------------------

def _observe(path):
    """What PyAV does with a file: open error, streams, sizes, frames decoded."""
    try:
        container = av.open(str(path))
    except av.FFmpegError as error:
        return {"open_error": type(error).__name__, "errno": error.errno}
    with container:
        seen = {"open_error": None, "format": container.format.name,
                "duration": container.duration,
                "streams": [(s.type, s.codec_context.name) for s in container.streams]}
        if not container.streams.video:
            return seen
        stream = container.streams.video[0]
        seen.update(size=(stream.width, stream.height), stream_duration=stream.duration,
                    declared_frames=stream.frames, packets=0, frames=0, decode_errors=set())
        for packet in container.demux(stream):
            seen["packets"] += bool(packet.size)
            try:
                seen["frames"] += len(packet.decode())
            except av.FFmpegError as error:
                seen["decode_errors"].add(type(error).__name__)
                seen.setdefault("failed_packets", 0)
                seen["failed_packets"] += 1
    return seen


MP4 = "mov,mp4,m4a,3gp,3g2,mj2"
H264 = [("video", "h264")]

# Each case's observed behaviour, as its docstring in broken_media states it.
EXPECTED = {
    "empty_file": {"open_error": "InvalidDataError"},
    "random_bytes_mp4": {"open_error": "InvalidDataError"},
    "text_file_txt": {"format": "tty", "streams": [("video", "ansi")], "size": (640, 400),
                      "frames": 42, "decode_errors": set()},
    "text_file_mp4": {"open_error": "InvalidDataError"},
    "image_png": {"format": "png_pipe", "streams": [("video", "png")], "size": (W, H),
                  "duration": None, "frames": 1},
    "audio_only": {"format": MP4, "streams": [("audio", "aac")], "duration": 3_000_000},
    "truncated_mp4_faststart": {"format": MP4, "declared_frames": 90, "duration": 3_000_000,
                                # x264 output varies slightly run to run, so
                                # the cut lands at a slightly different frame.
                                "frames": lambda n: 30 <= n <= 50,
                                "decode_errors": lambda e: e <= {"InvalidDataError"}},
    "truncated_mp4_moov_at_end": {"open_error": "InvalidDataError"},
    "no_decodable_frame": {"format": MP4, "streams": H264, "size": (W, H), "packets": 90,
                           "failed_packets": 90, "frames": 0,
                           "decode_errors": {"InvalidDataError"}},
    "one_frame_video": {"streams": H264, "declared_frames": 1, "duration": 33_333,
                        "frames": 1},
    "zero_duration_header": {"duration": None, "stream_duration": 0, "declared_frames": 90,
                             "frames": 90, "decode_errors": set()},
    "huge_dimension_header": {"streams": H264, "size": (W, H), "frames": 90,
                              "decode_errors": set()},
    "huge_dimension_y4m": {"format": "yuv4mpegpipe", "streams": [("video", "rawvideo")],
                           "size": (16000, 16000), "packets": 0, "frames": 0},
    "unopenable_dimension_y4m": {"open_error": "OSError", "errno": 16},
    "path_with_spaces_and_unicode": {"streams": H264, "size": (W, H), "frames": 90,
                                     "decode_errors": set()},
}


def test_every_broken_media_case_has_an_expectation():
    assert set(EXPECTED) == set(broken_media.CASES)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_broken_media_behaves_as_documented(tmp_path, case):
    path = broken_media.CASES[case](tmp_path)
    assert path.exists() and path.parent == tmp_path
    seen = _observe(path)
    for key, expected in EXPECTED[case].items():
        # An expectation is either the exact value or a predicate on it.
        ok = expected(seen.get(key)) if callable(expected) else seen.get(key) == expected
        assert ok, f"{case}: {key} is {seen.get(key)!r}, expected {expected!r}"


def test_broken_media_docstrings_are_one_line():
    writers = [getattr(broken_media, name) for name in dir(broken_media)
               if not name.startswith("_") and callable(getattr(broken_media, name))
               and getattr(broken_media, name).__module__ == broken_media.__name__]
    assert len(writers) >= 12
    for writer in writers:
        assert writer.__doc__ and "\n" not in writer.__doc__.strip(), writer.__name__


def test_truncated_faststart_decodes_a_prefix_growing_with_fraction(tmp_path):
    decoded = [_observe(broken_media.truncated_mp4(tmp_path, fraction))["frames"]
               for fraction in (0.3, 0.7)]
    assert 0 < decoded[0] < decoded[1] < 90


def test_header_patches_hit_the_intended_boxes(tmp_path):
    zero = broken_media.zero_duration_header(tmp_path).read_bytes()
    for box in ("mvhd", "tkhd", "mdhd"):
        (start, _), = broken_media._find_boxes(zero, box)
        assert zero[start + 8] == 0  # version 0: 32-bit fields
        offset = start + 8 + (20 if box == "tkhd" else 16)
        assert struct.unpack_from(">I", zero, offset)[0] == 0
    huge = broken_media.huge_dimension_header(tmp_path).read_bytes()
    (avc1, _), = broken_media._find_boxes(huge, "avc1")
    assert struct.unpack_from(">HH", huge, avc1 + 32) == (65535, 65535)
    (tkhd, _), = broken_media._find_boxes(huge, "tkhd")
    assert struct.unpack_from(">II", huge, tkhd + 8 + 76) == (65535 << 16, 65535 << 16)


def test_unicode_path_name(tmp_path):
    path = broken_media.path_with_spaces_and_unicode(tmp_path)
    assert " " in path.name and "直播" in path.name and "ü" in path.name
