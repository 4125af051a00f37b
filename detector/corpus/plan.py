"""Which clips a corpus holds: a deterministic list of jobs from (per-class count, seed, set).

Each class cycles through its variants (in a seeded order per cycle), so even a small corpus
covers every variant. Per clip, a generator seeded by (seed, class, index) draws the clip
seed, orientation, size, frame rate, length and encoding, so adding clips never changes the
ones before them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from detector.corpus.layers import SENSOR_NOISE_SIGMA
from detector.corpus.variants import RECIPES, Spec

LABELS = ("live", "looped", "prerecorded", "ai_driven")


@dataclass(frozen=True)
class CorpusSet:
    """Lengths and sizes of one kind of corpus."""

    name: str
    min_s: float
    max_s: float
    hires_share: float         # share of clips at 720x1280 / 1280x720 (the rest 360x640 / 640x360)
    excluded: tuple[str, ...] = ()


# 18-40 s at mostly 360x640 keeps the default corpus (400 clips) within ~40 min on 2 cores,
# and leaves room for loops of 6-17 s aired at least twice. Every class draws from the same
# lengths, so a clip's length says nothing about its class.
DEFAULT = CorpusSet("default", 18.0, 40.0, 0.12)
QUICK = CorpusSet("quick", 10.0, 13.0, 0.0)
# Film clips cannot last ten minutes: the packaged footage is 19 s in all.
LONG = CorpusSet("long", 600.0, 720.0, 0.0, excluded=("film",))


@dataclass(frozen=True)
class Encoding:
    bitrate_kbps: int
    gop_s: float
    bframes: int
    preset: str = "veryfast"   # x264 preset (OBS's default; superfast is common on weak PCs)


@dataclass(frozen=True)
class Job:
    path: str                  # relative to the corpus folder
    spec: Spec
    encoding: Encoding
    noise_sigma: float         # extra sensor noise over everything (fresh on every frame)
    overlay_draw: int          # seed of the live-room overlays chosen for this clip
    audio: bool = False        # add a soundtrack that follows the clip's truth (corpus.audio)


def variants(label: str, corpus_set: CorpusSet) -> list[str]:
    return [v for v in RECIPES[label] if v not in corpus_set.excluded]


def plan(per_class: int, seed: int, corpus_set: CorpusSet = DEFAULT, audio: bool = False) -> list[Job]:
    """The jobs of a corpus. `audio` adds soundtracks without changing any picture."""
    jobs = []
    for label_index, label in enumerate(LABELS):
        names = variants(label, corpus_set)
        order: list[str] = []
        for k in range(per_class):
            if k % len(names) == 0:
                cycle = k // len(names)
                perm = np.random.default_rng([seed, label_index, 1_000_000 + cycle]).permutation(len(names))
                order = [names[i] for i in perm]
            variant = order[k % len(names)]
            rng = np.random.default_rng([seed, label_index, k])
            job = _job(label, variant, k, rng, corpus_set)
            jobs.append(dataclasses.replace(job, audio=True) if audio else job)
    return jobs


def _job(label: str, variant: str, index: int, rng: np.random.Generator, corpus_set: CorpusSet) -> Job:
    clip_seed = int(rng.integers(1, 2**31 - 1))
    portrait = rng.random() < 0.7            # rooms are mostly streamed from phones
    hires = rng.random() < corpus_set.hires_share
    short, long_ = (720, 1280) if hires else (360, 640)
    width, height = (short, long_) if portrait else (long_, short)
    fps = float(rng.choice([25.0, 30.0]))
    duration_s = round(float(rng.uniform(corpus_set.min_s, corpus_set.max_s)), 2)
    # Streaming bitrates: 0.04-0.10 bits per pixel per frame (~230-580 kb/s at 360p25).
    bpp = float(rng.uniform(0.04, 0.10))
    encoding = Encoding(int(width * height * fps * bpp / 1000), float(rng.choice([1.0, 2.0, 2.0, 4.0])),
                        int(rng.choice([0, 2, 2, 3])), str(rng.choice(["veryfast", "superfast"])))
    spec = Spec(label, variant, width, height, fps, duration_s, clip_seed)
    path = f"{label}/{label}-{index:04d}-{variant}.mp4"
    return Job(path, spec, encoding, float(rng.uniform(*SENSOR_NOISE_SIGMA)), int(rng.integers(0, 2**31 - 1)))
