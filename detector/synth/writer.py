"""Write synthetic clips, audio files and images with PyAV / OpenCV.

No ffmpeg command-line tool is assumed, so everything is muxed through PyAV.
Frames are streamed: ``write_clip`` consumes any iterable of BGR frames and
never holds more than one of them, so long 720p clips stay cheap in memory.
"""

from __future__ import annotations

import contextlib
import itertools
import pathlib
from fractions import Fraction
from typing import Iterable, Iterator, Optional, Sequence

import av
import cv2
import numpy as np

#: Container chosen from the file suffix when ``container_format`` is omitted.
FORMAT_BY_SUFFIX = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".m4a": "ipod",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
    ".flv": "flv",
    ".ts": "mpegts",
    ".avi": "avi",
    ".m3u8": "hls",  # writes .ts segments next to the playlist
}

#: Fine time base for variable-frame-rate clips (the MPEG-TS clock).
VFR_TIME_BASE = Fraction(1, 90000)

_X264_CODECS = {"libx264", "h264"}
_VPX_CODECS = {"libvpx", "libvpx-vp9", "vp8", "vp9"}
# Encoders restricted to the MPEG-4 part 2 / H.263 style of rate control.
_QSCALE_CODECS = {"mpeg4", "flv", "flv1", "h263", "h263p", "mpeg2video"}
# These encoders have no B-frames at all; asking for them fails to open.
_NO_BFRAME_CODECS = {"flv", "flv1", "h263", "h263p"} | _VPX_CODECS
# MPEG-4 part 2 stores the time-base denominator on 16 bits.
_MAX_TB_DEN = {"mpeg4": 65535, "flv": 65535, "flv1": 65535, "h263": 65535, "h263p": 65535}
_ROTATIONS = (0, 90, 180, 270)
_FF_QP2LAMBDA = 118  # libavcodec's lambda per quantiser step, for global_quality
_AUDIO_FRAME_SAMPLES = 1024  # one AAC frame; keeps audio/video interleaving fine


def write_clip(
    path,
    frames: Iterable[np.ndarray],
    fps: float,
    *,
    codec: str = "libx264",
    bitrate_kbps: Optional[float] = None,
    crf: Optional[float] = None,
    gop_s: float = 2.0,
    bframes: int = 2,
    preset: str = "veryfast",
    faststart: bool = False,
    rotation_deg: int = 0,
    pts_s: Optional[Sequence[float]] = None,
    audio: Optional[np.ndarray] = None,
    audio_rate: int = 16000,
    container_format: Optional[str] = None,
    threads: Optional[int] = None,
) -> pathlib.Path:
    """Encode BGR uint8 ``frames`` into a video file at ``path`` and return it.

    Defaults mimic a streaming encoder: H.264 yuv420p, a fixed keyframe
    interval of ``round(gop_s * fps)`` frames (scene-cut keyframes disabled, as
    streaming services require), ``bframes`` B-frames, x264 ``preset``, and
    either a CBR-like ``bitrate_kbps`` target or constant quality ``crf``
    (default 23; mapped to an approximate qscale for mpeg4/flv).

    ``codec`` may also be "mpeg4", "libvpx" (webm) or "flv"; the container
    comes from the suffix of ``path`` unless ``container_format`` is given.
    ``faststart`` moves the mp4/mov index (moov) before the media data.
    ``threads=1`` encodes on one thread, which removes the run-to-run differences
    of x264's frame threads under a rate cap (the corpus uses it). It is not a
    guarantee of identical bytes: inside one long-running process two encodes of
    the same frames have still been seen to differ now and then.
    ``rotation_deg`` (0/90/180/270, counter-clockwise as PyAV's
    ``VideoFrame.rotation`` reads it back) is stored as a display matrix.
    ``pts_s`` gives per-frame presentation times in seconds (variable frame
    rate); ``audio`` is a mono float array in [-1, 1] at ``audio_rate``, muxed
    as AAC (Opus in webm) and interleaved with the video.
    """
    path = pathlib.Path(path)
    fmt = container_format or _format_for_suffix(path)
    if rotation_deg not in _ROTATIONS:
        raise ValueError(f"rotation_deg must be one of {_ROTATIONS}, got {rotation_deg}")
    if pts_s is not None:
        _check_pts(pts_s, fmt)
    frame_iter = iter(frames)
    first = next(frame_iter, None)
    if first is None:
        raise ValueError("no frames to write")
    size = _frame_size(first)
    rate = _frame_rate(fps)

    with _output(path, fmt, _container_options(fmt, faststart)) as container:
        video = _add_video_stream(container, codec, rate, size, fmt,
                                  bitrate_kbps=bitrate_kbps, crf=crf, gop_s=gop_s,
                                  bframes=bframes, preset=preset, vfr=pts_s is not None,
                                  threads=threads)
        if rotation_deg:
            video.set_display_rotation(rotation_deg)
        feeder = None if audio is None else _AudioFeeder(container, fmt, audio, audio_rate)
        frames_all = _prepended([first], frame_iter)
        del first  # hold no frame beyond the one being encoded
        count = _encode_video(container, video, frames_all, _frame_times(rate, pts_s), size, feeder)
        if pts_s is not None and count != len(pts_s):
            raise ValueError(f"{count} frames but {len(pts_s)} pts_s entries")
        if feeder is not None:
            feeder.finish()
    return path


