"""The training lifecycle through the CLI: features -> train -> evaluate -> scan.

The labelled set is tiny (tests/learning_media.py), so these tests check what the commands
do (tables, caching, cards, reports, thresholds, reproducibility), not how good the model is:
the default model's card holds the real metrics.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import run_cli
from detector.config import LABELS, ConfigError, load_config
from detector.dataset import DatasetError, read_dataset
from detector.features_table import cache_path, read_table
from detector.pipeline import column_docs, feature_columns, feature_schema
from detector.scan import decide_verdict
from learning_media import GROUPS_PER_CLASS, make_labelled_set

# The module builds its clips and features once; on a busy machine that alone can take minutes.
pytestmark = pytest.mark.timeout(1200)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    return make_labelled_set(tmp_path_factory.mktemp("labelled"))


@pytest.fixture(scope="module")
def table_path(manifest) -> Path:
    out = manifest.parent / "features.parquet"
    result = run_cli("features", str(manifest), "-o", str(out), "-j", "2", timeout_s=600)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def model_path(table_path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model") / "tiny"
    result = run_cli("train", str(table_path), "-o", str(out), "--folds", "3", timeout_s=600)
    assert result.returncode == 0, result.stderr
    assert "grouped CV: macro-F1" in result.stdout
    return out.with_suffix(".skops")


def test_manifest_and_label_folders_give_groups(tmp_path):
    (tmp_path / "looped" / "roomA").mkdir(parents=True)
    (tmp_path / "live").mkdir()
    for name in ("looped/roomA/1.mp4", "looped/roomA/2.mp4", "looped/3.mp4", "live/4.mp4"):
        (tmp_path / name).write_bytes(b"")
    clips = read_dataset(tmp_path)
    assert [(Path(c.path).name, c.label, c.group) for c in clips] == [
        ("4.mp4", "live", "live/4.mp4"), ("3.mp4", "looped", "looped/3.mp4"),
        ("1.mp4", "looped", "looped/roomA"), ("2.mp4", "looped", "looped/roomA")]
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\nx.mp4,fake\n")
    with pytest.raises(DatasetError, match="unknown label 'fake'"):
        read_dataset(bad)


def test_features_table_has_one_row_per_clip_and_the_schema(table_path, manifest):
    table, schema = read_table(table_path)
    assert schema == feature_schema()
    assert len(table) == 4 * GROUPS_PER_CLASS
    assert table["error"].isna().all()
    assert list(table.columns[-len(feature_columns()):]) == feature_columns()
    assert set(table["label"]) == set(LABELS)
    # Real measurements, not placeholders: the looped clips replay far more than the live ones.
    replay = table.groupby("label")["repetition__replay_share"].mean()
    assert replay["looped"] > replay["live"] + 0.1


def test_features_rerun_reuses_the_cache_and_lists_failures(manifest, table_path, tmp_path):
    lines_before = cache_path(table_path).read_text().count("\n")
    again = run_cli("features", str(manifest), "-o", str(table_path))
    assert again.returncode == 0, again.stderr
    assert cache_path(table_path).read_text().count("\n") == lines_before   # nothing re-extracted

    broken = manifest.parent / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    with_broken = tmp_path / "with_broken.csv"
    rows = list(csv.DictReader(open(manifest)))
    rows = [{**r, "path": str(manifest.parent / r["path"])} for r in rows[:2]]
    rows.append({"path": str(broken), "label": "live", "group": "b", "variant": "broken"})
    with open(with_broken, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "t.csv"
    result = run_cli("features", str(with_broken), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "failed: " in result.stderr and "broken.mp4" in result.stderr
    assert "3 clip(s), 1 failed" in result.stdout
    table, _ = read_table(out)
    assert table.loc[table["variant"] == "broken", "error"].str.len().iloc[0] > 0


def test_model_card_carries_what_a_researcher_needs(model_path):
    card = json.loads(model_path.with_name("tiny.card.json").read_text())
    assert card["labels"] == list(LABELS)
    # The default recipe learns from the evidence columns, in table order, none of them "context".
    docs = column_docs()
    assert card["recipe"]["columns"] == "evidence"
    assert card["feature_names"] == [c for c in feature_columns() if docs[c].speaks_for != "context"]
    assert "basic__brightness_mean" not in card["feature_names"]
    assert "repetition__replayed_share" in card["feature_names"]
    assert card["feature_schema"] == feature_schema()
    assert card["training_data"]["clips_per_class"] == {label: GROUPS_PER_CLASS for label in sorted(LABELS)}
    assert len(card["training_data"]["digest"]) == 64
    assert {"scikit-learn", "numpy", "skops"} <= set(card["library_versions"])
    metrics = card["metrics"]
    assert "StratifiedGroupKFold" in metrics["setting"]
    assert set(metrics["per_class"]) == set(LABELS)
    assert 0.0 <= metrics["macro_f1"] <= 1.0
    assert card["trained_at"].endswith("+00:00")


def test_training_is_reproducible(table_path, model_path, tmp_path):
    result = run_cli("train", str(table_path), "-o", str(tmp_path / "again"), "--folds", "3", timeout_s=600)
    assert result.returncode == 0, result.stderr
    first = json.loads(model_path.with_name("tiny.card.json").read_text())
    second = json.loads((tmp_path / "again.card.json").read_text())
    assert first["metrics"] == second["metrics"]
    assert first["training_data"]["digest"] == second["training_data"]["digest"]


def test_scan_uses_the_trained_model(model_path, manifest):
    clip = manifest.parent / "looped_0.mp4"
    result = run_cli("scan", str(clip), "--model", str(model_path), "-f", "json", "--exit-zero")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)[0]
    assert record["model"] == "tiny"
    assert set(record["scores"]) == set(LABELS)
    assert abs(sum(record["scores"].values()) - 1.0) < 1e-3
    assert record["verdict"] == max(record["scores"], key=record["scores"].get)


def test_evaluate_cross_validates_and_writes_the_report(table_path, tmp_path):
    out = tmp_path / "report"
    result = run_cli("evaluate", str(table_path), "-o", str(out), "--folds", "3", timeout_s=600)
    assert result.returncode == 0, result.stderr
    assert "macro-F1" in result.stdout and "confusion" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["per_class"]) == set(LABELS)
    assert sum(map(sum, metrics["confusion"]["matrix"])) == 4 * GROUPS_PER_CLASS
    assert set(metrics["per_variant_recall"]) == {"moving", "whole_loop", "hard_cuts", "still_portrait"}
    assert metrics["feature_importance"] and "feature" in metrics["feature_importance"][0]
    assert metrics["calibration"]["bins"]
    for png in ("confusion.png", "reliability.png", "variant_recall.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "mistakes.csv").read_text().startswith("path,label,predicted")


def test_evaluate_a_model_on_a_held_out_set(model_path, table_path, tmp_path):
    result = run_cli("evaluate", str(table_path), "--model", str(model_path), "-o", str(tmp_path), "--no-importance")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["setting"].startswith("held-out set scored by model tiny")
    assert metrics["clips"] == 4 * GROUPS_PER_CLASS


def test_evaluate_holding_out_whole_variants(table_path, tmp_path):
    result = run_cli("evaluate", str(table_path), "--hold-out-by", "variant", "--folds", "2", "-o", str(tmp_path),
                     "--no-importance", timeout_s=600)
    assert result.returncode == 0, result.stderr
    assert "held out by variant" in json.loads((tmp_path / "metrics.json").read_text())["setting"]


def test_a_table_of_another_schema_is_refused(table_path, tmp_path):
    table = pd.read_parquet(table_path)
    table["feature_schema"] = "old-schema"
    stale = tmp_path / "stale.csv"
    table.to_csv(stale, index=False)
    result = run_cli("train", str(stale), "-o", str(tmp_path / "m"))
    assert result.returncode == 2
    assert "feature schema old-schema" in result.stderr and "detector features" in result.stderr


def test_thresholds_trade_precision_for_recall():
    scores = {"live": 0.5, "looped": 0.3, "prerecorded": 0.15, "ai_driven": 0.05}
    assert decide_verdict(scores, {}) == "live"
    assert decide_verdict(scores, {"looped": 0.25}) == "looped"           # recall: lower the bar
    strict = {"live": 0.2, "looped": 0.7, "prerecorded": 0.05, "ai_driven": 0.05}
    assert decide_verdict(strict, {}) == "looped"
    assert decide_verdict(strict, {"looped": 0.9}) == "live"              # precision: raise it
    assert decide_verdict(strict, {"looped": 0.9, "prerecorded": 0.01}) == "prerecorded"


def test_thresholds_from_config_and_flags(tmp_path, model_path, manifest):
    config = tmp_path / "c.toml"
    config.write_text("[thresholds]\nlooped = 0.8\n")
    assert dict(load_config(config).label_thresholds) == {"looped": 0.8}
    config.write_text("[thresholds]\nlive = 0.5\n")
    with pytest.raises(ConfigError, match="unknown verdict 'live'"):
        load_config(config)
    clip = str(manifest.parent / "live_0.mp4")
    every = run_cli("scan", clip, "--model", str(model_path), "-f", "json", "--exit-zero",
                    "--threshold", "looped=0", "--threshold", "prerecorded=0", "--threshold", "ai_driven=0")
    record = json.loads(every.stdout)[0]
    assert record["verdict"] != "live"       # every fake verdict qualifies at 0: the best one wins
    bad = run_cli("scan", clip, "--model", str(model_path), "--threshold", "looped=high")
    assert bad.returncode == 2 and "VERDICT=SCORE" in bad.stderr


def test_the_notebook_and_its_paired_script_agree():
    import jupytext

    folder = Path(__file__).resolve().parent.parent / "notebooks"
    notebook = jupytext.read(folder / "retrain.ipynb")
    script = jupytext.read(folder / "retrain.py")
    assert [(c.cell_type, c.source) for c in notebook.cells] == [(c.cell_type, c.source) for c in script.cells], \
        "retrain.ipynb and retrain.py differ: run `jupytext --sync notebooks/retrain.py`"


def test_the_column_set_is_part_of_the_recipe():
    from detector.training import Recipe, model_columns

    everything = feature_columns()
    assert model_columns(everything, Recipe(columns="all")) == everything
    evidence = model_columns(everything, Recipe())
    assert set(evidence) < set(everything)
    assert all(column_docs()[c].speaks_for != "context" for c in evidence)
    with pytest.raises(ValueError, match="column set"):
        Recipe(columns="some")
