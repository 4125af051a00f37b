"""Model files: a scikit-learn pipeline in `.skops` plus a JSON card beside it.

Pickle and joblib run code when loaded; skops refuses types that were not declared trusted.
We trust only scikit-learn, NumPy and SciPy types and refuse anything else, check the file's
SHA-256 against its card (tampering, truncation) and the card's feature schema against the
code (a model trained on other columns would silently mis-read ours).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detector.config import LABELS

CARD_SUFFIX = ".card.json"
_TRUSTED_MODULE_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.")


class ModelError(Exception):
    """A model that cannot be used; the message says why in one line (CLI exit code 2)."""


def card_path(model_path: Path) -> Path:
    return model_path.with_name(model_path.name.removesuffix(".skops") + CARD_SUFFIX)


def repo_models_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "models"


def default_model_path() -> Path | None:
    """models/default.skops next to the package (a source checkout), if it has been trained."""
    path = repo_models_dir() / "default.skops"
    return path if path.exists() else None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class LoadedModel:
    path: Path
    pipeline: Any
    card: Mapping[str, Any]

    @property
    def name(self) -> str:
        return str(self.card.get("name") or self.path.name.removesuffix(".skops"))

    @property
    def labels(self) -> list[str]:
        return list(self.card["labels"])

    @property
    def feature_names(self) -> list[str]:
        return list(self.card["feature_names"])

    def predict_scores(self, features: Mapping[str, float]) -> dict[str, float]:
        """Calibrated probability per label for one clip's feature columns."""
        import numpy as np

        from detector.training import single_threaded

        row = np.array([[_as_float(features.get(name)) for name in self.feature_names]], dtype=np.float64)
        row[~np.isfinite(row)] = np.nan
        with single_threaded():    # one row: threads only cost
            probabilities = self.pipeline.predict_proba(row)[0]
        classes = [str(c) for c in self.pipeline.classes_]
        scores = {label: 0.0 for label in self.labels}
        for label, p in zip(classes, probabilities):
            scores[label] = float(p)
        return scores


def _as_float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def save_model(pipeline: Any, path: str | Path, card: Mapping[str, Any]) -> Path:
    """Write `path` (.skops) and its card; the card gains the file's SHA-256."""
    import skops.io as sio

    path = Path(path)
    if path.suffix != ".skops":
        path = path.with_name(path.name + ".skops")
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.dump(pipeline, path)
    full_card = dict(card)
    full_card["sha256"] = file_sha256(path)
    full_card.setdefault("name", path.name.removesuffix(".skops"))
    card_path(path).write_text(json.dumps(full_card, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def load_model(path: str | Path, *, expected_schema: str | None = None) -> LoadedModel:
    """Load and check a model; raise ModelError with a one-line reason on any problem."""
    import skops.io as sio

    path = Path(path)
    if path.is_dir():
        path = path / "default.skops" if (path / "default.skops").exists() else path
    if path.suffix != ".skops" and path.with_name(path.name + ".skops").exists():
        path = path.with_name(path.name + ".skops")
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    card_file = card_path(path)
    if not card_file.is_file():
        raise ModelError(f"model card not found beside the model: {card_file.name}")
    try:
        card = json.loads(card_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"model card {card_file.name} is not valid JSON: {exc}") from None
    missing = [k for k in ("labels", "feature_names", "feature_schema", "sha256") if k not in card]
    if missing:
        raise ModelError(f"model card {card_file.name} lacks {', '.join(missing)}")
    unknown_labels = set(card["labels"]) - set(LABELS)
    if unknown_labels:
        raise ModelError(f"model card names unknown labels {sorted(unknown_labels)}")
    if expected_schema is not None and card["feature_schema"] != expected_schema:
        raise ModelError(
            f"model was trained on feature schema {card['feature_schema']}, this code extracts "
            f"{expected_schema}: retrain it (detector train)")
    if file_sha256(path) != card["sha256"]:
        raise ModelError(f"model file {path.name} does not match the SHA-256 in its card: corrupt or tampered")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # skops raises assorted errors on a damaged archive
        raise ModelError(f"model file {path.name} is not a readable .skops file: {_one_line(exc)}") from None
    refused = [t for t in untrusted if not t.startswith(_TRUSTED_MODULE_PREFIXES)]
    if refused:
        raise ModelError(f"model file {path.name} contains untrusted types, refused: {', '.join(refused[:5])}")
    try:
        pipeline = sio.load(path, trusted=untrusted)
    except Exception as exc:
        raise ModelError(f"model file {path.name} could not be loaded: {_one_line(exc)}") from None
    if not hasattr(pipeline, "predict_proba"):
        raise ModelError(f"model file {path.name} holds a {type(pipeline).__name__}, which gives no probabilities")
    return LoadedModel(path=path, pipeline=pipeline, card=card)


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())