def _encode_video(container, video, frames, times, size, feeder) -> int:
    """Encode and mux every frame, interleaving audio, flush; return the count."""
    time_base = video.codec_context.time_base
    count = 0
    for bgr in frames:
        if _frame_size(bgr) != size:
            raise ValueError(f"frame size {bgr.shape[:2]} differs from the first frame's {size}")
        start_end = next(times, None)
        if start_end is None:
            raise ValueError("more frames than pts_s entries")
        frame = _to_yuv420p(bgr)
        frame.pts = round(Fraction(start_end[0]) / time_base)
        frame.time_base = time_base
        container.mux(video.encode(frame))
        if feeder is not None:
            # Audio is written up to the end of this frame so the muxer
            # never has to buffer a long run of one stream.
            feeder.feed_until(start_end[1])
        count += 1
    container.mux(video.encode(None))
    return count


@contextlib.contextmanager
def _output(path: pathlib.Path, fmt: str, options: dict):
    """An output container that is closed on success and deleted on any failure:
    a half-written clip must not be mistaken for a good one."""
    container = av.open(str(path), mode="w", format=fmt, options=options)
    try:
        yield container
    except BaseException:
        _close_quietly(container)
        path.unlink(missing_ok=True)
        raise
    container.close()


def _close_quietly(container) -> None:
    """Close a container that is already failing, keeping the first error."""
    try:
        container.close()
    except Exception:  # noqa: BLE001 - the original exception matters more
        pass


def write_audio_only(path, samples: np.ndarray, rate: int) -> pathlib.Path:
    """Write mono float ``samples`` in [-1, 1] as an AAC-only .m4a/.mp4 file."""
    path = pathlib.Path(path)
    fmt = _format_for_suffix(path)
    with _output(path, fmt, {}) as container:
        _AudioFeeder(container, fmt, samples, rate).finish()
    return path


def write_image(path, bgr: np.ndarray) -> pathlib.Path:
    """Write a BGR image (format from the suffix, e.g. .png/.jpg) with OpenCV."""
    path = pathlib.Path(path)
    # cv2.imencode + write_bytes rather than cv2.imwrite: imwrite cannot open
    # non-ASCII paths on every platform.
    ok, encoded = cv2.imencode(path.suffix, bgr)
    if not ok:
        raise ValueError(f"OpenCV could not encode an image as {path.suffix!r}")
    path.write_bytes(encoded.tobytes())
    return path


def _prepended(holder: list, rest: Iterator) -> Iterator:
    """Yield the single item in ``holder``, then ``rest``.

    Unlike itertools.chain([item], rest) this keeps no reference to the item
    once it is consumed (a list iterator may hold on to its list).
    """
    yield holder.pop()
    yield from rest


def _format_for_suffix(path: pathlib.Path) -> str:
    """Container format name for the file suffix, or a clear error."""
    try:
        return FORMAT_BY_SUFFIX[path.suffix.lower()]
    except KeyError:
        raise ValueError(
            f"cannot pick a container for suffix {path.suffix!r}; pass container_format"
        ) from None


def _frame_size(bgr: np.ndarray) -> tuple:
    """(height, width) of a BGR uint8 frame with even sides, else ValueError."""
    if not (isinstance(bgr, np.ndarray) and bgr.dtype == np.uint8
            and bgr.ndim == 3 and bgr.shape[2] == 3):
        raise ValueError("frames must be HxWx3 uint8 BGR numpy arrays")
    height, width = bgr.shape[:2]
    if height % 2 or width % 2 or not height or not width:
        # yuv420p subsamples chroma by two in both directions.
        raise ValueError(f"frame width and height must be even and non-zero, got {width}x{height}")
    return height, width


def _to_yuv420p(bgr: np.ndarray) -> av.VideoFrame:
    """BGR -> yuv420p VideoFrame via OpenCV.

    OpenCV's I420 conversion uses the same BT.601 limited-range matrix as
    swscale's default (luma within one level) but is ~10x faster, which
    matters for minutes of 720p.
    """
    return av.VideoFrame.from_ndarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420), format="yuv420p")


