"""The parts of `detector watch` that need no stream: the fingerprint ring's bounded memory,
splitting a long replay into passes, the stream clock across reconnects, the settings."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_cli

from detector.config import (
    ConfigError,
    ScanConfig,
    WatchConfig,
    load_config,
    load_watch_config,
)
from detector.loopsearch import Repeat
from detector.watch.ingest import LiveIngest
from detector.watch.loops import FingerprintRing, split_passes


def test_fingerprint_ring_keeps_only_its_memory_in_a_fixed_allocation():
    ring = FingerprintRing(memory_s=60.0, fingerprint_fps=5.0)
    capacity, nbytes = ring.capacity, ring.nbytes
    for k in range(5 * 600):                        # ten minutes at 5 Hz
        ring.add(k / 5.0, np.full((16, 16), k % 256, np.uint8))
    times, thumbs = ring.snapshot()
    assert ring.capacity == capacity and ring.nbytes == nbytes          # nothing grew
    assert times[-1] == pytest.approx(599.8) and times[0] >= 599.8 - 60.0
    assert np.all(np.diff(times) > 0)                                   # time order across the wrap
    assert thumbs[-1][0, 0] == (5 * 600 - 1) % 256
    assert len(ring) == pytest.approx(300, abs=1)


def test_a_long_replay_is_split_into_one_span_per_pass():
    # 12 s of source replayed from 24 s to 60 s: passes 24-36, 36-48, 48-60.
    r = Repeat(24.0, 60.0, 12.0, 48.0, 0.99, "none", 1.0, 0.05, 0.5)
    passes = split_passes([r])
    assert [(p.start_s, p.end_s) for p in passes] == [(24.0, 36.0), (36.0, 48.0), (48.0, 60.0)]
    assert all(p.start_s - p.source_start_s == pytest.approx(12.0) for p in passes)
    boomerang = Repeat(10.0, 30.0, 10.0, -10.0, 0.9, "reversed", -1.0, 0.05, 0.5)
    assert split_passes([boomerang]) == [boomerang]


@pytest.mark.parametrize("first_abs, expected_origin", [
    (1000.0 + 50.0, 1000.0),       # a reconnect replaying a few segments: same clock
    (1000.0 + 58.0, 1000.0),       # ... or a little ahead after the gap
    (5.0, 5.0 - (60.0 + 3.0)),     # the encoder restarted at 0: continue after the gap
    (1000.0 + 4000.0, 4000.0 + 1000.0 - 63.0),   # a jump far ahead: continue after the gap
])
def test_stream_clock_across_reconnects(first_abs, expected_origin):
    ingest = LiveIngest("http://127.0.0.1:1/live.m3u8", ScanConfig(), WatchConfig())
    origin = ingest._clock_origin(1000.0, first_abs, last_t=60.0, gap_s=3.0)
    assert origin == pytest.approx(expected_origin)


def test_watch_settings_come_from_the_config_file_and_are_checked(tmp_path):
    path = tmp_path / "watch.toml"
    path.write_text("read_timeout_s = 3\n[watch]\nwindow_s = 60\nhop_s = 20\n")
    assert load_config(path).read_timeout_s == 3          # the scan loader ignores [watch]
    watch = load_watch_config(path)
    assert (watch.window_s, watch.hop_s) == (60.0, 20.0)
    assert load_watch_config(path, window_s=90).window_s == 90.0
    with pytest.raises(ConfigError, match="window_s"):
        load_watch_config(path, window_s=5)
    path.write_text("[watch]\nwindo_s = 60\n")
    with pytest.raises(ConfigError, match="unknown watch setting"):
        load_watch_config(path)


def test_a_window_outside_the_limits_is_a_usage_error():
    result = run_cli("watch", "--model", "none", "--window", "3", "whatever.ts")
    assert result.returncode == 2
    assert "window_s must be within" in result.stderr and result.stdout == ""
