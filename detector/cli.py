"""The `detector` command line. Data goes to stdout, progress and messages to stderr.

Exit codes: 0 nothing flagged, 1 at least one clip judged non-live (see --fail-on),
2 usage, configuration or model error, or at least one input could not be read.
"""

from __future__ import annotations

import logging
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from detector.config import ConfigError, ScanConfig, load_config

app = typer.Typer(
    name="detector",
    help="Tell whether a live-stream room is really live: looped, pre-recorded or AI-driven footage.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_OK, EXIT_FLAGGED, EXIT_ERROR = 0, 1, 2
log = logging.getLogger("detector")


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_ERROR)


def _setup_logging(debug: bool) -> None:
    # Only the CLI configures handlers; the library just logs.
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _resolve_model(config: ScanConfig):
    """The model to judge with, or None when no model is given and none is shipped."""
    from detector.model import ModelError, default_model_path, load_model
    from detector.pipeline import feature_schema

    if config.model and config.model.lower() == "none":
        return None
    path = Path(config.model) if config.model else default_model_path()
    if path is None:
        log.info("no model given and models/default.skops is not there: verdicts will be null")
        return None
    try:
        return load_model(path, expected_schema=feature_schema(config.extractors))
    except ModelError as exc:
        raise _fail(str(exc)) from None


def _thresholds(pairs: Optional[list[str]], config_file: Optional[Path]) -> Optional[dict[str, float]]:
    """`--threshold looped=0.8` pairs on top of the config file's `[thresholds]` table."""
    if not pairs:
        return None
    thresholds = dict(load_config(config_file).label_thresholds)
    for pair in pairs:
        label, _, value = pair.partition("=")
        try:
            thresholds[label.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"--threshold wants VERDICT=SCORE, e.g. looped=0.8; got {pair!r}") from None
    return thresholds


@app.callback()
def _root() -> None:
    """Tell whether a live-stream room is really live: looped, pre-recorded or AI-driven footage."""


@app.command()
def scan(
    paths: list[str] = typer.Argument(..., help="Video files, directories (searched recursively), URLs, or - to read paths from stdin."),
    output_format: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="Output format on stdout."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model file (.skops with its .card.json); 'none' for features and evidence only. Default: models/default.skops."),
    sample_fps: Optional[float] = typer.Option(None, "--sample-fps", help="Frames analysed per second of video (0: every frame). Default 10."),
    triage: Optional[bool] = typer.Option(None, "--triage/--no-triage", help="Decode keyframes only: several times faster, coarser evidence."),
    config_file: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML file overriding the defaults (see README)."),
    features: bool = typer.Option(False, "--features", help="Add the feature columns to each record."),
    fail_on: Optional[str] = typer.Option(None, "--fail-on", help="Comma-separated verdicts that make the exit code 1. Default: looped,prerecorded,ai_driven."),
    min_confidence: Optional[float] = typer.Option(None, "--min-confidence", help="A verdict below this confidence does not fail the run."),
    threshold: Optional[list[str]] = typer.Option(None, "--threshold", help="Per-verdict score threshold, e.g. looped=0.8 (repeatable): the verdict is given when its score reaches it (see README)."),
    exit_zero: bool = typer.Option(False, "--exit-zero", help="Exit 0 even when clips are flagged or unreadable (records still say so)."),
    debug: bool = typer.Option(False, "--debug", help="Log details and show tracebacks on stderr."),
) -> None:
    """Scan videos and print one record per input."""
    _setup_logging(debug)
    from detector.inputs import expand_inputs
    from detector.output import RecordWriter
    from detector.pipeline import feature_columns
    from detector.scan import ScanRecord, is_flagged, scan_one

    try:
        config = load_config(
            config_file, model=model, sample_fps=sample_fps, triage=triage,
            fail_on=fail_on, min_confidence=min_confidence,
            label_thresholds=_thresholds(threshold, config_file),
        )
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    loaded_model = _resolve_model(config)
    items = list(expand_inputs(paths, config.video_extensions))
    writer = RecordWriter(output_format.value, sys.stdout, include_features=features,
                          feature_columns=feature_columns(config.extractors))
    flagged = unreadable = 0
    with _progress(len(items)) as advance:
        for item in items:
            if item.error:
                record = ScanRecord(path=item.location, error=item.error)
            else:
                record = scan_one(item.location, config, loaded_model)
            writer.write(record)
            unreadable += record.error is not None
            flagged += is_flagged(record, config)
            advance(record)
    writer.close()
    if unreadable:
        typer.echo(f"{unreadable} of {len(items)} input(s) could not be analysed", err=True)
    if exit_zero:
        raise typer.Exit(EXIT_OK)
    if unreadable:
        raise typer.Exit(EXIT_ERROR)
    raise typer.Exit(EXIT_FLAGGED if flagged else EXIT_OK)


from detector.cli_samples import samples_app  # noqa: E402  (typer only; the corpus loads lazily)

app.add_typer(samples_app, name="samples")


class _progress:
    """A rich progress bar on stderr when it is a terminal; nothing otherwise."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._progress = None

    def __enter__(self):
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("scanning"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[failed]} failed"), TimeRemainingColumn(),
                console=Console(stderr=True), transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("scan", total=self.total, failed=0)
            self._failed = 0
        return self._advance

    def _advance(self, record) -> None:
        if self._progress is not None:
            self._failed += record.error is not None
            self._progress.update(self._task, advance=1, failed=self._failed)

    def __exit__(self, *exc_info) -> None:
        if self._progress is not None:
            self._progress.stop()


# The researcher's commands live in their own module.
from detector.cli_learn import evaluate_command, features_command, train_command  # noqa: E402

app.command("features")(features_command)
app.command("train")(train_command)
app.command("evaluate")(evaluate_command)


def main() -> None:
    """Console-script entry point: no traceback reaches the user unless --debug is given."""
    debug = "--debug" in sys.argv
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # typer.Exit never gets here: app() turns it into SystemExit
        if debug:
            raise
        typer.echo(f"error: {' '.join(str(exc).split()) or type(exc).__name__}", err=True)
        sys.exit(EXIT_ERROR)
