"""Test helpers that are plain functions (fixtures live in conftest.py)."""

from __future__ import annotations

import numpy as np
from sklearn.dummy import DummyClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from detector.config import LABELS
from detector.model import save_model
from detector.pipeline import feature_columns, feature_schema


def prior_model(tmp_path, priors: dict[str, int], name: str = "prior", pipeline=None):
    """A real (if simple) model: it predicts the class frequencies it was trained on."""
    columns = feature_columns()
    y = np.array([label for label, count in priors.items() for _ in range(count)])
    X = np.random.default_rng(0).normal(size=(len(y), len(columns)))
    pipeline = pipeline or make_pipeline(StandardScaler(), DummyClassifier(strategy="prior"))
    pipeline.fit(X, y)
    card = {"labels": list(LABELS), "feature_names": columns, "feature_schema": feature_schema()}
    return save_model(pipeline, tmp_path / f"{name}.skops", card)
