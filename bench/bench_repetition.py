"""Benchmark of the repetition engine (issue 3): quality per disguise, false alarms, scale.

    python bench/bench_repetition.py               # full: 10 seeds per row (first run ~20-30 min: it
                                                   # generates 220 clips; later runs reuse them, ~7 min)
    python bench/bench_repetition.py --quick       # 2 seeds per row (smoke test)
    python bench/bench_repetition.py --seeds 5     # another number of seeds
    python bench/bench_repetition.py --only crop/zoom,speed --skip-negatives --skip-scale   # investigate

1. Quality: for every disguise named in issue 3, generated clips (detector.synth.loops plans
   with randomised disguise parameters) are encoded into bench/out/repetition/, scanned with
   `extract(path, ScanConfig(), [RepetitionExtractor()])`, and the `loop` evidence is compared
   with the truth: recall, clip-level recall, span-boundary error, period error, transform.
2. False alarms: never-repeating scenes and the hard negatives; any `loop` evidence is a
   false alarm (the still room must also come out `static`).
3. Scale: `detector.loopsearch.find_repeats` on synthetic fingerprints of a 1-hour and a
   10-hour stream (5 per second), time and peak memory in a fresh child process, side by side
   with a naive all-pairs comparison; and the scan time of a 720p clip with and without the
   RepetitionExtractor.

The engine is frozen for the run: the detector package is copied to
bench/out/repetition/engine_<digest>/ and every part of the run (workers, scale children)
imports that copy, so edits to detector/ during a run cannot mix versions.

Writes bench/out/repetition.json (repetition_quick.json with --quick) and prints markdown
tables. Requirements are printed as PASS/FAIL; nothing is asserted: this is a benchmark.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import time
import traceback
import zlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
CLIPS = OUT / "repetition"
sys.path.insert(0, str(ROOT))
# A frozen copy of the engine (see _freeze_engine): every part of one run measures the same code
# even when the files under detector/ are being edited while the benchmark runs.
if os.environ.get("BENCH_REPETITION_ENGINE"):
    sys.path.insert(0, os.environ["BENCH_REPETITION_ENGINE"])

# Requirements (issue 3).
MIN_RECALL = 0.98
MAX_BOUNDARY_S = 1.0
MAX_PERIOD_ERR_PCT = 2.0
MIN_NO_FALSE_LOOP = 0.99
MAX_SEARCH_10H_S = 5.0
MAX_SEARCH_10H_MB = 300.0

# Evaluation tolerances.
FOUND_COVERAGE = 0.5          # a truth replay is found when this share of its airtime is covered
CONTENT_TOLERANCE_S = 1.0     # a reported span shows the right content within this much clip time
BOUNDARY_CONTINUE_S = 1.0     # a span reaching this far across a truth boundary may be a merge

FINGERPRINT_HZ = 5.0

# The engine under test: its digest goes into the JSON, so results can be traced to a version.
ENGINE_FILES = ("detector/fingerprint.py", "detector/loopsearch.py", "detector/regional.py",
                "detector/extractors/repetition.py")


def engine_digest(root: Path = ROOT) -> str:
    h = hashlib.sha1()
    for name in ENGINE_FILES:
        path = root / name
        h.update(path.read_bytes() if path.exists() else b"missing " + name.encode())
    return h.hexdigest()[:12]


def _freeze_engine() -> tuple[str, Path]:
    """Copy the detector package to bench/out/repetition/engine_<digest>/ and import it from
    there (this process, the forked workers and the scale children alike)."""
    import shutil

    digest = engine_digest()
    snapshot = CLIPS / f"engine_{digest}"
    if not (snapshot / "detector").exists():
        CLIPS.mkdir(parents=True, exist_ok=True)
        partial = CLIPS / f"engine_{digest}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(ROOT / "detector", partial / "detector", ignore=shutil.ignore_patterns("__pycache__"))
        partial.rename(snapshot)
    if engine_digest(snapshot) != digest:      # edited between the digest and the copy: try again
        shutil.rmtree(snapshot)
        return _freeze_engine()
    os.environ["BENCH_REPETITION_ENGINE"] = str(snapshot)
    sys.path.insert(0, str(snapshot))
    return digest, snapshot


# =========================================================================================
# cases: plans with randomised disguises
# =========================================================================================

@dataclass
class Case:
    row: str
    seed: int
    plan: object                       # detector.synth.loops.LoopPlan
    width: int
    height: int
    fps: int
    writer: dict = field(default_factory=dict)
    pip: dict | None = None            # picture in picture composition, see _pip_frames
    notes: str = ""

    def key(self) -> str:
        spec = repr((self.plan, self.width, self.height, self.fps, sorted(self.writer.items()),
                     sorted((self.pip or {}).items())))
        return hashlib.sha1(spec.encode()).hexdigest()[:10]

    def path(self) -> Path:
        slug = self.row.replace(" ", "_").replace("/", "_").replace(":", "")
        return CLIPS / f"{slug}_seed{self.seed}_{self.width}x{self.height}_{self.fps}fps_{self.key()}.mp4"


def _rng(row: str, seed: int) -> np.random.Generator:
    return np.random.default_rng([zlib.crc32(row.encode()), seed])


def _frame_format(rng: np.random.Generator) -> tuple[int, int, int]:
    width, height = (320, 180) if rng.random() < 0.5 else (180, 320)
    return width, height, int(rng.choice([25, 30]))


def _off_centre(rng: np.random.Generator) -> tuple[float, float]:
    while True:
        cx, cy = rng.uniform(0, 1, 2)
        if max(abs(cx - 0.5), abs(cy - 0.5)) >= 0.25:
            return float(round(cx, 3)), float(round(cy, 3))


def _r(x: float, nd: int = 3) -> float:
    return float(round(float(x), nd))


def _disguise_pool(rng: np.random.Generator, kind: str, pass_no: int):
    """Keyword arguments of a Disguise (or of Air for speed/drops) for one disguise kind."""
    if kind == "mirror":
        return {"mirror": True}, {}
    if kind == "vflip":
        return {"vflip": True}, {}
    if kind == "crop":
        return {"crop": _r(rng.uniform(0.05, 0.12)), "crop_centre": _off_centre(rng)}, {}
    if kind == "rotation":
        return {"rotation_deg": _r(rng.choice([-1, 1]) * rng.uniform(0.5, 4.0), 2)}, {}
    if kind == "colour":
        return {"brightness": _r(rng.uniform(-30, 30), 1), "contrast": _r(rng.uniform(0.75, 1.3)),
                "gamma": _r(rng.uniform(0.75, 1.35)), "hue_shift_deg": _r(rng.uniform(-60, 60), 1)}, {}
    if kind == "noise":
        return {"noise_sigma": _r(rng.uniform(4, 12), 2)}, {}
    if kind == "overlay":
        return {"overlay": str(rng.choice(["comments", "stickers", "watermark", "all"])),
                "overlay_seed": int(rng.integers(0, 1000)) + pass_no}, {}
    if kind == "reencode":
        return {"reencode_quality": int(rng.integers(10, 40)), "rescale": _r(rng.uniform(0.35, 0.75))}, {}
    if kind == "speed":
        return {}, {"speed": _r(rng.uniform(0.92, 1.08))}
    if kind == "drops":
        return {}, {"drop_share": _r(rng.uniform(0.02, 0.08))}
    raise ValueError(kind)


def build_case(row: str, seed: int) -> Case:
    from detector.synth.disguise import Disguise
    from detector.synth.loops import Air, Live, LoopPlan

    rng = _rng(row, seed)
    width, height, fps = _frame_format(rng)
    period = _r(rng.uniform(8.0, 30.0), 1)
    passes = 3 + int(period < 14.0)          # at least two replays; a third when the loop is short
    writer: dict = {}
    notes = ""

    def single(kinds_for_pass) -> list:
        steps = []
        for k in range(passes):
            dis, air = ({}, {}) if k == 0 else kinds_for_pass(k)
            steps.append(Air(0, Disguise(**dis), **air))
        return steps

    def one(kind):
        return lambda k: _disguise_pool(rng, kind, k)

    if row == "re-encode":
        steps = single(one("reencode"))
        writer = {"bitrate_kbps": int(rng.integers(120, 400))}
        if seed % 2:
            writer["codec"] = "mpeg4"
        notes = "replays JPEG q10-40 + rescale 0.35-0.75; whole clip written at 120-400 kbps (mpeg4 on odd seeds)"
    elif row == "overlays":
        steps = [Air(0, Disguise(**_disguise_pool(rng, "overlay", k)[0])) for k in range(passes)]
        notes = "every pass (source too) overlaid, overlay kind and overlay_seed change per pass"
    elif row == "mirror":
        alternate = seed % 2 == 0
        steps = [Air(0, Disguise(mirror=(k % 2 == 1) if alternate else k > 0)) for k in range(passes)]
        notes = "even seeds: every other pass mirrored; odd seeds: every replay mirrored"
    elif row == "vflip":
        alternate = seed % 2 == 0
        steps = [Air(0, Disguise(vflip=(k % 2 == 1) if alternate else k > 0)) for k in range(passes)]
        notes = "even seeds: every other pass flipped; odd seeds: every replay flipped"
    elif row == "speed":
        speeds = [1.0] + [_r(rng.uniform(0.92, 1.08)) if rng.random() < 0.75 else 1.0 for _ in range(passes - 1)]
        if max(abs(s - 1) for s in speeds) < 0.03:
            speeds[1] = _r(1.0 + rng.choice([-1, 1]) * rng.uniform(0.03, 0.08))
        steps = [Air(0, speed=s) for s in speeds]
        notes = "speed 0.92-1.08 on ~75 % of replays (at least one >= 3 % off)"
    elif row == "dropped/duplicated frames":
        steps = single(one("drops"))
        notes = "Air.drop_share 0.02-0.08 on every replay"
    elif row == "crop/zoom":
        steps = single(one("crop"))
        notes = "crop 5-12 %, crop_centre off-centre (>= 0.25 from the middle on one axis), new per pass"
    elif row == "rotation":
        steps = single(one("rotation"))
        notes = "rotation +-0.5-4 degrees per replay"
    elif row == "colour":
        steps = single(one("colour"))
        notes = "brightness +-30, contrast 0.75-1.3, gamma 0.75-1.35, hue +-60 degrees per replay"
    elif row == "noise/grain":
        steps = single(one("noise"))
        notes = "Gaussian noise sigma 4-12 per replay"
    elif row == "late start":
        lead = _r(rng.uniform(60, 180), 1)
        steps = [Live(lead)] + [Air(0) for _ in range(3)] + [Live(_r(rng.uniform(30, 60), 1))]
        notes = "Live lead-in 60-180 s, the loop (3 airings), then 30-60 s of live footage again"
    elif row == "shuffled playlist":
        n_clips = int(rng.integers(3, 5))
        durations = {c: _r(rng.uniform(8.0, 15.0), 1) for c in range(n_clips)}
        order = []
        for _ in range(3):                       # first airing + two shuffled rounds
            perm = list(rng.permutation(n_clips))
            if order and perm[0] == order[-1]:
                perm = perm[1:] + perm[:1]
            order += [int(c) for c in perm]
        plan = LoopPlan([Air(c) for c in order], durations)
        return Case(row, seed, plan, width, height, fps, writer, None,
                    "3-4 clips of 8-15 s, each aired 3 times in shuffled rounds")
    elif row == "boomerang":
        steps = [Air(0, reversed=bool(k % 2)) for k in range(passes)]
        notes = "forward, reversed, forward[, reversed]"
    elif row == "all combined":
        kinds = ["mirror", "vflip", "crop", "rotation", "colour", "noise", "overlay", "reencode", "speed", "drops"]
        steps = [Live(_r(rng.uniform(10, 30), 1))]
        source = Disguise(**_disguise_pool(rng, "overlay", 0)[0]) if rng.random() < 0.5 else Disguise()
        steps.append(Air(0, source))
        for k in range(1, passes):
            chosen = rng.choice(len(kinds), size=int(rng.integers(4, 7)), replace=False)
            dis, air = {}, {}
            for i in sorted(chosen):
                d, a = _disguise_pool(rng, kinds[i], k)
                dis.update(d)
                air.update(a)
            steps.append(Air(0, Disguise(**dis), **air))
        steps.append(Live(_r(rng.uniform(20, 40), 1)))
        notes = "10-30 s lead-in and 20-40 s live tail; each replay carries 4-6 random disguises of the rows above"
    elif row in ("pip: recorded window in live", "pip: live window over recorded"):
        steps = [Air(0) for _ in range(passes)]
        inner = row == "pip: recorded window in live"
        share = _r(rng.uniform(0.4, 0.6) if inner else rng.uniform(0.25, 0.35))
        ww, wh = int(round(width * share / 2) * 2), int(round(height * share / 2) * 2)
        pip = {"recorded_inside": inner, "window": (ww, wh),
               "x0": int(rng.integers(0, width - ww + 1)), "y0": int(rng.integers(0, height - wh + 1)),
               "live_seed": 7000 + seed}
        notes = ("recorded loop in a window of 40-60 % of each side over live footage" if inner
                 else "live window of 25-35 % of each side over the recorded loop")
        return Case(row, seed, LoopPlan(steps, {0: period}), width, height, fps, writer, pip, notes)
    else:
        raise ValueError(row)
    return Case(row, seed, LoopPlan(steps, {0: period}), width, height, fps, writer, None, notes)


ROWS = (
    "re-encode", "overlays", "mirror", "vflip", "speed", "dropped/duplicated frames", "crop/zoom",
    "rotation", "colour", "noise/grain", "late start", "shuffled playlist", "boomerang",
    "all combined", "pip: recorded window in live", "pip: live window over recorded",
)
# Rows where the repetition is confined to a region (issue 3: "reported as such"): recall is
# judged on `loop` and `regional_loop` evidence together, and the period on the regional
# period where no whole-frame period is reported.
REGIONAL_ROWS = ("pip: recorded window in live",)
# Rows whose period can be checked: one clip, forward, speed 1 on every pass.
NEGATIVES = ("moving", "static", "gesture", "turntable", "pan_back", "slideshow")


# =========================================================================================
# rendering
# =========================================================================================

def _render(case: Case):
    from detector.synth.loops import render
    from detector.synth.scenes import moving_scene

    if case.pip is None:
        return render(case.plan, case.width, case.height, case.fps, seed=case.seed)
    ww, wh = case.pip["window"]
    x0, y0 = case.pip["x0"], case.pip["y0"]
    if case.pip["recorded_inside"]:
        frames, truth, duration = render(case.plan, ww, wh, case.fps, seed=case.seed)
        live = moving_scene(case.width, case.height, case.fps, duration, case.pip["live_seed"])
    else:
        frames, truth, duration = render(case.plan, case.width, case.height, case.fps, seed=case.seed)
        live = moving_scene(ww, wh, case.fps, duration, case.pip["live_seed"])

    def composed():
        for rec, liv in zip(frames, live):
            big, small = (liv, rec) if case.pip["recorded_inside"] else (rec, liv)
            out = np.array(big, copy=True)
            out[y0:y0 + wh, x0:x0 + ww] = small
            yield out

    return composed(), truth, duration


def _write(path: Path, frames, fps: int, writer: dict) -> None:
    from detector.synth.writer import write_clip

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.mp4")
    write_clip(partial, frames, fps, **writer)
    partial.rename(path)


# =========================================================================================
# truth and evaluation
# =========================================================================================

@dataclass
class Airing:
    start_s: float
    end_s: float
    clip: int
    clip_s: float           # clip duration
    mirror: bool
    vflip: bool
    reversed: bool
    speed: float
    first: bool

    def content(self, t: float) -> tuple[int, float]:
        u = (t - self.start_s) / max(self.end_s - self.start_s, 1e-9)
        u = min(max(u, 0.0), 1.0)
        return self.clip, (1.0 - u if self.reversed else u) * self.clip_s


def airings_of(plan, truth) -> list[Airing]:
    """Every airing of every clip, from the plan's Air steps and render's truth."""
    from detector.synth.loops import Air

    firsts = {}
    for tr in truth:
        firsts[tr.clip] = (tr.source_start_s, tr.source_end_s)
    spans = sorted([(tr.start_s, tr.end_s, tr.clip, False) for tr in truth]
                   + [(a, b, c, True) for c, (a, b) in firsts.items()])
    steps = [s for s in plan.steps if isinstance(s, Air)]
    if len(steps) != len(spans) or any(s.clip != c for s, (_, _, c, _) in zip(steps, spans)):
        raise RuntimeError("cannot match plan steps with truth (a clip aired only once?)")
    return [Airing(a, b, c, plan.clip_durations_s[c], s.disguise.mirror, s.disguise.vflip, s.reversed, s.speed, f)
            for s, (a, b, c, f) in zip(steps, spans)]


def _overlap(a0, a1, b0, b1) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def _union(intervals) -> float:
    from detector.extractors.repetition import union_length

    return union_length(list(intervals))


def _airing_at(airings: list[Airing], t: float) -> Airing | None:
    for a in airings:
        if a.start_s <= t < a.end_s:
            return a
    return None


def _source_time(loop: dict, t: float) -> float:
    ratio = (loop["source_end_s"] - loop["source_start_s"]) / max(loop["end_s"] - loop["start_s"], 1e-9)
    if "reversed" in loop["transform"]:
        return loop["source_end_s"] - (t - loop["start_s"]) * ratio
    return loop["source_start_s"] + (t - loop["start_s"]) * ratio


def _correct_at(loop: dict, t: float, airings: list[Airing]) -> bool:
    """Does the loop's mapping send airtime t to the same clip content?"""
    here = _airing_at(airings, t)
    there = _airing_at(airings, _source_time(loop, t))
    if here is None or there is None:
        return False
    (c1, p1), (c2, p2) = here.content(t), there.content(_source_time(loop, t))
    return c1 == c2 and abs(p1 - p2) <= CONTENT_TOLERANCE_S


