"""Soundtracks for corpus clips (opt-in: `detector samples make --audio`).

A room sounds like room tone (filtered noise, a little mains hum), often a voice (a
speech-like signal: a buzzing glottal source through vowel formants, syllables at ~4 Hz in
talk spurts, consonant hiss) and sometimes background music (slow chords). The soundtrack
follows the clip's truth, so audio carries the same structure as the picture:

- looped: every replayed span's audio is the audio first aired at its source span (resampled
  for a speed change, reversed for a boomerang) -- an audio loop survives a video disguise;
- prerecorded: a new sound scene (another voice, tone, level) at every cut, crossfaded over
  every dissolve;
- live: one continuous scene that never repeats;
- ai_driven: the text-to-speech pitch (eSpeak NG, `corpus.speech`) whose loudness drives the
  clip's pasted mouth, over room tone and sometimes music: the voice the lip-sync follows.

The talking voice is either the formant voice below or (half of the scenes, in every class)
a text-to-speech pitch at the same level, so the kind of voice is not a class cue.

NumPy/SciPy and the espeakng-loader wheel's eSpeak NG; nothing is downloaded at run time.
"""

from __future__ import annotations

import math

import numpy as np

RATE = 16000
_VOWELS = ((730, 1090), (270, 2290), (530, 1840), (570, 840), (300, 870), (660, 1720), (490, 1350))


def _resonator(signal: np.ndarray, freq: float, bandwidth: float) -> np.ndarray:
    """Two-pole resonance at `freq` Hz (a formant)."""
    from scipy.signal import lfilter

    r = math.exp(-math.pi * bandwidth / RATE)
    a1, a2 = -2 * r * math.cos(2 * math.pi * freq / RATE), r * r
    return lfilter([1 - r], [1, a1, a2], signal)


