"""URLs: HLS and HTTP-FLV served on 127.0.0.1, and servers that refuse, stall or die."""

from __future__ import annotations

import functools
import http.server
import socket
import threading
import time
from pathlib import Path

import pytest
from conftest import run_cli

from detector.synth.scenes import moving_scene
from detector.synth.writer import write_clip


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output clean
        pass


class _StallingHandler(_QuietHandler):
    """Sends the first `stall_after` bytes of the file, then goes silent without closing."""

    stall_after = 0
    release: threading.Event

    def do_GET(self) -> None:
        path = Path(self.translate_path(self.path))
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "video/x-flv")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: self.stall_after])
        self.wfile.flush()
        self.release.wait(30)


@pytest.fixture
def serve(tmp_path):
    """Start an HTTP server on 127.0.0.1 for a directory; yields a function returning its base URL."""
    servers = []

    def start(directory: Path, handler=_QuietHandler) -> str:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(directory)))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fast_timeouts(tmp_path) -> list[str]:
    config = tmp_path / "fast.toml"
    config.write_text("open_timeout_s = 1.5\nread_timeout_s = 1.5\n")
    return ["--config", str(config)]


@pytest.fixture(scope="module")
def flv_clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("flv") / "room.flv"
    write_clip(path, moving_scene(320, 180, 25, 6.0, seed=7), 25, codec="libx264", bitrate_kbps=400)
    return path


def test_hls_playlist_over_http_is_scanned(tmp_path, serve):
    write_clip(tmp_path / "live.m3u8", moving_scene(320, 180, 25, 6.0, seed=5), 25,
               container_format="hls", gop_s=1.0)
    assert list(tmp_path.glob("*.ts")), "the HLS muxer wrote no segments"
    url = serve(tmp_path) + "/live.m3u8"
    result = run_cli("scan", "-f", "jsonl", "--model", "none", url)
    assert result.returncode == 0, result.stdout + result.stderr
    (record,) = result.jsonl()
    assert record["path"] == url and record["error"] is None
    assert record["duration_s"] == pytest.approx(6.0, abs=0.1)


def test_http_flv_is_scanned(flv_clip, serve):
    url = serve(flv_clip.parent) + "/room.flv"
    record = run_cli("scan", "-f", "jsonl", "--model", "none", url).jsonl()[0]
    assert record["error"] is None
    assert record["duration_s"] == pytest.approx(6.0, abs=0.1)


def test_refused_connection_fails_fast_with_one_line(fast_timeouts):
    with socket.socket() as probe:       # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    result = run_cli("scan", "-f", "jsonl", "--model", "none", *fast_timeouts, f"http://127.0.0.1:{port}/live.m3u8")
    assert result.returncode == 2
    (record,) = result.jsonl()
    assert record["error"] == "cannot open stream: Connection refused"
    assert "\n" not in record["error"] and "Traceback" not in result.stderr
    assert time.monotonic() - started < 30


def test_server_that_never_answers_hits_the_open_timeout(fast_timeouts):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(5)             # accepts connections, never says a word
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/room.flv"
        result = run_cli("scan", "-f", "jsonl", "--model", "none", *fast_timeouts, url, timeout_s=60)
    assert result.returncode == 2
    record = result.jsonl()[0]
    assert "timeout" in record["error"]
    assert record["elapsed_s"] < 1.5 + 5


def test_stream_that_stalls_midway_reports_the_stall_and_keeps_what_was_read(flv_clip, serve, fast_timeouts):
    release = threading.Event()
    handler = type("Stall", (_StallingHandler,), {"stall_after": flv_clip.stat().st_size // 2, "release": release})
    url = serve(flv_clip.parent, handler) + "/room.flv"
    try:
        result = run_cli("scan", "-f", "jsonl", "--model", "none", *fast_timeouts, url, timeout_s=60)
    finally:
        release.set()
    record = result.jsonl()[0]
    assert result.returncode == 2
    assert record["error"].startswith("stream stalled") and "\n" not in record["error"]
    assert 1.0 < record["duration_s"] < 5.5        # the part that did arrive was analysed
    assert record["elapsed_s"] < 1.5 * 2 + 10
