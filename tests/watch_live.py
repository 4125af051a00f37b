"""A live room on 127.0.0.1 for the watch tests: HLS segments written on the fly by PyAV
(in real time, like an encoder) and served by `http.server`, with hooks to stall the
writer and to kill the server."""

from __future__ import annotations

import functools
import http.server
import itertools
import threading
import time
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from detector.synth.scenes import looped_scene, moving_scene


def room_then_loop(width: int, height: int, fps: float, live_s: float, period_s: float, total_s: float,
                   seed: int = 0) -> Iterator[np.ndarray]:
    """`live_s` of never-repeating room, then a `period_s` clip of other footage looped until
    `total_s`: the second pass starts at live_s + period_s."""
    live = moving_scene(width, height, fps, live_s, seed=seed)
    loop, _ = looped_scene(width, height, fps, total_s - live_s, seed=seed + 1, period_s=period_s)
    return itertools.chain(live, loop)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class Server:
    """`http.server` on 127.0.0.1 for one directory; `kill()` closes it (connections refused)."""

    def __init__(self, directory: Path) -> None:
        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(directory)))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.alive = True

    def kill(self) -> None:
        if self.alive:
            self.alive = False
            self.httpd.shutdown()
            self.httpd.server_close()


class LiveHlsWriter(threading.Thread):
    """Encodes `frames` into `directory/live.m3u8` + 1 s segments, paced in real time.

    `stall_at_s`/`stall_for_s`: the encoder stops feeding for a while at that stream time
    (timestamps continue, as from an encoder whose uplink froze). At the end the playlist
    gets #EXT-X-ENDLIST unless `endlist=False`. `wall_at(t)` tells when stream time t was
    written (to measure an alert against), `done` is set when the writer finishes.
    """

    def __init__(self, directory: Path, frames: Iterable[np.ndarray], fps: int, width: int, height: int,
                 segment_s: float = 1.0, stall_at_s: float | None = None, stall_for_s: float = 0.0,
                 endlist: bool = True) -> None:
        super().__init__(daemon=True, name="live-hls-writer")
        self.directory, self.frames, self.fps = directory, frames, fps
        self.width, self.height, self.segment_s = width, height, segment_s
        self.stall_at_s, self.stall_for_s, self.endlist = stall_at_s, stall_for_s, endlist
        self.started = threading.Event()     # the first segment is in the playlist
        self.done = threading.Event()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.t0_wall: float | None = None

    @property
    def playlist(self) -> Path:
        return self.directory / "live.m3u8"

    def run(self) -> None:
        import av

        try:
            flags = "temp_file" + ("" if self.endlist else "+omit_endlist")
            out = av.open(str(self.playlist), "w", format="hls",
                          options={"hls_time": str(self.segment_s), "hls_list_size": "6", "hls_flags": flags})
            stream = out.add_stream("libx264", rate=self.fps)
            stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
            gop = str(max(1, round(self.segment_s * self.fps)))
            stream.options = {"g": gop, "keyint_min": gop, "sc_threshold": "0", "preset": "ultrafast",
                              "bf": "0", "tune": "zerolatency"}
            start = time.monotonic()
            self.t0_wall = time.time()
            paused_s = 0.0
            for i, image in enumerate(self.frames):
                if self.stop.is_set():
                    break
                t = i / self.fps
                if self.stall_at_s is not None and paused_s == 0.0 and t >= self.stall_at_s:
                    paused_s = self.stall_for_s
                    time.sleep(self.stall_for_s)
                _encode_at(out, stream, image, i, self.fps, start + paused_s + t)
                if not self.started.is_set() and self.playlist.exists():
                    self.started.set()
            _finish(out, stream)
        except BaseException as exc:       # surfaced by the test
            self.error = exc
        finally:
            self.started.set()
            self.done.set()


def first_pts_s(segment: Path) -> float:
    """Timestamp of the first video frame in an HLS segment (the writer's clock at t = 0)."""
    import av

    with av.open(str(segment)) as container:
        for frame in container.decode(video=0):
            return float(frame.time)
    raise ValueError(f"no frame in {segment}")


class GrowingFileWriter(threading.Thread):
    """Encodes `frames` into an MPEG-TS file in real time, each packet flushed to disk (a
    recorder still writing its file)."""

    def __init__(self, path: Path, frames: Iterable[np.ndarray], fps: int, width: int, height: int) -> None:
        super().__init__(daemon=True, name="growing-file-writer")
        self.path, self.frames, self.fps, self.width, self.height = path, frames, fps, width, height
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        import av

        try:
            out = av.open(str(self.path), "w", format="mpegts", options={"flush_packets": "1"})
            stream = out.add_stream("libx264", rate=self.fps)
            stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
            stream.options = {"g": str(self.fps), "preset": "ultrafast", "bf": "0", "tune": "zerolatency"}
            start = time.monotonic()
            for i, image in enumerate(self.frames):
                _encode_at(out, stream, image, i, self.fps, start + i / self.fps)
            _finish(out, stream)
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()


def _encode_at(out, stream, image: np.ndarray, index: int, fps: int, due_monotonic: float) -> None:
    """Encode frame `index` once the wall clock reaches its time (a camera's pace)."""
    import av

    delay = due_monotonic - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    frame = av.VideoFrame.from_ndarray(image, format="bgr24")
    frame.pts, frame.time_base = index, Fraction(1, fps)
    for packet in stream.encode(frame):
        out.mux(packet)


def _finish(out, stream) -> None:
    for packet in stream.encode():
        out.mux(packet)
    out.close()