def _envelope(rng: np.random.Generator, n: int) -> np.ndarray:
    """Syllable envelope at audio rate (computed at 100 Hz, interpolated)."""
    from detector.synth.presenter import speech_envelope

    frames = speech_envelope(rng, n // 160 + 2, 100.0)
    return np.interp(np.arange(n) / 160.0, np.arange(len(frames)), frames)


def voice(rng: np.random.Generator, n: int) -> np.ndarray:
    """A speech-like signal of n samples (peak ~0.3)."""
    from scipy.signal import lfilter

    t = np.arange(n) / RATE
    base_f0 = rng.uniform(95, 220)
    drift = lfilter([0.002], [1, -0.998], rng.normal(0, 1, n))
    f0 = base_f0 * (1 + 0.08 * np.sin(2 * math.pi * t / rng.uniform(1.5, 3.0)) + 2.0 * drift)
    phase = np.cumsum(f0 / RATE)
    source = 2 * (phase % 1.0) - 1.0                        # sawtooth: a buzzy glottal source
    out = np.zeros(n)
    chunk = int(0.22 * RATE)
    for start in range(0, n, chunk):                        # a new vowel every syllable
        f1, f2 = _VOWELS[int(rng.integers(len(_VOWELS)))]
        piece = source[start:start + chunk]
        out[start:start + chunk] = _resonator(piece, f1, 90) + 0.6 * _resonator(piece, f2, 120)
    hiss = _resonator(rng.normal(0, 1, n), 4500, 2500) * (rng.random(n // chunk + 1).repeat(chunk)[:n] < 0.4)
    env = _envelope(rng, n)
    signal = (out / (np.abs(out).max() + 1e-9) + 0.15 * hiss) * env
    return 0.3 * signal / (np.abs(signal).max() + 1e-9)


def room_tone(rng: np.random.Generator, n: int) -> np.ndarray:
    """Low-passed noise with a slowly varying level and a trace of mains hum."""
    from scipy.signal import lfilter

    noise = lfilter([1.0], [1, -0.95], rng.normal(0, 1, n))
    noise /= np.abs(noise).max() + 1e-9
    level = rng.uniform(0.01, 0.04) * (1 + 0.3 * np.sin(2 * math.pi * np.arange(n) / RATE / rng.uniform(5, 15)))
    hum = rng.uniform(0, 0.006) * np.sin(2 * math.pi * float(rng.choice([50.0, 60.0])) * np.arange(n) / RATE)
    return noise * level + hum


def music(rng: np.random.Generator, n: int) -> np.ndarray:
    """Slow chords of three sines that change every 2-4 s."""
    out = np.zeros(n)
    t = np.arange(n) / RATE
    start = 0
    while start < n:
        length = int(rng.uniform(2, 4) * RATE)
        root = 110 * 2 ** (int(rng.integers(0, 12)) / 12)
        seg = slice(start, min(n, start + length))
        for ratio in (1.0, 1.26, 1.5):
            out[seg] += np.sin(2 * math.pi * root * ratio * t[seg])
        start += length
    return 0.05 * out / 3


def tts_voice(seed: int, n: int) -> np.ndarray:
    """n samples of a text-to-speech product pitch (`corpus.speech`), at the level of
    `voice` (peak 0.3), so loudness says nothing about which kind of voice speaks."""
    from detector.corpus.speech import pitch_speech

    speech = pitch_speech(seed, n / RATE, RATE).samples[:n].astype(np.float64)
    return 0.3 * speech / max(float(np.abs(speech).max()), 1e-9)


def scene(rng: np.random.Generator, n: int, talk: bool, with_music: bool, tts: bool = False) -> np.ndarray:
    """One continuous sound scene of n samples (`tts`: the talk is a text-to-speech voice)."""
    out = room_tone(rng, n)
    if talk:
        out += tts_voice(int(rng.integers(1, 2**31 - 1)), n) if tts else voice(rng, n)
    if with_music:
        out += music(rng, n)
    return out


def soundtrack(label: str, truth: dict, duration_s: float, seed: int) -> tuple[np.ndarray, dict]:
    """The clip's audio (mono float32 at RATE) and what it holds, from the clip's truth.

    AI-driven clips speak the text-to-speech pitch their mouth follows (`truth["speech"]`);
    in every other class half of the talking scenes are text-to-speech too, so a TTS voice
    is no class cue in itself."""
    rng = np.random.default_rng([seed, 11])
    n = int(round(duration_s * RATE))
    talk, with_music = bool(rng.random() < 0.75), bool(rng.random() < 0.3)
    tts = bool(rng.random() < 0.5)
    info = {"rate": RATE, "voice": talk, "music": with_music}
    if label == "ai_driven" and "speech" in truth:
        audio = scene(rng, n, False, with_music) + tts_voice(seed, n)
        info["voice"] = "tts (the mouth's)"
    elif label == "prerecorded" and (truth.get("cuts_s") or truth.get("fades")):
        audio = _edited(rng, n, truth, with_music)
        info["voice"] = "per shot"
    else:
        audio = scene(rng, n, talk, with_music, tts)
        if talk:
            info["voice"] = "tts" if tts else "formant"
    if label == "looped" and "region" not in truth:
        _replay(audio, truth.get("replays", []))
        info["replays"] = "as video"
    return np.clip(audio, -1, 1).astype(np.float32), info


def _edited(rng, n: int, truth: dict, with_music: bool) -> np.ndarray:
    """A new sound scene per shot; hard switches at cuts, crossfades over dissolves."""
    bounds = sorted([(c, c, "cut") for c in truth.get("cuts_s", [])] +
                    [(a, b, "fade") for a, b in truth.get("fades", [])])
    audio = scene(rng, n, bool(rng.random() < 0.75), with_music, bool(rng.random() < 0.5))
    for a_s, b_s, _ in bounds:
        a, b = int(round(a_s * RATE)), int(round(b_s * RATE))
        fresh = scene(rng, n - a, bool(rng.random() < 0.75), with_music, bool(rng.random() < 0.5))
        fresh *= rng.uniform(0.6, 1.6)
        ramp = np.ones(n - a)
        if b > a:
            ramp[: b - a] = np.linspace(0, 1, b - a)
        audio[a:] = audio[a:] * (1 - ramp) + fresh * ramp
    return audio


def _replay(audio: np.ndarray, replays: list[dict]) -> None:
    """Overwrite each replayed span with its source span's audio, as the video replays it."""
    for r in sorted(replays, key=lambda r: r["start_s"]):
        s0, s1 = int(round(r["src_start_s"] * RATE)), int(round(r["src_end_s"] * RATE))
        a, b = int(round(r["start_s"] * RATE)), min(len(audio), int(round(r["end_s"] * RATE)))
        source = audio[s0:s1].copy()
        n_full = int(math.floor(len(source) / r["speed"]))       # a full pass at this speed
        if n_full <= 1 or b <= a:
            continue
        played = np.interp(np.arange(n_full) * r["speed"], np.arange(len(source)), source)
        if r["reversed"]:
            played = played[::-1]
        audio[a:b] = played[: b - a]
