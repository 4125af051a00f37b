"""Opening a file or URL and sampling it: the only module that touches the decoder.

The scanner owns the video. `VideoSource.frames()` decodes every frame once (threaded, or
keyframes only in triage mode), takes time from PTS, and converts only the sampled frames:
the luma plane is shrunk with INTER_AREA (~0.3 ms at 720p) and colour is built on demand from
the chroma planes. Frame count and duration are counted while decoding, because container
metadata lies.

`VideoSource.media()` is the same pass with the audio track decoded too: the first audio
stream's packets come out of the same demuxer as the video's, and are decoded, mixed down to
mono and handed out as `AudioChunk`s (timed from their PTS on the video's clock) between the
sampled frames. `frames()` leaves audio packets undecoded.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import numpy as np

from detector.config import ScanConfig
from detector.types import AudioChunk, DecodedThumb, Frame, VideoMeta

log = logging.getLogger(__name__)

STREAM_SCHEMES = ("http://", "https://", "rtmp://", "rtmps://", "rtsp://", "srt://", "udp://", "tcp://")

# Demuxers that read a single still picture: PyAV opens them as a one-frame "video".
_IMAGE_FORMAT_SUFFIX = "_pipe"
_IMAGE_FORMATS = {"image2", "apng", "webp", "ico", "tiff_pipe"}
_TEXT_FORMATS = {"tty"}

# Pixel formats whose plane 0 is 8-bit luma; the others are converted by FFmpeg (slower).
_PLANAR_8BIT_YUV = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21", "gray"}
_I420_FORMATS = {"yuv420p", "yuvj420p"}


class SourceError(Exception):
    """An input that cannot be analysed; the message is one line a moderator can act on."""


def is_stream_location(location: str) -> bool:
    return location.lower().startswith(STREAM_SCHEMES)


@dataclass
class DecodeStats:
    """What decoding found out, as opposed to what the container declared."""

    frames_decoded: int = 0
    frames_sampled: int = 0
    decode_errors: int = 0
    first_time_s: float | None = None     # absolute stream time of the first frame
    last_t_s: float = 0.0                 # relative to the first frame
    interval_sum_s: float = 0.0
    interval_sq_sum_s: float = 0.0
    max_interval_s: float = 0.0
    non_increasing_pts: int = 0           # frames whose PTS did not move forward
    missing_pts: int = 0
    stopped_early: str | None = None      # why decoding stopped before the end, if it did
    nominal_interval_s: float = 0.0       # 1 / declared rate: the duration of a lone frame
    errors: list[str] = field(default_factory=list)
    audio_chunks: int = 0                 # AudioChunks handed out by media()
    audio_samples: int = 0                # mono samples in them
    audio_decode_errors: int = 0          # audio packets that failed to decode (skipped)

    @property
    def duration_s(self) -> float:
        """Decoded duration: last PTS plus one mean frame interval (the last frame is shown too)."""
        if self.frames_decoded == 0:
            return 0.0
        if self.frames_decoded == 1:
            return self.nominal_interval_s
        return self.last_t_s + self.mean_interval_s

    @property
    def mean_interval_s(self) -> float:
        n = self.frames_decoded - 1
        return self.interval_sum_s / n if n > 0 else 0.0

    @property
    def interval_cv(self) -> float:
        """Coefficient of variation of frame intervals: 0 for constant frame rate."""
        n = self.frames_decoded - 1
        if n < 2 or self.interval_sum_s <= 0:
            return 0.0
        mean = self.interval_sum_s / n
        var = max(self.interval_sq_sum_s / n - mean * mean, 0.0)
        return math.sqrt(var) / mean

    def record_time(self, t_s: float, previous_t_s: float | None) -> None:
        if previous_t_s is not None:
            step = t_s - previous_t_s
            if step <= 0:
                self.non_increasing_pts += 1
            else:
                self.interval_sum_s += step
                self.interval_sq_sum_s += step * step
                self.max_interval_s = max(self.max_interval_s, step)
        self.last_t_s = max(self.last_t_s, t_s)


def analysis_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """Even (w, h) with the longer side at most `long_side`, keeping the aspect ratio."""
    scale = min(1.0, long_side / max(width, height))
    w = max(2, int(round(width * scale / 2)) * 2)
    h = max(2, int(round(height * scale / 2)) * 2)
    return w, h


def _plane_array(plane) -> np.ndarray:
    """A zero-copy 2-D view of one 8-bit plane, without the row padding."""
    buf = np.frombuffer(plane, dtype=np.uint8)
    return buf.reshape(plane.height, plane.line_size)[:, : plane.width]


THUMB_READ_WIDTH = 128     # pixels read across a decoded frame for its thumbnail...
THUMB_BLOCK = 4            # ...averaged in blocks of this side (noise / 4): ~32 px wide


def decoded_thumb(luma: np.ndarray) -> np.ndarray:
    """The `DecodedThumb` picture of one decoded luma plane: a strided read (cheap at any
    resolution) averaged in blocks, so sensor noise hardly moves it but content does."""
    import cv2

    step = max(1, luma.shape[1] // THUMB_READ_WIDTH)
    sparse = luma[::step, ::step]
    h = sparse.shape[0] // THUMB_BLOCK * THUMB_BLOCK
    w = sparse.shape[1] // THUMB_BLOCK * THUMB_BLOCK
    block = sparse[:h, :w].astype(np.float32)
    return cv2.resize(block, (w // THUMB_BLOCK, h // THUMB_BLOCK), interpolation=cv2.INTER_AREA)


def _rotate(image: np.ndarray, rotation_deg: int) -> np.ndarray:
    import cv2

    # PyAV reports the display rotation counter-clockwise.
    if rotation_deg == 90:
        return cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE)
    if rotation_deg == 180:
        return cv2.rotate(image, cv2.ROTATE_180)
    if rotation_deg == 270:
        return cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
    return image


def _normalise_rotation(value: float | int | None) -> int:
    if not value:
        return 0
    return int(round(float(value) / 90.0)) % 4 * 90


class VideoSource:
    """A decoded video input. Use as a context manager; iterate `frames()` once.

    >>> with VideoSource("clip.mp4", ScanConfig()) as source:   # doctest: +SKIP
    ...     for frame in source.frames():
    ...         ...
    """

    def __init__(self, location: str | Path, config: ScanConfig | None = None,
                 options: Mapping[str, str] | None = None) -> None:
        self.location = str(location)
        self.config = config or ScanConfig()
        # Extra FFmpeg options on top of the defaults below (`detector watch` sets HLS hold
        # counters, reload limits and `follow` for a file still being written).
        self.extra_options = dict(options or {})
        self.stats = DecodeStats()
        self.meta: VideoMeta | None = None
        self._container = None
        self._stream = None
        self._decoded: Iterator = iter(())
        self._first_frame = None
        self._iterated = False
        self._audio_stream = None
        # Audio packets demuxed since the last video frame came out; decoded only by media().
        self._audio_packets: deque = deque()
        self._time_base_s: float | None = None       # float(video time_base), cached

    # -- resource handling ----------------------------------------------------------------
    def __enter__(self) -> VideoSource:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            finally:
                self._container = None
                self._stream = None

    def open(self) -> VideoMeta:
        import av

        is_stream = is_stream_location(self.location)
        if not is_stream:
            self._check_local_file(Path(self.location))
        options = {}
        if is_stream:
            # Keep FFmpeg's own retry loops short so the timeouts below decide, not FFmpeg.
            options = {"reconnect": "1", "reconnect_streamed": "1", "reconnect_delay_max": "2",
                       "m3u8_hold_counters": "3", "rw_timeout": str(int(self.config.read_timeout_s * 1e6))}
        options.update(self.extra_options)
        try:
            self._container = av.open(
                self.location,
                mode="r",
                options=options,
                timeout=(self.config.open_timeout_s, self.config.read_timeout_s),
                metadata_errors="replace",
            )
        except av.error.ExitError:
            raise SourceError(f"no answer within {self.config.open_timeout_s:g} s (open timeout)") from None
        except (av.error.FFmpegError, OSError) as exc:
            what = "cannot open stream" if is_stream else "not a readable video"
            raise SourceError(f"{what}: {_ffmpeg_message(exc)}") from None
        try:
            self.meta = self._describe(is_stream)
        except SourceError:
            self.close()
            raise
        return self.meta

    def _check_local_file(self, path: Path) -> None:
        if not path.exists():
            raise SourceError("no such file")
        if path.is_dir():
            raise SourceError("is a directory")
        if path.stat().st_size == 0:
            raise SourceError("empty file (0 bytes)")

    def _describe(self, is_stream: bool) -> VideoMeta:
        container = self._container
        fmt = container.format.name
        if fmt in _TEXT_FORMATS:
            # FFmpeg's "tty" demuxer renders any text file as an ANSI-art video.
            raise SourceError("a text file, not a video")
        if fmt in _IMAGE_FORMATS or fmt.endswith(_IMAGE_FORMAT_SUFFIX):
            raise SourceError(f"a still image ({fmt.removesuffix(_IMAGE_FORMAT_SUFFIX)}), not a video")
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["nothing"]
            raise SourceError(f"no video stream (contains {', '.join(kinds)})")
        stream = container.streams.video[0]
        cc = stream.codec_context
        width, height = int(cc.width or 0), int(cc.height or 0)
        limit = self.config.max_frame_side
        if width > limit or height > limit:
            raise SourceError(f"declared frame size {width}x{height} exceeds the {limit} px limit")
        if self.config.triage:
            # Keyframes only; frame threading would hold back frames it is told to skip.
            cc.skip_frame = "NONKEY"
            stream.thread_type = "SLICE"
        else:
            stream.thread_type = "AUTO"
        cc.thread_count = self.config.decode_threads
        self._stream = stream
        # Demuxed with the video in one pass (decoding it is left to media()): packets of a
        # stream nobody asked for would be read from the file anyway.
        self._audio_stream = container.streams.audio[0] if container.streams.audio else None
        if stream.time_base:
            self._time_base_s = float(stream.time_base)

        rate = stream.average_rate or stream.guessed_rate
        self.stats.nominal_interval_s = 1.0 / float(rate) if rate else 0.0
        declared_duration_s = None
        if stream.duration is not None and stream.time_base:
            declared_duration_s = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            declared_duration_s = container.duration / 1_000_000
        # Rotation lives in per-frame side data: peek at the first frame (it is yielded later,
        # so nothing is decoded twice). This also proves that at least one frame decodes.
        self._decoded = self._decoded_frames()
        self._first_frame = next(self._decoded, None)
        if self._first_frame is None:
            reason = self.stats.stopped_early or (self.stats.errors[0] if self.stats.errors else "")
            raise SourceError("no decodable video frame" + (f" ({reason})" if reason else ""))
        rotation = _normalise_rotation(self._first_frame.rotation)
        aw, ah = analysis_size(max(width, 2), max(height, 2), self.config.analysis_long_side)
        if rotation in (90, 270):
            aw, ah = ah, aw
        return VideoMeta(
            location=self.location,
            container_format=fmt,
            codec=cc.name or "",
            width=width,
            height=height,
            rotation_deg=rotation,
            declared_fps=float(rate) if rate else None,
            declared_duration_s=declared_duration_s,
            declared_frames=int(stream.frames or 0),
            is_stream=is_stream,
            analysis_width=aw,
            analysis_height=ah,
            encoder=str(stream.metadata.get("encoder") or container.metadata.get("encoder") or ""),
            has_audio=bool(container.streams.audio),
            bit_rate=int(container.bit_rate) if container.bit_rate else None,
        )

    # -- decoding -------------------------------------------------------------------------
    def _time_limit_s(self) -> float:
        limits = [self.config.max_duration_s] if self.config.max_duration_s else []
        if self.meta is not None and self.meta.is_stream:
            limits.append(self.config.stream_duration_s)
        return min(limits) if limits else math.inf

    def _decoded_frames(self):
        """Every decoded av.VideoFrame; demux/decode failures become stats, not exceptions."""
        import av

        streams = [self._stream] + ([self._audio_stream] if self._audio_stream is not None else [])
        packets = self._container.demux(*streams)
        audio = self._audio_stream
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.error.ExitError:
                self.stats.stopped_early = (
                    f"stream stalled: no data for {self.config.read_timeout_s:g} s (read timeout)")
                return
            except (av.error.FFmpegError, OSError) as exc:
                self.stats.stopped_early = f"read failed: {_ffmpeg_message(exc)}"
                return
            if audio is not None and packet.stream is audio:
                self._audio_packets.append(packet)
                continue
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:
                # One bad packet is not fatal: count it and keep going, like a player would.
                self.stats.decode_errors += 1
                if len(self.stats.errors) < 5:
                    self.stats.errors.append(_ffmpeg_message(exc))
                continue
            yield from frames

    def frames(self, decoded_thumbs: bool = False) -> Iterator[Frame]:
        """Sampled frames with true timestamps, rotated and resized to the analysis size.

        With `decoded_thumbs`, each frame also carries (`Frame.decoded`) a tiny luma
        thumbnail of every frame decoded since the previous sample, itself included.
        """
        yield from self._sampled(audio=False, decoded_thumbs=decoded_thumbs)

    def media(self, decoded_thumbs: bool = False) -> Iterator[Frame | AudioChunk]:
        """`frames()` with the audio track decoded in the same pass, as mono AudioChunks.

        Each chunk holds the audio decoded since the previous item (contiguous runs are
        joined), so chunks arrive roughly every sampled frame, not necessarily in time order
        with the frames. Inputs without audio yield frames only.
        """
        yield from self._sampled(audio=True, decoded_thumbs=decoded_thumbs)

    def _sampled(self, audio: bool, decoded_thumbs: bool) -> Iterator[Frame | AudioChunk]:
        if self._container is None:
            self.open()
        if self._iterated:
            raise RuntimeError("VideoSource.frames() can be iterated only once: it decodes the stream")
        self._iterated = True
        audio_decoder = _AudioDecoder(self._audio_stream, self.stats) if audio and self._audio_stream else None
        meta = self.meta
        step_s = 1.0 / self.config.sample_fps if self.config.sample_fps > 0 else 0.0
        next_sample_s = 0.0
        limit_s = self._time_limit_s()
        previous_t_s: float | None = None
        stats = self.stats
        first, self._first_frame = self._first_frame, None
        thumbs: list[DecodedThumb] = []
        # Keyframes alone say nothing about the steps between frames.
        keep_thumbs = decoded_thumbs and not self.config.triage
        for av_frame in itertools.chain([first], self._decoded):
            t_abs = self._frame_time(av_frame, previous_t_s)
            if stats.first_time_s is None:
                stats.first_time_s = t_abs
            t_s = t_abs - stats.first_time_s
            if t_s > limit_s:
                stats.stopped_early = stats.stopped_early or "time limit"
                break
            if audio_decoder is None:
                self._audio_packets.clear()
            stats.record_time(t_s, previous_t_s)
            stats.frames_decoded += 1
            index = stats.frames_decoded - 1
            previous_t_s = t_s
            if keep_thumbs:
                thumbs.append(DecodedThumb(t_s, decoded_thumb(_luma(av_frame))))
            # Half a millisecond of slack absorbs time-base rounding (3/30 s -> 0.09999...).
            if t_s + 5e-4 < next_sample_s:
                continue
            next_sample_s += step_s
            if next_sample_s <= t_s:
                next_sample_s = (math.floor(t_s / step_s) + 1) * step_s if step_s else t_s
            if audio_decoder is not None:
                # The audio demuxed so far, once per sampled frame (~100 ms at the default rate).
                yield from audio_decoder.chunks(self._audio_packets, stats.first_time_s, limit_s)
            frame = self._convert(av_frame, index, t_s, meta, tuple(thumbs))
            thumbs.clear()
            stats.frames_sampled += 1
            yield frame
        if audio_decoder is not None and stats.first_time_s is not None:
            # Audio muxed after the last video frame, then whatever the decoder still holds.
            yield from audio_decoder.chunks(self._audio_packets, stats.first_time_s, limit_s)
        self._audio_packets.clear()

    def _frame_time(self, av_frame, previous_t_s: float | None) -> float:
        pts = av_frame.pts
        if pts is not None:
            # A float multiply: `pts * time_base` would build a Fraction for every decoded frame.
            if self._time_base_s is not None:
                return pts * self._time_base_s
            if av_frame.time_base:
                return float(pts * av_frame.time_base)
        # No PTS (some raw streams): step by the declared rate, counted as an irregularity.
        self.stats.missing_pts += 1
        fps = self.meta.declared_fps or 25.0
        base = (self.stats.first_time_s or 0.0) + (previous_t_s if previous_t_s is not None else -1 / fps)
        return base + 1.0 / fps

    def _convert(self, av_frame, index: int, t_s: float, meta: VideoMeta,
                 decoded: tuple[DecodedThumb, ...] = ()) -> Frame:
        import cv2

        fw, fh = av_frame.width, av_frame.height
        limit = self.config.max_frame_side
        if fw > limit or fh > limit:
            raise SourceError(f"decoded frame size {fw}x{fh} exceeds the {limit} px limit")
        rotation = meta.rotation_deg
        w, h = analysis_size(fw, fh, self.config.analysis_long_side)
        fmt = av_frame.format.name
        luma = _luma(av_frame)
        gray = cv2.resize(luma, (w, h), interpolation=cv2.INTER_AREA) if (fw, fh) != (w, h) else luma.copy()
        gray = _rotate(gray, rotation)

        def bgr() -> np.ndarray:
            if fmt in _I420_FORMATS:
                small_y = cv2.resize(_plane_array(av_frame.planes[0]), (w, h), interpolation=cv2.INTER_AREA)
                u = cv2.resize(_plane_array(av_frame.planes[1]), (w // 2, h // 2), interpolation=cv2.INTER_AREA)
                v = cv2.resize(_plane_array(av_frame.planes[2]), (w // 2, h // 2), interpolation=cv2.INTER_AREA)
                i420 = np.concatenate([small_y.ravel(), u.ravel(), v.ravel()]).reshape(h * 3 // 2, w)
                image = cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420)
            else:
                image = cv2.resize(av_frame.to_ndarray(format="bgr24"), (w, h), interpolation=cv2.INTER_AREA)
            return _rotate(image, rotation)

        return Frame(index=index, t_s=t_s, gray=gray, _bgr_factory=bgr, decoded=decoded)


def _luma(av_frame) -> np.ndarray:
    """The decoded frame's luma plane: a zero-copy view for planar 8-bit YUV."""
    if av_frame.format.name in _PLANAR_8BIT_YUV:
        return _plane_array(av_frame.planes[0])
    return av_frame.to_ndarray(format="gray")


