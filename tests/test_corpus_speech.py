"""Text-to-speech for AI-driven clips: real eSpeak NG speech, the same for a seed, and the
mouth of the still portrait follows its loudness."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("espeakng_loader") is None or importlib.util.find_spec("skimage") is None,
    reason="AI-driven speech needs espeakng-loader and scikit-image: pip install -e '.[corpus]'")

from detector.corpus.speech import mouth_envelope, pitch_speech  # noqa: E402
from detector.corpus.variants import RECIPES, Spec  # noqa: E402


def test_same_seed_same_samples_other_seed_other_speech():
    first = pitch_speech(11, 6.0)
    from detector.corpus import speech

    speech._spoken.cache_clear()               # speak again, in a new process
    again = pitch_speech(11, 6.0)
    other = pitch_speech(12, 6.0)
    assert len(first.samples) == 6 * 16000
    assert np.array_equal(first.samples, again.samples) and first.info == again.info
    assert not np.array_equal(first.samples, other.samples)
    # A shorter clip of a seed says the start of a longer one (mouth and soundtrack agree).
    speech._spoken.cache_clear()
    longer = pitch_speech(11, 13.0)
    assert np.array_equal(longer.samples[: len(first.samples)], first.samples)


def test_it_is_speech_talk_spurts_with_pauses_and_a_voice():
    s = pitch_speech(3, 10.0)
    frame = 400                                                    # 25 ms
    rms = np.sqrt(np.mean(s.samples[: len(s.samples) // frame * frame].reshape(-1, frame) ** 2, axis=1))
    loud = rms > 0.1 * rms.max()
    assert 0.4 < loud.mean() < 0.95, loud.mean()                  # talk with pauses between words
    assert np.count_nonzero(np.diff(loud.astype(int)) == 1) >= 8   # many syllable/word onsets
    # Voiced speech: strong autocorrelation at a pitch period of 2.5-12 ms in a loud frame.
    k = int(np.argmax(rms))
    x = s.samples[k * frame:(k + 1) * frame] - s.samples[k * frame:(k + 1) * frame].mean()
    ac = np.correlate(x, x, "full")[frame - 1:]
    assert ac[40:200].max() > 0.3 * ac[0]
    assert s.info["voice"] and 140 <= s.info["rate_wpm"] < 200 and s.info["sentences"] >= 2


def test_the_portrait_mouth_opens_with_the_speech():
    spec = Spec("ai_driven", "portrait", 180, 320, 25.0, 8.0, 21)
    rendered = RECIPES["ai_driven"]["portrait"](spec, np.random.default_rng(1))
    frames = np.array([f.astype(np.float32).mean(axis=2) for f in rendered.frames])
    x0, y0, x1, y1 = rendered.truth["mouth_box"]
    mouth = frames[:, y0:y1, x0:x1]
    # Opening shows a dark gap: the mouth region's darkness follows the speech loudness.
    darkness = -mouth.reshape(len(mouth), -1).mean(axis=1)
    loudness = mouth_envelope(pitch_speech(spec.seed, spec.duration_s), spec.fps, len(frames))
    assert rendered.truth["speech"]["engine"] == "espeak-ng"
    assert np.corrcoef(darkness, loudness)[0, 1] > 0.6


def test_the_ai_driven_soundtrack_is_the_speech_the_mouth_follows():
    from detector.corpus.audio import RATE, soundtrack

    spec = Spec("ai_driven", "recycled_presenter", 180, 320, 25.0, 10.0, 23)
    rendered = RECIPES["ai_driven"]["recycled_presenter"](spec, np.random.default_rng(2))
    audio, info = soundtrack("ai_driven", rendered.truth, spec.duration_s, spec.seed)
    assert info["voice"].startswith("tts")
    n = int(spec.duration_s * spec.fps)
    hop = RATE // int(spec.fps)
    level = np.sqrt(np.mean(audio[: n * hop].astype(np.float64).reshape(n, hop) ** 2, axis=1))
    mouth = mouth_envelope(pitch_speech(spec.seed, spec.duration_s), spec.fps, n)
    assert np.corrcoef(np.log(level + 1e-4), mouth)[0, 1] > 0.7


def test_failures_are_loud_not_a_silent_fallback():
    from detector.corpus.speech import SpeechError, _Engine

    with pytest.raises(SpeechError, match="no voice"):
        _Engine().say("Hello.", "xx-nonexistent", 160, 50, 50, 1)
    with pytest.raises(SpeechError, match="speech process failed"):
        pitch_speech(1, 2.0, rate=0)                 # the child process fails: the clip fails
