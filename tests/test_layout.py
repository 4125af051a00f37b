"""The layout extractor: a picture-in-picture window is found where it is (within a cell),
live rooms, comment overlay bands, a handheld room full of rectangles and a picture frame on
a wall are not windows, and a keyed presenter with a green fringe is told from natural scenes."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import pytest
from helpers import cached_extractions, written_clips

from detector.config import ScanConfig
from detector.extractors.layout import LayoutExtractor
from detector.pipeline import Extraction, extract
from detector.synth.scenes import moving_scene, static_scene
from detector.types import Frame, VideoMeta

W, H, FPS = 320, 180, 25
DURATION_S = 12.0
# Window boxes are located to the best pixel line near the coarse grid: allow one fine cell
# (10 px at 320x180).
CELL_X, CELL_Y = 10 / W, 10 / H
Frames = Iterator[np.ndarray]


# -- generated scenes with known truth ---------------------------------------------------

@dataclass(frozen=True)
class WindowTruth:
    x: int                  # top-left of the inner picture, analysis pixels
    y: int
    w: int = 96             # 30 % x 30 % of 320x180
    h: int = 54
    border: int = 2

    def box(self) -> tuple[float, float, float, float]:
        """[x, y, w, h] of the window including its frame, as fractions of the frame."""
        b = self.border
        return ((self.x - b) / W, (self.y - b) / H, (self.w + 2 * b) / W, (self.h + 2 * b) / H)


WINDOWS = {"pip_top_right": WindowTruth(200, 24), "pip_centre_low": WindowTruth(143, 97)}


def picture_in_picture(window: WindowTruth) -> Frames:
    """A live-looking scene with a different scene pasted as a small framed window."""
    outer = moving_scene(W, H, FPS, DURATION_S, seed=1)
    inner = moving_scene(window.w, window.h, FPS, DURATION_S, seed=2)
    b = window.border
    for big, small in zip(outer, inner):
        cv2.rectangle(big, (window.x - b, window.y - b),
                      (window.x + window.w + b - 1, window.y + window.h + b - 1), (200, 200, 200), -1)
        big[window.y:window.y + window.h, window.x:window.x + window.w] = small
        yield big


def comments_band(alpha: float, top: int = 135, speed_px_s: float = 15.0) -> Frames:
    """A live scene with a darkened band over the bottom quarter in which comments scroll up."""
    rng = np.random.default_rng(3)
    words = ["wow", "nice!", "price?", "link pls", "hello from", "so cute", "buy now", "666", "love it"]
    lines = [" ".join(rng.choice(words, 2)) for _ in range(400)]
    line_h = 14
    for i, frame in enumerate(moving_scene(W, H, FPS, DURATION_S, seed=1)):
        band = (frame[top:].astype(np.float32) * (1 - alpha)).astype(np.uint8)
        scroll = i / FPS * speed_px_s
        first = int(scroll // line_h)
        for k in range(first, first + (H - top) // line_h + 2):
            cv2.putText(band, lines[k % len(lines)], (6, int((k + 1) * line_h - scroll)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        frame[top:] = band
        yield frame


def handheld_room() -> Frames:
    """A room full of rectangles (window, picture, table) shot with a shaking hand."""
    margin = 40
    room = next(static_scene(W + 2 * margin, H + 2 * margin, FPS, 1 / FPS, seed=5))
    rng = np.random.default_rng(1)
    position, dt, tau_s = np.zeros(2), 1 / FPS, 0.25
    for _ in range(round(DURATION_S * FPS)):
        position += -position * dt / tau_s + rng.normal(0, 4.0 * math.sqrt(2 * dt / tau_s), 2)
        view = np.float32([[1, 0, -(margin + position[0])], [0, 1, -(margin + position[1])]])
        frame = cv2.warpAffine(room, view, (W, H), flags=cv2.INTER_LINEAR)
        yield np.clip(frame + rng.normal(0, 2.0, frame.shape), 0, 255).astype(np.uint8)


def _presenter(seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """A stylised presenter (head, neck, shoulders; skin and a textured shirt) and its mask."""
    rng = np.random.default_rng(seed)
    w, h = 90, 130
    mask = np.zeros((h, w), np.uint8)
    head = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (w // 2, h - 10), (w // 2 - 2, 55), 0, 180, 360, 255, -1)
    cv2.rectangle(mask, (4, h - 12), (w - 5, h - 1), 255, -1)
    for m in (mask, head):
        cv2.circle(m, (w // 2, 38), 26, 255, -1)
        cv2.rectangle(m, (w // 2 - 9, 55), (w // 2 + 9, 75), 255, -1)
    shirt = np.clip(rng.normal(0, 12, (h, w, 3)) + (150, 60, 40), 0, 255).astype(np.uint8)
    skin = np.clip(rng.normal(0, 6, (h, w, 3)) + (120, 150, 200), 0, 255).astype(np.uint8)
    sprite = np.where(head[..., None] > 0, skin, shirt)
    for eye in (w // 2 - 9, w // 2 + 9):
        cv2.circle(sprite, (eye, 32), 3, (40, 30, 30), -1)
    return sprite, mask


def presenter(background: Frames, keyed: bool, at=(115, 50)) -> Frames:
    """A presenter who talks, gestures and sways, over `background`.

    keyed: cut out with a hard (binary) matte whose inner 2 px carry green spill, as a cheap
    chroma keyer leaves it. Otherwise: a natural soft edge (optics blur it) and no fringe.
    """
    sprite, mask = _presenter()
    h, w = mask.shape
    rim = cv2.subtract(mask, cv2.erode(mask, np.ones((5, 5), np.uint8))) > 0
    rng = np.random.default_rng(2)
    for i, frame in enumerate(background):
        t = i / FPS
        image = sprite.copy()
        mouth = int(3 + 3 * abs(math.sin(2 * math.pi * 2.3 * t + rng.normal(0, 0.3))))
        cv2.ellipse(image, (w // 2, 48), (8, mouth), 0, 0, 360, (40, 30, 90), -1)
        hand = (int(10 + 8 * math.sin(2 * math.pi * 0.7 * t)), int(h - 30 + 6 * math.cos(2 * math.pi * 0.9 * t)))
        cv2.circle(image, hand, 10, (120, 150, 200), -1)
        matte = mask.astype(np.float32) / 255
        if keyed:
            image[rim] = (0.45 * image[rim] + 0.55 * np.array((40, 230, 60))).astype(np.uint8)
        else:
            matte = cv2.GaussianBlur(matte, (0, 0), 1.2)
        sway = cv2.getRotationMatrix2D((w / 2, h), 1.2 * math.sin(2 * math.pi * 0.4 * t), 1.0)
        sway[0, 2] += 3 * math.sin(2 * math.pi * 0.25 * t)
        interpolation = cv2.INTER_NEAREST if keyed else cv2.INTER_LINEAR
        image = cv2.warpAffine(image, sway, (w, h), flags=interpolation)
        matte = cv2.warpAffine(matte, sway, (w, h), flags=interpolation)[..., None]
        x, y = at
        under = frame[y:y + h, x:x + w].astype(np.float32)
        frame[y:y + h, x:x + w] = (matte * image + (1 - matte) * under).astype(np.uint8)
        yield frame


SCENES: dict[str, Callable[[], Frames]] = {
    **{name: (lambda truth=truth: picture_in_picture(truth)) for name, truth in WINDOWS.items()},
    "live": lambda: moving_scene(W, H, FPS, DURATION_S, seed=1),
    "comments_translucent": lambda: comments_band(alpha=0.6),
    "comments_opaque": lambda: comments_band(alpha=1.0),
    "handheld_room": handheld_room,
    "still_room": lambda: static_scene(W, H, FPS, DURATION_S, seed=4),
    "keyed_presenter": lambda: presenter(moving_scene(W, H, FPS, DURATION_S, seed=5), keyed=True),
    "presenter_in_room": lambda: presenter(static_scene(W, H, FPS, DURATION_S, seed=6), keyed=False),
}


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Callable[[str], object]:
    """Path of a scene's clip, written once per module."""
    return written_clips(tmp_path_factory.mktemp("layout"), SCENES, FPS)


