"""`detector watch URL|FILE`: rolling analysis of a live room, as JSON-lines events.

Exit codes, as for `scan`: 0 nothing flagged, 1 flagged (a verdict in --fail-on with enough
confidence at any time during the watch, or a loop alert when `looped` is in --fail-on),
2 usage/config/model error, or the stream could not be watched (never opened, lost and not
back within the reconnect limits, or no frame analysed before the watch was ended).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import sys
from pathlib import Path

import typer


def watch_command(
    location: str = typer.Argument(..., help="HLS (.m3u8), HTTP-FLV or RTMP URL, or a file (followed while it grows)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Append the events to this file (one JSON line each, flushed and fsynced) instead of stdout."),
    duration: float | None = typer.Option(None, "--duration", min=0.001, help="Stop after this many seconds of stream (for a URL also of wall time), then write the summary."),
    window: float | None = typer.Option(None, "--window", help="Rolling window the model scores, seconds (default 30; limits in the config)."),
    hop: float | None = typer.Option(None, "--hop", help="A new window every this many seconds (default 10)."),
    model: str | None = typer.Option(None, "--model", "-m", help="Model file (.skops); 'none' for evidence only. Default: models/default.skops."),
    sample_fps: float | None = typer.Option(None, "--sample-fps", help="Frames analysed per second of stream. Default 10."),
    config_file: Path | None = typer.Option(None, "--config", "-c", help="TOML file: scan defaults, [thresholds], extractor tables and a [watch] table."),
    fail_on: str | None = typer.Option(None, "--fail-on", help="Comma-separated verdicts that make the exit code 1. Default: looped,prerecorded,ai_driven."),
    min_confidence: float | None = typer.Option(None, "--min-confidence", help="A verdict below this confidence does not make the exit code 1."),
    threshold: list[str] | None = typer.Option(None, "--threshold", help="Per-verdict score threshold, e.g. looped=0.8 (repeatable)."),
    exit_zero: bool = typer.Option(False, "--exit-zero", help="Exit 0 whatever was seen (the events still say it)."),
    debug: bool = typer.Option(False, "--debug", help="Log details and show tracebacks on stderr."),
) -> None:
    """Watch a live room: rolling analysis, JSON-lines events (loops, cuts, verdict changes, stalls)."""
    from detector.cli import (
        EXIT_ERROR,
        EXIT_FLAGGED,
        EXIT_OK,
        _fail,
        _resolve_model,
        _setup_logging,
        _thresholds,
    )
    from detector.config import ConfigError, load_config, load_watch_config
    from detector.watch.session import EventWriter, WatchSession
    from detector.watch.status import StatusLine

    _setup_logging(debug)
    try:
        config = load_config(config_file, model=model, sample_fps=sample_fps, fail_on=fail_on,
                             min_confidence=min_confidence, label_thresholds=_thresholds(threshold, config_file))
        watch = load_watch_config(config_file, window_s=window, hop_s=hop)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    if window is not None and hop is None and watch.hop_s > watch.window_s:
        watch = dataclasses.replace(watch, hop_s=watch.window_s)
    # A watch has no recording limit: it ends with the stream, --duration or SIGINT.
    config = dataclasses.replace(config, stream_duration_s=math.inf, max_duration_s=None)
    loaded_model = _resolve_model(config)

    with contextlib.ExitStack() as stack:
        if output is not None:
            try:
                handle = stack.enter_context(open(output, "a", encoding="utf-8"))
            except OSError as exc:
                raise _fail(f"cannot write {output}: {exc.strerror}") from None
            writer = EventWriter(handle, durable=True)
        else:
            writer = EventWriter(sys.stdout, durable=False)
        show = stack.enter_context(StatusLine(f"watching {location}"))
        session = WatchSession(location, config, watch, loaded_model, writer, duration_s=duration, status=show)
        stack.enter_context(_stop_on_signals(session.stop))
        outcome = session.run()

    if outcome.failed:
        typer.echo(f"watch ended: {outcome.ended}", err=True)
    if exit_zero:
        raise typer.Exit(EXIT_OK)
    if outcome.failed:
        raise typer.Exit(EXIT_ERROR)
    raise typer.Exit(EXIT_FLAGGED if outcome.flagged else EXIT_OK)


@contextlib.contextmanager
def _stop_on_signals(stop):
    """SIGINT and SIGTERM end the watch cleanly (with its `ended` event and summary); a second
    one stops at once."""
    previous = {}

    def handler(signum, frame):
        if stopping:        # a second Ctrl-C: stop at once, without the summary
            raise KeyboardInterrupt
        stopping.append(signum)
        stop()

    stopping: list[int] = []

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:      # not the main thread (an embedding program): no handlers
            pass
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
