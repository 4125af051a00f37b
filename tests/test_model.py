"""Model files: safe loading, card checks, and how a model's scores become a verdict."""

from __future__ import annotations

import json
import os

import pytest
from helpers import prior_model
from sklearn.dummy import DummyClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from detector.config import LABELS
from detector.model import ModelError, card_path, load_model
from detector.pipeline import feature_columns, feature_schema


def test_saved_model_loads_and_scores(tmp_path):
    path = prior_model(tmp_path, {"looped": 7, "live": 3})
    model = load_model(path, expected_schema=feature_schema())
    scores = model.predict_scores({c: 0.0 for c in feature_columns()})
    assert scores == pytest.approx({"live": 0.3, "looped": 0.7, "prerecorded": 0.0, "ai_driven": 0.0})
    assert model.name == "prior"


def test_missing_features_are_passed_as_nan_not_zero(tmp_path):
    model = load_model(prior_model(tmp_path, {"live": 1, "looped": 1}))
    assert sum(model.predict_scores({}).values()) == pytest.approx(1.0)


def test_schema_mismatch_is_refused(tmp_path):
    path = prior_model(tmp_path, {"live": 1, "looped": 1})
    with pytest.raises(ModelError, match="feature schema"):
        load_model(path, expected_schema="stream.1+basic.99-deadbeef")


def test_tampered_model_file_is_refused(tmp_path):
    path = prior_model(tmp_path, {"live": 1, "looped": 1})
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="SHA-256"):
        load_model(path)


def test_truncated_model_with_matching_card_is_refused_as_unreadable(tmp_path):
    path = prior_model(tmp_path, {"live": 1, "looped": 1})
    path.write_bytes(path.read_bytes()[:100])
    card = json.loads(card_path(path).read_text())
    from detector.model import file_sha256

    card["sha256"] = file_sha256(path)
    card_path(path).write_text(json.dumps(card))
    with pytest.raises(ModelError, match="not a readable .skops"):
        load_model(path)


def test_model_that_would_run_code_is_refused(tmp_path):
    # A pipeline holding a reference to os.system: pickle would happily call it on load.
    dangerous = make_pipeline(FunctionTransformer(os.system, validate=False), DummyClassifier())
    path = tmp_path / "evil.skops"
    columns = feature_columns()
    import skops.io as sio

    sio.dump(dangerous, path)
    from detector.model import file_sha256

    card_path(path).write_text(json.dumps({
        "labels": list(LABELS), "feature_names": columns, "feature_schema": feature_schema(),
        "sha256": file_sha256(path)}))
    with pytest.raises(ModelError, match="untrusted types"):
        load_model(path)


def test_missing_card_and_missing_file_are_clear(tmp_path):
    path = prior_model(tmp_path, {"live": 1, "looped": 1})
    with pytest.raises(ModelError, match="model file not found"):
        load_model(tmp_path / "absent.skops")
    card_path(path).unlink()
    with pytest.raises(ModelError, match="card not found"):
        load_model(path)


def test_corrupt_card_is_refused(tmp_path):
    path = prior_model(tmp_path, {"live": 1, "looped": 1})
    card_path(path).write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_model(path)
