"""The status line of `detector watch`: rich, on stderr, only when stderr is a terminal."""

from __future__ import annotations

import sys
from typing import Any


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--:--"
    s = int(seconds)
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def status_text(info: dict[str, Any]) -> str:
    verdict = info.get("verdict") or "no verdict yet"
    if info.get("confidence") is not None:
        verdict += f" {info['confidence']:.2f}"
    lag = info.get("lag_s")
    rss = info.get("rss_mb")
    return (f"stream {_clock(info.get('stream_t_s'))}  wall {_clock(info.get('wall_s'))}  "
            f"lag {'-' if lag is None else f'{lag:.1f} s'}  verdict {verdict}  loops {info.get('loops', 0)}  "
            f"cuts {info.get('cuts', 0)}  outages {info.get('outages', 0)}  "
            f"fingerprints {info.get('fingerprints', 0)}  rss {'-' if rss is None else f'{rss:.0f} MB'}")


class StatusLine:
    """`with StatusLine(label) as show: show(info)`; does nothing when stderr is not a terminal."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._live = None

    def __enter__(self):
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.live import Live
            from rich.text import Text

            self._text = Text
            self._live = Live(Text(f"{self.label}: starting"), console=Console(stderr=True),
                              transient=True, refresh_per_second=2, auto_refresh=False)
            self._live.start()
            return self.show
        return None

    def show(self, info: dict[str, Any]) -> None:
        if self._live is not None:
            self._live.update(self._text(f"{self.label}  {status_text(info)}"), refresh=True)

    def __exit__(self, *exc_info) -> None:
        if self._live is not None:
            self._live.stop()
