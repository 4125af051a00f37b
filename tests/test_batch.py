"""`detector scan` as a batch: worker processes, the durable results file, resume after
SIGKILL, per-clip timeouts, crashed workers, input lists and summaries."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO, run_cli

from detector.batch import ClipJob, ClipTask, ProcessEngine, ResultsFile
from detector.config import ScanConfig
from detector.scan import RECORD_KEYS
from detector.synth.scenes import moving_scene, static_scene
from detector.synth.writer import write_clip


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    """Eight small clips of different content and length (each scans in well under a second)."""
    folder = tmp_path_factory.mktemp("batch")
    paths = []
    for i in range(8):
        scene = moving_scene if i % 2 == 0 else static_scene
        paths.append(write_clip(folder / f"clip{i}.mp4", scene(192, 144, 15, 3.0 + i % 3, seed=10 + i), 15))
    return paths


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_workers_write_every_clip_once_and_stdout_keeps_input_order(tmp_path, clips):
    out = tmp_path / "results.jsonl"
    result = run_cli("scan", "-f", "jsonl", "--model", "none", "--workers", "2", "--output", str(out),
                     *map(str, clips))
    assert result.returncode == 0, result.stderr
    printed = result.jsonl()
    assert [r["path"] for r in printed] == [str(c) for c in clips]
    journal = _lines(out)
    assert sorted(r["path"] for r in journal) == sorted(str(c) for c in clips)
    assert all(tuple(r) == RECORD_KEYS for r in journal)
    by_path = {r["path"]: r for r in journal}
    for record in printed:                       # the file holds the same records stdout shows
        assert by_path[record["path"]] == record
    assert by_path[str(clips[1])]["flags"] == ["static"]


def test_sigkill_mid_batch_then_resume_ends_with_exactly_one_record_per_input(tmp_path, clips):
    out = tmp_path / "results.jsonl"
    command = [sys.executable, "-m", "detector", "scan", "-f", "jsonl", "--model", "none",
               "--workers", "1", "--output", str(out), *map(str, clips)]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and out.read_bytes().count(b"\n") >= 2:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the batch ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)      # the parent and its workers, no clean-up
    finally:
        proc.wait()
    before = out.read_text(encoding="utf-8").splitlines()
    assert 2 <= len(before) < len(clips)
    # A crash in the middle of a write leaves a torn last line.
    with open(out, "a", encoding="utf-8") as handle:
        handle.write('{"path": "' + str(clips[-1]) + '", "verdict": nu')

    result = run_cli("scan", "-f", "jsonl", "--model", "none", "--workers", "2", "--output", str(out),
                     "--resume", *map(str, clips))
    assert result.returncode == 0, result.stderr
    assert f"{len(before)} of {len(clips)} input(s) already recorded" in result.stderr
    assert "torn" in result.stderr
    after = out.read_text(encoding="utf-8").splitlines()
    assert after[: len(before)] == before                    # nothing recorded was rescanned
    paths = [json.loads(line)["path"] for line in after]
    assert sorted(paths) == sorted(str(c) for c in clips)     # none lost, none duplicated
    assert [r["path"] for r in result.jsonl()] == [str(c) for c in clips]


def test_output_that_holds_results_needs_resume(tmp_path, clips):
    out = tmp_path / "results.jsonl"
    out.write_text('{"path": "x.mp4"}\n')
    result = run_cli("scan", "--model", "none", "--output", str(out), str(clips[0]))
    assert result.returncode == 2 and "--resume" in result.stderr
    assert run_cli("scan", "--model", "none", "--resume", str(clips[0])).returncode == 2


@pytest.fixture()
def silent_server():
    """A TCP server that accepts connections and never answers (a hung origin)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_a_hanging_clip_times_out_and_the_batch_goes_on(tmp_path, clips, silent_server):
    config = tmp_path / "slow.toml"
    config.write_text("open_timeout_s = 120\nread_timeout_s = 120\n")   # the clip limit must act first
    hung = f"http://127.0.0.1:{silent_server}/room.m3u8"
    out = tmp_path / "results.jsonl"
    result = run_cli("scan", "-f", "jsonl", "--model", "none", "-c", str(config), "--workers", "2",
                     "--timeout", "3", "--output", str(out), hung, str(clips[0]), str(clips[2]))
    assert result.returncode == 2
    records = {r["path"]: r for r in result.jsonl()}
    assert records[hung]["error"] == "timed out after 3 s (the worker was stopped)"
    assert records[hung]["elapsed_s"] >= 3
    assert records[str(clips[0])]["error"] is None and records[str(clips[2])]["error"] is None
    assert len(_lines(out)) == 3


@dataclass(frozen=True)
class SelfKillingTask(ClipTask):
    """A task whose process dies on clips named 'crash' (as under the OOM killer)."""

    def __call__(self, location: str):
        if "crash" in Path(location).name:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__call__(location)


