"""`detector features | train | evaluate`: the researcher's commands (registered in cli.py).

Data and tables go to files, summaries to stdout, progress and failures to stderr. Exit code
2 for unusable data, tables or models, as everywhere in the CLI.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

EXIT_ERROR = 2

DATA_HELP = ("A manifest CSV (path,label[,group][,variant]), a folder of label-named sub-folders, "
             "or a features table written by `detector features`.")
COLUMNS_HELP = ("evidence: every feature column but the 'context' ones (what the scene is rather than "
                "what was done to it; see docs/features.md); all: every column.")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_ERROR)


def _config(config_file: Optional[Path]):
    from detector.config import ConfigError, load_config

    try:
        return load_config(config_file)
    except ConfigError as exc:
        raise _fail(str(exc)) from None


def _default_workers() -> int:
    from detector.batch import default_workers

    return default_workers()


def _progress(data):
    """The clip-count progress bar (stderr, terminals only) for extracting DATA's features."""
    from detector.dataset import read_dataset
    from detector.progress import ProgressBar

    try:
        total = len(read_dataset(data)) if sys.stderr.isatty() else None
    except Exception:   # a bad DATA is reported by the command itself
        total = None
    return ProgressBar("features", total)


def _advance_row(advance):
    return lambda row: advance(bool(row.get("error")))


def _load(data: str, config, workers: int):
    from detector.dataset import DatasetError
    from detector.features_table import TableError, is_table_path, print_failures
    from detector.learn import load_table

    try:
        if is_table_path(data):
            table = load_table(data, config)
        else:
            with _progress(data) as advance:
                table = load_table(data, config, workers, on_row=_advance_row(advance))
    except (DatasetError, TableError) as exc:
        raise _fail(str(exc)) from None
    print_failures(table)
    return table


def features_command(
    data: str = typer.Argument(..., help=DATA_HELP),
    output: Path = typer.Option(..., "--output", "-o", help="Table to write: .parquet (schema in its metadata) or .csv."),
    workers: int = typer.Option(0, "--workers", "-j", help="Clips extracted in parallel (0: one per core)."),
    config_file: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML file overriding the defaults."),
) -> None:
    """Extract one row of feature columns per labelled clip (cached by content hash and schema)."""
    from detector.dataset import DatasetError
    from detector.features_table import failed_rows, print_failures
    from detector.learn import features

    if output.suffix.lower() not in (".parquet", ".csv"):
        raise _fail(f"output must end in .parquet or .csv, got {output.name}")
    config = _config(config_file)
    try:
        with _progress(data) as advance:
            table = features(data, output, config, workers or _default_workers(), on_row=_advance_row(advance))
    except DatasetError as exc:
        raise _fail(str(exc)) from None
    print_failures(table)
    failed = len(failed_rows(table))
    typer.echo(f"{len(table)} clip(s), {failed} failed, written to {output}")


def train_command(
    data: str = typer.Argument(..., help=DATA_HELP),
    output: Path = typer.Option(..., "--output", "-o", help="Model path, e.g. models/mine (writes mine.skops and mine.card.json)."),
    kind: str = typer.Option("hgb", "--kind", help="hgb (HistGradientBoosting) or linear (logistic regression baseline)."),
    calibration: str = typer.Option("sigmoid", "--calibration", help="sigmoid or isotonic."),
    folds: int = typer.Option(5, "--folds", help="Grouped folds for calibration and the card's metrics."),
    seed: int = typer.Option(0, "--seed", help="random_state of every random step."),
    columns: str = typer.Option("evidence", "--columns", help=COLUMNS_HELP),
    workers: int = typer.Option(0, "--workers", "-j", help="Clips extracted in parallel when DATA is clips (0: one per core)."),
    config_file: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML file overriding the defaults."),
) -> None:
    """Train a calibrated classifier and save it as .skops with its JSON card."""
    from detector.learn import train
    from detector.training import Recipe

    try:
        recipe = Recipe(kind=kind, calibration=calibration, n_splits=folds, random_state=seed, columns=columns)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    config = _config(config_file)
    table = _load(data, config, workers or _default_workers())
    try:
        path = train(table, output, recipe, config)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    from detector.model import card_path

    import json

    card = json.loads(card_path(path).read_text(encoding="utf-8"))
    metrics = card.get("metrics", {})
    typer.echo(f"model written to {path} (card {card_path(path).name})")
    if metrics:
        recalls = ", ".join(f"{k} {v['recall']:.3f}" for k, v in metrics["per_class"].items())
        typer.echo(f"grouped CV: macro-F1 {metrics['macro_f1']:.3f}; recall {recalls}")


def evaluate_command(
    data: str = typer.Argument(..., help=DATA_HELP),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Score this model on DATA as a held-out set. Without it: grouped cross-validation of the training recipe."),
    report_dir: Path = typer.Option(Path("evaluation"), "--report-dir", "-o", help="Folder for metrics.json, mistakes.csv and PNG plots."),
    group_by: str = typer.Option("group", "--hold-out-by", help="Cross-validation holds out whole values of this column: group (source recordings) or variant (generator recipes)."),
    kind: str = typer.Option("hgb", "--kind", help="Recipe to cross-validate: hgb or linear."),
    folds: int = typer.Option(5, "--folds", help="Grouped folds."),
    seed: int = typer.Option(0, "--seed", help="random_state of every random step."),
    columns: str = typer.Option("evidence", "--columns", help=COLUMNS_HELP),
    importance: bool = typer.Option(True, "--importance/--no-importance", help="Permutation importance of each feature on held-out clips."),
    workers: int = typer.Option(0, "--workers", "-j", help="Clips extracted in parallel when DATA is clips (0: one per core)."),
    config_file: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML file overriding the defaults."),
) -> None:
    """Per-class precision, recall, F1, confusion, ROC-AUC, calibration and per-variant recall."""
    from detector.evaluation import format_report, write_report
    from detector.learn import evaluate
    from detector.model import ModelError
    from detector.training import Recipe

    if group_by not in ("group", "variant"):
        raise _fail(f"--hold-out-by must be group or variant, got {group_by}")
    try:
        recipe = Recipe(kind=kind, n_splits=folds, random_state=seed, columns=columns)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    config = _config(config_file)
    table = _load(data, config, workers or _default_workers())
    try:
        report = evaluate(table, model, recipe, config, group_by=group_by, importance=importance)
    except (ModelError, ValueError) as exc:
        raise _fail(str(exc)) from None
    written = write_report(report, report_dir)
    typer.echo(format_report(report))
    typer.echo(f"\nwritten: {', '.join(str(p) for p in written)}")
