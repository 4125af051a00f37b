"""Shared fixtures: small generated clips with known truth, and a runner for the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from detector.synth.scenes import moving_scene, static_scene
from detector.synth.writer import write_clip

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    def jsonl(self) -> list[dict]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


def run_cli(*args: str, stdin: str | None = None, timeout_s: float = 120, env: dict | None = None) -> CliResult:
    """Run `python -m detector ...` as a user would, capturing stdout and stderr apart."""
    full_env = {**os.environ, "PYTHONIOENCODING": "utf-8", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "detector", *args],
        input=stdin, capture_output=True, text=True, timeout=timeout_s, cwd=REPO, env=full_env,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def moving_clip(media_dir) -> Path:
    """4 s of a never-repeating noisy scene, 640x360 at 30 fps, 1 s GOP."""
    path = media_dir / "moving.mp4"
    write_clip(path, moving_scene(640, 360, 30, 4.0, seed=1), 30, gop_s=1.0)
    return path


@pytest.fixture(scope="session")
def static_clip(media_dir) -> Path:
    """8 s of a still room with sensor noise only."""
    path = media_dir / "static.mp4"
    write_clip(path, static_scene(320, 240, 25, 8.0, seed=2), 25)
    return path