@pytest.fixture(scope="module")
def scanned(clip) -> Callable[[str], Extraction]:
    """The layout extraction of a scene at the default settings, run once per module."""
    return cached_extractions(clip, lambda: [LayoutExtractor()])


def layout(result: Extraction) -> dict[str, float]:
    return {k.removeprefix("layout__"): v for k, v in result.features.items() if k.startswith("layout__")}


def kinds(result: Extraction, kind: str) -> list:
    return [e for e in result.evidence if e.kind == kind]


# -- picture-in-picture -------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(WINDOWS))
def test_window_is_found_within_a_cell(scanned, name):
    result = scanned(name)
    found = kinds(result, "picture_in_picture")
    assert len(found) == 1
    evidence = found[0]
    assert evidence.score >= 0.7
    assert evidence.start_s == 0.0 and evidence.end_s >= DURATION_S - 0.2      # the whole clip
    box = evidence.detail["box"]
    truth = WINDOWS[name].box()
    tolerances = (CELL_X, CELL_Y, CELL_X, CELL_Y)
    assert all(abs(b - t) <= tol for b, t, tol in zip(box, truth, tolerances)), (box, truth)
    assert set(evidence.detail) == {"box", "border", "independence"}
    values = layout(result)
    assert values["pip_score"] == pytest.approx(evidence.score)
    assert values["pip_area_share"] == pytest.approx(truth[2] * truth[3], abs=0.04)