def _qualifies(loop: dict, replay: Airing, airings: list[Airing]) -> bool:
    """Reported source overlaps any earlier airing of the replay's clip."""
    return any(a.clip == replay.clip and a.start_s < replay.start_s - 1e-6
               and _overlap(loop["source_start_s"], loop["source_end_s"], a.start_s, a.end_s) > 0
               for a in airings)


def _expected_words(loop: dict, replay: Airing, airings: list[Airing]) -> list[str]:
    """Disguise words the reported transform should name, relative to the airing the span's
    mapping actually points at (mid-point of the replay's overlap with the span)."""
    earlier = [a for a in airings if a.clip == replay.clip and a.start_s < replay.start_s - 1e-6]
    mid = 0.5 * (max(loop["start_s"], replay.start_s) + min(loop["end_s"], replay.end_s))
    src = _airing_at(earlier, _source_time(loop, mid))
    if src is None:
        src = max(earlier, key=lambda a: _overlap(loop["source_start_s"], loop["source_end_s"], a.start_s, a.end_s))
    words = []
    if replay.mirror != src.mirror:
        words.append("mirror")
    if replay.vflip != src.vflip:
        words.append("vflip")
    if replay.reversed != src.reversed:
        words.append("reversed")
    if abs(replay.speed / src.speed - 1.0) >= 0.02:
        words.append("speed")
    return words


