"""The `detector` command line. Data goes to stdout, progress and messages to stderr.

Exit codes: 0 nothing flagged, 1 at least one clip judged non-live (see --fail-on),
2 usage, configuration or model error, or at least one input could not be read.
"""

from __future__ import annotations

import contextlib
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


class Engine(str, Enum):
    local = "local"
    dask = "dask"


@app.command()
def scan(
    paths: Optional[list[str]] = typer.Argument(None, help="Video files, directories (searched recursively), glob patterns (quoted; ** recurses), URLs, or - to read paths from stdin."),
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
    from_file: Optional[list[str]] = typer.Option(None, "--from-file", help="A file listing one path or URL per line ('-': stdin); may be repeated."),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", min=1, help="Clips scanned in parallel, each in its own worker process. Default: the machine's cores."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Append one JSON line per clip to this file as each finishes (durable; see --resume)."),
    resume: bool = typer.Option(False, "--resume", help="Skip clips already recorded in --output and append the rest."),
    timeout: Optional[float] = typer.Option(None, "--timeout", min=0.001, help="Seconds one clip may take; then its worker is stopped and the clip gets an error record."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write a self-contained HTML evidence report to this file."),
    summary: Optional[Path] = typer.Option(None, "--summary", help="Write counts per verdict and flag, failures and flagged clips to this file (.json or .csv)."),
    engine: Engine = typer.Option(Engine.local, "--engine", help="local: worker processes on this machine; dask: a Dask distributed cluster."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address (tcp://host:8786); default: start a local cluster."),
    debug: bool = typer.Option(False, "--debug", help="Log details and show tracebacks on stderr."),
) -> None:
    """Scan videos and print one record per input (in input order)."""
    _setup_logging(debug)
    import time

    from detector.batch import ClipJob, ResultsFile, record_from_dict, task_for_workers
    from detector.progress import ProgressBar
    from detector.scan import ScanRecord, is_flagged

    started = time.monotonic()
    try:
        config = load_config(
            config_file, model=model, sample_fps=sample_fps, triage=triage,
            fail_on=fail_on, min_confidence=min_confidence,
            label_thresholds=_thresholds(threshold, config_file),
        )
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    if scheduler and engine is not Engine.dask:
        raise _fail("--scheduler needs --engine dask")
    if resume and output is None:
        raise _fail("--resume needs --output (the file to resume from)")
    if summary is not None and summary.suffix.lower() not in (".json", ".csv"):
        raise _fail(f"--summary must end in .json or .csv, got {summary.name}")
    results = ResultsFile(output) if output is not None else None
    if results is not None and results.has_records() and not resume:
        raise _fail(f"{output} already holds results: add --resume to continue that batch, or choose another file")
    loaded_model = _resolve_model(config)
    items = _collect_inputs(paths or [], from_file or [], config)
    if not items:
        raise _fail("no inputs: give paths, directories, globs, URLs or --from-file")

    recorded = results.read() if resume else {}
    records: dict[int, ScanRecord] = {}
    visuals: dict[int, object] = {}
    jobs: list[ClipJob] = []
    known_now: list[tuple[int, ScanRecord]] = []     # failed before opening (missing, no videos)
    for index, item in enumerate(items):
        if item.location in recorded:
            records[index] = record_from_dict(recorded[item.location])
            if report is not None:
                visuals[index] = results.load_visuals(item.location)
        elif item.error:
            known_now.append((index, ScanRecord(path=item.location, error=item.error)))
        else:
            jobs.append(ClipJob(index, item.location))
    if recorded:
        typer.echo(f"resuming: {len(records)} of {len(items)} input(s) already recorded in {output}", err=True)

    n_workers = workers or _default_workers()
    task = task_for_workers(config, loaded_model, n_workers, with_visuals=report is not None)
    stdout = _InputOrderWriter(output_format.value, features, config)
    for index, record in records.items():
        stdout.add(index, record)
    with contextlib.ExitStack() as stack:
        journal = stack.enter_context(results) if results is not None else None
        advance = stack.enter_context(ProgressBar("scanning", len(items), done=len(records)))
        for index, record in known_now:
            if journal is not None:
                journal.append(record, features)
            records[index] = record
            stdout.add(index, record)
            advance(record.error is not None)
        for job, outcome in _engine(engine, scheduler, n_workers, timeout, len(jobs)).run(task, jobs):
            if journal is not None:
                journal.append(outcome.record, features, outcome.visuals)
            records[job.index] = outcome.record
            if outcome.visuals is not None:
                visuals[job.index] = outcome.visuals
            stdout.add(job.index, outcome.record)
            advance(outcome.record.error is not None)
    stdout.close()

    ordered = [records[i] for i in range(len(items))]
    if report is not None:
        from detector.report import write_report

        write_report(report, ordered, [visuals.get(i) for i in range(len(items))], config)
    if summary is not None:
        from detector.report import write_summary

        write_summary(summary, ordered, config, wall_s=time.monotonic() - started)
    unreadable = sum(r.error is not None for r in ordered)
    flagged = sum(is_flagged(r, config) for r in ordered)
    if unreadable:
        typer.echo(f"{unreadable} of {len(items)} input(s) could not be analysed", err=True)
    if exit_zero:
        raise typer.Exit(EXIT_OK)
    if unreadable:
        raise typer.Exit(EXIT_ERROR)
    raise typer.Exit(EXIT_FLAGGED if flagged else EXIT_OK)


def _default_workers() -> int:
    from detector.batch import default_workers

    return default_workers()


def _engine(engine: Engine, scheduler: str | None, workers: int, timeout_s: float | None, n_jobs: int):
    """The engine for this batch. One clip and no time limit needs no worker process."""
    from detector.batch import ProcessEngine, SerialEngine

    if engine is Engine.dask:
        from detector.dask_engine import DaskEngine

        return DaskEngine(scheduler, workers=min(workers, max(1, n_jobs)), timeout_s=timeout_s)
    if n_jobs <= 1 and timeout_s is None:
        return SerialEngine()
    return ProcessEngine(min(workers, n_jobs), timeout_s)


def _collect_inputs(arguments: list[str], list_files: list[str], config: ScanConfig):
    """Arguments, then the lines of each --from-file, expanded to inputs in that order.
    A quoted glob pattern is expanded here (sorted; ** recurses); one that matches nothing
    is an input with an error, like a missing file."""
    import glob

    from detector.inputs import InputItem, expand_inputs
    from detector.source import is_stream_location

    lines = list(arguments)
    for name in list_files:
        try:
            handle = sys.stdin if name == "-" else open(name, encoding="utf-8")
        except OSError as exc:
            raise _fail(f"cannot read --from-file {name}: {exc.strerror}") from None
        with contextlib.nullcontext(handle) if name == "-" else handle:
            lines += [line.strip() for line in handle if line.strip() and not line.lstrip().startswith("#")]
    items: list = []
    for argument in lines:
        if (argument != "-" and not is_stream_location(argument) and glob.has_magic(argument)
                and not Path(argument).exists()):
            matches = sorted(glob.glob(argument, recursive=True))
            if not matches:
                items.append(InputItem(argument, error="no file matches this pattern"))
            items += list(expand_inputs(matches, config.video_extensions))
        else:
            items += list(expand_inputs([argument], config.video_extensions))
    return items


class _InputOrderWriter:
    """Writes records to stdout in input order, each as soon as every earlier input's record
    is there (workers finish in any order; stdout stays in the order the inputs were given)."""

    def __init__(self, fmt: str, include_features: bool, config: ScanConfig) -> None:
        from detector.output import RecordWriter
        from detector.pipeline import feature_columns

        self._writer = RecordWriter(fmt, sys.stdout, include_features=include_features,
                                    feature_columns=feature_columns(config.extractors))
        self._waiting: dict[int, object] = {}
        self._next = 0

    def add(self, index: int, record) -> None:
        self._waiting[index] = record
        while self._next in self._waiting:
            self._writer.write(self._waiting.pop(self._next))
            self._next += 1

    def close(self) -> None:
        for index in sorted(self._waiting):     # only if an input never got a record (a bug)
            self._writer.write(self._waiting.pop(index))
        self._writer.close()


from detector.cli_samples import samples_app  # noqa: E402  (typer only; the corpus loads lazily)

app.add_typer(samples_app, name="samples")


# The researcher's commands live in their own module.
from detector.cli_learn import evaluate_command, features_command, train_command  # noqa: E402

app.command("features")(features_command)
app.command("train")(train_command)
app.command("evaluate")(evaluate_command)

from detector.cli_watch import watch_command  # noqa: E402  (typer only; the watch loads lazily)

app.command("watch")(watch_command)


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
