"""One recipe per class variant: content plus the truth the manifest records.

A recipe takes a `Spec` (size, rate, length, seed) and a seeded generator and returns a
`Rendered`: a lazy frame iterator, the `group` (the source recording, so grouped folds never
split one), and a JSON-able `truth`. Times in the truth are seconds on the output clip.

Truth keys by class:
- looped: `replays`: [{start_s, end_s, src_start_s, src_end_s, speed, reversed, disguise}]
  (each a later airing of the span first aired at src_*), `region` (x, y, w, h fractions) when
  only a window loops;
- prerecorded: `cuts_s` (first frame of each new shot), `fades` ([start_s, end_s] dissolves),
  `source_fps` for frame-rate converted playback, `window` for a small live window;
- ai_driven: `mouth_box` (x0, y0, x1, y1 pixels), `recycled` ([start_s, end_s, src_start_s]:
  the picture outside the mouth repeats that span of the base footage), `portrait`;
- every class: `source` (what the camera shows).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from detector.corpus import sources
from detector.corpus.layers import (
    SENSOR_NOISE_SIGMA,
    FrameStore,
    crossfade,
    degrade,
    fit,
    with_noise,
)
from detector.synth.disguise import Disguise, speed_indices


@dataclass(frozen=True)
class Spec:
    label: str
    variant: str
    width: int
    height: int
    fps: float
    duration_s: float
    seed: int


@dataclass
class Rendered:
    frames: Iterator[np.ndarray]
    group: str
    truth: dict = field(default_factory=dict)
    duration_s: float | None = None     # when the recipe had to make the clip shorter
    # The recipe filmed its own sensor noise (a recording's noise repeats with its frames),
    # so the build adds none over it.
    noise_baked: bool = False


Recipe = Callable[[Spec, np.random.Generator], Rendered]
RECIPES: dict[str, dict[str, Recipe]] = {"live": {}, "looped": {}, "prerecorded": {}, "ai_driven": {}}


def recipe(label: str, variant: str):
    def register(fn: Recipe) -> Recipe:
        RECIPES[label][variant] = fn
        return fn
    return register


def _n(spec: Spec, duration_s: float | None = None) -> int:
    return max(1, round((spec.duration_s if duration_s is None else duration_s) * spec.fps))


def _shake(rng) -> float:
    """Half the cameras are on a tripod, the others hand-held with 0.5-3 px of shake."""
    return 0.0 if rng.random() < 0.5 else float(rng.uniform(0.5, 3.0))


#: Group of every clip built mainly from package footage: the film variant edits all of the
#: recordings together, so one group keeps any of them from crossing folds.
FOOTAGE_GROUP = "pkg-footage"


def _group(kind: str, seed: int) -> str:
    return FOOTAGE_GROUP if kind in sources.FOOTAGE_KINDS else f"{kind}-{seed}"


def _take(kind, spec: Spec, duration_s, seed, rng, shake=None, **kw) -> Iterator[np.ndarray]:
    shake = _shake(rng) if shake is None else shake
    drift = float(rng.uniform(0.0, 0.04))
    if kind in sources.FOOTAGE_KINDS:
        kw.setdefault("zoom", float(rng.uniform(1.0, 1.3)))
        kw.setdefault("centre", (float(rng.uniform(0.3, 0.7)), float(rng.uniform(0.3, 0.7))))
    return sources.take(kind, spec.width, spec.height, spec.fps, duration_s, seed, shake_px=shake,
                        drift=drift, **kw)


# -- live -------------------------------------------------------------------------------------

def _products_truth(duration_s: float, seed: int, share: float = 0.75) -> list[list[float]]:
    """[start_s, top_s, lower_s, end_s] of each product raised to the camera."""
    from detector.synth.presenter import product_events

    return [[round(t, 4) for t in e] for e in product_events(duration_s, seed, share)]


def _live(kind: str, shake: float | None = None):
    def make(spec: Spec, rng: np.random.Generator) -> Rendered:
        frames = _take(kind, spec, spec.duration_s, spec.seed, rng, shake=shake)
        truth: dict = {"source": kind}
        if kind == "presenter":
            truth["products_s"] = _products_truth(spec.duration_s, spec.seed)
        return Rendered(frames, _group(kind, spec.seed), truth)
    return make


recipe("live", "room")(_live("room"))
recipe("live", "presenter")(_live("presenter"))
recipe("live", "still_room")(_live("still", shake=0.0))
recipe("live", "gesture")(_live("gesture", shake=0.0))
recipe("live", "turntable")(_live("turntable", shake=0.0))
recipe("live", "pan_back")(_live("pan", shake=0.0))


@recipe("live", "presenter_keyed")
def live_presenter_keyed(spec: Spec, rng: np.random.Generator) -> Rendered:
    """A live presenter in front of a real green screen, keyed onto a live room."""
    from detector.synth.presenter import Presenter, live_states

    presenter = Presenter(spec.width, spec.height, spec.seed)
    states = live_states(spec.duration_s, spec.fps, spec.seed, float(rng.uniform(0.6, 1.2)))
    background = _take("room", spec, spec.duration_s, spec.seed + 1, rng, shake=0.0)
    frames = _keyed(presenter, states, background)
    return Rendered(frames, f"presenter-{spec.seed}",
                    {"source": "presenter_keyed", "products_s": _products_truth(spec.duration_s, spec.seed)})


def _keyed(presenter, states, background) -> Iterator[np.ndarray]:
    """The presenter keyed over `background`; a raised product is in front of both."""
    mask = presenter.person_mask()[:, :, None]
    for i, bg in zip(range(len(states)), background):
        person = presenter.clean_frame(states, i, product=False)
        out = (person.astype(np.float32) * mask + bg.astype(np.float32) * (1.0 - mask)).astype(np.uint8)
        yield presenter._noisy(presenter.draw_product(out, states, i))


# -- looped -----------------------------------------------------------------------------------

def _loop_source(rng) -> str:
    # Not the 4 s carphone footage: a loop of it would be shorter than any looper's clip.
    kinds = ("room", "presenter", "gesture", "bikes")
    return str(rng.choice(kinds, p=(0.38, 0.33, 0.11, 0.18)))


def _draw_disguise(kind: str, rng, pass_index: int) -> tuple[Disguise, float, bool]:
    """(disguise, speed, reversed) of pass `pass_index` (>= 1) for the disguise family `kind`."""
    d, speed, rev = Disguise(), 1.0, False
    if kind == "reencode":
        d = Disguise(rescale=float(rng.uniform(0.45, 0.8)), reencode_quality=int(rng.integers(25, 60)))
    elif kind == "mirror":
        d = Disguise(mirror=pass_index % 2 == 1)
    elif kind == "speed":
        speed = float(rng.choice([-1, 1]) * rng.uniform(0.02, 0.08) + 1.0)
    elif kind == "crop":
        d = Disguise(crop=float(rng.uniform(0.05, 0.12)),
                     crop_centre=(float(rng.uniform(0.1, 0.9)), float(rng.uniform(0.1, 0.9))))
    elif kind == "rotate":
        d = Disguise(rotation_deg=float(rng.choice([-1, 1]) * rng.uniform(0.5, 4.0)),
                     crop=float(rng.uniform(0.03, 0.08)))
    elif kind == "colour":
        d = Disguise(brightness=float(rng.uniform(-25, 25)), contrast=float(rng.uniform(0.85, 1.15)),
                     gamma=float(rng.uniform(0.8, 1.25)), hue_shift_deg=float(rng.uniform(-15, 15)))
    elif kind == "noise":
        d = Disguise(noise_sigma=float(rng.uniform(3.0, 8.0)))
    elif kind == "overlay":
        d = Disguise(overlay=str(rng.choice(["comments", "stickers", "watermark", "all"])),
                     overlay_seed=int(rng.integers(0, 99)) + pass_index)
    elif kind == "mixed":
        parts = rng.choice(["reencode", "mirror", "speed", "crop", "rotate", "colour", "noise", "overlay"],
                           size=int(rng.integers(2, 5)), replace=False)
        merged: dict = {}
        for part in parts:
            sub, s, _ = _draw_disguise(str(part), rng, pass_index)
            merged.update({f.name: getattr(sub, f.name) for f in dataclasses.fields(sub)
                           if getattr(sub, f.name) != getattr(Disguise(), f.name)})
            speed = s if s != 1.0 else speed
        d = Disguise(**merged)
    return d, speed, rev


def _disguise_dict(d: Disguise) -> dict:
    return {f.name: getattr(d, f.name) for f in dataclasses.fields(d)
            if f.name != "extra" and getattr(d, f.name) != getattr(Disguise(), f.name)}


class _Airing:
    """Assembles a looped clip: live stretches and airings of recorded clips, with truth."""

    def __init__(self, spec: Spec, rng: np.random.Generator):
        self.spec, self.rng = spec, rng
        self.parts: list[tuple] = []
        self.t_frames = 0
        self.first: dict[int, tuple[int, int]] = {}
        self.replays: list[dict] = []

    def live(self, frames: list | FrameStore, start: int, stop: int) -> None:
        self.parts.append(("raw", frames, list(range(start, stop)), Disguise()))
        self.t_frames += stop - start

    def air(self, clip: int, store, start: int, stop: int, disguise=Disguise(), speed=1.0,
            reversed_=False) -> None:
        n_src = stop - start
        idx = [start + k for k in speed_indices(n_src, speed, self.spec.fps)]
        if reversed_:
            idx = idx[::-1]
        fps = self.spec.fps
        if clip in self.first:
            s0, s1 = self.first[clip]
            self.replays.append({"start_s": self.t_frames / fps, "end_s": (self.t_frames + len(idx)) / fps,
                                 "src_start_s": s0 / fps, "src_end_s": s1 / fps, "speed": speed,
                                 "reversed": reversed_, "disguise": _disguise_dict(disguise)})
        else:
            self.first[clip] = (self.t_frames, self.t_frames + len(idx))
        self.parts.append(("air", store, idx, disguise))
        self.t_frames += len(idx)

    def frames(self) -> Iterator[np.ndarray]:
        rng = np.random.default_rng([self.spec.seed, 55])
        t = 0
        for _, store, idx, disguise in self.parts:
            plain = disguise == Disguise()
            for k in idx:
                frame = store[k]
                yield frame if plain else disguise.apply(frame, t / self.spec.fps, rng)
                t += 1


def _record(kind, spec, duration_s, seed, rng) -> FrameStore:
    n = _n(spec, duration_s)
    return FrameStore(_take(kind, spec, duration_s, seed, rng), n, spec.width * spec.height * 3)


#: Shortest loop period drawn. Operators loop recordings of minutes; a corpus clip lasts
#: 18-40 s, so its loops are as long as the clip allows (at least two replays) and never
#: shorter than this.
MIN_PERIOD_S = 6.0


def _period(spec: Spec, rng, kind: str, min_passes: float = 2.3) -> float:
    hi = min(spec.duration_s / min_passes, sources.max_duration_s(kind) - 0.2)
    lo = min(hi, max(MIN_PERIOD_S, spec.duration_s / 6))
    return float(rng.uniform(lo, hi))


def _whole_loop(family: str):
    def make(spec: Spec, rng: np.random.Generator) -> Rendered:
        kind = _loop_source(rng)
        period = _period(spec, rng, kind)
        store = _record(kind, spec, period, spec.seed, rng)
        air = _Airing(spec, rng)
        n_total, p = _n(spec), len(store)
        pass_index = 0
        while air.t_frames < n_total:
            if pass_index == 0:
                air.air(0, store, 0, p)
            else:
                d, speed, rev = _draw_disguise(family, rng, pass_index)
                air.air(0, store, 0, p, d, speed, rev)
            pass_index += 1
        return Rendered(_trimmed(air.frames(), n_total), _group(kind, spec.seed),
                        {"source": kind, "period_s": p / spec.fps, "replays": _clip_truth(air.replays, spec)})
    return make


def _trimmed(frames, n):
    return itertools.islice(frames, n)


def _clip_truth(replays: list[dict], spec: Spec) -> list[dict]:
    """Replays cut to the clip's duration (the last pass is usually partial)."""
    out = []
    for r in replays:
        if r["start_s"] >= spec.duration_s - 1e-9:
            continue
        r = dict(r)
        if r["end_s"] > spec.duration_s:
            r["end_s"] = _n(spec) / spec.fps
        out.append({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()})
    return out


