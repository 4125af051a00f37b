"""`detector scan` through the real command line: the output contract, formats and exit codes."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli
from helpers import prior_model

from detector.pipeline import feature_columns
from detector.scan import RECORD_KEYS


def test_jsonl_record_has_exactly_the_contract_keys(moving_clip):
    result = run_cli("scan", "--format", "jsonl", "--model", "none", str(moving_clip))
    assert result.returncode == 0, result.stderr
    (record,) = result.jsonl()
    assert tuple(record) == RECORD_KEYS
    assert record["path"] == str(moving_clip)
    assert record["verdict"] is None and record["confidence"] is None and record["scores"] == {}
    assert record["duration_s"] == pytest.approx(4.0, abs=0.01)
    assert record["loops"] == [] and record["cuts_s"] == [] and record["loop_period_s"] is None
    assert record["error"] is None and record["model"] is None
    assert record["elapsed_s"] > 0
    assert result.stderr == ""


def test_features_flag_adds_every_column(moving_clip):
    record = run_cli("scan", "-f", "jsonl", "--features", "--model", "none", str(moving_clip)).jsonl()[0]
    assert list(record["features"]) == feature_columns()
    assert record["features"]["basic__sample_fps"] == pytest.approx(10, rel=0.01)


def test_json_is_one_array_of_records(moving_clip, static_clip):
    result = run_cli("scan", "-f", "json", "--model", "none", str(moving_clip), str(static_clip))
    records = json.loads(result.stdout)
    assert [r["path"] for r in records] == [str(moving_clip), str(static_clip)]
    assert records[1]["flags"] == ["static"]
    assert records[1]["evidence"][0]["kind"] == "static"


def test_csv_has_a_header_and_one_row_per_input(moving_clip, static_clip):
    result = run_cli("scan", "-f", "csv", "--features", "--model", "none", str(moving_clip), str(static_clip))
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 2
    assert rows[1]["flags"] == "static"
    assert float(rows[0]["duration_s"]) == pytest.approx(4.0, abs=0.01)
    assert float(rows[0]["basic__sample_fps"]) == pytest.approx(10, rel=0.01)
    assert json.loads(rows[1]["evidence"])[0]["kind"] == "static"


def test_table_shows_path_verdict_and_strongest_evidence(static_clip):
    result = run_cli("scan", "--model", "none", str(static_clip))
    assert result.returncode == 0
    assert str(static_clip) in result.stdout
    assert "no model" in result.stdout
    assert "static 0.0-" in result.stdout


def test_directories_expand_recursively_to_video_files_only(tmp_path, moving_clip, static_clip):
    (tmp_path / "a" / "b").mkdir(parents=True)
    shutil.copy(moving_clip, tmp_path / "a" / "one.mp4")
    shutil.copy(static_clip, tmp_path / "a" / "b" / "two.MOV")
    (tmp_path / "a" / "notes.txt").write_text("not a video")
    records = run_cli("scan", "-f", "jsonl", "--model", "none", str(tmp_path)).jsonl()
    assert [r["path"] for r in records] == [str(tmp_path / "a" / "b" / "two.MOV"), str(tmp_path / "a" / "one.mp4")]
    assert all(r["error"] is None for r in records)


def test_dash_reads_paths_from_stdin(moving_clip, static_clip):
    result = run_cli("scan", "-f", "jsonl", "--model", "none", "-", stdin=f"{moving_clip}\n\n{static_clip}\n")
    assert [r["path"] for r in result.jsonl()] == [str(moving_clip), str(static_clip)]


def test_config_file_overrides_defaults_and_flags_override_the_file(tmp_path, moving_clip):
    config = tmp_path / "detector.toml"
    config.write_text("sample_fps = 5\nanalysis_long_side = 160\n")
    record = run_cli("scan", "-f", "jsonl", "--features", "--model", "none", "--config", str(config),
                     str(moving_clip)).jsonl()[0]
    assert record["features"]["basic__sample_fps"] == pytest.approx(5, rel=0.02)
    record = run_cli("scan", "-f", "jsonl", "--features", "--model", "none", "--config", str(config),
                     "--sample-fps", "2", str(moving_clip)).jsonl()[0]
    assert record["features"]["basic__sample_fps"] == pytest.approx(2, rel=0.02)


@pytest.mark.parametrize(
    "content, message",
    [("sample_fps = 'fast'\n", "sample_fps must be float"),
     ("no_such_key = 1\n", "unknown config key 'no_such_key'"),
     ("sample_fps = \n", "not valid TOML"),
     ("fail_on = ['fake']\n", "unknown verdicts")],
    ids=["wrong-type", "unknown-key", "bad-toml", "bad-verdict"],
)
def test_bad_config_is_a_usage_error(tmp_path, moving_clip, content, message):
    config = tmp_path / "bad.toml"
    config.write_text(content)
    result = run_cli("scan", "--config", str(config), str(moving_clip))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_triage_flag_decodes_keyframes_only(moving_clip):
    record = run_cli("scan", "-f", "jsonl", "--features", "--triage", "--model", "none", str(moving_clip)).jsonl()[0]
    assert record["error"] is None
    assert record["features"]["basic__sample_fps"] == pytest.approx(1.0, rel=0.01)   # 1 s GOP


@pytest.fixture(scope="module")
def looped_prior_model(tmp_path_factory):
    """A real model that judges every clip `looped` with confidence 0.7."""
    return prior_model(tmp_path_factory.mktemp("model"), {"looped": 7, "live": 3})


def test_model_verdict_scores_and_exit_code_one(moving_clip, looped_prior_model):
    result = run_cli("scan", "-f", "jsonl", "--model", str(looped_prior_model), str(moving_clip))
    assert result.returncode == 1
    (record,) = result.jsonl()
    assert record["verdict"] == "looped" and record["confidence"] == pytest.approx(0.7)
    assert record["scores"] == pytest.approx({"live": 0.3, "looped": 0.7, "prerecorded": 0.0, "ai_driven": 0.0})
    assert record["model"] == "prior"


@pytest.mark.parametrize(
    "extra, code",
    [(["--fail-on", "prerecorded,ai_driven"], 0), (["--fail-on", "looped"], 1),
     (["--min-confidence", "0.9"], 0), (["--min-confidence", "0.6"], 1), (["--exit-zero"], 0)],
    ids=["not-failing-verdict", "failing-verdict", "below-confidence", "above-confidence", "exit-zero"],
)
def test_exit_code_follows_fail_on_and_confidence(moving_clip, looped_prior_model, extra, code):
    result = run_cli("scan", "-f", "jsonl", "--model", str(looped_prior_model), *extra, str(moving_clip))
    assert result.returncode == code
    assert result.jsonl()[0]["verdict"] == "looped"


def test_unreadable_input_gives_exit_two_and_the_batch_goes_on(tmp_path, moving_clip):
    result = run_cli("scan", "-f", "jsonl", "--model", "none", str(tmp_path / "gone.mp4"), str(moving_clip))
    assert result.returncode == 2
    records = result.jsonl()
    assert records[0]["error"] == "no such file" and records[0]["verdict"] is None
    assert records[1]["error"] is None
    assert "1 of 2 input(s) could not be analysed" in result.stderr
    assert run_cli("scan", "-f", "jsonl", "--exit-zero", "--model", "none", str(tmp_path / "gone.mp4")).returncode == 0


def test_missing_or_corrupt_model_is_exit_two_before_scanning(tmp_path, moving_clip):
    result = run_cli("scan", "--model", str(tmp_path / "absent.skops"), str(moving_clip))
    assert result.returncode == 2 and "model file not found" in result.stderr and result.stdout == ""


def test_unknown_format_is_a_usage_error(moving_clip):
    result = run_cli("scan", "--format", "xml", str(moving_clip))
    assert result.returncode == 2 and result.stdout == ""


def test_no_progress_output_when_stderr_is_not_a_terminal(moving_clip):
    result = run_cli("scan", "-f", "jsonl", "--model", "none", str(moving_clip))
    assert result.stderr == ""


def test_console_script_is_installed():
    path = Path(sys.executable).parent / "detector"
    assert path.exists()
    proc = subprocess.run([str(path), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "scan" in proc.stdout


def test_progress_goes_to_stderr_when_it_is_a_terminal(moving_clip, static_clip):
    """Data on stdout stays clean JSON lines while a progress bar draws on the terminal."""
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "detector", "scan", "-f", "jsonl", "--model", "none",
         str(moving_clip), str(static_clip)],
        stdout=subprocess.PIPE, stderr=secondary, text=True,
        env={**os.environ, "COLUMNS": "100", "TERM": "xterm"},
    )
    os.close(secondary)
    stdout, _ = proc.communicate(timeout=120)
    chunks = []
    while True:
        try:
            data = os.read(primary, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(primary)
    terminal = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0
    assert [json.loads(line)["path"] for line in stdout.splitlines()] == [str(moving_clip), str(static_clip)]
    assert "scanning" in terminal
