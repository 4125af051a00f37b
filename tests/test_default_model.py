"""The shipped default model: it loads with this code's features, its card says what it is,
and it judges every shipped sample as its manifest says (what `make run` shows)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from conftest import REPO, run_cli
from detector.config import LABELS
from detector.model import default_model_path, load_model
from detector.pipeline import feature_schema

pytestmark = pytest.mark.timeout(900)


def test_the_default_model_matches_the_code():
    path = default_model_path()
    assert path is not None, "models/default.skops is missing: run `make model`"
    # A changed extractor without a retrained model fails here (retrain with `make model`).
    model = load_model(path, expected_schema=feature_schema())
    card = model.card
    assert card["labels"] == list(LABELS)
    assert all(card["training_data"]["clips_per_class"][label] >= 100 for label in LABELS)
    assert "StratifiedGroupKFold" in card["metrics"]["setting"]
    assert set(card["metrics"]["per_class"]) == set(LABELS)
    assert card["recipe"]["random_state"] == 0


def test_shipped_samples_and_models_stay_lean():
    files = [p for folder in ("samples", "models") for p in (REPO / folder).iterdir() if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 30e6


def test_every_shipped_sample_gets_its_label():
    with open(REPO / "samples" / "manifest.csv", newline="", encoding="utf-8") as handle:
        truth = {row["path"]: row["label"] for row in csv.DictReader(handle)}
    result = run_cli("scan", "samples/", "-f", "jsonl", "-j", "2", timeout_s=800)
    assert result.returncode == 1, result.stderr            # fakes are flagged
    verdicts = {Path(r["path"]).name: r["verdict"] for r in result.jsonl()}
    assert verdicts == truth
    assert all(r["model"] == "default" and r["error"] is None for r in result.jsonl())
