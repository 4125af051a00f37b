"""Turning the command line's PATH arguments into a list of inputs to scan."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from detector.source import is_stream_location


@dataclass(frozen=True)
class InputItem:
    location: str
    error: str | None = None     # known to be unscannable before opening it


def expand_inputs(
    arguments: Iterable[str], extensions: Iterable[str], stdin: TextIO | None = None
) -> Iterator[InputItem]:
    """Files and URLs as given; directories recursively to their video files (sorted);
    `-` reads one path or URL per line from stdin. A directory without videos is an item
    with an error, so it shows in the results instead of vanishing."""
    suffixes = {e.lower() for e in extensions}
    for argument in arguments:
        if argument == "-":
            for line in (stdin or sys.stdin):
                line = line.strip()
                if line:
                    yield from expand_inputs([line], suffixes, stdin)
            continue
        if is_stream_location(argument):
            yield InputItem(argument)
            continue
        path = Path(argument)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.suffix.lower() in suffixes and p.is_file()
            )
            if not found:
                yield InputItem(argument, error="directory contains no video files")
            for p in found:
                yield InputItem(str(p))
        else:
            yield InputItem(argument)