def evaluate(airings: list[Airing], loops: list[dict], period_s: float, regional: list[dict] = ()) -> dict:
    replays = [a for a in airings if not a.first]
    per_replay = []
    for r in replays:
        # Informative: the replay counted as found by `loop` or `regional_loop` spans together.
        q_any = [lp for lp in [*loops, *regional] if _overlap(lp["start_s"], lp["end_s"], r.start_s, r.end_s) > 0
                 and _qualifies(lp, r, airings)]
        coverage_any = _union([(max(lp["start_s"], r.start_s), min(lp["end_s"], r.end_s)) for lp in q_any]) / (
            r.end_s - r.start_s)
        q = [lp for lp in loops if _overlap(lp["start_s"], lp["end_s"], r.start_s, r.end_s) > 0
             and _qualifies(lp, r, airings)]
        length = r.end_s - r.start_s
        coverage = _union([(max(lp["start_s"], r.start_s), min(lp["end_s"], r.end_s)) for lp in q]) / length
        ts = np.arange(r.start_s + 0.05, r.end_s, 0.1)
        content = float(np.mean([any(_correct_at(lp, t, airings) for lp in loops
                                     if lp["start_s"] <= t < lp["end_s"]) for t in ts])) if len(ts) else 0.0
        found = coverage >= FOUND_COVERAGE
        entry = {"start_s": round(r.start_s, 3), "end_s": round(r.end_s, 3), "clip": r.clip,
                 "coverage": round(coverage, 3), "content_coverage": round(content, 3), "found": found,
                 "found_incl_regional": coverage_any >= FOUND_COVERAGE,
                 "start_err_s": None, "end_err_s": None, "expected_transform": None, "transform_seen": None}
        if found:
            # Boundary errors: spans overlapping the replay by >= 1 s (or half of it).
            qb = [lp for lp in q if _overlap(lp["start_s"], lp["end_s"], r.start_s, r.end_s) >= min(1.0, 0.5 * length)]
            # A span that carries on correctly across a truth boundary (adjacent replays of
            # contiguous content, e.g. two playlist clips aired in the same order again) is a
            # legitimate merge: that boundary is not a boundary of replayed footage.
            cont_start = any(lp["start_s"] < r.start_s - BOUNDARY_CONTINUE_S and _correct_at(lp, r.start_s - 0.5, airings)
                             for lp in qb)
            cont_end = any(lp["end_s"] > r.end_s + BOUNDARY_CONTINUE_S and _correct_at(lp, r.end_s + 0.5, airings)
                           for lp in qb)
            if qb and not cont_start:
                entry["start_err_s"] = round(min(abs(lp["start_s"] - r.start_s) for lp in qb), 3)
            if qb and not cont_end:
                entry["end_err_s"] = round(min(abs(lp["end_s"] - r.end_s) for lp in qb), 3)
            best = max(q, key=lambda lp: _overlap(lp["start_s"], lp["end_s"], r.start_s, r.end_s))
            words = _expected_words(best, r, airings)
            if words:
                entry["expected_transform"] = "+".join(words)
                entry["transform_seen"] = all(w in best["transform"] for w in words)
            entry["reported_transform"] = best["transform"]
        per_replay.append(entry)
    # Precision-like: share of reported loop airtime that shows the content it claims.
    reported = correct = 0.0
    false_spans = []
    for lp in loops:
        ts = np.arange(lp["start_s"] + 0.05, lp["end_s"], 0.1)
        ok = np.mean([_correct_at(lp, t, airings) for t in ts]) if len(ts) else 0.0
        reported += lp["end_s"] - lp["start_s"]
        correct += ok * (lp["end_s"] - lp["start_s"])
        if ok < 0.5:
            false_spans.append(lp)
    # Period, for one clip aired forward at speed 1 on every pass.
    period = None
    single = len({a.clip for a in airings}) == 1 and all(not a.reversed and a.speed == 1.0 for a in airings)
    if single:
        starts = [a.start_s for a in airings]
        truth_period = float(np.mean(np.diff(starts)))
        err = abs(period_s - truth_period) / truth_period * 100 if math.isfinite(period_s) else None
        period = {"truth_s": round(truth_period, 3), "reported_s": None if not math.isfinite(period_s) else round(period_s, 3),
                  "err_pct": None if err is None else round(err, 3)}
    return {"replays": per_replay, "reported_s": round(reported, 2), "correct_s": round(correct, 2),
            "false_spans": false_spans, "period": period}


def _loops_of(extraction, kind: str = "loop") -> list[dict]:
    """`loop` evidence (or `regional_loop`: repetition confined to a region, picture in picture)."""
    return [{"start_s": round(e.start_s, 3), "end_s": round(e.end_s, 3),
             "source_start_s": round(e.source_start_s, 3), "source_end_s": round(e.source_end_s, 3),
             "transform": str(e.detail.get("transform", "")), "speed": e.detail.get("speed"),
             "score": round(float(e.score), 3), "distance": e.detail.get("distance"),
             "shifted_distance": e.detail.get("shifted_distance")}
            for e in extraction.evidence if e.kind == kind]


# =========================================================================================
# workers (one case per task)
# =========================================================================================