@dataclass(frozen=True)
class NotAWindow:
    scene: str
    why: str


NOT_WINDOWS = [
    NotAWindow("live", "one camera view: no straight line stays while both sides move"),
    NotAWindow("comments_translucent", "an overlay band spans the width; scrolling text has no persistent line"),
    NotAWindow("comments_opaque", "even opaque, the band has no inner vertical side"),
    NotAWindow("handheld_room", "furniture rectangles jitter with the camera: no line stays on one pixel"),
    NotAWindow("still_room", "a picture frame on the wall is a perfect border, but nothing moves inside it"),
]


@pytest.mark.parametrize("case", NOT_WINDOWS, ids=lambda c: c.scene)
def test_not_a_window(scanned, case):
    result = scanned(case.scene)
    assert not kinds(result, "picture_in_picture"), case.why
    assert layout(result)["pip_score"] < 0.35, case.why


def test_window_scores_above_every_non_window(scanned):
    lowest_window = min(layout(scanned(name))["pip_score"] for name in WINDOWS)
    highest_other = max(layout(scanned(case.scene))["pip_score"] for case in NOT_WINDOWS)
    assert lowest_window > highest_other + 0.3


def test_window_border_and_independence_are_reported(scanned):
    window, still = layout(scanned("pip_top_right")), layout(scanned("still_room"))
    assert window["pip_border"] > 0.5 and window["pip_independence"] > 0.8
    # The still room's picture frame is a strong border without independent motion.
    assert still["pip_independence"] < 0.1


# -- green screen --------------------------------------------------------------------------

def test_keyed_presenter_is_a_green_screen(scanned):
    result = scanned("keyed_presenter")
    found = kinds(result, "green_screen")
    assert len(found) == 1
    assert set(found[0].detail) == {"key_edge", "spill"}
    assert 0.5 <= found[0].score <= 1.0
    assert not kinds(result, "picture_in_picture")


@pytest.mark.parametrize("scene", ["live", "presenter_in_room", "comments_opaque", "handheld_room", "pip_top_right"])
def test_natural_scenes_are_not_green_screens(scanned, scene):
    assert not kinds(scanned(scene), "green_screen")


def test_spill_separates_the_keyed_presenter(scanned):
    keyed = layout(scanned("keyed_presenter"))["spill"]
    natural = max(layout(scanned(s))["spill"] for s in ("live", "presenter_in_room", "handheld_room"))
    assert keyed > 3 * natural


def test_keyed_contour_is_a_layer_edge(scanned):
    """The presenter's contour stays while the background moves behind it; in a live scene
    persistent edges are the ones nothing passes over."""
    assert layout(scanned("keyed_presenter"))["key_edge"] > 2 * layout(scanned("live"))["key_edge"]


# -- contract details ----------------------------------------------------------------------

def test_every_column_is_returned_and_documented(scanned):
    values = layout(scanned("live"))
    assert list(values) == list(LayoutExtractor.FEATURES)
    assert set(LayoutExtractor.COLUMN_DOCS) == set(LayoutExtractor.FEATURES)
    assert all(0.0 <= values[k] <= 1.0 for k in ("pip_score", "pip_independence", "key_edge", "spill", "active_cell_share"))


def _meta(width: int, height: int) -> VideoMeta:
    return VideoMeta(location="synthetic", container_format="mp4", codec="h264", width=width,
                     height=height, rotation_deg=0, declared_fps=10.0, declared_duration_s=None,
                     declared_frames=0, is_stream=False, analysis_width=width, analysis_height=height)


@pytest.mark.parametrize("size, frames", [((W, H), 3), ((24, 16), 40)], ids=["too-short", "too-small"])
def test_unmeasurable_input_gives_missing_values(size, frames):
    width, height = size
    extractor = LayoutExtractor()
    extractor.reset(_meta(width, height))
    rng = np.random.default_rng(0)
    for i in range(frames):
        gray = rng.integers(0, 255, (height, width), dtype=np.uint8)
        extractor.update(Frame(index=i, t_s=i / 10.0, gray=gray))
    values, evidence = extractor.finalize()
    assert evidence == []
    for key in ("pip_score", "pip_area_share", "pip_border", "pip_independence", "key_edge", "active_cell_share"):
        assert math.isnan(values[key]), key


def test_pip_threshold_comes_from_the_config(clip):
    config = ScanConfig(extractor_settings={"layout": {"pip_min_score": 0.99}})
    result = extract(clip("pip_top_right"), config, [LayoutExtractor(config)])
    assert not kinds(result, "picture_in_picture")
    assert layout(result)["pip_score"] >= 0.7