for _family in ("plain", "reencode", "mirror", "speed", "crop", "rotate", "colour", "noise", "overlay", "mixed"):
    recipe("looped", _family if _family != "plain" else "whole_loop")(_whole_loop(_family))


@recipe("looped", "late_start")
def loop_late_start(spec: Spec, rng: np.random.Generator) -> Rendered:
    """Real footage first, then its last stretch replayed: the loop starts mid-clip."""
    kind = str(rng.choice(["room", "presenter", "gesture"]))
    lead = float(rng.uniform(0.2, 0.35)) * spec.duration_s
    longest = (spec.duration_s - lead) / 2.1
    period = float(rng.uniform(min(longest, MIN_PERIOD_S), longest))
    store = _record(kind, spec, lead + period, spec.seed, rng)
    n_lead = _n(spec, lead)
    air = _Airing(spec, rng)
    air.live(store, 0, n_lead)
    family = str(rng.choice(["plain", "mirror", "crop", "colour", "speed"]))
    k = 0
    while air.t_frames < _n(spec):
        d, speed, rev = _draw_disguise(family, rng, k) if k else (Disguise(), 1.0, False)
        air.air(0, store, n_lead, len(store), d, speed, rev)
        k += 1
    return Rendered(_trimmed(air.frames(), _n(spec)), _group(kind, spec.seed),
                    {"source": kind, "lead_in_s": n_lead / spec.fps, "period_s": (len(store) - n_lead) / spec.fps,
                     "replays": _clip_truth(air.replays, spec)})


