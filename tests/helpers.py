"""Test helpers that are plain functions (fixtures live in conftest.py)."""

from __future__ import annotations

import numpy as np
from sklearn.dummy import DummyClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from detector.config import LABELS
from detector.model import save_model
from detector.pipeline import feature_columns, feature_schema
from detector.source import VideoSource


def prior_model(tmp_path, priors: dict[str, int], name: str = "prior", pipeline=None):
    """A real (if simple) model: it predicts the class frequencies it was trained on."""
    columns = feature_columns()
    y = np.array([label for label, count in priors.items() for _ in range(count)])
    X = np.random.default_rng(0).normal(size=(len(y), len(columns)))
    pipeline = pipeline or make_pipeline(StandardScaler(), DummyClassifier(strategy="prior"))
    pipeline.fit(X, y)
    card = {"labels": list(LABELS), "feature_names": columns, "feature_schema": feature_schema()}
    return save_model(pipeline, tmp_path / f"{name}.skops", card)


def written_clips(folder, scenes: dict, fps: float):
    """A getter that writes each named scene's clip once (scenes: name -> frame factory)."""
    from detector.synth.writer import write_clip

    written: dict[str, object] = {}

    def get(name: str):
        if name not in written:
            written[name] = write_clip(folder / f"{name}.mp4", scenes[name](), fps)
        return written[name]

    return get


def cached_extractions(clip, make_extractors):
    """A getter that extracts each named clip once, with fresh extractors each time."""
    from detector.config import ScanConfig
    from detector.pipeline import extract

    results: dict[str, object] = {}

    def get(name: str):
        if name not in results:
            results[name] = extract(clip(name), ScanConfig(), make_extractors())
        return results[name]

    return get



class CountingSource(VideoSource):
    """A real source that counts every video frame the decoder hands out (reset `decoded`
    before use): the one-decode-pass tests read it."""

    decoded = 0

    def _decoded_frames(self):
        for frame in super()._decoded_frames():
            CountingSource.decoded += 1
            yield frame