class _AudioDecoder:
    """Decodes queued audio packets into mono float32 AudioChunks on the video's clock."""

    def __init__(self, stream, stats: DecodeStats) -> None:
        self.stream = stream
        self.stats = stats
        self.time_base_s = float(stream.time_base) if stream.time_base else None
        self.next_t_abs: float | None = None      # where the previous decoded frame ended

    def chunks(self, packets: deque, origin_s: float, limit_s: float) -> Iterator[AudioChunk]:
        """Decode and empty `packets`; yield one chunk per contiguous run of samples.

        The demuxer ends each stream with an empty packet, which drains the decoder.
        """
        import av

        parts: list[np.ndarray] = []
        run_start_s = 0.0
        rate = 0
        while packets:
            packet = packets.popleft()
            try:
                frames = self.stream.codec_context.decode(packet)
            except av.error.FFmpegError as exc:
                self.stats.audio_decode_errors += 1
                if len(self.stats.errors) < 5:
                    self.stats.errors.append(f"audio: {_ffmpeg_message(exc)}")
                continue
            for frame in frames:
                samples = _mono(frame)
                if samples is None or not len(samples):
                    continue
                t_abs = self._time(frame)
                frame_rate = int(frame.sample_rate)
                contiguous = parts and frame_rate == rate and abs(t_abs - self.next_t_abs) < 0.5 / rate + 1e-3
                if parts and not contiguous:
                    chunk = self._chunk(run_start_s, rate, parts, limit_s)
                    if chunk is not None:
                        yield chunk
                    parts = []
                if not parts:
                    run_start_s, rate = t_abs - origin_s, frame_rate
                parts.append(samples)
                self.next_t_abs = t_abs + len(samples) / frame_rate
        if parts:
            chunk = self._chunk(run_start_s, rate, parts, limit_s)
            if chunk is not None:
                yield chunk

    def _time(self, frame) -> float:
        if frame.pts is not None and self.time_base_s is not None:
            return frame.pts * self.time_base_s
        if frame.pts is not None and frame.time_base:
            return float(frame.pts * frame.time_base)
        # No PTS: continue where the previous frame ended.
        return self.next_t_abs if self.next_t_abs is not None else 0.0

    def _chunk(self, t_s: float, rate: int, parts: list[np.ndarray], limit_s: float) -> AudioChunk | None:
        samples = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if math.isfinite(limit_s):
            samples = samples[: max(0, int(math.ceil((limit_s - t_s) * rate)))]
        if not len(samples):
            return None
        self.stats.audio_chunks += 1
        self.stats.audio_samples += len(samples)
        return AudioChunk(t_s=t_s, rate_hz=rate, samples=samples)


_SAMPLE_SCALE = {"u8": 1 / 128.0, "s16": 1 / 32768.0, "s32": 1 / 2147483648.0, "s64": 1 / 9.223372036854776e18}


def _mono(frame) -> np.ndarray | None:
    """The frame's samples as mono float32 (channels averaged); None for unknown formats."""
    data = frame.to_ndarray()
    fmt = frame.format
    channels = max(1, len(frame.layout.channels))
    if not fmt.is_planar:
        data = data.reshape(-1, channels).T
    name = fmt.name.rstrip("p")
    if name in ("flt", "dbl"):
        data = data.astype(np.float32, copy=False)
    elif name in _SAMPLE_SCALE:
        data = data.astype(np.float32)
        if name == "u8":
            data -= 128.0
        data *= _SAMPLE_SCALE[name]
    else:
        return None
    return data[0].copy() if data.shape[0] == 1 else data.mean(axis=0, dtype=np.float32)


def _ffmpeg_message(exc: BaseException) -> str:
    """FFmpeg's own words, without the file name it repeats (the record already has the path)."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())
