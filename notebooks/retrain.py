# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Retrain the detector on your own labelled clips
#
# The loop a researcher runs: **collect** labelled clips, **extract** features once,
# **evaluate** honestly with grouped cross-validation, **inspect** the mistakes with their
# evidence, **train** and save a model safely, and **scan** with it.
#
# This notebook runs end to end on a small generated corpus (it is part of the test suite).
# To use your own clips, set `DETECTOR_DATA` to a manifest CSV (`path,label[,group][,variant]`)
# or to a folder with one sub-folder per label (`live/`, `looped/`, `prerecorded/`, `ai_driven/`).
# The `group` column matters: clips cut from one recording must share a group, so that no
# recording is ever both trained on and tested on.

# %%
import os
import tempfile
from pathlib import Path

WORK = Path(os.environ.get("DETECTOR_WORK") or tempfile.mkdtemp(prefix="detector-retrain-"))
DATA = os.environ.get("DETECTOR_DATA")
print("working in", WORK)

# %% [markdown]
# ## 1. Labelled clips
# Without `DETECTOR_DATA` we generate the quick corpus: a few clips per class, with their
# truth in `manifest.csv` (the same as `detector samples make OUT --quick`).

# %%
if DATA is None:
    from detector.corpus.build import build
    from detector.corpus.plan import QUICK, plan

    corpus = WORK / "corpus"
    report = build(corpus, plan(3, seed=0, corpus_set=QUICK), n_jobs=2)
    assert not report.failed, report.failed
    DATA = corpus / "manifest.csv"

import pandas as pd

manifest = pd.read_csv(DATA) if str(DATA).endswith(".csv") else None
manifest[["path", "label", "group", "variant", "duration_s"]] if manifest is not None else DATA

# %% [markdown]
# ## 2. Extract features once
# One decode pass per clip; the table is cached by each clip's content hash and the feature
# schema, so running this again (or on a grown data set) only extracts what is new.
# Failed clips keep a row with their `error`.

# %%
from detector.learn import features

table = features(DATA, WORK / "features.parquet", workers=2)
print(len(table), "clips;", int(table["error"].notna().sum()), "failed")
table.groupby("label")[["repetition__replay_share", "shots__cuts_per_min", "face__presenter_share"]].mean().round(3)

# %% [markdown]
# ## 3. Evaluate with grouped cross-validation
# Every fold refits the whole recipe (calibration included) without the held-out groups.
# `group_by="variant"` holds out whole generator recipes instead: the harder, more honest
# question of whether a disguise the model never saw still gets caught.

# %%
from detector.evaluation import format_report, write_report
from detector.learn import evaluate
from detector.training import Recipe

recipe = Recipe(kind="hgb", n_splits=3, random_state=0)
report = evaluate(table, recipe=recipe, importance=True)
print(format_report(report))
plots = write_report(report, WORK / "evaluation")

# %%
from IPython.display import Image, display

display(Image(filename=str(WORK / "evaluation" / "confusion.png")))
display(Image(filename=str(WORK / "evaluation" / "reliability.png")))

# %% [markdown]
# ## 4. Inspect the mistakes with their evidence
# A wrong verdict is only useful if you can see why: scan each misclassified clip and read
# the loops, cuts and flags the rules found.

# %%
mistakes = pd.DataFrame(report.mistakes())
print(len(mistakes), "mistakes out of", len(report.y_true))
mistakes

# %%
from detector.scan import scan_one

for path in mistakes["path"].head(3) if len(mistakes) else []:
    record = scan_one(path)
    print(Path(path).name, "| loops:", record.loops[:2], "| cuts_s:", record.cuts_s[:5], "| flags:", record.flags)

# %% [markdown]
# ## 5. Train, save safely, and read the card
# The model is a `.skops` file (loading refuses anything but scikit-learn, NumPy and SciPy
# types) with a JSON card: labels, feature names, schema, library versions, a digest of the
# training data and the grouped-CV metrics.

# %%
import json

from detector.learn import train

model_path = train(table, WORK / "models" / "my_model", recipe)
card = json.loads(model_path.with_name("my_model.card.json").read_text())
{key: card[key] for key in ("name", "feature_schema", "training_data", "library_versions")}

# %%
card["metrics"]["macro_f1"], {label: row["recall"] for label, row in card["metrics"]["per_class"].items()}

# %% [markdown]
# ## 6. Scan with the new model
# The same as `detector scan CLIP --model models/my_model.skops`. Per-verdict thresholds
# (`--threshold looped=0.8`, or a `[thresholds]` table in the config) trade missed fakes
# against false accusations.

# %%
from detector.config import ScanConfig
from detector.model import load_model
from detector.pipeline import feature_schema

model = load_model(model_path, expected_schema=feature_schema())
rows = []
for _, clip in table.head(8).iterrows():
    record = scan_one(clip["path"], ScanConfig(), model)
    rows.append({"clip": Path(clip["path"]).name, "truth": clip["label"], "verdict": record.verdict,
                 "confidence": record.confidence, "flags": ",".join(record.flags)})
pd.DataFrame(rows)

# %%
strict = ScanConfig(label_thresholds={"looped": 0.9, "prerecorded": 0.9, "ai_driven": 0.9})
record = scan_one(table["path"].iloc[0], strict, model)
record.verdict, record.scores
