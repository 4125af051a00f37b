"""Writers of bad or awkward inputs for the scanner's error-handling tests.

Each public function writes one file into ``directory`` and returns its
path. The first docstring line records what PyAV (FFmpeg 8 / PyAV 18) was
observed to do with the file, so a test can check the scanner's one-line
error against reality; ``tests/test_synth.py`` re-verifies every claim.
``CASES`` maps a case name to a one-argument writer for parametrised tests.
"""

from __future__ import annotations

import pathlib
import struct

import numpy as np

from detector.synth.scenes import moving_scene
from detector.synth.writer import write_audio_only, write_clip, write_image

# Small and short keeps every case fast to write and to probe.
WIDTH, HEIGHT, FPS = 160, 120, 30
_SEED = 1234


def empty_file(directory) -> pathlib.Path:
    """av.open raises InvalidDataError (0-byte empty.mp4)."""
    path = pathlib.Path(directory) / "empty.mp4"
    path.write_bytes(b"")
    return path


def random_bytes_mp4(directory, size=64 * 1024, seed=_SEED) -> pathlib.Path:
    """av.open raises InvalidDataError (64 KiB of seeded random bytes named .mp4)."""
    path = pathlib.Path(directory) / "random_bytes.mp4"
    path.write_bytes(np.random.default_rng(seed).bytes(size))
    return path


