"""Clips that replay footage, with the truth of every replayed span.

A plan is a list of steps: `Live(duration_s)` airs fresh, never-repeating footage;
`Air(clip, disguise, speed, reversed)` airs recorded clip `clip` (the same content every
time), disguised. The first airing of a clip is the source of all later ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from detector.synth.disguise import Disguise
from detector.synth.scenes import moving_scene

SceneFactory = Callable[[int, int, float, float, int], Iterator[np.ndarray]]


@dataclass(frozen=True)
class Live:
    duration_s: float


@dataclass(frozen=True)
class Air:
    clip: int
    disguise: Disguise = field(default_factory=Disguise)
    speed: float = 1.0
    reversed: bool = False
    drop_share: float = 0.0        # frames dropped / duplicated at random (re-timing)


@dataclass(frozen=True)
class ReplayTruth:
    start_s: float
    end_s: float
    source_start_s: float
    source_end_s: float
    clip: int
    transform: str


@dataclass(frozen=True)
class LoopPlan:
    steps: Sequence[Live | Air]
    clip_durations_s: dict[int, float]


def render(plan: LoopPlan, width: int, height: int, fps: float, seed: int,
           scene: SceneFactory = moving_scene) -> tuple[Iterator[np.ndarray], list[ReplayTruth], float]:
    """(frames, truth of every replay, total duration). Clips are rendered once and kept."""
    clips = {
        clip: list(scene(width, height, fps, duration_s, seed * 100 + clip + 1))
        for clip, duration_s in plan.clip_durations_s.items()
    }
    truth: list[ReplayTruth] = []
    first_airing: dict[int, tuple[float, float]] = {}
    schedule: list[tuple[str, object, list[int], Air | None]] = []
    t_s = 0.0
    rng = np.random.default_rng(seed)
    for k, step in enumerate(plan.steps):
        if isinstance(step, Live):
            n = int(round(step.duration_s * fps))
            schedule.append(("live", seed * 1000 + k + 500, list(range(n)), None))
            t_s += n / fps
            continue
        n_source = len(clips[step.clip])
        n_out = int(np.floor(n_source / step.speed))
        indices = [min(n_source - 1, int(round(i * step.speed))) for i in range(n_out)]
        if step.drop_share:
            indices = _retime(indices, step.drop_share, rng)
        if step.reversed:
            indices = indices[::-1]
        start_s, end_s = t_s, t_s + len(indices) / fps
        if step.clip in first_airing:
            src_start, src_end = first_airing[step.clip]
            label = step.disguise.describe()
            extras = ([f"speed {step.speed:.2f}"] if step.speed != 1 else []) + (["reversed"] if step.reversed else [])
            label = "+".join([p for p in [label] if p != "none"] + extras) or "none"
            truth.append(ReplayTruth(start_s, end_s, src_start, src_end, step.clip, label))
        else:
            first_airing[step.clip] = (start_s, end_s)
        schedule.append(("clip", step.clip, indices, step))
        t_s = end_s

    def frames() -> Iterator[np.ndarray]:
        out_t = 0.0
        noise_rng = np.random.default_rng(seed + 7)
        for kind, key, indices, step in schedule:
            if kind == "live":
                yield from scene(width, height, fps, len(indices) / fps, int(key))
                out_t += len(indices) / fps
                continue
            for i in indices:
                frame = clips[key][i]
                if step.disguise != Disguise():
                    frame = step.disguise.apply(frame, out_t, noise_rng)
                # Every airing gets its own sensor-like noise: replays are never bit-identical.
                frame = np.clip(frame + noise_rng.normal(0, 1.2, frame.shape), 0, 255).astype(np.uint8)
                yield frame
                out_t += 1 / fps

    return frames(), truth, t_s


def _retime(indices: list[int], share: float, rng: np.random.Generator) -> list[int]:
    """Drop and duplicate about `share` of the frames each, as a lossy re-timing would."""
    out = []
    for i in indices:
        r = rng.random()
        if r < share:
            continue                   # dropped
        out.append(i)
        if r > 1 - share:
            out.append(i)              # duplicated
    return out


def whole_loop(period_s: float, passes: int, disguises: Sequence[Disguise] = (), speeds: Sequence[float] = (),
               lead_in_s: float = 0.0) -> LoopPlan:
    """One clip aired `passes` times, optionally after `lead_in_s` of live footage."""
    steps: list[Live | Air] = [Live(lead_in_s)] if lead_in_s else []
    for k in range(passes):
        disguise = disguises[k % len(disguises)] if disguises else Disguise()
        speed = speeds[k % len(speeds)] if speeds else 1.0
        steps.append(Air(0, disguise if k else Disguise(), speed if k else 1.0))
    return LoopPlan(steps, {0: period_s})


def picture_in_picture(width: int, height: int, fps: float, duration_s: float, seed: int, period_s: float,
                       box: tuple[float, float, float, float] = (0.6, 0.1, 0.32, 0.32),
                       recorded_inside: bool = True, scene: SceneFactory = moving_scene) -> Iterator[np.ndarray]:
    """A window (x, y, w, h as fractions) over a full frame, with a thin border.

    recorded_inside=True: a recorded `period_s` loop plays in the window over live footage.
    recorded_inside=False: a small live window over a big recorded loop.
    """
    import cv2

    x, y = int(box[0] * width), int(box[1] * height)
    w, h = int(box[2] * width) // 2 * 2, int(box[3] * height) // 2 * 2
    loop_w, loop_h = (w, h) if recorded_inside else (width, height)
    live_w, live_h = (width, height) if recorded_inside else (w, h)
    recorded = list(scene(loop_w, loop_h, fps, period_s, seed * 100 + 1))
    live = scene(live_w, live_h, fps, duration_s, seed * 100 + 2)
    rng = np.random.default_rng(seed)
    for i, live_frame in enumerate(live):
        loop_frame = recorded[i % len(recorded)]
        outer, inner = (live_frame, loop_frame) if recorded_inside else (loop_frame, live_frame)
        frame = outer.copy()
        frame[y:y + h, x:x + w] = inner
        cv2.rectangle(frame, (x - 2, y - 2), (x + w + 1, y + h + 1), (235, 235, 235), 2)
        yield np.clip(frame + rng.normal(0, 1.2, frame.shape), 0, 255).astype(np.uint8)
