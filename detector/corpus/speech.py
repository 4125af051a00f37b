"""Real synthetic speech for AI-driven clips: eSpeak NG through ctypes.

An AI-driven room talks with a text-to-speech voice reading a sales script, and a lip-sync
model moves the mouth from that audio. `pitch_speech(seed, duration_s)` makes both halves:
a product-pitch script (seeded sentences), spoken by eSpeak NG with a seeded voice, rate
and pitch, as mono float audio; `mouth_envelope` turns its loudness into a per-frame mouth
opening.

The library and its voice data come from the `espeakng-loader` wheel (libespeak-ng.so and
espeak-ng-data inside the package; Debian's espeak-ng is not needed). It is called in
synchronous mode with a synthesis callback that collects the samples. A failing library
call raises `SpeechError`: there is no fallback voice, so a corpus never silently depends
on what the machine has installed.

eSpeak NG keeps state from one utterance to the next inside a process (the same sentence
said twice in a row comes out a few samples different, even after espeak_Terminate and
espeak_Initialize), while a fresh process always says the same. So every pitch is spoken
by a new Python process (`python -m detector.corpus.speech SEED DURATION RATE`, ~0.3 s
CPU), which makes the samples a function of the seed alone (tested).
"""

from __future__ import annotations

import ctypes
import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000      # return an error instead of calling exit()
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE, _VOLUME, _PITCH, _RANGE, _WORDGAP = 1, 2, 3, 4, 7
_EE_OK = 0
_GAIN = 0.5                       # eSpeak NG peaks near full scale; speech then peaks ~0.5

# English voices (language + variant) of the packaged data: women's and men's voices.
VOICES = ("en-us+f2", "en-us+f3", "en-us+f4", "en-us+m1", "en-us+m3", "en-us+m7",
          "en+f2", "en+f5", "en+m2", "en+m4", "en-gb-x-rp+f3", "en-gb-x-rp+m5")

_OPENERS = ("Hi everyone, welcome back to the live room!", "Hello my friends, thanks for joining us today.",
            "Welcome, welcome, come on in!", "Good evening everybody, great to see you here.",
            "Hey guys, we are live again with something special.")
_PRODUCTS = ("this vitamin C serum", "our new wireless earbuds", "this stainless steel water bottle",
             "the organic green tea set", "this portable blender", "our best selling face cream",
             "this smart watch", "the non stick frying pan", "this silk pillow case", "our protein powder")
_CLAIMS = ("It is lightweight and lasts all day.", "Customers gave it five stars, thousands of them.",
           "You can see the quality right here, look at the finish.", "It works in just a few minutes.",
           "The battery lasts for two full days.", "It is made from natural ingredients only.",
           "Look how easy it is to use, just one button.", "It comes with a two year warranty.",
           "My whole family uses it every single day.", "It fits in any bag, take it everywhere.")
_OFFERS = ("Today only, it is fifty percent off.", "Buy one and get the second one free.",
           "The price drops to nineteen ninety nine for the next ten minutes.",
           "Free shipping on every order tonight.", "Only a hundred pieces left in stock.")
_CALLS = ("Click the yellow cart below to order now.", "Tap the link and grab yours before it sells out.",
          "Leave a comment if you have any questions.", "Hit the like button and share the room with a friend.",
          "Don't miss it, the offer ends soon.")


class SpeechError(RuntimeError):
    """eSpeak NG could not be loaded or failed to speak."""


@dataclass(frozen=True)
class Speech:
    samples: np.ndarray        # mono float32
    rate: int                  # samples per second
    info: dict                 # voice, rate_wpm, pitch, sentences (JSON-able)