def _frame_rate(fps: float) -> Fraction:
    """Exact rational frame rate; 29.97-style rates become 30000/1001."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    ntsc = round(fps * 1.001)
    if abs(fps - round(fps)) > 1e-6 and abs(fps - ntsc / 1.001) < 5e-3:
        # 29.97, 59.94, 23.976 ... are really the NTSC rates N*1000/1001.
        return Fraction(ntsc * 1000, 1001)
    return Fraction(fps).limit_denominator(1001)


def _check_pts(pts_s: Sequence[float], fmt: str) -> None:
    """Reject presentation times a container cannot carry."""
    if fmt == "avi":
        # AVI has no timestamps: it would pad every 1/90000 s tick with empty chunks.
        raise ValueError("variable frame rate (pts_s) is not supported in AVI")
    times = [float(t) for t in pts_s]
    if not times or times[0] < 0 or any(b <= a for a, b in zip(times, times[1:])):
        raise ValueError("pts_s must be non-empty, non-negative and strictly increasing")


def _frame_times(rate: Fraction, pts_s: Optional[Sequence[float]]) -> Iterator[tuple]:
    """(start_s, end_s) of each frame, at constant rate or from ``pts_s``."""
    if pts_s is None:
        return ((Fraction(i) / rate, Fraction(i + 1) / rate) for i in itertools.count())
    times = [float(t) for t in pts_s]
    # The last frame is shown for one nominal frame interval.
    ends = times[1:] + [times[-1] + float(1 / rate)]
    return iter(list(zip(times, ends)))


def _container_options(fmt: str, faststart: bool) -> dict:
    """Muxer options; faststart only means something for mp4-family muxers."""
    if faststart and fmt in ("mp4", "mov", "ipod"):
        return {"movflags": "+faststart"}
    return {}


def _add_video_stream(container, codec, rate, size, fmt, *, bitrate_kbps, crf,
                      gop_s, bframes, preset, vfr, threads=None):
    """Add and configure the video stream for ``codec`` (see ``write_clip``)."""
    height, width = size
    gop = max(1, round(gop_s * float(rate)))
    if codec in _NO_BFRAME_CODECS or fmt == "avi":
        # AVI stores no presentation times, so reordered B-frames would come
        # back with decode-order timestamps.
        bframes = 0
    options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "bf": str(bframes)}
    stream = container.add_stream(codec, rate=rate)
    stream.width = width
    stream.height = height
    stream.pix_fmt = "yuv420p"
    ctx = stream.codec_context
    ctx.gop_size = gop
    # PyAV defaults encoders to slice threading (several slices per picture);
    # OBS and the ffmpeg CLI use frame threads with one slice, as real
    # streams do. Same speed. Note x264 output is not always bit-identical
    # from run to run (threads, VBV, heights not a multiple of 16), so tests
    # must not depend on exact bytes or sizes.
    ctx.thread_type = "FRAME"
    if threads is not None:
        ctx.thread_count = threads
        if codec in _X264_CODECS:
            options["threads"] = str(threads)
    if vfr:
        den = min(VFR_TIME_BASE.denominator, _MAX_TB_DEN.get(codec, VFR_TIME_BASE.denominator))
        ctx.time_base = Fraction(1, den)
    else:
        ctx.time_base = 1 / rate
    quality = 23 if crf is None else crf
    if bitrate_kbps is not None:
        ctx.bit_rate = int(bitrate_kbps * 1000)
    if codec in _X264_CODECS:
        options["preset"] = preset
        if bitrate_kbps is not None:
            # Cap the rate with a ~1 s buffer like a CBR streaming encoder.
            options.update(maxrate=f"{int(bitrate_kbps)}k", bufsize=f"{int(bitrate_kbps)}k")
        else:
            options["crf"] = str(quality)
    elif codec in _VPX_CODECS:
        # Realtime mode: no look-ahead, no hidden alt-ref frames, fast.
        options.update({"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0",
                        "auto-alt-ref": "0"})
        if bitrate_kbps is None:
            options["crf"] = str(max(4, min(63, round(quality))))
            # libvpx's constrained quality needs a ceiling; make it generous.
            ctx.bit_rate = max(500_000, int(width * height * float(rate) * 0.3))
    elif codec in _QSCALE_CODECS and bitrate_kbps is None:
        qscale = max(2, min(31, round(quality / 6)))
        options.update({"flags": "+qscale", "global_quality": str(qscale * _FF_QP2LAMBDA)})
    ctx.options = options
    return stream


class _AudioFeeder:
    """Encode a mono float signal in small chunks, on demand up to a time."""

    def __init__(self, container, fmt: str, samples: np.ndarray, rate: int):
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError("audio must be a 1-D mono array")
        self.samples = np.clip(samples, -1.0, 1.0)
        self.rate = int(rate)
        codec = "libopus" if fmt == "webm" else "aac"
        self.stream = container.add_stream(codec, rate=self.rate)
        self.stream.layout = "mono"
        self.container = container
        self.written = 0
        self.time_base = Fraction(1, self.rate)

    def feed_until(self, t_s) -> None:
        """Encode whole chunks whose samples start before ``t_s`` seconds."""
        limit = min(len(self.samples), int(Fraction(t_s) * self.rate))
        while self.written < limit:
            self._encode_chunk()

    def finish(self) -> None:
        """Encode what is left and flush the encoder."""
        while self.written < len(self.samples):
            self._encode_chunk()
        self.container.mux(self.stream.encode(None))

    def _encode_chunk(self) -> None:
        chunk = self.samples[self.written:self.written + _AUDIO_FRAME_SAMPLES]
        # PyAV converts planar float to whatever sample format the encoder wants.
        frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
        frame.sample_rate = self.rate
        frame.pts = self.written
        frame.time_base = self.time_base
        self.container.mux(self.stream.encode(frame))
        self.written += len(chunk)
