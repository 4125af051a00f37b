"""The one progress bar every command shows: rich, on stderr, only when stderr is a terminal
(data goes to stdout; a pipe or a log file gets no bar)."""

from __future__ import annotations

import sys


class ProgressBar:
    """`with ProgressBar("scanning", total) as advance: advance(failed=False)` per item done."""

    def __init__(self, label: str, total: int | None, done: int = 0) -> None:
        self.label, self.total, self.done = label, total, done
        self._progress = None
        self._failed = 0

    def __enter__(self):
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            # 2 Hz is plenty for a batch bar, and a terminal nobody reads fills slower.
            self._progress = Progress(
                TextColumn(self.label), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[failed]} failed"), TimeRemainingColumn(),
                console=Console(stderr=True), transient=True, refresh_per_second=2,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.label, total=self.total, completed=self.done, failed=0)
        return self.advance

    def advance(self, failed: bool = False) -> None:
        if self._progress is not None:
            self._failed += bool(failed)
            self._progress.update(self._task, advance=1, failed=self._failed)

    def __exit__(self, *exc_info) -> None:
        if self._progress is not None:
            self._progress.stop()