class _Engine:
    """The loaded library (one per process), initialised in synchronous mode."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:
            raise SpeechError("espeakng-loader is needed for AI-driven speech (pip install 'detector[corpus]')") from exc
        try:
            lib = ctypes.CDLL(espeakng_loader.get_library_path())
            data = espeakng_loader.get_data_path()
        except (OSError, RuntimeError) as exc:
            raise SpeechError(f"cannot load eSpeak NG from espeakng-loader: {exc}") from exc
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        self.callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                              ctypes.c_void_p)
        lib.espeak_SetSynthCallback.argtypes = [self.callback_type]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        # eSpeak NG draws random numbers (e.g. for voice variants' breathiness); seeding them
        # per utterance makes the audio a function of the arguments alone.
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = None
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode(), _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise SpeechError(f"espeak_Initialize failed ({rate}) with data at {data}")
        self.lib, self.rate = lib, rate
        self.chunks: list[np.ndarray] = []

        def collect(wav, n, _events):
            if wav and n > 0:
                self.chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0                                   # 0: go on synthesising

        self.callback = self.callback_type(collect)    # kept referenced: C holds the pointer
        lib.espeak_SetSynthCallback(self.callback)

    def say(self, text: str, voice: str, rate_wpm: int, pitch: int, pitch_range: int, seed: int) -> np.ndarray:
        """One utterance as int16 samples at `self.rate`."""
        lib = self.lib
        lib.espeak_ng_SetRandSeed(seed)
        if lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise SpeechError(f"eSpeak NG has no voice {voice!r}")
        for parameter, value in ((_RATE, rate_wpm), (_PITCH, pitch), (_RANGE, pitch_range), (_VOLUME, 100),
                                 (_WORDGAP, 0)):
            if lib.espeak_SetParameter(parameter, value, 0) != _EE_OK:
                raise SpeechError(f"espeak_SetParameter({parameter}, {value}) failed")
        self.chunks = []
        raw = text.encode("utf-8") + b"\0"
        error = lib.espeak_Synth(raw, len(raw), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if error != _EE_OK or lib.espeak_Synchronize() != _EE_OK:
            raise SpeechError(f"espeak_Synth failed ({error}) for {text!r}")
        if not self.chunks:
            raise SpeechError(f"eSpeak NG returned no audio for {text!r}")
        return np.concatenate(self.chunks)


@functools.lru_cache(maxsize=1)
def _engine() -> _Engine:
    return _Engine()


class _Deck:
    """Draws from a pool without repeating until every item has been used (a presenter
    varies their lines: a repeated sentence is also an identical stretch of TTS audio)."""

    def __init__(self, items, rng: np.random.Generator):
        self.items, self.rng, self.left = list(items), rng, []

    def draw(self) -> str:
        if not self.left:
            self.left = [self.items[i] for i in self.rng.permutation(len(self.items))]
        return self.left.pop()


def script(rng: np.random.Generator) -> Iterator[str]:
    """An endless product pitch: opener, then per product a presentation, 1-3 claims, an
    offer and a call to action."""
    products, claims, offers, calls = (_Deck(pool, rng) for pool in (_PRODUCTS, _CLAIMS, _OFFERS, _CALLS))
    intros = _Deck(["Today I want to show you {}.", "Look at {}.", "Let me hold up {} for you.",
                    "Next up, {}.", "Now have a look at {}."], rng)
    yield str(rng.choice(_OPENERS))
    while True:
        yield intros.draw().format(products.draw())
        for _ in range(int(rng.integers(1, 4))):
            yield claims.draw()
        yield offers.draw()
        yield calls.draw()


def pitch_speech(seed: int, duration_s: float, rate: int = 16000) -> Speech:
    """`duration_s` of a seeded voice reading a product pitch, resampled to `rate`.

    Sentences follow each other with seeded pauses (0.15-0.9 s) and the last one is cut at
    the end. The choices depend only on the seed and the level is fixed, so a shorter clip
    of a seed is the start of a longer one: a clip's mouth (from the recipe) and its audio
    (from the soundtrack) agree even if they ask for lengths a frame apart. Raises
    SpeechError if eSpeak NG fails."""
    spoken = _spoken(seed, 5.0 * math.ceil(duration_s / 5.0 + 1e-9), rate)
    n = int(round(duration_s * rate))
    return Speech(spoken.samples[:n], rate, spoken.info)


@functools.lru_cache(maxsize=2)
def _spoken(seed: int, duration_s: float, rate: int) -> Speech:
    """Speech from a fresh process (see the module doc)."""
    import json
    import subprocess
    import sys

    import os
    from pathlib import Path

    # The child imports this package from wherever the parent did (an install or a checkout).
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "detector.corpus.speech", str(seed), repr(float(duration_s)),
                           str(rate)], capture_output=True, check=False, env=env)
    if done.returncode != 0:
        raise SpeechError(f"speech process failed ({done.returncode}): {done.stderr.decode(errors='replace')[-500:]}")
    header, _, body = done.stdout.partition(b"\n")
    return Speech(np.frombuffer(body, np.float32).copy(), rate, json.loads(header))


def _speak_here(seed: int, duration_s: float, rate: int) -> Speech:
    """pitch_speech in this process (only ever called once per process: see module doc)."""
    from scipy.signal import resample_poly

    if rate <= 0 or not duration_s > 0:
        raise ValueError(f"cannot speak {duration_s} s at {rate} samples per second")
    rng = np.random.default_rng([seed, 21])
    voice = str(rng.choice(VOICES))
    rate_wpm, pitch, pitch_range = int(rng.integers(140, 200)), int(rng.integers(30, 70)), int(rng.integers(30, 80))
    n_total = int(round(duration_s * rate))
    lead = np.zeros(int(rng.uniform(0.1, 0.6) * rate), np.float32)     # talk starts a moment in
    parts, n, count = [lead], len(lead), 0
    sentences = script(rng)
    engine = _engine()
    while n < n_total:
        # Each sentence a little faster or slower, higher or lower, as people speak.
        said = engine.say(next(sentences), voice, rate_wpm + int(rng.integers(-12, 13)),
                          int(np.clip(pitch + rng.integers(-6, 7), 0, 99)), pitch_range, int(rng.integers(1, 2**31 - 1)))
        said = resample_poly(said.astype(np.float32) / 32768.0, rate, engine.rate).astype(np.float32)
        pause = np.zeros(int(rng.uniform(0.15, 0.9) * rate), np.float32)
        parts += [said, pause]
        n += len(said) + len(pause)
        count += 1
    samples = np.clip(np.concatenate(parts)[:n_total] * _GAIN, -1.0, 1.0)
    return Speech(samples, rate, {"voice": voice, "rate_wpm": rate_wpm, "pitch": pitch, "sentences": count})


def mouth_envelope(speech: Speech, fps: float, n_frames: int) -> np.ndarray:
    """Mouth opening 0..1 per frame from the speech's loudness (RMS over each frame's
    duration, in dB over a 40 dB range, lightly smoothed as a lip-sync model's output is)."""
    hop = speech.rate / fps
    out = np.zeros(n_frames)
    x = speech.samples.astype(np.float64)
    for i in range(n_frames):
        a, b = int(round(i * hop)), int(round((i + 1) * hop))
        if a < len(x):
            out[i] = np.sqrt(np.mean(x[a:min(b, len(x))] ** 2))
    ref = max(float(np.percentile(out, 95)), 1e-6)
    db = 20 * np.log10(np.maximum(out, 1e-9) / ref)
    opening = np.clip((db + 40.0) / 40.0, 0.0, 1.0) ** 1.5
    smooth = np.convolve(opening, [0.25, 0.5, 0.25], mode="same")
    return np.clip(smooth, 0.0, 1.0)


def _main(argv: list[str]) -> int:
    """Child process: `SEED DURATION_S RATE` -> one JSON line of info, then float32 samples."""
    import json
    import sys

    speech = _speak_here(int(argv[0]), float(argv[1]), int(argv[2]))
    sys.stdout.buffer.write(json.dumps(speech.info).encode() + b"\n" + speech.samples.astype(np.float32).tobytes())
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(_main(sys.argv[1:]))
