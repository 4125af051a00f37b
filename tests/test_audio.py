"""The soundtrack: decoded in the scanner's one pass, and repeated audio found as `audio_loop`."""

from __future__ import annotations

import math

import av
import numpy as np
import pytest

from detector.config import ScanConfig
from detector.extractors import build_extractors
from detector.extractors.audio import AudioExtractor
from detector.pipeline import extract
from detector.source import VideoSource
from detector.synth.scenes import moving_scene
from detector.synth.writer import write_clip
from detector.types import AudioChunk
from helpers import CountingSource
from tests.conftest import run_cli

RATE = 16000
CLIP_S = 20.0
INTRO_S, LOOP_S = 4.0, 8.0          # intro, then the same 8 s twice: 12-20 s replays 4-12 s


def sound_events(rng: np.random.Generator, seconds: float, noise_share: float = 0.2) -> np.ndarray:
    """A never-repeating track of short notes (harmonic, like voiced speech or an
    instrument) and noise bursts, each with its own pitch, length and loudness."""
    out = np.zeros(int(seconds * RATE), np.float32)
    t = 0.0
    while t < seconds:
        length_s = rng.uniform(0.08, 0.4)
        n = int(length_s * RATE)
        start = int(t * RATE)
        tt = np.arange(n) / RATE
        envelope = np.sin(np.pi * np.arange(n) / n) ** 0.5
        if rng.random() >= noise_share:
            f0 = rng.uniform(120, 600)
            signal = sum(rng.uniform(0.2, 1) / k * np.sin(2 * np.pi * f0 * k * tt + rng.uniform(0, 6))
                         for k in range(1, 9))
        else:
            signal = rng.standard_normal(n)
        event = (0.25 * envelope * signal).astype(np.float32)[: len(out) - start]
        out[start:start + len(event)] += event
        t += length_s * rng.uniform(0.6, 1.3)
    return out


def room_noise(rng: np.random.Generator, seconds: float) -> np.ndarray:
    return (0.003 * rng.standard_normal(int(seconds * RATE))).astype(np.float32)


def write_with_audio(path, audio: np.ndarray | None, seconds: float = CLIP_S):
    return write_clip(path, moving_scene(160, 120, 10, seconds, seed=5), 10, audio=audio, audio_rate=RATE)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(11)
    intro, segment = sound_events(rng, INTRO_S), sound_events(rng, LOOP_S)
    looped = np.concatenate([intro, segment, segment]) + room_noise(rng, CLIP_S)
    fresh = sound_events(rng, CLIP_S) + room_noise(rng, CLIP_S)
    t = np.arange(int(CLIP_S * RATE)) / RATE
    hum = (0.2 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 660 * t)).astype(np.float32)
    return {
        "looped": write_with_audio(folder / "looped.mp4", looped),
        "fresh": write_with_audio(folder / "fresh.mp4", fresh),
        "hum": write_with_audio(folder / "hum.mp4", hum + room_noise(rng, CLIP_S)),
        "silence": write_with_audio(folder / "silence.mp4", np.zeros(int(CLIP_S * RATE), np.float32)),
        "no_audio": write_with_audio(folder / "no_audio.mp4", None, seconds=6.0),
    }


@pytest.fixture(scope="module")
def scanned(clips):
    results = {}

    def get(name):
        if name not in results:
            results[name] = extract(clips[name], ScanConfig(), [AudioExtractor()])
        return results[name]

    return get


def audio_loops(extraction):
    return [e for e in extraction.evidence if e.kind == "audio_loop"]


def test_a_looped_audio_segment_is_found_within_half_a_second(scanned):
    extraction = scanned("looped")
    loops = audio_loops(extraction)
    assert len(loops) == 1, loops
    loop = loops[0]
    replay_start = INTRO_S + LOOP_S
    assert loop.start_s == pytest.approx(replay_start, abs=0.5)
    assert loop.end_s == pytest.approx(CLIP_S, abs=0.5)
    assert loop.source_start_s == pytest.approx(INTRO_S, abs=0.5)
    assert loop.source_end_s == pytest.approx(INTRO_S + LOOP_S, abs=0.5)
    assert 0.0 < loop.score <= 1.0
    features = extraction.features
    assert features["audio__repeat_offset_s"] == pytest.approx(LOOP_S, abs=0.1)
    assert features["audio__longest_repeat_s"] == pytest.approx(LOOP_S, abs=1.0)
    assert features["audio__repeat_share"] == pytest.approx(LOOP_S / CLIP_S, abs=0.1)
    assert features["audio__repeat_spans"] == 1


