"""Honest numbers for a model: grouped cross-validation or a held-out set.

Grouped CV refits the whole recipe (calibration included) inside every fold, and never puts
one source recording (`group`) in both train and test. `group_by="variant"` holds out whole
generator recipes instead, which asks the harder question users care about: does a disguise
the model has never seen still get caught?
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detector.config import LABELS


@dataclass
class EvaluationReport:
    labels: list[str]
    y_true: Any                    # (n,) labels
    proba: Any                     # (n, len(labels)) calibrated scores, columns in `labels` order
    paths: list[str]
    variants: list[str]
    setting: str                   # how the numbers were obtained, for the reader
    importance: list[dict[str, float]] = field(default_factory=list)

    @property
    def y_pred(self):
        import numpy as np

        return np.asarray(self.labels)[np.argmax(self.proba, axis=1)]

    def metrics(self) -> dict[str, Any]:
        import numpy as np
        from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support, roc_auc_score

        y_true, y_pred = np.asarray(self.y_true), self.y_pred
        present = [label for label in self.labels if label in set(y_true)]
        precision, recall, f1, support = precision_recall_fscore_support(
            y_true, y_pred, labels=present, zero_division=0)
        per_class = {
            label: {"precision": round(float(p), 4), "recall": round(float(r), 4), "f1": round(float(f), 4), "support": int(s)}
            for label, p, r, f, s in zip(present, precision, recall, f1, support)
        }
        roc_auc = {}
        for k, label in enumerate(self.labels):
            positives = y_true == label
            if 0 < positives.sum() < len(y_true):
                roc_auc[label] = round(float(roc_auc_score(positives, self.proba[:, k])), 4)
        variants: dict[str, dict[str, Any]] = {}
        for variant in sorted(set(self.variants)):
            rows = np.asarray(self.variants) == variant
            truth = sorted(set(y_true[rows]))
            variants[variant or "(none)"] = {
                "label": truth[0] if len(truth) == 1 else ",".join(truth),
                "clips": int(rows.sum()),
                "recall": round(float(np.mean(y_pred[rows] == y_true[rows])), 4),
            }
        return {
            "setting": self.setting,
            "clips": int(len(y_true)),
            "accuracy": round(float(np.mean(y_pred == y_true)), 4),
            "macro_f1": round(float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)), 4),
            "per_class": per_class,
            "confusion": {
                "labels": present,
                "matrix": confusion_matrix(y_true, y_pred, labels=present).tolist(),   # rows: truth
            },
            "roc_auc": roc_auc,
            "roc_auc_macro": round(float(np.mean(list(roc_auc.values()))), 4) if roc_auc else None,
            "calibration": self.reliability(),
            "per_variant_recall": variants,
            "feature_importance": self.importance,
        }

    def reliability(self, bins: int = 10) -> dict[str, Any]:
        """Confidence of the predicted label vs how often it is right, in equal-width bins,
        and the expected calibration error (their gap, weighted by bin size)."""
        import numpy as np

        confidence = self.proba.max(axis=1)
        correct = self.y_pred == np.asarray(self.y_true)
        edges = np.linspace(0.0, 1.0, bins + 1)
        table, ece = [], 0.0
        for low, high in zip(edges[:-1], edges[1:]):
            rows = (confidence > low) & (confidence <= high) if low > 0 else (confidence <= high)
            if rows.any():
                mean_conf, accuracy = float(confidence[rows].mean()), float(correct[rows].mean())
                ece += rows.mean() * abs(mean_conf - accuracy)
                table.append({"from": round(float(low), 2), "to": round(float(high), 2), "clips": int(rows.sum()),
                              "confidence": round(mean_conf, 4), "accuracy": round(accuracy, 4)})
        return {"bins": table, "expected_calibration_error": round(float(ece), 4)}

    def card_metrics(self) -> dict[str, Any]:
        full = self.metrics()
        return {key: full[key] for key in ("setting", "clips", "accuracy", "macro_f1", "per_class", "roc_auc_macro",
                                           "confusion", "per_variant_recall")} | {
            "expected_calibration_error": full["calibration"]["expected_calibration_error"]}

    def mistakes(self) -> list[dict[str, Any]]:
        import numpy as np

        y_true, y_pred = np.asarray(self.y_true), self.y_pred
        wrong = np.flatnonzero(y_pred != y_true)
        return [{"path": self.paths[i], "label": str(y_true[i]), "predicted": str(y_pred[i]),
                 "confidence": round(float(self.proba[i].max()), 4), "variant": self.variants[i]} for i in wrong]


def cross_validate(data, recipe=None, feature_names=None, group_by: str = "group",
                   importance: bool = False) -> EvaluationReport:
    """Out-of-fold calibrated scores for every usable row of `data`."""
    import numpy as np

    from detector.pipeline import feature_columns
    from detector.training import (Recipe, feature_matrix, fit, grouped_splits, model_columns, single_threaded,
                                   usable_rows)

    recipe = recipe or Recipe()
    data = usable_rows(data)
    feature_names = model_columns(feature_names or feature_columns(), recipe)
    X = feature_matrix(data, feature_names)
    y = data["label"].astype(str).to_numpy()
    groups = data["group"].astype(str).to_numpy()
    held_out = data[group_by].astype(str).to_numpy()
    proba = np.zeros((len(y), len(LABELS)))
    scores: list[np.ndarray] = []
    splits = grouped_splits(y, held_out, recipe.n_splits, recipe.random_state)
    for train, test in splits:
        model = fit(X[train], y[train], groups[train], recipe)
        columns = [LABELS.index(str(c)) for c in model.classes_]
        with single_threaded():
            proba[np.ix_(test, columns)] = model.predict_proba(X[test])
        if importance:
            scores.append(_permutation_scores(model, X[test], y[test], recipe.random_state))
    setting = f"{len(splits)}-fold StratifiedGroupKFold, held out by {group_by}"
    report = EvaluationReport(list(LABELS), y, proba, data["path"].astype(str).tolist(),
                              data["variant"].astype(str).tolist(), setting)
    if scores:
        report.importance = _importance_table(np.vstack(scores), feature_names)
    return report


def evaluate_model(model, data, importance: bool = False) -> EvaluationReport:
    """Scores of a trained model on a held-out table."""
    import numpy as np

    from detector.training import feature_matrix, single_threaded, usable_rows

    data = usable_rows(data)
    X = feature_matrix(data, model.feature_names)
    y = data["label"].astype(str).to_numpy()
    proba = np.zeros((len(y), len(LABELS)))
    columns = [LABELS.index(str(c)) for c in model.pipeline.classes_]
    with single_threaded():
        proba[:, columns] = model.pipeline.predict_proba(X)
    report = EvaluationReport(list(LABELS), y, proba, data["path"].astype(str).tolist(),
                              data["variant"].astype(str).tolist(), f"held-out set scored by model {model.name}")
    if importance:
        report.importance = _importance_table(_permutation_scores(model.pipeline, X, y, 0)[None, :], model.feature_names)
    return report


def _permutation_scores(model, X, y, random_state: int):
    from sklearn.inspection import permutation_importance

    from detector.training import single_threaded

    with single_threaded():
        result = permutation_importance(model, X, y, scoring="f1_macro", n_repeats=3, random_state=random_state)
    return result.importances_mean


def _importance_table(scores, feature_names, top: int = 20) -> list[dict[str, float]]:
    import numpy as np

    mean, std = scores.mean(axis=0), scores.std(axis=0)
    order = np.argsort(-mean)[:top]
    return [{"feature": feature_names[i], "macro_f1_drop": round(float(mean[i]), 4), "std": round(float(std[i]), 4)}
            for i in order]


def write_report(report: EvaluationReport, out_dir: str | Path) -> list[Path]:
    """metrics.json, mistakes.csv and PNG plots (confusion, reliability, per-variant recall)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = report.metrics()
    written = [out / "metrics.json", out / "mistakes.csv"]
    written[0].write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    import csv

    with open(written[1], "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "predicted", "confidence", "variant"])
        writer.writeheader()
        writer.writerows(report.mistakes())
    written += _plots(metrics, out)
    return written


def _plots(metrics: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    paths = []
    labels, matrix = metrics["confusion"]["labels"], np.asarray(metrics["confusion"]["matrix"])
    fig, ax = plt.subplots(figsize=(5, 4.2))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center", color="black" if value < matrix.max() / 2 else "white")
    ax.set_xticks(range(len(labels)), labels, rotation=30)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("truth")
    ax.set_title(f"macro-F1 {metrics['macro_f1']:.3f}")
    paths.append(_save(fig, out / "confusion.png"))

    bins = metrics["calibration"]["bins"]
    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o")
    ax.set_xlabel("confidence of the verdict")
    ax.set_ylabel("share correct")
    ax.set_title(f"reliability (ECE {metrics['calibration']['expected_calibration_error']:.3f})")
    paths.append(_save(fig, out / "reliability.png"))

    variants = metrics["per_variant_recall"]
    names = sorted(variants, key=lambda v: (variants[v]["label"], v))
    fig, ax = plt.subplots(figsize=(6, max(2.5, 0.22 * len(names) + 1)))
    ax.barh(range(len(names)), [variants[v]["recall"] for v in names])
    ax.set_yticks(range(len(names)), [f"{variants[v]['label']}: {v}" for v in names], fontsize=7)
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("recall")
    ax.set_title("recall per variant")
    paths.append(_save(fig, out / "variant_recall.png"))
    return paths


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def format_report(report: EvaluationReport) -> str:
    """A plain-text summary for the terminal."""
    metrics = report.metrics()
    lines = [metrics["setting"], f"{metrics['clips']} clips, accuracy {metrics['accuracy']:.3f}, "
             f"macro-F1 {metrics['macro_f1']:.3f}, ROC-AUC {_fmt(metrics['roc_auc_macro'])}, "
             f"ECE {metrics['calibration']['expected_calibration_error']:.3f}", "",
             f"{'label':<12}{'precision':>10}{'recall':>8}{'f1':>8}{'clips':>7}{'roc_auc':>9}"]
    for label, row in metrics["per_class"].items():
        lines.append(f"{label:<12}{row['precision']:>10.3f}{row['recall']:>8.3f}{row['f1']:>8.3f}"
                     f"{row['support']:>7}{_fmt(metrics['roc_auc'].get(label)):>9}")
    labels = metrics["confusion"]["labels"]
    lines += ["", "confusion (rows truth, columns predicted)", " " * 12 + "".join(f"{l[:10]:>11}" for l in labels)]
    for label, row in zip(labels, metrics["confusion"]["matrix"]):
        lines.append(f"{label:<12}" + "".join(f"{v:>11}" for v in row))
    weak = {v: r for v, r in metrics["per_variant_recall"].items() if r["recall"] < 1.0}
    lines += ["", "variants not fully recalled:" if weak else "every variant fully recalled"]
    for variant, row in sorted(weak.items(), key=lambda item: item[1]["recall"]):
        lines.append(f"  {row['label']:<12}{variant:<28}{row['recall']:.3f} of {row['clips']}")
    if metrics["feature_importance"]:
        lines += ["", "most important features (macro-F1 drop when shuffled)"]
        lines += [f"  {r['feature']:<44}{r['macro_f1_drop']:.4f}" for r in metrics["feature_importance"][:10]]
    return "\n".join(lines)


def _fmt(value) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"