def run_quality_case(row: str, seed: int, fresh: bool) -> dict:
    from detector.config import ScanConfig
    from detector.extractors.repetition import RepetitionExtractor
    from detector.pipeline import extract

    t0 = time.perf_counter()
    record = {"row": row, "seed": seed}
    try:
        case = build_case(row, seed)
        record.update(width=case.width, height=case.height, fps=case.fps, writer=case.writer,
                      pip=case.pip, plan=repr(case.plan))
        frames, truth, duration = _render(case)
        path = case.path()
        record["path"] = str(path.relative_to(ROOT))
        record["duration_s"] = round(duration, 3)
        if fresh or not path.exists():
            _write(path, frames, case.fps, case.writer)
        else:
            del frames
        t1 = time.perf_counter()
        extraction = extract(path, ScanConfig(), [RepetitionExtractor()])
        t2 = time.perf_counter()
        loops = _loops_of(extraction)
        regional = _loops_of(extraction, "regional_loop")
        airings = airings_of(case.plan, truth)
        record["airings"] = [{"start_s": round(a.start_s, 3), "end_s": round(a.end_s, 3), "clip": a.clip,
                              "mirror": a.mirror, "vflip": a.vflip, "reversed": a.reversed, "speed": a.speed,
                              "first": a.first} for a in airings]
        record["truth"] = [{"start_s": round(t.start_s, 3), "end_s": round(t.end_s, 3),
                            "source_start_s": round(t.source_start_s, 3), "source_end_s": round(t.source_end_s, 3),
                            "clip": t.clip, "transform": t.transform} for t in truth]
        record["loops"] = loops
        record["regional_loops"] = regional
        feats = extraction.features
        record["features"] = {k: (None if not math.isfinite(v) else round(v, 4)) for k, v in feats.items()
                              if k.startswith("repetition__")}
        period_s = feats.get("repetition__period_s", math.nan)
        if row in REGIONAL_ROWS and not math.isfinite(period_s):
            period_s = feats.get("repetition__regional_period_s", math.nan)
        record["eval"] = evaluate(airings, loops, period_s, regional)
        record["truth_clips"] = len({a.clip for a in airings})
        record["render_write_s"] = round(t1 - t0, 2)
        record["scan_s"] = round(t2 - t1, 2)
    except Exception as exc:  # noqa: BLE001 -- a failure is a record, never dropped
        record["error"] = f"{type(exc).__name__}: {exc}"
        record["traceback"] = traceback.format_exc()
    return record


def _negative_frames(kind: str, width: int, height: int, fps: int, duration: float, seed: int):
    from detector.synth import hard_negatives as hn
    from detector.synth.scenes import moving_scene, static_scene

    factory = {"moving": moving_scene, "static": static_scene, "gesture": hn.gesture_scene,
               "turntable": hn.turntable_scene, "pan_back": hn.pan_back_scene,
               "slideshow": hn.slideshow_scene}[kind]
    return factory(width, height, fps, duration, seed)


def run_negative_case(kind: str, seed: int, fresh: bool) -> dict:
    from detector.config import ScanConfig
    from detector.extractors.basic import BasicStatsExtractor
    from detector.extractors.repetition import RepetitionExtractor
    from detector.pipeline import extract

    record = {"kind": kind, "seed": seed}
    t0 = time.perf_counter()
    try:
        rng = _rng("negative " + kind, seed)
        width, height, fps = _frame_format(rng)
        duration = _r(rng.uniform(40, 120), 1)
        scene_seed = 100 + seed
        path = CLIPS / f"neg_{kind}_seed{seed}_{width}x{height}_{fps}fps_{duration:g}s.mp4"
        record.update(width=width, height=height, fps=fps, duration_s=duration, path=str(path.relative_to(ROOT)))
        if fresh or not path.exists():
            _write(path, _negative_frames(kind, width, height, fps, duration, scene_seed), fps, {})
        t1 = time.perf_counter()
        config = ScanConfig()
        extraction = extract(path, config, [BasicStatsExtractor(), RepetitionExtractor()])
        record["loops"] = _loops_of(extraction)
        record["regional_loops"] = _loops_of(extraction, "regional_loop")
        static_share = extraction.features.get("basic__static_share", math.nan)
        record["static_share"] = None if not math.isfinite(static_share) else round(static_share, 3)
        record["static_flag"] = bool(math.isfinite(static_share) and static_share >= config.static_flag_share)
        record["static_evidence_s"] = round(sum(e.end_s - e.start_s for e in extraction.evidence if e.kind == "static"), 2)
        record["render_write_s"] = round(t1 - t0, 2)
        record["scan_s"] = round(time.perf_counter() - t1, 2)
    except Exception as exc:  # noqa: BLE001 -- a failure is a record
        record["error"] = f"{type(exc).__name__}: {exc}"
        record["traceback"] = traceback.format_exc()
    return record


def _task(kind: str, name: str, seed: int, fresh: bool) -> dict:
    if kind == "quality":
        return run_quality_case(name, seed, fresh)
    return run_negative_case(name, seed, fresh)


def _expected_cost(kind: str, name: str, seed: int) -> float:
    """Rough seconds of footage that needs per-frame noise (for longest-first scheduling)."""
    if kind == "negative":
        rng = _rng("negative " + name, seed)
        _frame_format(rng)
        return rng.uniform(40, 120) * (1.0 if name in ("gesture", "pan_back", "slideshow") else 0.3)
    case = build_case(name, seed)
    durations = case.plan.clip_durations_s
    from detector.synth.loops import Air
    return sum(durations[s.clip] for s in case.plan.steps if isinstance(s, Air)) + 0.2 * sum(
        getattr(s, "duration_s", 0.0) for s in case.plan.steps)


def run_tasks(tasks: list[tuple[str, str, int]], jobs: int, fresh: bool) -> list[dict]:
    tasks = sorted(tasks, key=lambda t: -_expected_cost(*t))
    results = []
    started = time.perf_counter()
    import multiprocessing as mp

    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("fork")) as pool:
        futures = {pool.submit(_task, kind, name, seed, fresh): (kind, name, seed) for kind, name, seed in tasks}
        for n, fut in enumerate(as_completed(futures), 1):
            kind, name, seed = futures[fut]
            try:
                rec = fut.result()
            except Exception as exc:  # noqa: BLE001 -- a worker that died is a record too
                rec = {"row" if kind == "quality" else "kind": name, "seed": seed, "error": repr(exc)}
            rec["task"] = kind
            results.append(rec)
            status = rec.get("error") or _short_status(rec)
            print(f"[{n}/{len(tasks)} {time.perf_counter() - started:6.0f}s] {kind} {name} seed {seed}: {status}",
                  file=sys.stderr, flush=True)
    return results


def _short_status(rec: dict) -> str:
    if rec.get("task") == "quality" and "eval" in rec:
        reps = rec["eval"]["replays"]
        return (f"{sum(r['found'] for r in reps)}/{len(reps)} replays found, {len(rec['loops'])} spans, "
                f"render+write {rec['render_write_s']}s scan {rec['scan_s']}s")
    if "loops" in rec:
        return f"{len(rec['loops'])} loop spans, scan {rec['scan_s']}s"
    return "?"


# =========================================================================================
# aggregation and tables
# =========================================================================================

def _fmt(x, nd=2, unit=""):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{nd}f}{unit}"


def aggregate_quality(records: list[dict]) -> list[dict]:
    rows = []
    for row in ROWS:
        recs = [r for r in records if r.get("row") == row and r.get("task") == "quality"]
        if not recs:
            continue
        ok = [r for r in recs if "eval" in r]
        replays = [e for r in ok for e in r["eval"]["replays"]]
        found = [e for e in replays if e["found"]]
        bounds = [abs(e[k]) for e in found for k in ("start_err_s", "end_err_s") if e[k] is not None]
        periods = [r["eval"]["period"] for r in ok if r["eval"]["period"] is not None]
        period_errs = [p["err_pct"] for p in periods if p["err_pct"] is not None]
        missing_period = sum(p["err_pct"] is None for p in periods)
        transform = [e["transform_seen"] for e in found if e["transform_seen"] is not None]
        reported = sum(r["eval"]["reported_s"] for r in ok)
        correct = sum(r["eval"]["correct_s"] for r in ok)
        recall = len(found) / len(replays) if replays else math.nan
        recall_regional = (sum(e.get("found_incl_regional", e["found"]) for e in replays) / len(replays)
                           if replays else math.nan)
        clip_recall = (sum(any(e["found"] for e in r["eval"]["replays"]) for r in ok) / len(ok)) if ok else math.nan
        b_med = float(np.median(bounds)) if bounds else math.nan
        b_max = float(np.max(bounds)) if bounds else math.nan
        p_med = float(np.median(period_errs)) if period_errs else math.nan
        p_max = float(np.max(period_errs)) if period_errs else math.nan
        fails = []
        if len(ok) < len(recs):
            fails.append("errors")
        if row in REGIONAL_ROWS:
            if not recall_regional >= MIN_RECALL:
                fails.append("recall with regional_loop")
        elif not recall >= MIN_RECALL:
            fails.append("recall" + (" (regional_loop: met)" if recall_regional >= MIN_RECALL else ""))
        if bounds and b_max > MAX_BOUNDARY_S:
            fails.append("boundary")
        if periods and (missing_period or (period_errs and p_max > MAX_PERIOD_ERR_PCT)):
            fails.append("period")
        rows.append({
            "row": row, "clips": len(recs), "errors": len(recs) - len(ok), "replays": len(replays),
            "found": len(found), "recall": recall, "clip_recall": clip_recall, "recall_incl_regional": recall_regional,
            "content_coverage": float(np.mean([e["content_coverage"] for e in replays])) if replays else math.nan,
            "boundary_med_s": b_med, "boundary_max_s": b_max, "boundaries": len(bounds),
            "period_cases": len(periods), "period_missing": missing_period,
            "period_err_med_pct": p_med, "period_err_max_pct": p_max,
            "transform_seen": (sum(transform) / len(transform)) if transform else None,
            "transform_cases": len(transform),
            "precision": correct / reported if reported else math.nan,
            "false_spans": sum(len(r["eval"]["false_spans"]) for r in ok),
            "library": [(r["features"].get("repetition__distinct_clips"), r["truth_clips"]) for r in ok]
            if row == "shuffled playlist" else None,
            "notes": build_case(row, 0).notes,
            "result": "PASS" if not fails else "FAIL: " + ", ".join(fails),
        })
    return rows


