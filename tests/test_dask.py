"""`detector scan --engine dask`: the same records as the local engine, from a local Dask
cluster, through the real command line (and the results file resumes the same way)."""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import run_cli
from helpers import prior_model

from detector.batch import ClipJob, ClipTask
from detector.config import ScanConfig
from detector.synth.scenes import looped_scene, moving_scene, static_scene
from detector.synth.writer import write_clip

pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dask")
    frames, _ = looped_scene(192, 144, 15, 12.0, seed=5, period_s=4.0)
    write_clip(folder / "looped.mp4", frames, 15)
    write_clip(folder / "moving.mp4", moving_scene(192, 144, 15, 4.0, seed=6), 15)
    write_clip(folder / "still.mp4", static_scene(192, 144, 15, 6.0, seed=7), 15)
    (folder / "broken.mp4").write_bytes(b"\x00" * 100)
    return folder


def _without_elapsed(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in records]


def test_dask_local_cluster_gives_the_local_engine_records(tmp_path, folder):
    model = prior_model(tmp_path, {"looped": 2, "live": 1})    # every clip flagged: a card each
    common = ("scan", "-f", "jsonl", "--features", "--model", str(model), "--workers", "2", str(folder))
    local = run_cli(*common)
    out, report = tmp_path / "dask.jsonl", tmp_path / "report.html"
    dask = run_cli(*common, "--engine", "dask", "--output", str(out), "--report", str(report), timeout_s=300)
    assert dask.returncode == local.returncode == 2, dask.stderr     # broken.mp4
    assert len(local.jsonl()) == 4
    assert _without_elapsed(dask.jsonl()) == _without_elapsed(local.jsonl())
    # The report's thumbnails travel back from the cluster with the records.
    html = report.read_text(encoding="utf-8")
    assert html.count('<section class="card"') == 3                  # every readable clip
    assert 'class="span"' in html and html.count("data:image/jpeg;base64,") > 10
    assert sorted(json.loads(line)["path"] for line in out.read_text().splitlines()) == sorted(
        r["path"] for r in local.jsonl())

    # Resuming a Dask batch reads the same file: nothing is scanned again.
    again = run_cli(*common, "--engine", "dask", "--output", str(out), "--resume", timeout_s=300)
    assert "4 of 4 input(s) already recorded" in again.stderr
    assert len(out.read_text().splitlines()) == 4
    assert _without_elapsed(again.jsonl()) == _without_elapsed(local.jsonl())


def test_scheduler_address_needs_the_dask_engine(folder):
    result = run_cli("scan", "--model", "none", "--scheduler", "tcp://127.0.0.1:1", str(folder))
    assert result.returncode == 2 and "--engine dask" in result.stderr


@dataclass(frozen=True)
class DiesOnceTask(ClipTask):
    """Kills its own worker process the first time it meets a clip (a lost node), then works."""

    marker_dir: str = ""

    def __call__(self, location: str):
        marker = Path(self.marker_dir) / (Path(location).name + ".died")
        if not marker.exists():
            marker.write_text("x")
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__call__(location)


def test_a_lost_worker_costs_a_retry_not_the_clip(tmp_path, folder):
    from detector.dask_engine import DaskEngine

    clip = str(folder / "moving.mp4")
    task = DiesOnceTask(ScanConfig(), marker_dir=str(tmp_path))
    ((job, outcome),) = list(DaskEngine(workers=1).run(task, [ClipJob(0, clip)]))
    assert (tmp_path / "moving.mp4.died").exists()          # the first attempt did die
    assert outcome.record.path == clip and outcome.record.error is None
    assert outcome.record.duration_s == pytest.approx(4.0, abs=0.1)
