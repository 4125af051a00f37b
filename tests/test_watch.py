"""`detector watch` through the CLI, on a live room served on 127.0.0.1: HLS segments written
on the fly by PyAV (real time) and served by http.server. A room that turns into a loop, a
stream that stalls and resumes, a server that dies, SIGINT and --duration."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import REPO, run_cli
from helpers import prior_model
from watch_live import (
    GrowingFileWriter,
    LiveHlsWriter,
    Server,
    first_pts_s,
    room_then_loop,
)

from detector.synth.scenes import moving_scene
from detector.synth.writer import write_clip
from detector.watch.session import EVENT_NAMES

W, H, FPS = 320, 180, 15
COMMON_KEYS = ("event", "stream_t_s", "wall_time", "latency_s")


def _events(stdout: str) -> list[dict]:
    events = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    for e in events:
        assert tuple(e)[:4] == COMMON_KEYS and e["event"] in EVENT_NAMES
    assert events[0]["event"] == "started" and events[-1]["event"] == "ended"
    assert [e["event"] for e in events].count("ended") == 1
    return events


def _wall(event: dict) -> float:
    return datetime.fromisoformat(event["wall_time"].replace("Z", "+00:00")).timestamp()


def _live(tmp_path: Path, frames, **kwargs) -> tuple[LiveHlsWriter, Server]:
    writer = LiveHlsWriter(tmp_path, frames, FPS, W, H, **kwargs)
    writer.start()
    server = Server(tmp_path)
    assert writer.started.wait(20) and writer.error is None
    return writer, server


@pytest.fixture
def fast(tmp_path) -> list[str]:
    """Short timeouts, so stalls and deaths are seen within seconds."""
    path = tmp_path / "fast.toml"
    path.write_text("open_timeout_s = 2\nread_timeout_s = 2\n[watch]\nbackoff_initial_s = 0.3\nbackoff_max_s = 1.0\n")
    return ["--config", str(path)]


def _popen(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "detector", "watch", *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_live_room_turning_into_a_loop_is_alerted_within_a_period_of_the_second_pass(tmp_path):
    live_s, period_s, total_s = 10.0, 10.0, 34.0
    second_pass_s = live_s + period_s           # on the writer's clock
    hls = tmp_path / "hls"
    hls.mkdir()
    writer, server = _live(hls, room_then_loop(W, H, FPS, live_s, period_s, total_s, seed=3))
    try:
        result = run_cli("watch", "--model", "none", f"{server.base}/live.m3u8", timeout_s=90)
    finally:
        writer.stop.set()
        server.kill()
    assert result.returncode == 1, result.stderr        # a loop was alerted: flagged
    events = _events(result.stdout)
    ended = events[-1]
    assert ended["reason"] == "end_of_stream", ended     # the playlist's #EXT-X-ENDLIST
    # The watch's clock starts at the first frame it saw; the writer's at its first segment.
    shift = ended["summary"]["origin_pts_s"] - first_pts_s(hls / "live0.ts")
    loops = [e for e in events if e["event"] == "loop_detected"]
    assert loops, [e["event"] for e in events]
    for alert in loops:                                  # no alert before the second pass
        assert alert["stream_t_s"] + shift >= second_pass_s
        for span in alert["spans"]:
            assert span["start_s"] + shift >= second_pass_s - 1.0
            passes = (span["start_s"] - span["source_start_s"]) / period_s     # 1, or 2 against pass one
            assert passes == pytest.approx(round(passes), abs=0.05) and round(passes) >= 1
    first = loops[0]
    latency_s = first["stream_t_s"] + shift - second_pass_s
    assert latency_s <= period_s + 10.0
    assert first["latency_s"] is not None and first["latency_s"] >= 0
    print(f"loop alert {latency_s:.1f} s (stream) after the second pass began; "
          f"emitted {first['latency_s']:.2f} s (wall) after its last frame arrived")
    assert ended["summary"]["loops"] >= 1 and ended["summary"]["flagged"] is True


def test_stream_that_stalls_and_resumes_then_sigint_ends_cleanly(tmp_path, fast):
    writer, server = _live(tmp_path, moving_scene(W, H, FPS, 60.0, seed=4), stall_at_s=6.0, stall_for_s=6.0,
                           endlist=False)
    proc = _popen("--model", "none", *fast, f"{server.base}/live.m3u8")
    try:
        deadline = time.monotonic() + 45
        seen = []
        while time.monotonic() < deadline:          # read events as they come
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(json.loads(line))
            if seen[-1]["event"] == "reconnected":
                time.sleep(1.0)
                proc.send_signal(signal.SIGINT)
                break
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
        writer.stop.set()
        server.kill()
    events = seen + [json.loads(line) for line in out.splitlines() if line.strip()]
    names = [e["event"] for e in events]
    assert "stream_stalled" in names and "reconnected" in names, (names, err)
    assert names.index("stream_stalled") < names.index("reconnected")
    resumed = events[names.index("reconnected")]
    assert resumed["outage_s"] > 1.0 and resumed["attempts"] >= 1
    ended = events[-1]
    assert ended["event"] == "ended" and ended["reason"] == "interrupted"
    assert proc.returncode == 0, err
    summary = ended["summary"]
    print([(e["event"], e["stream_t_s"], e.get("outage_s"), e.get("reason")) for e in events])
    assert summary["outages"] >= 1 and summary["frames_analysed"] > 0 and summary["stream_s"] > 3


def test_server_that_dies_ends_the_watch_within_the_read_timeout(tmp_path, fast):
    writer, server = _live(tmp_path, moving_scene(W, H, FPS, 60.0, seed=5), endlist=False)
    proc = _popen("--model", "none", *fast, f"{server.base}/live.m3u8")
    try:
        first = json.loads(proc.stdout.readline())
        assert first["event"] == "started"
        time.sleep(6.0)                      # the watch is reading by now
        server.kill()
        killed = time.time()
        out, err = proc.communicate(timeout=30)     # a hang fails here
    finally:
        proc.kill()
        writer.stop.set()
    events = [first] + [json.loads(line) for line in out.splitlines() if line.strip()]
    ended = events[-1]
    assert ended["event"] == "ended" and ended["reason"] == "stream_lost", (ended, err)
    assert _wall(ended) - killed <= 2.0 + 5.0          # read timeout + 5 s
    assert proc.returncode == 2
    assert ended["summary"]["frames_analysed"] > 0


def test_duration_ends_a_file_watch_with_a_summary_and_a_missing_file_is_an_error(tmp_path):
    clip = write_clip(tmp_path / "room.mp4", moving_scene(W, H, FPS, 20.0, seed=6), FPS)
    out = tmp_path / "events.jsonl"
    # A real model (it predicts the class frequencies it learned), independent of the shipped one.
    model = prior_model(tmp_path, {"live": 3, "looped": 1, "prerecorded": 1, "ai_driven": 1})
    result = run_cli("watch", "--model", str(model), "--duration", "12", "--window", "10", "-o", str(out), str(clip))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    events = _events(out.read_text())
    ended = events[-1]
    assert ended["reason"] == "duration"
    assert 11.5 <= ended["summary"]["stream_s"] <= 12.5
    assert not [e for e in events if e["event"] == "loop_detected"]      # a live room never repeats
    # The model scored the first 10 s window: the first verdict is a change from none.
    verdicts = [e for e in events if e["event"] == "verdict_changed"]
    assert verdicts and verdicts[0]["previous"] is None
    first = verdicts[0]
    assert first["verdict"] == "live" and first["scores"]["live"] == pytest.approx(0.5, abs=0.01)
    assert first["verdict"] in first["scores"] and sum(first["scores"].values()) == pytest.approx(1.0, abs=0.01)
    assert first["window"][1] - first["window"][0] == pytest.approx(10.0, abs=0.3)
    assert 9.5 <= first["stream_t_s"] <= 12.5 and first["latency_s"] >= 0
    assert ended["summary"]["verdict"] == verdicts[-1]["verdict"]

    missing = run_cli("watch", "--model", "none", str(tmp_path / "nothing.ts"))
    assert missing.returncode == 2
    ended = _events(missing.stdout)[-1]
    assert ended["reason"] == "unreadable" and ended["detail"] == "no such file"


def test_a_file_still_being_written_is_followed_until_it_stops_growing(tmp_path, fast):
    path = tmp_path / "recording.ts"
    writer = GrowingFileWriter(path, moving_scene(W, H, FPS, 8.0, seed=7), FPS, W, H)
    writer.start()
    time.sleep(1.0)
    result = run_cli("watch", "--model", "none", *fast, str(path), timeout_s=60)
    assert writer.done.is_set() and writer.error is None
    events = _events(result.stdout)
    assert events[0]["follow"] is True
    ended = events[-1]
    assert ended["reason"] == "end_of_stream", (ended, result.stderr)
    # Read while it was written: all of it, not just what was there when the watch began.
    assert ended["summary"]["stream_s"] >= 7.0
    assert result.returncode == 0


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg program (Debian: apt-get install ffmpeg) as a local RTMP server")
def test_rtmp_room_is_watched_and_its_end_is_noticed(tmp_path, fast):
    clip = write_clip(tmp_path / "room.flv", moving_scene(W, H, FPS, 8.0, seed=8), FPS, gop_s=1.0)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"rtmp://127.0.0.1:{port}/live/room"
    # ffmpeg as the RTMP server a player connects to, sending the clip in real time.
    server = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-i", str(clip), "-c", "copy",
                               "-f", "flv", "-listen", "1", url])
    try:
        time.sleep(1.0)
        result = run_cli("watch", "--model", "none", *fast, url, timeout_s=60)
        server.wait(timeout=10)
        finished = time.time()
    finally:
        server.kill()
    events = _events(result.stdout)
    names = [e["event"] for e in events]
    ended = events[-1]
    assert ended["summary"]["stream_s"] >= 6.0, (events, result.stderr)   # the room was analysed
    assert "stream_stalled" in names                  # the end of an RTMP stream looks like a drop ...
    assert ended["reason"] == "stream_lost"           # ... and nobody answers a reconnect
    assert _wall(ended) - finished <= 2.0 + 5.0
    assert result.returncode == 2