@pytest.mark.parametrize("name", ["fresh", "hum", "silence"], ids=["never-repeating", "steady-hum", "silence"])
def test_audio_that_does_not_replay_is_not_flagged(scanned, name):
    """A steady hum matches itself at every offset: that is not a replay (no sharp alignment)."""
    extraction = scanned(name)
    assert audio_loops(extraction) == []
    assert extraction.features["audio__repeat_share"] == 0.0
    assert extraction.features["audio__longest_repeat_s"] == 0.0
    assert math.isnan(extraction.features["audio__repeat_offset_s"])
    assert extraction.features["audio__duration_s"] == pytest.approx(CLIP_S, abs=0.1)


def test_silence_is_measured_as_silence(scanned):
    features = scanned("silence").features
    assert features["audio__silent_share"] > 0.95
    assert scanned("fresh").features["audio__silent_share"] < 0.2


def test_a_file_without_audio_has_every_audio_column_missing(scanned):
    extraction = scanned("no_audio")
    columns = {k: v for k, v in extraction.features.items() if k.startswith("audio__")}
    assert len(columns) == len(AudioExtractor.FEATURES)
    assert all(math.isnan(v) for v in columns.values()), columns
    assert extraction.evidence == []
    assert extraction.meta.has_audio is False


def test_audio_chunks_carry_true_contiguous_timestamps(clips):
    with VideoSource(clips["looped"]) as source:
        items = list(source.media())
    chunks = [item for item in items if isinstance(item, AudioChunk)]
    frames = [item for item in items if not isinstance(item, AudioChunk)]
    assert len(frames) == 200
    assert chunks[0].t_s == pytest.approx(0.0, abs=0.07)
    assert all(c.rate_hz == RATE and c.samples.dtype == np.float32 for c in chunks)
    for before, after in zip(chunks, chunks[1:]):
        assert after.t_s == pytest.approx(before.t_s + before.duration_s, abs=1e-3)
    total_s = sum(c.duration_s for c in chunks)
    assert total_s == pytest.approx(CLIP_S, abs=0.1)
    # The decoded signal is the one written: the replay equals its source to AAC precision.
    audio = np.concatenate([c.samples for c in chunks])
    start = int((chunks[0].t_s) * RATE)
    source_part = audio[int(5 * RATE) - start:int(11 * RATE) - start]
    replay_part = audio[int(13 * RATE) - start:int(19 * RATE) - start]
    assert np.corrcoef(source_part, replay_part)[0, 1] > 0.9


def test_video_only_iteration_decodes_no_audio(clips):
    with VideoSource(clips["looped"]) as source:
        frames = list(source.frames())
    assert len(frames) == 200
    assert all(not isinstance(f, AudioChunk) for f in frames)
    assert source.stats.audio_chunks == 0 and source.stats.audio_samples == 0


def test_audio_adds_no_decode_pass(clips, monkeypatch):
    opened = []
    real_open = av.open

    def counting_open(*args, **kwargs):
        opened.append(args[0] if args else kwargs.get("file"))
        return real_open(*args, **kwargs)

    monkeypatch.setattr(av, "open", counting_open)
    counts = {}
    for with_audio in (False, True):
        CountingSource.decoded = 0
        opened.clear()
        names = [n for n in ("basic", "motion", "audio") if with_audio or n != "audio"]
        result = extract(CountingSource(clips["looped"]), ScanConfig(), build_extractors(names))
        counts[with_audio] = (CountingSource.decoded, len(opened), result.stats.frames_sampled)
        if with_audio:
            # Every audio sample decoded exactly once (AAC frames of 1024 samples).
            assert result.stats.audio_samples == pytest.approx(CLIP_S * RATE, abs=1024)
            assert result.features["audio__repeat_share"] > 0.3
        else:
            assert result.stats.audio_samples == 0
    assert counts[False] == counts[True] == (200, 1, 200)


def test_scan_cli_shows_audio_columns_and_audio_loop_evidence(clips):
    result = run_cli("scan", "-f", "jsonl", "--features", "--model", "none", str(clips["looped"]))
    record = result.jsonl()[0]
    assert record["features"]["audio__repeat_offset_s"] == pytest.approx(LOOP_S, abs=0.1)
    loops = [e for e in record["evidence"] if e["kind"] == "audio_loop"]
    assert len(loops) == 1 and loops[0]["start_s"] == pytest.approx(INTRO_S + LOOP_S, abs=0.5)
    assert "audio_loop" in record["flags"]
    silent = run_cli("scan", "-f", "jsonl", "--features", "--model", "none", str(clips["no_audio"])).jsonl()[0]
    assert silent["features"]["audio__repeat_share"] is None      # missing, not zero


def test_a_time_limit_stops_the_audio_with_the_video(clips):
    extraction = extract(clips["looped"], ScanConfig(max_duration_s=5.0), [AudioExtractor()])
    assert extraction.features["audio__duration_s"] == pytest.approx(5.0, abs=0.2)
    assert audio_loops(extraction) == []        # the replay starts at 12 s
