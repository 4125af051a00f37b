"""Scanning many clips: the per-clip task, worker processes with per-clip timeouts, and an
append-only results file that a killed batch resumes from.

Engines take a `ClipTask` (everything a worker needs, picklable) and `ClipJob`s, and yield
`(job, ClipOutcome)` in completion order; every job yields exactly one outcome, whatever
happens to the worker that ran it. The Dask engine (detector/dask_engine.py) runs the same
task on a cluster.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detector.config import ScanConfig
from detector.model import LoadedModel
from detector.scan import RECORD_KEYS, ScanRecord, scan_one

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipJob:
    index: int          # position in the input list (stdout and the report keep input order)
    location: str


@dataclass
class ClipOutcome:
    record: ScanRecord
    visuals: Any = None          # detector.visuals.ClipVisuals when a report is requested


@dataclass(frozen=True)
class ClipTask:
    """The per-clip function every engine runs. Picklable: it travels to worker processes
    and cluster nodes once, with the model."""

    config: ScanConfig
    model: LoadedModel | None = None
    with_visuals: bool = False
    # Threads OpenCV may use in a worker (None: OpenCV's default, one per core).
    cv_threads: int | None = None
    # The command's log level, for worker processes (which start with logging unconfigured).
    log_level: int = logging.WARNING

    @property
    def model_name(self) -> str | None:
        return self.model.name if self.model is not None else None

    def __call__(self, location: str) -> ClipOutcome:
        if self.cv_threads:           # here, not at worker start: Dask workers run this too
            import cv2

            cv2.setNumThreads(self.cv_threads)
        if not self.with_visuals:
            return ClipOutcome(scan_one(location, self.config, self.model))
        from detector.visuals import ThumbnailCollector, select_visuals

        collector = ThumbnailCollector(self.config)
        record = scan_one(location, self.config, self.model, [collector])
        visuals = None
        if hasattr(collector, "thumbs"):            # the input opened; frames were seen
            try:
                visuals = select_visuals(collector, record)
            except Exception:  # pictures are a nicety: the record stands without them
                log.warning("%s: could not prepare report pictures", location, exc_info=True)
        return ClipOutcome(record, visuals)

    def failed(self, location: str, error: str, elapsed_s: float = 0.0) -> ClipOutcome:
        """The outcome of a clip whose worker timed out, crashed or was lost."""
        return ClipOutcome(ScanRecord(path=location, error=error, model=self.model_name,
                                      elapsed_s=round(elapsed_s, 3)))


def default_workers() -> int:
    """The cores this process may use (cgroup/affinity aware where the OS says so)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def task_for_workers(config: ScanConfig, model: LoadedModel | None, workers: int,
                     with_visuals: bool) -> ClipTask:
    """A task whose decoding and OpenCV threads share the cores among `workers` processes
    (each would otherwise start one thread per core and the batch would oversubscribe)."""
    threads = max(1, default_workers() // max(1, workers))
    if workers > 1 and config.decode_threads == 0:
        config = dataclasses.replace(config, decode_threads=threads)
    return ClipTask(config, model, with_visuals, cv_threads=threads if workers > 1 else None,
                    log_level=logging.getLogger("detector").getEffectiveLevel())


# -- engines ------------------------------------------------------------------------------


class SerialEngine:
    """In this process, one clip after another (a single clip needs no pool)."""

    def run(self, task: ClipTask, jobs: Iterable[ClipJob]) -> Iterator[tuple[ClipJob, ClipOutcome]]:
        for job in jobs:
            yield job, task(job.location)


class _Worker:
    """One worker process and the pipe to it; `job` is the clip it is scanning, if any."""

    def __init__(self, context, task: ClipTask) -> None:
        self.conn, child_conn = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child_conn, task),
                                       name="detector-worker", daemon=True)
        self.process.start()
        child_conn.close()
        self.job: ClipJob | None = None
        self.started = 0.0

    def assign(self, job: ClipJob) -> None:
        self.job, self.started = job, time.monotonic()
        try:
            self.conn.send((job.index, job.location))
        except OSError:   # it died just now: the liveness check records this clip's error
            pass

    def stop(self, grace_s: float = 2.0) -> None:
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.process.join(grace_s)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.join()
        self.conn.close()


_READY = "ready"


def _worker_main(conn, task: ClipTask) -> None:
    """A worker's loop: scan each clip it is sent and send back the outcome."""
    # Ctrl-C goes to the whole process group; the parent decides what to do about it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=task.log_level, format="%(levelname)s %(name)s: %(message)s")
    import detector.pipeline  # noqa: F401  (the heavy imports, before saying ready)

    try:
        conn.send(_READY)
    except OSError:
        return
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):     # the parent is gone
            return
        if message is None:
            return
        _index, location = message
        try:
            outcome = task(location)
        except BaseException as exc:  # scan_one records errors; this is a bug in the task itself
            outcome = task.failed(location, f"internal error in worker: {type(exc).__name__}: {exc}")
        try:
            conn.send(outcome)
        except OSError:                 # the parent is gone (killed): nobody to tell
            return