def test_a_worker_that_dies_costs_only_its_clip(tmp_path, clips):
    crash = tmp_path / "crash.mp4"
    crash.write_bytes(clips[0].read_bytes())
    locations = [str(clips[0]), str(crash), str(clips[1]), str(crash), str(clips[2])]
    jobs = [ClipJob(i, loc) for i, loc in enumerate(locations)]
    outcomes = dict(ProcessEngine(2).run(SelfKillingTask(ScanConfig()), jobs))
    assert sorted(job.index for job in outcomes) == list(range(len(locations)))
    for job, outcome in outcomes.items():
        assert outcome.record.path == job.location
        if job.location == str(crash):
            assert outcome.record.error == "worker process died while scanning this clip (killed by SIGKILL)"
        else:
            assert outcome.record.error is None and outcome.record.duration_s > 0


def test_torn_last_line_is_cut_off_and_complete_lines_kept(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"path": "a.mp4", "error": null}\n{"path": "b.mp4", "err')
    results = ResultsFile(path)
    assert list(results.read()) == ["a.mp4"]
    assert path.read_text() == '{"path": "a.mp4", "error": null}\n'


def test_from_file_and_glob_patterns(tmp_path, clips):
    listing = tmp_path / "list.txt"
    listing.write_text(f"# tonight's uploads\n{clips[0]}\n\n{clips[1]}\n")
    pattern = str(clips[0].parent / "clip[67].mp4")
    result = run_cli("scan", "-f", "jsonl", "--model", "none", "--workers", "2", "--from-file", str(listing),
                     pattern, str(tmp_path / "none-*.mp4"))
    records = result.jsonl()
    assert [r["path"] for r in records] == [pattern.replace("[67]", "6"), pattern.replace("[67]", "7"),
                                            str(tmp_path / "none-*.mp4"), str(clips[0]), str(clips[1])]
    assert records[2]["error"] == "no file matches this pattern"
    assert result.returncode == 2
    from_stdin = run_cli("scan", "-f", "jsonl", "--model", "none", "--from-file", "-", stdin=f"{clips[3]}\n")
    assert [r["path"] for r in from_stdin.jsonl()] == [str(clips[3])]


def test_summaries_count_verdicts_flags_and_failures(tmp_path, clips):
    summary_json, summary_csv = tmp_path / "s.json", tmp_path / "s.csv"
    args = ("scan", "-f", "jsonl", "--model", "none", "--workers", "2", str(clips[0]), str(clips[1]),
            str(tmp_path / "missing.mp4"))
    run_cli(*args, "--summary", str(summary_json))
    data = json.loads(summary_json.read_text())
    assert data["inputs"] == 3 and data["analysed"] == 2 and data["failed"] == 1
    assert data["verdicts"]["no verdict"] == 2 and data["verdicts"]["error"] == 1
    assert data["flags"]["static"] == 1
    assert data["failures"] == [{"path": str(tmp_path / "missing.mp4"), "error": "no such file"}]
    assert data["clip_seconds"] == pytest.approx(3.0 + 4.0, abs=0.1)
    run_cli(*args, "--summary", str(summary_csv))
    rows = {(r["section"], r["name"]): r["count"] for r in csv.DictReader(summary_csv.open())}
    assert rows[("total", "failed")] == "1" and rows[("verdict", "error")] == "1" and rows[("flag", "static")] == "1"


def test_timed_task_gives_a_timeout_record_where_the_worker_cannot_be_killed(silent_server):
    """The Dask engine's time limit: the clip's outcome comes back on time."""
    from detector.batch import TimedTask

    config = ScanConfig(open_timeout_s=60, read_timeout_s=60)
    hung = f"http://127.0.0.1:{silent_server}/room.m3u8"
    outcome = TimedTask(ClipTask(config), timeout_s=1.5)(hung)
    assert outcome.record.path == hung
    assert outcome.record.error == "timed out after 1.5 s (the scan was abandoned)"
    assert outcome.record.elapsed_s >= 1.5


def test_a_worker_killed_from_outside_costs_only_its_clip(tmp_path, clips, silent_server):
    """As under the OOM killer: SIGKILL the worker that is stuck on one clip; that clip gets
    an error record, the others are scanned, the command ends normally."""
    psutil = pytest.importorskip("psutil")
    config = tmp_path / "slow.toml"
    config.write_text("open_timeout_s = 120\nread_timeout_s = 120\n")
    hung = f"http://127.0.0.1:{silent_server}/room.m3u8"
    out = tmp_path / "results.jsonl"
    command = [sys.executable, "-m", "detector", "scan", "-f", "jsonl", "--model", "none", "-c", str(config),
               "--workers", "2", "--output", str(out), hung, str(clips[0]), str(clips[2])]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        victim = None
        deadline = time.monotonic() + 60
        while victim is None and time.monotonic() < deadline:
            for child in psutil.Process(proc.pid).children(recursive=True):
                try:
                    if any(c.raddr and c.raddr.port == silent_server for c in child.net_connections("tcp")):
                        victim = child
                except psutil.Error:
                    continue
            time.sleep(0.05)
        assert victim is not None, "no worker ever connected to the hung server"
        victim.send_signal(signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2, stderr
    records = {json.loads(line)["path"]: json.loads(line) for line in stdout.splitlines()}
    assert records[hung]["error"] == "worker process died while scanning this clip (killed by SIGKILL)"
    assert records[str(clips[0])]["error"] is None and records[str(clips[2])]["error"] is None
    assert len(_lines(out)) == 3
