"""Every bad input yields a record with a one-line error, and the batch goes on.

All broken files are generated here (tests/broken_media.py); the whole set runs through one
CLI invocation, so these tests also prove that one bad file never stops a batch.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from broken_media import CASES, truncated_mp4
from conftest import run_cli


@dataclass(frozen=True)
class Case:
    id: str
    write: Callable[[Path], Path]
    error: str | None              # regex the error must match; None: analysed normally
    duration_s: float | None = None


BAD_INPUTS = [
    Case("missing_path", lambda d: d / "never written.mp4", r"^no such file$"),
    Case("empty_directory", lambda d: (d / "empty dir").mkdir() or d / "empty dir",
         r"^directory contains no video files$"),
    Case("empty_file", CASES["empty_file"], r"^empty file \(0 bytes\)$"),
    Case("random_bytes", CASES["random_bytes_mp4"], r"^not a readable video: Invalid data found"),
    Case("text_named_txt", CASES["text_file_txt"], r"^a text file, not a video$"),
    Case("text_named_mp4", CASES["text_file_mp4"], r"^not a readable video: Invalid data found"),
    Case("image", CASES["image_png"], r"^a still image \(png\), not a video$"),
    Case("audio_only", CASES["audio_only"], r"^no video stream \(contains audio\)$"),
    Case("truncated_moov_at_end", CASES["truncated_mp4_moov_at_end"], r"^not a readable video: "),
    Case("truncated_10pct", lambda d: _renamed(truncated_mp4(d, 0.1), "cut10.mp4"), r"^(truncated|no decodable)"),
    Case("truncated_50pct", lambda d: _renamed(truncated_mp4(d, 0.5), "cut50.mp4"), r"^truncated"),
    Case("truncated_90pct", lambda d: _renamed(truncated_mp4(d, 0.9), "cut90.mp4"), r"^truncated"),
    Case("header_only", lambda d: _renamed(truncated_mp4(d, 0.02), "cut2.mp4"), r"^(not a readable video|no decodable|truncated)"),
    Case("no_decodable_frame", CASES["no_decodable_frame"], r"^no decodable video frame"),
    Case("one_frame", CASES["one_frame_video"], r"^too short to analyse: 1 frame\(s\)"),
    Case("huge_dimension_y4m", CASES["huge_dimension_y4m"], r"^declared frame size 16000x16000 exceeds the 8192 px limit$"),
    Case("unopenable_dimension_y4m", CASES["unopenable_dimension_y4m"], r"^not a readable video: "),
    # Headers that lie about a healthy stream: decoding is the truth, the clip is analysed.
    Case("zero_duration_header", CASES["zero_duration_header"], None, duration_s=3.0),
    Case("huge_dimension_header", CASES["huge_dimension_header"], None, duration_s=3.0),
    Case("spaces_and_unicode", CASES["path_with_spaces_and_unicode"], None, duration_s=3.0),
]


def _renamed(path: Path, name: str) -> Path:
    return path.rename(path.with_name(name))


@pytest.fixture(scope="module")
def batch(tmp_path_factory, moving_clip):
    """Write every case (each in its own folder: writers reuse file names), scan them all at once."""
    root = tmp_path_factory.mktemp("bad inputs")
    paths = {}
    for case in BAD_INPUTS:
        folder = root / case.id
        folder.mkdir()
        paths[case.id] = str(case.write(folder))
    arguments = [*paths.values(), str(moving_clip)]
    result = run_cli("scan", "-f", "jsonl", "--model", "none", *arguments, timeout_s=300)
    records = result.jsonl()
    return paths, {r["path"]: r for r in records}, [r["path"] for r in records], result


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c.id for c in BAD_INPUTS])
def test_bad_input_gets_a_clear_one_line_error(batch, case):
    paths, records, _, _ = batch
    record = records[paths[case.id]]
    if case.error is None:
        assert record["error"] is None
        assert record["duration_s"] == pytest.approx(case.duration_s, abs=0.05)
        return
    assert record["error"] is not None and "\n" not in record["error"]
    assert re.search(case.error, record["error"]), record["error"]
    assert record["verdict"] is None


def test_the_batch_goes_on_and_keeps_order(batch, moving_clip):
    paths, records, order, result = batch
    assert order == [*paths.values(), str(moving_clip)]
    assert records[str(moving_clip)]["error"] is None
    assert result.returncode == 2


def test_no_traceback_reaches_the_user(batch):
    *_, result = batch
    assert "Traceback" not in result.stderr
    failures = sum(case.error is not None for case in BAD_INPUTS)
    assert result.stderr.strip() == f"{failures} of {len(BAD_INPUTS) + 1} input(s) could not be analysed"


def test_truncated_clip_still_reports_what_it_decoded(batch):
    paths, records, _, _ = batch
    record = records[paths["truncated_50pct"]]
    assert 0.5 < record["duration_s"] < 2.5


def test_debug_shows_details_on_stderr(tmp_path):
    path = CASES["random_bytes_mp4"](tmp_path)
    result = run_cli("scan", "-f", "jsonl", "--debug", "--model", "none", str(path))
    assert result.returncode == 2
    assert "random_bytes.mp4" in result.stderr and "not a readable video" in result.stderr
