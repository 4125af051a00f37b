"""The researcher's loop as three calls (what `detector features|train|evaluate` run):

    table = features("corpus/manifest.csv", "corpus/features.parquet")
    model_path = train(table_or_data, "models/mine")
    report = evaluate("heldout/manifest.csv", model="models/mine.skops")

DATA is a manifest CSV, a folder of label-named sub-folders, or a features table (.parquet,
or a .csv with a `feature_schema` column) written by `features`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from detector.config import ScanConfig
from detector.features_table import TableError, build_table, is_table_path, read_table


def features(data: str | Path, output: str | Path, config: ScanConfig | None = None, workers: int = 1,
             on_row: Callable[[dict[str, Any]], None] | None = None):
    """Extract (or reuse cached) feature rows for every labelled clip of `data`; write and
    return the table."""
    from detector.dataset import read_dataset

    clips = read_dataset(data, (config or ScanConfig()).video_extensions)
    return build_table(clips, output, config, workers=workers, on_row=on_row)


def load_table(data: str | Path, config: ScanConfig | None = None, workers: int = 1, cache_dir: str | Path | None = None,
               on_row: Callable[[dict[str, Any]], None] | None = None):
    """The features table of `data`, extracting features first when `data` is clips
    (into `cache_dir`/features.parquet, default: beside the data)."""
    from detector.pipeline import feature_schema

    config = config or ScanConfig()
    if is_table_path(data):
        table, schema = read_table(data)
        expected = feature_schema(config.extractors)
        if schema != expected:
            raise TableError(f"{Path(data).name} has feature schema {schema}, this code extracts {expected}: "
                             f"rebuild it with `detector features`")
        return table
    data = Path(data)
    folder = Path(cache_dir) if cache_dir else (data if data.is_dir() else data.parent)
    return features(data, folder / "features.parquet", config, workers, on_row)


def _as_table(data, config: ScanConfig, workers: int):
    """`data` itself when it is already a loaded table (a DataFrame), else its table."""
    return data if hasattr(data, "columns") else load_table(data, config, workers)


def train(data, output: str | Path, recipe=None, config: ScanConfig | None = None, workers: int = 1,
          name: str | None = None, evaluate: bool = True) -> Path:
    """Train on `data` (clips or a table, or an already loaded table) and save the model
    (.skops + card). Returns the model path."""
    from detector.model import save_model
    from detector.pipeline import feature_columns, feature_schema
    from detector.training import Recipe, train_model

    config = config or ScanConfig()
    table = _as_table(data, config, workers)
    model, card = train_model(table, recipe or Recipe(), feature_columns(config.extractors), evaluate=evaluate)
    output = Path(output)
    card["feature_schema"] = feature_schema(config.extractors)
    card["name"] = name or output.name.removesuffix(".skops")
    return save_model(model, output, card)


def evaluate(data, model: str | Path | None = None, recipe=None, config: ScanConfig | None = None,
             workers: int = 1, group_by: str = "group", importance: bool = True):
    """Grouped cross-validation of the recipe on `data`, or, with `model`, that model's
    scores on `data` as a held-out set."""
    from detector.evaluation import cross_validate, evaluate_model
    from detector.model import load_model
    from detector.pipeline import feature_columns, feature_schema

    config = config or ScanConfig()
    table = _as_table(data, config, workers)
    if model is not None:
        loaded = load_model(model, expected_schema=feature_schema(config.extractors))
        return evaluate_model(loaded, table, importance=importance)
    return cross_validate(table, recipe, feature_columns(config.extractors), group_by=group_by, importance=importance)