def quality_table(rows: list[dict]) -> str:
    lines = [
        "| disguise | clips | replays | recall | clip recall | boundary err med / max (s) | period err med / max (%) | transform seen | span precision | result |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        period = "n/a" if not r["period_cases"] else (
            f"{_fmt(r['period_err_med_pct'])} / {_fmt(r['period_err_max_pct'])}"
            + (f" ({r['period_missing']} missing)" if r["period_missing"] else ""))
        transform = "n/a" if r["transform_seen"] is None else f"{r['transform_seen']:.2f} (n={r['transform_cases']})"
        lines.append(
            f"| {r['row']} | {r['clips']}{' (' + str(r['errors']) + ' errors)' if r['errors'] else ''} | "
            f"{r['found']}/{r['replays']} | {_fmt(r['recall'], 3)}"
            f"{' (' + _fmt(r['recall_incl_regional'], 3) + ' with regional_loop)' if r['recall_incl_regional'] != r['recall'] else ''}"
            f" | {_fmt(r['clip_recall'], 2)} | "
            f"{_fmt(r['boundary_med_s'])} / {_fmt(r['boundary_max_s'])} | {period} | {transform} | "
            f"{_fmt(r['precision'], 3)} | {r['result']} |")
    return "\n".join(lines)


def aggregate_negatives(records: list[dict]) -> dict:
    per = []
    all_ok = []
    for kind in NEGATIVES:
        recs = [r for r in records if r.get("kind") == kind and r.get("task") == "negative"]
        if not recs:
            continue
        ok = [r for r in recs if "loops" in r]
        flagged = [r for r in ok if r["loops"]]
        all_ok += ok
        per.append({
            "scene": kind, "clips": len(recs), "errors": len(recs) - len(ok), "with_loop": len(flagged),
            "no_loop_share": (1 - len(flagged) / len(ok)) if ok else math.nan,
            "static_flagged": sum(r["static_flag"] for r in ok),
            "with_regional": sum(bool(r.get("regional_loops")) for r in ok),
            "offending": [{"seed": r["seed"], "path": r["path"], "spans": r["loops"]} for r in flagged],
        })
    total = len(all_ok)
    clean = sum(not r["loops"] for r in all_ok)
    static = next((p for p in per if p["scene"] == "static"), None)
    return {"scenes": per, "clips": total, "no_loop_share": clean / total if total else math.nan,
            "static_all_flagged": None if static is None else static["static_flagged"] == static["clips"] - static["errors"]}


def negatives_table(neg: dict) -> str:
    lines = ["| scene | clips | clips with a `loop` | no-loop share | flagged `static` | with a `regional_loop` (informative) |",
             "|---|---|---|---|---|---|"]
    for p in neg["scenes"]:
        lines.append(f"| {p['scene']} | {p['clips']}{' (' + str(p['errors']) + ' errors)' if p['errors'] else ''} | "
                     f"{p['with_loop']} | {_fmt(p['no_loop_share'], 3)} | {p['static_flagged']}/{p['clips']} | "
                     f"{p.get('with_regional', 0)}/{p['clips']} |")
    verdict = "PASS" if neg["no_loop_share"] >= MIN_NO_FALSE_LOOP else "FAIL"
    lines.append(f"| **all** | {neg['clips']} | {sum(p['with_loop'] for p in neg['scenes'])} | "
                 f"{_fmt(neg['no_loop_share'], 3)} (req >= {MIN_NO_FALSE_LOOP}) **{verdict}** | "
                 f"still room static: **{ {True: 'PASS', False: 'FAIL', None: 'n/a'}[neg['static_all_flagged']] }** | "
                 f"{sum(p.get('with_regional', 0) for p in neg['scenes'])} |")
    out = "\n".join(lines)
    offenders = [(p["scene"], o) for p in neg["scenes"] for o in p["offending"]]
    if offenders:
        out += "\n\nOffending spans (start-end <- source, transform, score):\n"
        for scene, o in offenders:
            spans = "; ".join(f"{s['start_s']:.1f}-{s['end_s']:.1f} <- {s['source_start_s']:.1f}-{s['source_end_s']:.1f} "
                              f"{s['transform']} {s['score']:.2f}" for s in o["spans"])
            out += f"- {scene} seed {o['seed']} ({o['path']}): {spans}\n"
    return out


# =========================================================================================
# scale: synthetic fingerprints, search vs naive, scan overhead
# =========================================================================================

def _scene_thumbs(seconds: float, seed: int) -> np.ndarray:
    """16x16 thumbnails at FINGERPRINT_HZ of a live-looking moving scene (the generator's own
    never-repeating room), rendered directly at the fingerprint rate: cheap and realistic."""
    import cv2

    from detector.fingerprint import thumbnail
    from detector.synth.scenes import moving_scene

    frames = moving_scene(320, 180, FINGERPRINT_HZ, seconds, seed)
    return np.stack([thumbnail(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)) for f in frames])


def synthetic_fingerprints(hours: float, kind: str = "scene", seed: int = 11) -> dict:
    """Fingerprints (times, 16x16 thumbnails) of a long stream at FINGERPRINT_HZ.

    kind "scene": live footage (moving_scene, a new camera set-up every 10-30 min) with a few
    whole loops inserted (a 15-60 s stretch aired 3 times, the replays lightly disguised:
    brightness shift, noise, one in two mirrored) so the search has work to do.
    kind "walk": a smooth random walk in a 6-D space of blobs over a still background (a
    harder, low-dimensional room that revisits similar states often), same loops.
    kind "looped": the whole stream is one 10-minute recording aired over and over (24/7
    fake live), each pass with a little noise and a brightness shift.
    """
    rng = np.random.default_rng(seed)
    step = 1.0 / FINGERPRINT_HZ
    n = round(hours * 3600 * FINGERPRINT_HZ)
    times = np.arange(n) * step
    thumbs = np.empty((n, 16, 16), np.uint8)
    loops = []
    if kind == "looped":
        period = int(600 * FINGERPRINT_HZ)
        clip = _scene_thumbs(600, seed).astype(np.float32)
        for k, p0 in enumerate(range(0, n, period)):
            m = min(period, n - p0)
            jitter = rng.normal(0, 1.0, (m, 16, 16)) + rng.uniform(-8, 8)
            thumbs[p0:p0 + m] = np.clip(clip[:m] + jitter, 0, 255).astype(np.uint8)
            if k:
                loops.append((times[p0], times[p0] + m * step, times[p0 - period], times[p0 - period] + m * step))
        return {"times_s": times, "thumbs": thumbs, "loops": np.array(loops)}
    bounds = [0]
    while bounds[-1] < n:
        bounds.append(bounds[-1] + int(rng.uniform(600, 1800) * FINGERPRINT_HZ))
    bounds[-1] = n
    if kind == "scene":
        for k, (b0, b1) in enumerate(pairwise(bounds)):
            thumbs[b0:b1] = _scene_thumbs((b1 - b0) / FINGERPRINT_HZ, seed * 1000 + k)[: b1 - b0]
    elif kind == "walk":
        from scipy.ndimage import gaussian_filter
        from scipy.signal import lfilter

        dims = 6
        yy, xx = np.mgrid[0:16, 0:16]
        a = math.exp(-step / 3.0)       # time constant ~3 s, amplitude ~25 levels
        z = lfilter([math.sqrt(1 - a * a)], [1, -a], rng.standard_normal((dims, n)), axis=1).T.astype(np.float32) * 25
        for _ in range(max(1, int(hours * 2))):          # still stretches of 2-5 min
            s0 = int(rng.integers(0, n))
            z[s0: s0 + int(rng.uniform(120, 300) * FINGERPRINT_HZ)] = z[s0]
        for b0, b1 in pairwise(bounds):
            bg = gaussian_filter(rng.normal(0, 1, (16, 16)), 1.5)
            bg = 120 + 45 * bg / bg.std()
            centres = rng.uniform(2, 14, (dims, 2))
            widths = rng.uniform(1.5, 3.5, dims)
            basis = np.exp(-((xx[None] - centres[:, 0, None, None]) ** 2 + (yy[None] - centres[:, 1, None, None]) ** 2)
                           / (2 * widths[:, None, None] ** 2)).astype(np.float32)
            for c0 in range(b0, b1, 20000):
                c1 = min(b1, c0 + 20000)
                frames = bg[None].astype(np.float32) + np.einsum("nk,kij->nij", z[c0:c1], basis)
                frames += rng.normal(0, 1.0, frames.shape).astype(np.float32)
                thumbs[c0:c1] = np.clip(frames, 0, 255).astype(np.uint8)
    else:
        raise ValueError(kind)
    n_loops = max(3, round(2 * hours))
    slots = np.sort(rng.choice(np.arange(1, n_loops * 3 + 1), n_loops, replace=False))
    for slot in slots:
        p = int(rng.uniform(15, 60) * FINGERPRINT_HZ)
        start = int(slot / (n_loops * 3 + 1) * (n - 3 * p))
        src = thumbs[start: start + p].astype(np.float32)
        for r in (1, 2):
            dst = start + r * p
            replay = src[:, :, ::-1] if (r == 2 and rng.random() < 0.5) else src
            shift = rng.uniform(-10, 10)
            thumbs[dst: dst + p] = np.clip(replay + shift + rng.normal(0, 1.0, replay.shape), 0, 255).astype(np.uint8)
            loops.append((times[dst], times[dst] + p * step, times[dst - p], times[dst]))
    return {"times_s": times, "thumbs": thumbs, "loops": np.array(loops)}


