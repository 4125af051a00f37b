"""From a features table to a calibrated model and its card.

The recipe is a scikit-learn Pipeline: HistGradientBoosting (handles missing values, which
our columns have by design: no face, no audio) or a linear baseline (imputation with a
missing-value indicator, scaling, logistic regression). Classes are weighted by inverse
frequency. Probabilities are calibrated on grouped folds, so a source recording is never
both fitted and used to calibrate. Everything is seeded: the same table gives the same
model and the same metrics.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import platform
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from detector.config import LABELS

MODEL_KINDS = ("hgb", "linear")
# "evidence": every column but those documented as speaking for "context" (what the scene
# is: brightness, how much moves, a face's size, how often an encoder froze a frame...),
# which separate our generator's recipes rather than live from fake: without them, holding
# out whole recipes of the default corpus scores far better, live recall above all (figures
# in models/README.md). "all": every column.
COLUMN_SETS = ("evidence", "all")


@dataclass(frozen=True)
class Recipe:
    kind: str = "hgb"
    calibration: str = "sigmoid"      # isotonic over-fits on a few hundred clips
    n_splits: int = 5
    random_state: int = 0
    columns: str = "evidence"

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"unknown model kind {self.kind!r}; known: {', '.join(MODEL_KINDS)}")
        if self.columns not in COLUMN_SETS:
            raise ValueError(f"unknown column set {self.columns!r}; known: {', '.join(COLUMN_SETS)}")
        if self.calibration not in ("sigmoid", "isotonic"):
            raise ValueError(f"unknown calibration {self.calibration!r}; known: sigmoid, isotonic")


def model_columns(feature_names, recipe: Recipe) -> list[str]:
    """The columns the recipe learns from, in table order (see COLUMN_SETS)."""
    if recipe.columns == "all":
        return list(feature_names)
    from detector.pipeline import column_docs

    docs = column_docs()
    return [c for c in feature_names if c not in docs or docs[c].speaks_for != "context"]


def feature_matrix(table, feature_names):
    import numpy as np

    X = np.array(table[list(feature_names)].to_numpy(dtype=np.float64), copy=True)
    X[~np.isfinite(X)] = np.nan      # an infinite ratio is as unmeasured as a missing one
    return X


def usable_rows(table):
    """Rows that were analysed (failed clips carry no features and are left out)."""
    ok = table["error"].isna() | (table["error"].astype(str) == "")
    return table[ok.to_numpy()].reset_index(drop=True)


def base_estimator(recipe: Recipe):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if recipe.kind == "linear":
        return make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            StandardScaler(),
            LogisticRegression(C=0.5, class_weight="balanced", max_iter=5000, random_state=recipe.random_state),
        )
    return HistGradientBoostingClassifier(
        learning_rate=0.08, max_iter=250, max_leaf_nodes=15, min_samples_leaf=8,
        l2_regularization=1.0, class_weight="balanced", early_stopping=False,
        random_state=recipe.random_state,
    )


def grouped_splits(y, groups, n_splits: int, random_state: int):
    """StratifiedGroupKFold splits, with fewer folds when there are few groups per class."""
    import numpy as np
    from sklearn.model_selection import StratifiedGroupKFold

    groups_per_class = min(len(set(np.asarray(groups)[np.asarray(y) == label])) for label in set(y))
    folds = max(2, min(n_splits, groups_per_class))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=random_state)
    return list(splitter.split(np.zeros(len(y)), y, groups))


def fit(X, y, groups, recipe: Recipe):
    """The calibrated model: one learner fitted on all rows, its probabilities mapped by a
    calibrator fitted on out-of-fold scores from grouped folds (CalibratedClassifierCV with
    ensemble=False: one learner instead of one per fold keeps the model file ~5x smaller,
    and scored as well in grouped CV on the default corpus)."""
    import numpy as np
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    splits = grouped_splits(y, groups, recipe.n_splits, recipe.random_state)
    # A column never measured in some fold's training part (no clip with a face, say) gives
    # the learner nothing and trips HistGradientBoosting's binning: leave it out. The choice
    # is stored in the model as plain column indices, so the model file stays skops-safe.
    measured = np.isfinite(X)
    keep = [j for j in range(X.shape[1]) if all(measured[train, j].any() for train, _ in splits)]
    estimator = Pipeline([
        ("measured_columns", ColumnTransformer([("kept", "passthrough", keep)], remainder="drop")),
        ("classifier", base_estimator(recipe)),
    ])
    model = CalibratedClassifierCV(estimator, method=recipe.calibration, cv=splits, ensemble=False)
    with single_threaded():
        return model.fit(X, y)


def single_threaded():
    """OpenMP threads buy nothing on a few thousand rows and, on a busy machine, spin-wait:
    fitting on 2 loaded cores was 17x slower with them than without (one run)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def train_model(table, recipe: Recipe = Recipe(), feature_names=None, evaluate: bool = True):
    """(model, card) trained on the usable rows of `table`; the card carries grouped-CV
    metrics when `evaluate` is true."""
    from detector.pipeline import feature_columns

    data = usable_rows(table)
    feature_names = model_columns(feature_names or feature_columns(), recipe)
    labels = data["label"].astype(str).to_numpy()
    present = sorted(set(labels), key=LABELS.index)
    if len(present) < 2:
        raise ValueError(f"need at least two labels to train, the table has {present}")
    X = feature_matrix(data, feature_names)
    groups = data["group"].astype(str).to_numpy()
    model = fit(X, labels, groups, recipe)
    card: dict[str, Any] = {
        "labels": list(LABELS),
        "trained_labels": present,
        "feature_names": feature_names,
        "recipe": asdict(recipe),
        "training_data": {
            "clips": int(len(data)),
            "groups": int(len(set(groups))),
            "clips_per_class": {k: int(v) for k, v in sorted(Counter(labels).items())},
            "digest": training_digest(data),
            "failed_clips_left_out": int(len(table) - len(data)),
        },
        "library_versions": library_versions(),
        "trained_at": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
    }
    if evaluate:
        from detector.evaluation import cross_validate

        report = cross_validate(data, recipe, feature_names)
        card["metrics"] = report.card_metrics()
    return model, card


def training_digest(data) -> str:
    """SHA-256 over the sorted (content hash, label, group) triples: same data, same digest."""
    triples = sorted(zip(data["content_sha256"].astype(str), data["label"].astype(str), data["group"].astype(str)))
    return hashlib.sha256("\n".join("\t".join(t) for t in triples).encode()).hexdigest()


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in ("detector", "scikit-learn", "numpy", "scipy", "skops", "opencv-python-headless", "av"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found