#: Shortest clip of a shuffled playlist.
PLAYLIST_MIN_CLIP_S = 4.5


@recipe("looped", "playlist")
def loop_playlist(spec: Spec, rng: np.random.Generator) -> Rendered:
    """A recording cut into 2-5 clips aired in a new shuffled order on every pass."""
    kind = str(rng.choice(["room", "presenter", "gesture", "bikes"], p=(0.4, 0.35, 0.1, 0.15)))
    # Operators' playlist clips last minutes; here each lasts at least PLAYLIST_MIN_CLIP_S
    # (longer than the shortest span the engine reports): 3-5 clips, or 2 in a short clip.
    length = min(max(spec.duration_s / float(rng.uniform(2.1, 2.6)), 2 * PLAYLIST_MIN_CLIP_S),
                 sources.max_duration_s(kind) - 0.2)
    store = _record(kind, spec, length, spec.seed, rng)
    most = max(2, min(5, int(length // PLAYLIST_MIN_CLIP_S)))
    n_clips = int(rng.integers(min(3, most), most + 1))
    bounds = np.linspace(0, len(store), n_clips + 1).round().astype(int)
    air = _Airing(spec, rng)
    order = list(range(n_clips))
    while air.t_frames < _n(spec):
        for c in order:
            air.air(c, store, int(bounds[c]), int(bounds[c + 1]))
        order = [int(c) for c in rng.permutation(n_clips)]
    return Rendered(_trimmed(air.frames(), _n(spec)), _group(kind, spec.seed),
                    {"source": kind, "clips": n_clips, "replays": _clip_truth(air.replays, spec)})


@recipe("looped", "boomerang")
def loop_boomerang(spec: Spec, rng: np.random.Generator) -> Rendered:
    """Forward, then backward, then forward...: no jump at the seams."""
    kind = str(rng.choice(["room", "presenter", "gesture", "bikes"], p=(0.4, 0.3, 0.15, 0.15)))
    period = _period(spec, rng, kind)
    store = _record(kind, spec, period, spec.seed, rng)
    air = _Airing(spec, rng)
    k = 0
    while air.t_frames < _n(spec):
        air.air(0, store, 0, len(store), reversed_=k % 2 == 1)
        k += 1
    return Rendered(_trimmed(air.frames(), _n(spec)), _group(kind, spec.seed),
                    {"source": kind, "period_s": len(store) / spec.fps, "replays": _clip_truth(air.replays, spec)})


def _box(rng, spec: Spec, small: tuple[float, float] = (0.25, 0.4)) -> tuple[int, int, int, int]:
    """A window (x, y, w, h in even pixels) somewhere off-centre."""
    share = float(rng.uniform(*small))
    w = int(spec.width * share) // 2 * 2
    h = int(spec.height * share) // 2 * 2
    x = int(rng.uniform(0.03, 0.97 - share) * spec.width)
    y = int(rng.uniform(0.05, 0.95 - share) * spec.height)
    return x, y, w, h


def _window(big: Iterator[np.ndarray], small: Iterator[np.ndarray], box) -> Iterator[np.ndarray]:
    import cv2

    x, y, w, h = box
    for outer, inner in zip(big, small):
        frame = outer.copy()
        frame[y:y + h, x:x + w] = fit(inner, w, h)
        cv2.rectangle(frame, (x - 2, y - 2), (x + w + 1, y + h + 1), (235, 235, 235), 2)
        yield frame


@recipe("looped", "picture_in_picture")
def loop_pip(spec: Spec, rng: np.random.Generator) -> Rendered:
    """A recorded loop plays in a window over live footage."""
    x, y, w, h = _box(rng, spec, (0.28, 0.45))
    inner = Spec(spec.label, spec.variant, w, h, spec.fps, spec.duration_s, spec.seed)
    kind = str(rng.choice(["room", "presenter", "bikes"], p=(0.45, 0.35, 0.2)))
    period = _period(inner, rng, kind)
    store = _record(kind, inner, period, spec.seed, rng)
    air = _Airing(inner, rng)
    while air.t_frames < _n(spec):
        air.air(0, store, 0, len(store))
    live_kind = str(rng.choice(["room", "presenter"]))
    big = _take(live_kind, spec, spec.duration_s, spec.seed + 1, rng)
    frames = _window(big, _trimmed(air.frames(), _n(spec)), (x, y, w, h))
    region = [round(x / spec.width, 4), round(y / spec.height, 4), round(w / spec.width, 4), round(h / spec.height, 4)]
    return Rendered(frames, _group(kind, spec.seed),
                    {"source": kind, "background": live_kind, "region": region,
                     "period_s": len(store) / spec.fps, "replays": _clip_truth(air.replays, spec)})


# -- prerecorded ------------------------------------------------------------------------------

# Package footage only now and then in edits: it is one recording shared by many clips.
EDIT_KINDS = ("room", "presenter", "gesture", "still", "bikes", "carphone", "bigbuckbunny")
EDIT_WEIGHTS = (0.32, 0.32, 0.1, 0.14, 0.05, 0.03, 0.04)


def _edit(spec: Spec, rng, shots: list[tuple[str, float, int]], fades: list[float]) -> tuple[Iterator, dict]:
    """Shots (kind, duration_s, seed) joined by hard cuts (fade 0) or dissolves of fade_s
    (fades[k] joins shot k and k+1). The last shot is lengthened by the time the dissolves
    overlap, so the edit lasts the clip's duration."""
    fps = spec.fps
    overlap = sum(_n(spec, f) for f in fades if f > 0) / fps
    kind, dur, seed = shots[-1]
    if dur + overlap > sources.max_duration_s(kind) - 0.2:
        kind = "room"
    shots = [*shots[:-1], (kind, dur + overlap, seed)]
    cuts, dissolves, plan, t = [], [], [], 0
    for k, (kind, dur, seed) in enumerate(shots):
        n = _n(spec, dur)
        fade = _n(spec, fades[k - 1]) if k and fades[k - 1] > 0 else 0
        if k and fade:
            dissolves.append([round((t - fade) / fps, 4), round(t / fps, 4)])
        elif k:
            cuts.append(round(t / fps, 4))
        plan.append((kind, dur, seed, n, fade))
        t += n - fade

    def frames():
        tail: list[np.ndarray] = []
        for k, (kind, dur, seed, n, _) in enumerate(plan):
            shot = _take(kind, spec, dur, seed, rng)
            for j, prev in enumerate(tail):
                yield crossfade(prev, next(shot), (j + 1) / (len(tail) + 1))
            next_fade = plan[k + 1][4] if k + 1 < len(plan) else 0
            yield from itertools.islice(shot, max(0, n - len(tail) - next_fade))
            tail = list(itertools.islice(shot, next_fade))
    return frames(), {"cuts_s": cuts, "fades": dissolves, "shots": [s[0] for s in shots]}


def _shots(spec: Spec, rng, kinds=EDIT_KINDS, weights=EDIT_WEIGHTS, min_s=2.5, max_s=8.0, min_shots=2):
    """Shots (kind, duration_s, seed) filling the clip; consecutive shots differ in kind."""
    shots, remaining, last = [], spec.duration_s, None
    weights = np.asarray(weights, float)
    while remaining > 1e-6:
        allowed = np.array([k != last for k in kinds], float) * weights
        kind = str(rng.choice(kinds, p=allowed / allowed.sum()))
        dur = min(float(rng.uniform(min_s, max_s)), sources.max_duration_s(kind) - 0.2)
        if remaining - dur < min_s:
            # An edit has at least `min_shots` shots (only clips shorter than max_s + min_s
            # can end on their first shot: quick and test clips).
            dur = remaining if len(shots) + 1 >= min_shots else remaining / 2
        # Real footage always starts at its first frame: a second take of it in the same
        # edit would replay the first (a loop, not an edit).
        used_footage = kind in sources.FOOTAGE_KINDS and any(k == kind for k, _, _ in shots)
        if dur > sources.max_duration_s(kind) - 0.2 or used_footage:
            kind = "room" if last != "room" else "presenter"
        shots.append((kind, dur, spec.seed * 10 + len(shots)))
        remaining -= dur
        last = kind
    return shots


def _edited(transition: str):
    def make(spec: Spec, rng: np.random.Generator) -> Rendered:
        shots = _shots(spec, rng)
        if transition == "cut":
            fades = [0.0] * len(shots)
        elif transition == "fade":
            fades = [float(rng.uniform(0.4, 1.2)) for _ in shots]
        else:
            fades = [float(rng.uniform(0.4, 1.2)) if rng.random() < 0.5 else 0.0 for _ in shots]
        fades = [min(f, 0.4 * min(a[1], b[1])) for f, a, b in zip(fades, shots, shots[1:])]
        if transition != "cut" and len(shots) > 1 and not any(fades):
            fades[0] = min(0.6, 0.4 * min(shots[0][1], shots[1][1]))
        frames, truth = _edit(spec, rng, shots, fades)
        truth.update(source="edit")
        return Rendered(_padded(frames, _n(spec)), f"edit-{spec.seed}", truth)
    return make


def _padded(frames, n):
    """Exactly n frames: the last frame held if the edit came out a frame or two short."""
    last = None
    count = 0
    for last in itertools.islice(frames, n):
        count += 1
        yield last
    while count < n and last is not None:
        yield last
        count += 1


recipe("prerecorded", "hard_cuts")(_edited("cut"))
recipe("prerecorded", "fades")(_edited("fade"))
recipe("prerecorded", "cuts_and_fades")(_edited("mixed"))


class _Cursor:
    """Random access to a stream of frames at (almost) non-decreasing indices, holding only
    the last few frames: a ten-minute take never sits in memory."""

    def __init__(self, frames: Iterator[np.ndarray], keep: int = 3):
        self.frames, self.keep = frames, keep
        self.cache: dict[int, np.ndarray] = {}
        self.next_index = 0

    def get(self, index: int) -> np.ndarray:
        while index >= self.next_index:
            frame = next(self.frames, None)
            if frame is None:                  # past the end: the last frame holds
                return self.cache[self.next_index - 1]
            self.cache[self.next_index] = frame
            self.cache.pop(self.next_index - self.keep, None)
            self.next_index += 1
        return self.cache[index]


@recipe("prerecorded", "jump_cuts")
def pre_jump_cuts(spec: Spec, rng: np.random.Generator) -> Rendered:
    """One fixed-camera take with 2-5 stretches cut out: the view stays, the content jumps."""
    kind = str(rng.choice(["presenter", "room", "gesture"], p=(0.6, 0.25, 0.15)))
    n_cuts = int(rng.integers(2, 6))
    removed = [float(rng.uniform(0.6, 3.0)) for _ in range(n_cuts)]
    n_out = _n(spec)
    n_record = _n(spec, spec.duration_s + sum(removed))
    record = _Cursor(_take(kind, spec, spec.duration_s + sum(removed), spec.seed, rng, shake=0.0))
    # One cut per equal stretch of the clip, away from its edges: cuts at least ~1 s apart.
    edges = np.linspace(1.5 * spec.fps, n_out - 1.5 * spec.fps, n_cuts + 1)
    cut_frames = [int(rng.uniform(a + 0.15 * (b - a), b - 0.15 * (b - a))) for a, b in zip(edges, edges[1:])]
    keep, src, prev = [], 0, 0
    for c, gap in zip(cut_frames, removed):
        keep.extend(range(src, src + c - prev))
        src += c - prev + round(gap * spec.fps)
        prev = c
    keep.extend(range(src, src + n_out - prev))
    keep = [min(i, n_record - 1) for i in keep[:n_out]]
    return Rendered((record.get(i) for i in keep), _group(kind, spec.seed),
                    {"source": kind, "cuts_s": [round(c / spec.fps, 4) for c in cut_frames],
                     "removed_s": [round(g, 3) for g in removed]})


@recipe("prerecorded", "concatenated_takes")
def pre_takes(spec: Spec, rng: np.random.Generator) -> Rendered:
    """Two or three takes of the same kind of shot, one after another."""
    kind = str(rng.choice(["presenter", "room", "gesture"], p=(0.6, 0.25, 0.15)))
    n_takes = int(rng.integers(2, 4))
    bounds = np.sort(rng.uniform(0.25, 0.75, n_takes - 1)) * spec.duration_s
    durs = np.diff(np.concatenate([[0.0], bounds, [spec.duration_s]]))
    shots = [(kind, float(d), spec.seed * 10 + k) for k, d in enumerate(durs)]
    frames, truth = _edit(spec, rng, shots, [0.0] * n_takes)
    truth.update(source=kind, takes=n_takes)
    return Rendered(_padded(frames, _n(spec)), _group(kind, spec.seed), truth)


@recipe("prerecorded", "frame_rate_converted")
def pre_fps_converted(spec: Spec, rng: np.random.Generator) -> Rendered:
    """Footage shot at a lower rate played back at the stream's rate, as a player or OBS does:
    each source frame shown once or twice in a fixed cadence (e.g. 24 -> 30 pull-down).

    The source is a recording, so its sensor noise was filmed at the source rate and repeats
    with its frame (`Rendered.noise_baked`). Not generated, because nothing physical tells
    them from a camera at the stream's rate: footage converted *down* (60 -> 30 keeps every
    other frame) and blended conversions (each frame a mix of two: smooth motion blur).
    """
    kind = str(rng.choice(["presenter", "room", "gesture"], p=(0.5, 0.35, 0.15)))
    choices = [r for r in (12.0, 15.0, 20.0, 24.0) if r < spec.fps - 1]
    src_fps = float(rng.choice(choices))
    src_spec = dataclasses.replace(spec, fps=src_fps)
    n_src = _n(src_spec, spec.duration_s + 0.5)
    filmed = with_noise(_take(kind, src_spec, spec.duration_s + 0.5, spec.seed, rng), spec.width, spec.height,
                        n_src, float(rng.uniform(*SENSOR_NOISE_SIGMA)), np.random.default_rng([spec.seed, 6]))
    src = _Cursor(filmed)
    n_out = _n(spec)
    frames = (src.get(min(int(k * src_fps / spec.fps), n_src - 1)) for k in range(n_out))
    return Rendered(frames, _group(kind, spec.seed), {"source": kind, "source_fps": src_fps, "method": "repeat"},
                    noise_baked=True)


@recipe("prerecorded", "reencoded")
def pre_reencoded(spec: Spec, rng: np.random.Generator) -> Rendered:
    """A recording that went through a smaller resolution and a lossy codec, with an edit."""
    shots = _shots(spec, rng, kinds=("presenter", "room", "gesture", "bikes"), weights=(0.4, 0.4, 0.15, 0.05),
                   min_s=5.0, max_s=15.0, min_shots=1)
    frames, truth = _edit(spec, rng, shots, [0.0] * len(shots))
    rescale, quality = float(rng.uniform(0.3, 0.65)), int(rng.integers(12, 45))
    truth.update(source="edit", rescale=rescale, jpeg_quality=quality)
    return Rendered((degrade(f, rescale, quality) for f in _padded(frames, _n(spec))), f"edit-{spec.seed}", truth)


@recipe("prerecorded", "small_live_window")
def pre_small_live_window(spec: Spec, rng: np.random.Generator) -> Rendered:
    """A small live camera window over a big recorded (edited) programme."""
    shots = _shots(spec, rng, kinds=("presenter", "room", "bikes", "bigbuckbunny", "gesture"),
                   weights=(0.35, 0.35, 0.08, 0.07, 0.15))
    big, truth = _edit(spec, rng, shots, [0.0] * len(shots))
    box = _box(rng, spec, (0.22, 0.33))
    inner = Spec(spec.label, spec.variant, box[2], box[3], spec.fps, spec.duration_s, spec.seed + 5)
    small = _take(str(rng.choice(["presenter", "room"])), inner, spec.duration_s, spec.seed + 5, rng)
    truth.update(source="edit",
                 window=[round(box[0] / spec.width, 4), round(box[1] / spec.height, 4),
                         round(box[2] / spec.width, 4), round(box[3] / spec.height, 4)])
    return Rendered(_window(_padded(big, _n(spec)), small, box), f"edit-{spec.seed}", truth)


@recipe("prerecorded", "film")
def pre_film(spec: Spec, rng: np.random.Generator) -> Rendered:
    """Real footage and animation from packages, edited together (each shot used once)."""
    order = [str(k) for k in rng.permutation(list(sources.FOOTAGE_KINDS))]
    # Each recording is used once, so a film clip lasts at most the footage there is.
    spec = dataclasses.replace(spec, duration_s=min(spec.duration_s, float(rng.uniform(15.0, 18.5))))
    shots, total = [], 0.0
    for k, kind in enumerate(order):
        dur = min(sources.max_duration_s(kind) - 0.2, spec.duration_s - total)
        if dur <= 0.5:
            break
        shots.append((kind, dur, spec.seed * 10 + k))
        total += dur
    if total < spec.duration_s - 1e-6:
        shots.append(("room", spec.duration_s - total, spec.seed * 10 + 9))
    fades = [float(rng.uniform(0.4, 1.0)) if rng.random() < 0.3 else 0.0 for _ in shots[1:]]
    frames, truth = _edit(spec, rng, shots, fades)
    truth.update(source="film")
    return Rendered(_padded(frames, _n(spec)), FOOTAGE_GROUP, truth, duration_s=_n(spec) / spec.fps)


# -- ai_driven --------------------------------------------------------------------------------

def _mouth_truth(presenter) -> list[int]:
    return list(presenter.mouth_box())


def _spoken_mouth(spec: Spec) -> tuple[np.ndarray, dict]:
    """The mouth opening per frame from the clip's text-to-speech pitch (the same speech
    `corpus.audio` puts on the soundtrack), and what was said."""
    from detector.corpus.speech import mouth_envelope, pitch_speech

    speech = pitch_speech(spec.seed, spec.duration_s)
    return mouth_envelope(speech, spec.fps, _n(spec)), {"engine": "espeak-ng", **speech.info}


@recipe("ai_driven", "portrait")
def ai_portrait(spec: Spec, rng: np.random.Generator) -> Rendered:
    """A still portrait with a lip-synced mouth, sine sway and clockwork blinks."""
    from detector.synth.presenter import Presenter, portrait_states

    presenter = Presenter(spec.width, spec.height, spec.seed, noise_sigma=float(rng.uniform(0.5, 2.0)))
    mouth, speech = _spoken_mouth(spec)
    states = portrait_states(spec.duration_s, spec.fps, spec.seed, blink_period_s=float(rng.uniform(2.5, 4.5)),
                             sway_period_s=float(rng.uniform(3.0, 6.0)), sway_px=float(rng.uniform(1.0, 6.0)),
                             mouth=mouth, products=rng.random() < 0.4)
    truth = {"source": "portrait", "mouth_box": _mouth_truth(presenter), "speech": speech}
    if states.product is not None:          # a product picture composited rising to the camera
        truth["products_s"] = _products_truth(spec.duration_s, spec.seed, share=1.0)
    return Rendered(presenter.frames(states), f"portrait-{spec.seed}", truth)


def _recycled_states(spec: Spec, rng, mouth: np.ndarray):
    """Base footage of a real presenter, replayed in chunks with a re-synthesised mouth
    opened by `mouth` (per output frame)."""
    from detector.synth.presenter import live_states, replay

    base_s = float(rng.uniform(5.0, min(12.0, spec.duration_s / 1.8)))
    base = live_states(base_s, spec.fps, spec.seed, float(rng.uniform(0.4, 0.9)))
    chunks, spans, t = [], [], 0.0
    mode = str(rng.choice(["sequential", "shuffled"]))
    pos = 0.0
    while t < spec.duration_s:
        length = float(rng.uniform(1.5, min(4.0, base_s)))
        start = pos if mode == "sequential" else float(rng.uniform(0, base_s - length))
        if start + length > base_s:
            start, length = 0.0, min(length, base_s)
        a, b = round(start * spec.fps), round((start + length) * spec.fps)
        chunks.append((a / spec.fps, b / spec.fps))
        spans.append([round(t, 4), round(t + (b - a) / spec.fps, 4), round(a / spec.fps, 4)])
        t += (b - a) / spec.fps
        pos = (start + length) % max(base_s - 1.5, 1e-6)
    states = replay(base, chunks, spec.fps, new_mouth_seed=spec.seed, keep_original=False, new_mouth=mouth)
    return states.take(np.arange(_n(spec))), spans, mode


@recipe("ai_driven", "recycled_presenter")
def ai_recycled(spec: Spec, rng: np.random.Generator) -> Rendered:
    from detector.synth.presenter import Presenter

    presenter = Presenter(spec.width, spec.height, spec.seed)
    mouth, speech = _spoken_mouth(spec)
    states, spans, mode = _recycled_states(spec, rng, mouth)
    return Rendered(presenter.frames(states), f"presenter-{spec.seed}",
                    {"source": "presenter", "mouth_box": _mouth_truth(presenter), "recycled": spans, "order": mode,
                     "speech": speech})


@recipe("ai_driven", "keyed_presenter")
def ai_keyed(spec: Spec, rng: np.random.Generator) -> Rendered:
    """A synthetic presenter (still portrait or recycled footage) keyed onto a background."""
    from detector.synth.presenter import Presenter, portrait_states

    presenter = Presenter(spec.width, spec.height, spec.seed)
    mouth, speech = _spoken_mouth(spec)
    truth: dict = {"mouth_box": _mouth_truth(presenter), "speech": speech}
    if rng.random() < 0.5:
        states = portrait_states(spec.duration_s, spec.fps, spec.seed, blink_period_s=float(rng.uniform(2.5, 4.5)),
                                 sway_period_s=float(rng.uniform(3.0, 6.0)), sway_px=float(rng.uniform(1.0, 5.0)),
                                 mouth=mouth, products=rng.random() < 0.4)
        truth["source"] = "portrait_keyed"
        if states.product is not None:
            truth["products_s"] = _products_truth(spec.duration_s, spec.seed, share=1.0)
    else:
        states, spans, mode = _recycled_states(spec, rng, mouth)
        truth.update(source="recycled_keyed", recycled=spans, order=mode)
    bg_kind = str(rng.choice(["room", "still"], p=(0.6, 0.4)))
    background = _take(bg_kind, spec, spec.duration_s, spec.seed + 1, rng, shake=0.0)
    truth["background"] = bg_kind
    frames = _keyed(presenter, states, background)
    return Rendered(frames, f"portrait-{spec.seed}" if truth["source"] == "portrait_keyed" else f"presenter-{spec.seed}",
                    truth)
