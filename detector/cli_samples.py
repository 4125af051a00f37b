"""`detector samples make`: build a labelled corpus of generated clips with their manifest.

Registered in detector/cli.py with `app.add_typer(samples_app, name="samples")`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer

samples_app = typer.Typer(
    help="Make labelled clips (live, looped, prerecorded, ai_driven) with a manifest.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_OK, EXIT_ERROR = 0, 2
# Clips per class when --per-class is not given, by set.
DEFAULT_PER_CLASS = {"default": 100, "quick": 3, "long": 2}


@samples_app.command("make")
def make(
    out: Path = typer.Argument(..., help="Folder for the clips (one sub-folder per class) and manifest.csv."),
    per_class: int | None = typer.Option(None, "--per-class", "-n", min=1,
                                            help="Clips per class. Default: 100 (3 with --quick, 2 with --long)."),
    seed: int = typer.Option(0, "--seed", "-s", help="Seed: the same seed always makes the same corpus."),
    quick: bool = typer.Option(False, "--quick", help="Short 10-13 s clips at 360x640 (CI; a few per class)."),
    long: bool = typer.Option(False, "--long", help="The separate set of 10-12 minute clips (benchmarks)."),
    audio: bool = typer.Option(False, "--audio", help="Add soundtracks (room tone, voice, music) that loop, cut "
                               "and fade with the picture. The pictures are the same as without."),
    jobs: int | None = typer.Option(None, "--jobs", "-j", min=1, help="Clips rendered in parallel. Default: CPU count."),
    debug: bool = typer.Option(False, "--debug", help="Log details on stderr."),
) -> None:
    """Write H.264 clips and manifest.csv (path,label,group,variant,duration_s,params).

    Resumable: clips whose file and manifest row exist are skipped.
    """
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if quick and long:
        typer.echo("error: --quick and --long are different sets; choose one", err=True)
        raise typer.Exit(EXIT_ERROR)
    from detector.corpus.build import build
    from detector.corpus.plan import DEFAULT, LONG, QUICK, plan

    corpus_set = QUICK if quick else LONG if long else DEFAULT
    n = per_class or DEFAULT_PER_CLASS[corpus_set.name]
    jobs_list = plan(n, seed, corpus_set, audio=audio)
    from detector.progress import ProgressBar

    with ProgressBar("making clips", len(jobs_list)) as advance:
        report = build(out, jobs_list, n_jobs=jobs, on_done=lambda job, error: advance(error is not None))
    typer.echo(f"{len(report.written)} clip(s) written, {len(report.skipped)} already there, "
               f"{len(report.failed)} failed -> {out / 'manifest.csv'}", err=True)
    for path, error in report.failed.items():
        typer.echo(f"failed: {path}: {error}", err=True)
    raise typer.Exit(EXIT_ERROR if report.failed else EXIT_OK)
