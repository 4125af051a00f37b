"""Products raised to the camera: the product appears, grows as it is raised towards the lens
and shrinks away again exactly when the clip's truth says, occluding the presenter."""

from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("skimage") is None,
                                reason="the presenter needs scikit-image: pip install -e '.[corpus]'")

from detector.corpus.variants import RECIPES, Spec  # noqa: E402
from detector.synth.presenter import Presenter, live_states  # noqa: E402

W, H, FPS = 180, 320, 25.0


def _seed_with_products(duration_s: float) -> tuple[int, list]:
    for seed in range(1, 50):
        truth = RECIPES["live"]["presenter"](Spec("live", "presenter", W, H, FPS, duration_s, seed),
                                             np.random.default_rng(0)).truth
        if truth["products_s"]:
            return seed, truth["products_s"]
    raise AssertionError("no seed raises a product")


def test_the_product_grows_as_it_is_raised_and_shrinks_when_lowered_where_the_truth_says():
    duration_s = 14.0
    seed, events = _seed_with_products(duration_s)
    states = live_states(duration_s, FPS, seed)
    bare = dataclasses.replace(states, product=None)
    presenter = Presenter(W, H, seed, noise_sigma=0.0)

    def area(t_s: float) -> float:
        """Share of the frame the product (with hand and arm) covers at t_s."""
        i = min(len(states) - 1, round(t_s * FPS))
        diff = np.abs(presenter.clean_frame(states, i).astype(int) - presenter.clean_frame(bare, i).astype(int))
        return float((diff.max(axis=2) > 12).mean())

    start, top, lower, end = events[0]
    rising = [area(start + f * (top - start)) for f in (0.3, 0.6, 0.95)]
    lowering = [area(lower + f * (end - lower)) for f in (0.05, 0.4, 0.7)]
    assert area(max(0.0, start - 0.3)) < 0.002 and area(end + 0.2) < 0.002       # out of view
    assert rising[0] < rising[1] < rising[2] and rising[2] > 0.08, rising      # nearer, larger
    assert lowering[0] > lowering[1] > lowering[2], lowering
    assert area((top + lower) / 2) > 0.08                                       # held up close
    # It occludes the presenter: while held, the chest and neck under it are hidden.
    x0, y0, x1, y1 = presenter.product_box(1.0)
    assert y0 < 0.7 * H and x1 - x0 > 0.2 * W


def test_presenter_footage_of_every_class_can_show_products():
    """Live, keyed and recycled presenters (and footage the looped and prerecorded recipes
    replay) come from the same states, so products are no cue to the class."""
    seed, _ = _seed_with_products(14.0)
    assert live_states(14.0, FPS, seed).product.max() > 0.9
    keyed = RECIPES["live"]["presenter_keyed"](Spec("live", "presenter_keyed", W, H, FPS, 14.0, seed),
                                               np.random.default_rng(0))
    assert keyed.truth["products_s"]