def at_10hz(data) -> dict:
    """The same stream fingerprinted at 10 Hz (the scan's default sampling rate, if the
    extractor kept every sampled frame): each missing fingerprint is the mean of its two
    neighbours, so the content and the inserted loops are unchanged."""
    times, thumbs = data["times_s"], data["thumbs"]
    n = len(times)
    out_t = np.empty(2 * n - 1)
    out_t[0::2], out_t[1::2] = times, (times[:-1] + times[1:]) / 2
    out = np.empty((2 * n - 1, *thumbs.shape[1:]), np.uint8)
    out[0::2] = thumbs
    for c0 in range(0, n - 1, 20000):
        c1 = min(n - 1, c0 + 20000)
        out[2 * c0 + 1: 2 * c1: 2] = ((thumbs[c0:c1].astype(np.uint16) + thumbs[c0 + 1:c1 + 1]) // 2).astype(np.uint8)
    return {"times_s": out_t, "thumbs": out, "loops": data["loops"]}


def _status_mb(field_name: str) -> float:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def child_scale(path: str, mode: str) -> dict:
    """One measurement in a fresh process; prints JSON."""
    data = np.load(path)
    times_s, thumbs, loops = data["times_s"], data["thumbs"], data["loops"]
    step_s = float(np.median(np.diff(times_s)))
    from detector import loopsearch

    digest = engine_digest(Path(loopsearch.__file__).resolve().parent.parent)

    if mode in ("search", "search-stages"):
        # Warm-up on a small slice: imports scipy.sparse and builds the verification matrices once.
        loopsearch.find_repeats(times_s[:600], thumbs[:600], fingerprint_step_s=step_s)
        base_rss = _status_mb("VmRSS")
        t0, c0 = time.perf_counter(), time.process_time()
        stages: dict = {}

        def stage(name: str, **extra) -> None:
            # Progress on stderr: a run killed at the timeout still tells how far it got.
            stages[f"{name}_s"] = time.perf_counter() - t0 - sum(v for k, v in stages.items() if k.endswith("_s"))
            stages.update(extra)
            stages[f"rss_after_{name}_mb"] = _status_mb("VmHWM")
            print("STAGE " + json.dumps(_finite(stages), default=_json_default), file=sys.stderr, flush=True)

        if mode == "search":
            repeats = loopsearch.find_repeats(times_s, thumbs, fingerprint_step_s=step_s)
        else:
            # The same steps as find_repeats, timed one by one (no tracemalloc: it would slow
            # the many small allocations of the line fitting several-fold).
            settings = loopsearch.SearchSettings()
            pairs = loopsearch.candidate_pairs(times_s, thumbs, settings)
            stage("candidates", pairs=len(pairs))
            found = loopsearch.alignments(times_s, pairs, settings)
            del pairs
            stage("alignments", alignments=len(found))
            runs = loopsearch.verify_all(times_s, thumbs, found, settings, step_s)
            stage("verify", runs=len(runs))
            repeats = loopsearch._assign(runs, times_s, settings, step_s)
            stage("assign", repeats=len(repeats))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        out = {"mode": mode, "n": len(times_s), "wall_s": wall, "cpu_s": cpu, "base_rss_mb": base_rss,
               "peak_rss_mb": _status_mb("VmHWM"), "repeats": len(repeats), "stages": stages, "engine": digest}
        # Sanity: how many inserted replays are covered by a repeat (>= 50 %)?
        spans = [(r.start_s, r.end_s) for r in repeats]
        hit = 0
        for lo, hi, _, _ in loops:
            cov = _union([(max(a, lo), min(b, hi)) for a, b in spans if min(b, hi) > max(a, lo)])
            hit += cov >= 0.5 * (hi - lo)
        out["inserted_replays"] = len(loops)
        out["inserted_found"] = hit
        out["repeats_outside_inserted"] = [
            [round(r.start_s, 1), round(r.end_s, 1), round(r.source_start_s, 1), round(r.source_end_s, 1), r.transform]
            for r in repeats if not any(min(r.end_s, hi) - max(r.start_s, lo) > 0 for lo, hi, _, _ in loops)]
        return out
    if mode == "naive":
        from detector.fingerprint import appearance

        base_rss = _status_mb("VmRSS")
        t0, c0 = time.perf_counter(), time.process_time()
        app = appearance(thumbs)
        app /= np.maximum(np.linalg.norm(app, axis=1, keepdims=True), 1e-6)
        n = len(app)
        min_lag = round(4.0 / step_s)
        block = 2048
        pairs = 0
        for i0 in range(0, n, block):
            i1 = min(n, i0 + block)
            sim = app[i0:i1] @ app[: i1].T                      # earlier frames only
            rows = np.arange(i0, i1)[:, None]
            cols = np.arange(i1)[None, :]
            pairs += int(((sim >= 0.95) & (cols <= rows - min_lag)).sum())
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        return {"mode": mode, "n": n, "wall_s": wall, "cpu_s": cpu, "base_rss_mb": base_rss,
                "peak_rss_mb": _status_mb("VmHWM"), "similar_pairs": pairs, "engine": digest}
    raise ValueError(mode)


def _run_child(args: list[str], timeout_s: float) -> dict:
    """Run this script as a child; on timeout, kill it and report its peak RSS so far."""
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    started, peak_mb = time.perf_counter(), math.nan
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status", encoding="ascii") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        peak_mb = int(line.split()[1]) / 1024.0
        except OSError:
            pass
        if time.perf_counter() - started > timeout_s:
            proc.kill()
            _, err = proc.communicate()
            stages = [json.loads(line[6:]) for line in err.splitlines() if line.startswith("STAGE ")]
            return {"timeout_s": timeout_s, "peak_rss_at_timeout_mb": peak_mb, "stages": stages[-1] if stages else {}}
        time.sleep(0.5)
    out, err = proc.communicate()
    if proc.returncode != 0:
        return {"error": err[-2000:]}
    return json.loads(out.strip().splitlines()[-1])


def cpu_busy_share(seconds: float = 2.0) -> float:
    """Share of all CPUs busy (with anything else) while this process sleeps."""
    def snap():
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [float(x) for x in fh.readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]
    try:
        total0, idle0 = snap()
        time.sleep(seconds)
        total1, idle1 = snap()
        return 1.0 - (idle1 - idle0) / max(total1 - total0, 1e-9)
    except OSError:
        return math.nan


# (scenario, hours): the requirement is judged on "scene"; the others are stress cases.
SCALE_SCENARIOS = (("scene", 1.0), ("scene", 2.0), ("scene", 10.0), ("scene10hz", 10.0), ("walk", 1.0),
                   ("looped", 1.0))


def run_scale(quick: bool, timeout_s: float) -> dict:
    CLIPS.mkdir(parents=True, exist_ok=True)
    out: dict = {"fingerprint_hz": FINGERPRINT_HZ, "timeout_s": timeout_s, "cpu_busy_before": cpu_busy_share()}
    paths = {}
    for kind, hours in SCALE_SCENARIOS + (("scene", 0.5),):
        path = CLIPS / f"scale_{kind}_{hours:g}h.npz"
        if not path.exists() and kind == "scene10hz":
            np.savez(path, **at_10hz(np.load(paths[("scene", hours)])))
        elif not path.exists():
            t0 = time.perf_counter()
            np.savez(path, **synthetic_fingerprints(hours, kind))
            print(f"generated {kind} {hours:g} h of fingerprints in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        paths[(kind, hours)] = path
    runs = []

    def child(kind, hours, mode):
        rec = {"scenario": kind, "hours": hours, "mode": mode,
               **_run_child(["--child-scale", str(paths[(kind, hours)]), mode], timeout_s)}
        runs.append(rec)
        brief = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in rec.items() if k != "stages"}
        print(f"scale {kind} {hours:g} h {mode}: {brief}", file=sys.stderr, flush=True)
        return rec

    for kind, hours in SCALE_SCENARIOS:
        first = child(kind, hours, "search-stages")
        if kind in ("scene", "scene10hz") and "wall_s" in first and first["wall_s"] < 30:
            # The plain find_repeats call, for the headline figure (best of 2 when quick enough).
            child(kind, hours, "search")
            if not quick:
                child(kind, hours, "search")
    for hours in (0.5, 1.0, 2.0):
        child("scene", hours, "naive")
    out["runs"] = runs
    out["cpu_busy_after"] = cpu_busy_share()

    def pick(kind, hours, modes, key, agg=min):
        vals = [r[key] for r in runs if r["scenario"] == kind and r["hours"] == hours and r["mode"] in modes
                and r.get(key) is not None]
        return agg(vals) if vals else math.nan

    both = ("search", "search-stages")
    summary = {}
    for kind, hours in SCALE_SCENARIOS:
        tag = f"{kind}_{hours:g}h"
        staged = next((r for r in runs if r["scenario"] == kind and r["hours"] == hours and r["mode"] == "search-stages"), {})
        summary[tag] = {
            "fingerprints": round(hours * 3600 * FINGERPRINT_HZ * (2 if kind == "scene10hz" else 1)),
            "wall_s": pick(kind, hours, both, "wall_s"),
            "cpu_s": pick(kind, hours, both, "cpu_s"),
            "timed_out": "timeout_s" in staged,
            "peak_rss_mb": pick(kind, hours, both, "peak_rss_mb", max),
            "peak_rss_at_timeout_mb": pick(kind, hours, both, "peak_rss_at_timeout_mb", max),
            "base_rss_mb": pick(kind, hours, both, "base_rss_mb"),
            "stages": staged.get("stages"),
            "inserted": (staged.get("inserted_found"), staged.get("inserted_replays"), staged.get("repeats"),
                         len(staged["repeats_outside_inserted"]) if "repeats_outside_inserted" in staged else None),
            "repeats_outside_inserted": staged.get("repeats_outside_inserted"),
        }
    summary["naive_0.5h_s"] = pick("scene", 0.5, "naive", "wall_s")
    summary["naive_1h_s"] = pick("scene", 1.0, "naive", "wall_s")
    summary["naive_1h_peak_rss_mb"] = pick("scene", 1.0, "naive", "peak_rss_mb", max)
    summary["naive_2h_s"] = pick("scene", 2.0, "naive", "wall_s")
    # Too slow to measure at 10 h: extrapolated quadratically from the 2 h measurement.
    summary["naive_10h_extrapolated_s"] = summary["naive_2h_s"] * 25.0
    summary["naive_growth_0.5h_to_1h"] = summary["naive_1h_s"] / summary["naive_0.5h_s"]
    summary["naive_growth_1h_to_2h"] = summary["naive_2h_s"] / summary["naive_1h_s"]
    summary["search_growth_1h_to_10h"] = summary["scene_10h"]["wall_s"] / summary["scene_1h"]["wall_s"]
    out["summary"] = summary
    return out


def run_scan_overhead(repeats: int = 2) -> dict:
    from detector.config import ScanConfig
    from detector.extractors.basic import BasicStatsExtractor
    from detector.extractors.repetition import RepetitionExtractor
    from detector.pipeline import extract

    clips = sorted(OUT.glob("moving_1280x720_30fps_60s_*.mp4"))
    clips = [c for c in clips if ".partial" not in c.name]
    if not clips:
        return {"error": "no bench/out/moving_1280x720_30fps_60s_*.mp4 (run bench/bench_scan.py first)"}
    clip = clips[0]
    times = {"basic": [], "basic+repetition": []}
    search_s = []
    for _ in range(repeats):
        for name in list(times):
            extractors = [BasicStatsExtractor()] + ([RepetitionExtractor()] if name != "basic" else [])
            t0 = time.perf_counter()
            res = extract(clip, ScanConfig(), extractors)
            times[name].append(time.perf_counter() - t0)
            if name != "basic":
                # The search alone, on the fingerprints this scan stored.
                rep = extractors[1]
                t1 = time.perf_counter()
                rep.finalize()
                search_s.append(time.perf_counter() - t1)
                fingerprints = res.features.get("repetition__fingerprints")
    best = {k: min(v) for k, v in times.items()}
    return {"clip": str(clip.relative_to(ROOT)), "duration_s": 60.0, "runs": times, "best": best,
            "overhead_s": best["basic+repetition"] - best["basic"],
            "overhead_pct": (best["basic+repetition"] / best["basic"] - 1) * 100,
            "finalize_search_s": min(search_s), "fingerprints": fingerprints}


def scale_table(scale: dict, scan: dict | None) -> str:
    s = scale["summary"]
    ten = s["scene_10h"]
    ok_t = ten["wall_s"] <= MAX_SEARCH_10H_S
    ok_m = ten["peak_rss_mb"] <= MAX_SEARCH_10H_MB
    labels = {"scene": "live room + a few loops", "scene10hz": "live room + a few loops, fingerprinted at 10 Hz",
              "walk": "stress: 6-D random-walk room + a few loops",
              "looped": "stress: 24/7 loop of one 10-min recording"}
    lines = [
        f"CPUs busy with other work while measuring: {scale['cpu_busy_before']:.0%} before, {scale['cpu_busy_after']:.0%} after.",
        "",
        ("| stream | fingerprints | find_repeats wall (cpu) | peak RSS of the child (after loading the fingerprints) | "
         "stages: candidate pairs / alignments / verified runs (seconds each) | inserted replays found (repeats reported, "
         "of which outside the inserted loops) | naive all-pairs | naive / search |"),
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, hours in SCALE_SCENARIOS:
        r = s[f"{kind}_{hours:g}h"]
        if r["timed_out"] and not math.isfinite(r["wall_s"]):
            wall = f"> {scale['timeout_s']:g} s (timed out)"
        else:
            wall = f"{r['wall_s']:.2f} s ({r['cpu_s']:.2f} s)"
        if math.isfinite(r["peak_rss_mb"]):
            rss = f"{r['peak_rss_mb']:.0f} MB ({_fmt(r['base_rss_mb'], 0)} MB)"
        elif math.isfinite(r["peak_rss_at_timeout_mb"]):
            rss = f">= {r['peak_rss_at_timeout_mb']:.0f} MB when killed"
        else:
            rss = "n/a"
        st = r["stages"] or {}

        def part(count_key, time_key, st=st):
            if time_key not in st:
                return "?"
            return f"{st[count_key]:,} ({st[time_key]:.1f})" if count_key in st else f"({st[time_key]:.1f})"

        stages = " / ".join([part("pairs", "candidates_s"), part("alignments", "alignments_s"), part("runs", "verify_s")])
        if r["timed_out"]:
            stages += " (killed in the next stage)"
        found, total, reps, outside = (x if x is not None else "?" for x in r["inserted"])
        naive = naive_ratio = "n/a"
        if kind == "scene":
            naive_s = {1.0: s["naive_1h_s"], 2.0: s["naive_2h_s"]}.get(hours, s["naive_10h_extrapolated_s"])
            naive = f"{naive_s:.2f} s measured" if hours in (1.0, 2.0) else f"~{naive_s:.0f} s (2 h x 25, extrapolated)"
            naive_ratio = f"{naive_s / r['wall_s']:.2f}x" if math.isfinite(r["wall_s"]) else (
                f"< {naive_s / scale['timeout_s']:.2f}x")
        lines.append(f"| {hours:g} h {labels[kind]} | {r['fingerprints']:,} | {wall} | {rss} | {stages} | "
                     f"{found}/{total} ({reps}, {outside}) | {naive} | {naive_ratio} |")
    lines.append("")
    wall_10h = f"{ten['wall_s']:.2f} s" if math.isfinite(ten["wall_s"]) else f"> {scale['timeout_s']:g} s (timed out)"
    peak_10h = ten["peak_rss_mb"] if math.isfinite(ten["peak_rss_mb"]) else ten.get("peak_rss_at_timeout_mb", math.nan)
    mem_10h = (f"{ten['peak_rss_mb']:.0f} MB" if math.isfinite(ten["peak_rss_mb"]) else
               f">= {peak_10h:.0f} MB when killed" if math.isfinite(peak_10h) else "unknown")
    mem_verdict = "PASS" if ok_m else ("FAIL" if math.isfinite(peak_10h) and peak_10h > MAX_SEARCH_10H_MB else "n/a")
    lines.append(f"- 10 h live-room search: {wall_10h} (req <= {MAX_SEARCH_10H_S:g} s): **{'PASS' if ok_t else 'FAIL'}**; "
                 f"peak RSS of the whole child process {mem_10h} (req <= {MAX_SEARCH_10H_MB:g} MB): **{mem_verdict}**")
    digests = sorted({r.get("engine") for r in scale["runs"] if r.get("engine")})
    lines.append(f"- engine digest in the scale children: {', '.join(digests) or 'n/a'}")
    lines.append(f"- growth 1 h -> 10 h: search x{_fmt(s['search_growth_1h_to_10h'], 1)} (linear: x10); "
                 f"naive 0.5 h -> 1 h -> 2 h: x{_fmt(s['naive_growth_0.5h_to_1h'], 1)}, "
                 f"x{_fmt(s['naive_growth_1h_to_2h'], 1)} (quadratic: x4 each); naive = cosine "
                 f"similarity of all appearance-vector pairs in blocks, a lower bound (no alignment, no verification)")
    if scan is None:
        return "\n".join(lines)
    if "error" in scan:
        lines.append(f"- 720p scan overhead: skipped ({scan['error']})")
    else:
        b = scan["best"]
        lines.append("")
        lines.append("| 720p30 60 s clip (best of 2) | scan wall time | x real time |")
        lines.append("|---|---|---|")
        lines.append(f"| [BasicStatsExtractor()] | {b['basic']:.2f} s | {60 / b['basic']:.1f}x |")
        lines.append(f"| [BasicStatsExtractor(), RepetitionExtractor()] | {b['basic+repetition']:.2f} s | "
                     f"{60 / b['basic+repetition']:.1f}x |")
        lines.append(f"| difference | {scan['overhead_s']:+.2f} s ({scan['overhead_pct']:+.1f} %) | "
                     f"of which search (finalize) {scan['finalize_search_s']:.2f} s on {scan['fingerprints']:.0f} fingerprints |")
    return "\n".join(lines)


# =========================================================================================
# main
# =========================================================================================

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 seeds per row")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per row (default 10; 2 with --quick)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes for generating and scanning clips")
    parser.add_argument("--only", default="", help="comma-separated quality rows (or negative scenes) to run")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-negatives", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--scale-timeout", type=float, default=150.0,
                        help="seconds before a scale measurement is abandoned (reported as a timeout)")
    parser.add_argument("--fresh", action="store_true", help="re-encode clips even if they exist")
    parser.add_argument("--json", default=None, help="output path (default bench/out/repetition[_quick].json)")
    parser.add_argument("--child-scale", nargs=2, metavar=("NPZ", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child_scale:
        print(json.dumps(_finite(child_scale(*args.child_scale)), default=_json_default))
        return

    digest_start, snapshot = _freeze_engine()
    seeds = args.seeds if args.seeds is not None else (2 if args.quick else 10)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    started = time.perf_counter()
    tasks = []
    if not args.skip_quality:
        tasks += [("quality", row, seed) for row in ROWS if not only or row in only for seed in range(seeds)]
    if not args.skip_negatives:
        tasks += [("negative", kind, seed) for kind in NEGATIVES if not only or kind in only for seed in range(seeds)]
    import detector.extractors.repetition
    import detector.loopsearch
    import detector.pipeline

    print(f"engine digest {digest_start}, frozen copy in {snapshot.relative_to(ROOT)} "
          f"(imported from {Path(detector.loopsearch.__file__).relative_to(ROOT)})", file=sys.stderr)
    records = run_tasks(tasks, args.jobs, args.fresh) if tasks else []
    quality = aggregate_quality(records)
    negatives = aggregate_negatives(records)
    t_cases = time.perf_counter() - started

    scale = scan = None
    if not args.skip_scale:
        scale = run_scale(args.quick, args.scale_timeout)
        scan = run_scan_overhead()
    total = time.perf_counter() - started
    digest_end = engine_digest()

    import detector

    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "numpy": np.__version__},
        "detector_version": getattr(detector, "__version__", None),
        "engine_digest": {"measured": digest_start, "working_tree_at_end": digest_end, "files": list(ENGINE_FILES),
                          "frozen_copy": str(snapshot.relative_to(ROOT))},
        "seeds": seeds, "quick": args.quick,
        "requirements": {"recall": MIN_RECALL, "boundary_s": MAX_BOUNDARY_S, "period_pct": MAX_PERIOD_ERR_PCT,
                         "no_false_loop_share": MIN_NO_FALSE_LOOP, "search_10h_s": MAX_SEARCH_10H_S,
                         "search_10h_mb": MAX_SEARCH_10H_MB},
        "quality": quality, "negatives": negatives, "scale": scale, "scan_overhead": scan,
        "cases": records, "runtime_s": {"cases": t_cases, "total": total},
    }
    path = Path(args.json) if args.json else OUT / ("repetition_quick.json" if args.quick else "repetition.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(result), indent=1, default=_json_default))

    print(f"# repetition benchmark ({'quick' if args.quick else 'full'}; {seeds} seeds per row; "
          f"{os.cpu_count()} CPUs; {total / 60:.1f} min; engine digest {digest_start})\n")
    if digest_end != digest_start:
        print(f"Note: the engine files changed on disk during the run ({digest_start} -> {digest_end}); every part "
              f"of this run measured the frozen copy {digest_start} ({snapshot.relative_to(ROOT)}).\n")
    if quality:
        print("## 1. Quality per disguise\n")
        print(quality_table(quality))
        print(f"\nrecall: a replay is found when >= {FOUND_COVERAGE:.0%} of its airtime is covered by `loop` spans whose "
              f"source overlaps an earlier airing of the same clip (req >= {MIN_RECALL}); boundary error: |reported - true| "
              f"start/end of found replays (req <= {MAX_BOUNDARY_S:g} s, judged on the max); period error for one-clip "
              f"speed-1 loops (req <= {MAX_PERIOD_ERR_PCT:g} %); transform seen: share of found replays whose reported "
              f"transform names mirror/vflip/reversed/speed where that applies (informative); span precision: share of "
              f"reported loop airtime whose source shows the same content within {CONTENT_TOLERANCE_S:g} s "
              f"(informative). Where `regional_loop` evidence (repetition confined to a region) adds found replays, "
              f"the recall counting it too is shown in brackets; the requirement is judged on `loop`, except for "
              f"{', '.join(REGIONAL_ROWS)} (the loop is confined to a window: judged with `regional_loop`, and the "
              f"period on `repetition__regional_period_s` where no whole-frame period is reported).")
        for r in quality:
            if r["library"]:
                print("\nshuffled playlist clip library (distinct clips reported / true): "
                      + ", ".join(f"{a:g}/{b}" if a is not None else f"n/a/{b}" for a, b in r["library"]))
        errors = [r for r in records if r.get("task") == "quality" and "error" in r]
        for r in errors:
            print(f"\nERROR {r['row']} seed {r['seed']}: {r['error']}")
    if negatives["scenes"]:
        print("\n## 2. False alarms (non-repeating clips, 40-120 s)\n")
        print(negatives_table(negatives))
    if scale:
        print("\n## 3. Scale\n")
        print(scale_table(scale, scan))
    print(f"\nJSON: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def _finite(o):
    """NaN/inf become null: the JSON stays strict."""
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


if __name__ == "__main__":
    main()