class ProcessEngine:
    """Worker processes, one clip each at a time. A clip that takes longer than `timeout_s`
    has its worker killed; a worker that dies (segfault, OOM killer) costs only its clip.
    Either way the clip gets an error record and a fresh worker takes the next clip."""

    def __init__(self, workers: int, timeout_s: float | None = None) -> None:
        import multiprocessing

        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers, self.timeout_s = workers, timeout_s
        # spawn: a clean interpreter per worker (forking a process that runs threads, such as
        # the progress bar's, can deadlock the child).
        self._context = multiprocessing.get_context("spawn")

    def run(self, task: ClipTask, jobs: Iterable[ClipJob]) -> Iterator[tuple[ClipJob, ClipOutcome]]:
        from multiprocessing.connection import wait

        pending = deque(jobs)
        slots = [_Worker(self._context, task) for _ in range(min(self.workers, len(pending)))]
        try:
            while pending or any(w.job for w in slots):
                for i, w in enumerate(slots):
                    if w.job is None and pending:
                        if not w.process.is_alive():     # died between clips: replace it
                            w.kill()
                            slots[i] = w = _Worker(self._context, task)
                        w.assign(pending.popleft())
                busy = [w for w in slots if w.job is not None]
                wait([w.conn for w in busy] + [w.process.sentinel for w in busy], self._wait_s(busy))
                for i, w in enumerate(slots):
                    if w.job is None:
                        continue
                    job, elapsed = w.job, time.monotonic() - w.started
                    if w.conn.poll():
                        try:
                            message = w.conn.recv()
                        except (EOFError, OSError):   # died: the sentinel check below says how
                            pass
                        else:
                            if message == _READY:     # a clip's time starts when its worker is up
                                w.started = time.monotonic()
                                continue
                            w.job = None
                            yield job, message
                            continue
                    if not w.process.is_alive():
                        w.process.join()
                        error = f"worker process died while scanning this clip ({_exit_reason(w.process.exitcode)})"
                    elif self.timeout_s is not None and elapsed > self.timeout_s:
                        error = f"timed out after {self.timeout_s:g} s (the worker was stopped)"
                    else:
                        continue
                    log.warning("%s: %s", job.location, error)
                    w.kill()
                    slots[i] = _Worker(self._context, task)
                    yield job, task.failed(job.location, error, elapsed)
        finally:
            for w in slots:
                if w.job is None:
                    w.stop()
                else:                         # interrupted mid-clip: don't wait for it
                    w.kill()

    def _wait_s(self, busy: list[_Worker]) -> float:
        if self.timeout_s is None:
            return 1.0
        now = time.monotonic()
        left = min((w.started + self.timeout_s - now for w in busy), default=1.0)
        return max(0.01, min(1.0, left + 0.01))


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


@dataclass(frozen=True)
class TimedTask:
    """A task with a time limit where the clip's process cannot be killed (a Dask worker):
    the clip gets a timeout record on time; the stuck thread is left behind (daemon)."""

    task: ClipTask
    timeout_s: float

    def __call__(self, location: str) -> ClipOutcome:
        box: list[ClipOutcome] = []
        thread = threading.Thread(target=lambda: box.append(self.task(location)), daemon=True)
        started = time.monotonic()
        thread.start()
        thread.join(self.timeout_s)
        if box:
            return box[0]
        return self.task.failed(location, f"timed out after {self.timeout_s:g} s (the scan was abandoned)",
                                time.monotonic() - started)


# -- the results file -----------------------------------------------------------------------


def record_from_dict(data: dict[str, Any]) -> ScanRecord:
    return ScanRecord(**{k: data[k] for k in RECORD_KEYS if k in data}, features=data.get("features"))


class ResultsFile:
    """`--output results.jsonl`: one JSON line per finished clip, appended in completion
    order, flushed and fsync'ed, so a crash loses at most the clip being written. A torn last
    line (the process was killed mid-write) is cut off when the file is reopened.

    Report pictures are kept beside it (`results.visuals/`, one file per clip, written
    before the clip's line), so a resumed batch can still show them."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.visuals_dir = self.path.with_name(self.path.name.rsplit(".", 1)[0] + ".visuals")
        self._handle = None

    def has_records(self) -> bool:
        return self.path.exists() and self.path.stat().st_size > 0

    def read(self) -> dict[str, dict[str, Any]]:
        """Recorded clips by path (the last record wins), after cutting off a torn last line."""
        self._repair()
        done: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return done
        with open(self.path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                    done[data["path"]] = data
                except (json.JSONDecodeError, KeyError, TypeError):
                    log.warning("%s line %d is not a record; ignored", self.path, number)
        return done

    def _repair(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, "rb+") as handle:
            data = handle.read()
            if data and not data.endswith(b"\n"):
                keep = data.rfind(b"\n") + 1
                log.warning("%s: cutting off a torn last line (%d bytes) left by an interrupted run",
                            self.path, len(data) - keep)
                handle.truncate(keep)
                handle.flush()
                os.fsync(handle.fileno())

    def __enter__(self) -> ResultsFile:
        self._repair()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "ab")
        return self

    def append(self, record: ScanRecord, include_features: bool, visuals: Any = None) -> None:
        if visuals is not None:
            self._save_visuals(record.path, visuals)
        line = json.dumps(record.to_dict(include_features), ensure_ascii=False) + "\n"
        self._handle.write(line.encode("utf-8"))   # one write per line: whole or torn, never mixed
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def __exit__(self, *exc_info) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _visuals_path(self, location: str) -> Path:
        return self.visuals_dir / (hashlib.sha1(location.encode("utf-8")).hexdigest()[:20] + ".json")

    def _save_visuals(self, location: str, visuals: Any) -> None:
        self.visuals_dir.mkdir(parents=True, exist_ok=True)
        target = self._visuals_path(location)
        temporary = target.with_suffix(".tmp")
        temporary.write_text(json.dumps({"path": location, **visuals.to_json()}), encoding="utf-8")
        os.replace(temporary, target)             # atomic: whole or absent

    def load_visuals(self, location: str):
        from detector.visuals import ClipVisuals

        target = self._visuals_path(location)
        try:
            data = json.loads(target.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        return ClipVisuals.from_json(data) if data.get("path") == location else None