def text_file(directory, suffix=".txt") -> pathlib.Path:
    """.txt opens as FFmpeg's "tty" demuxer: a 640x400 "ansi" stream, 42 frames(!); .mp4: av.open raises InvalidDataError."""
    path = pathlib.Path(directory) / f"notes{suffix}"
    lines = [f"line {i}: this is a plain text file, not a video." for i in range(200)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def image_png(directory) -> pathlib.Path:
    """Opens as "png_pipe" with one 160x120 png video stream, no duration, and decodes exactly 1 frame."""
    frame = next(iter(moving_scene(WIDTH, HEIGHT, FPS, 1.0, _SEED)))
    return write_image(pathlib.Path(directory) / "still.png", frame)


def audio_only(directory) -> pathlib.Path:
    """Opens fine (3 s duration) with one AAC audio stream and no video stream."""
    t = np.arange(3 * 16000) / 16000
    samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return write_audio_only(pathlib.Path(directory) / "audio_only.m4a", samples, 16000)


def truncated_mp4(directory, fraction=0.5, *, faststart=True) -> pathlib.Path:
    """faststart: opens (still claims 90 frames) but decodes a prefix, ~40 at 0.5; moov at end: av.open raises InvalidDataError."""
    directory = pathlib.Path(directory)
    kind = "faststart" if faststart else "moov_at_end"
    path = directory / f"truncated_{kind}_{round(fraction * 100)}pct.mp4"
    _write_valid_clip(path, duration_s=3.0, faststart=faststart)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def no_decodable_frame(directory, seed=_SEED) -> pathlib.Path:
    """Opens as a 160x120 h264 stream of 90 packets; decoding each raises InvalidDataError: 0 frames."""
    path = _write_valid_clip(pathlib.Path(directory) / "no_decodable_frame.mp4")
    data = bytearray(path.read_bytes())
    # The avcC parameter sets live in moov, so the container and stream
    # still open; garbage in mdat also breaks the 4-byte NAL length prefixes,
    # so the decoder rejects each packet instead of concealing errors.
    start, end = _mdat_payload(data)
    data[start:end] = np.random.default_rng(seed).bytes(end - start)
    path.write_bytes(bytes(data))
    return path


def one_frame_video(directory) -> pathlib.Path:
    """Opens fine (stream.frames 1, duration 1/30 s) and decodes exactly 1 frame."""
    frames = moving_scene(WIDTH, HEIGHT, FPS, 1.0 / FPS, _SEED)
    return write_clip(pathlib.Path(directory) / "one_frame.mp4", frames, FPS)


def zero_duration_header(directory) -> pathlib.Path:
    """Opens with container.duration None and stream.duration 0, yet stream.frames is 90 and all 90 decode."""
    path = _write_valid_clip(pathlib.Path(directory) / "zero_duration.mp4")
    data = bytearray(path.read_bytes())
    for box in ("mvhd", "tkhd", "mdhd"):
        for start, _ in _find_boxes(data, box):
            _patch_header_duration(data, box, start)
    path.write_bytes(bytes(data))
    return path


def huge_dimension_header(directory) -> pathlib.Path:
    """tkhd and avc1 say 65535x65535, but PyAV reports the SPS size 160x120 and decodes all 90 frames."""
    path = _write_valid_clip(pathlib.Path(directory) / "huge_dimensions.mp4")
    data = bytearray(path.read_bytes())
    for start, _ in _find_boxes(data, "tkhd"):
        version = data[start + 8]
        # tkhd width/height are 16.16 fixed point at the end of the box.
        offset = start + 8 + (88 if version == 1 else 76)
        struct.pack_into(">II", data, offset, 65535 << 16, 65535 << 16)
    for start, _ in _find_boxes(data, "avc1"):
        # VisualSampleEntry: 8-byte header, 24 bytes of reserved/indices,
        # then 16-bit width and height.
        struct.pack_into(">HH", data, start + 32, 65535, 65535)
    path.write_bytes(bytes(data))
    return path


def huge_dimension_y4m(directory) -> pathlib.Path:
    """Opens as "yuv4mpegpipe" with a 16000x16000 rawvideo stream, then yields 0 packets and 0 frames."""
    # 16000 is about the most FFmpeg's av_image_check_size accepts, so the
    # absurd size is reported rather than refused; the 64 bytes of frame
    # data are far short of one 384 MB frame, so demuxing just ends.
    return _write_y4m_header(pathlib.Path(directory) / "huge_dimensions.y4m", 16000)


def unopenable_dimension_y4m(directory) -> pathlib.Path:
    """av.open raises av.error.OSError (errno 16, EBUSY): a .y4m header declaring 100000x100000."""
    return _write_y4m_header(pathlib.Path(directory) / "unopenable_dimensions.y4m", 100000)


def path_with_spaces_and_unicode(directory) -> pathlib.Path:
    """A valid clip at "直播 录像 ünï.mp4": opens and decodes all 90 frames."""
    return _write_valid_clip(pathlib.Path(directory) / "直播 录像 ünï.mp4")


#: Case name -> writer taking only the directory.
CASES = {
    "empty_file": empty_file,
    "random_bytes_mp4": random_bytes_mp4,
    "text_file_txt": lambda d: text_file(d, ".txt"),
    "text_file_mp4": lambda d: text_file(d, ".mp4"),
    "image_png": image_png,
    "audio_only": audio_only,
    "truncated_mp4_faststart": lambda d: truncated_mp4(d, 0.5, faststart=True),
    "truncated_mp4_moov_at_end": lambda d: truncated_mp4(d, 0.5, faststart=False),
    "no_decodable_frame": no_decodable_frame,
    "one_frame_video": one_frame_video,
    "zero_duration_header": zero_duration_header,
    "huge_dimension_header": huge_dimension_header,
    "huge_dimension_y4m": huge_dimension_y4m,
    "unopenable_dimension_y4m": unopenable_dimension_y4m,
    "path_with_spaces_and_unicode": path_with_spaces_and_unicode,
}


def _write_valid_clip(path: pathlib.Path, duration_s=3.0, faststart=False) -> pathlib.Path:
    """The healthy base: a small moving-scene H.264 MP4."""
    frames = moving_scene(WIDTH, HEIGHT, FPS, duration_s, _SEED)
    return write_clip(path, frames, FPS, faststart=faststart)


def _write_y4m_header(path: pathlib.Path, side: int) -> pathlib.Path:
    """A YUV4MPEG2 stream header for side x side frames, then one tiny 'frame'."""
    header = f"YUV4MPEG2 W{side} H{side} F30:1 Ip A1:1 C420jpeg\nFRAME\n".encode("ascii")
    path.write_bytes(header + bytes(64))
    return path


# ISO-BMFF boxes that only contain other boxes (plus, for stsd and sample
# entries, a fixed-size prefix skipped by _CHILD_OFFSET).
_CONTAINER_BOXES = {"moov", "trak", "mdia", "minf", "stbl", "edts", "dinf", "stsd", "avc1"}
_CHILD_OFFSET = {"stsd": 8, "avc1": 78}


def _iter_boxes(data, start: int, end: int):
    """Yield (type, box_start, payload_start, box_end) for boxes in data[start:end]."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:  # 64-bit size follows the type
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        elif size == 0:  # box runs to the end of its parent
            size = end - pos
        if size < header or pos + size > end:
            raise ValueError(f"corrupt box {kind!r} at {pos}")
        yield kind.decode("latin-1"), pos, pos + header, pos + size
        pos += size


def _find_boxes(data, wanted: str, start=0, end=None):
    """All (box_start, box_end) of boxes named ``wanted``, searching the tree."""
    end = len(data) if end is None else end
    found = []
    for kind, box_start, payload, box_end in _iter_boxes(data, start, end):
        if kind == wanted:
            found.append((box_start, box_end))
        if kind in _CONTAINER_BOXES:
            child_start = payload + _CHILD_OFFSET.get(kind, 0)
            found += _find_boxes(data, wanted, child_start, box_end)
    return found


def _mdat_payload(data) -> tuple:
    """(start, end) of the media data, i.e. of all coded samples."""
    for kind, _, payload, box_end in _iter_boxes(data, 0, len(data)):
        if kind == "mdat":
            return payload, box_end
    raise ValueError("no mdat box")


def _patch_header_duration(data: bytearray, box: str, start: int) -> None:
    """Zero the duration field of an mvhd, tkhd or mdhd box at ``start``."""
    version = data[start + 8]
    # Offsets from the version byte: creation/modification times (and, for
    # mvhd/mdhd, timescale; for tkhd, track_ID + reserved) precede duration.
    if box == "tkhd":
        offset, width = (4 + 8 + 8 + 4 + 4, 8) if version == 1 else (4 + 4 + 4 + 4 + 4, 4)
    else:
        offset, width = (4 + 8 + 8 + 4, 8) if version == 1 else (4 + 4 + 4 + 4, 4)
    data[start + 8 + offset:start + 8 + offset + width] = bytes(width)
