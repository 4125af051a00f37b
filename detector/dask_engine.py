"""`detector scan --engine dask`: the same per-clip task on a Dask distributed cluster.

Without a scheduler address a local cluster of worker processes is started (no setup).
The task, with the model, enters the graph once; each clip is one Dask task (with retries
for errors), so a worker that is lost mid-clip (a node gone, the OOM killer) costs a rerun
on another or a restarted worker, not the batch (the scheduler's allowed-failures, 3 by
default, bounds reruns of a clip that keeps killing workers). Results come back to this
process, which appends them to the results file as they complete: resuming works exactly
as with the local engine.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator

from detector.batch import ClipJob, ClipOutcome, ClipTask, TimedTask

log = logging.getLogger(__name__)


def _run_clip(task, location: str) -> ClipOutcome:
    return task(location)


def _the_task(task):
    return task


class DaskEngine:
    def __init__(self, scheduler: str | None = None, workers: int = 1,
                 timeout_s: float | None = None, retries: int = 2) -> None:
        self.scheduler, self.workers = scheduler, workers
        self.timeout_s, self.retries = timeout_s, retries

    def _client(self):
        from distributed import Client, LocalCluster

        if not log.isEnabledFor(logging.DEBUG):
            # Dask chats at INFO on stderr (scheduler start, every worker joining); a batch's
            # stderr is for its progress and problems.
            for name in ("distributed", "dask"):
                logging.getLogger(name).setLevel(logging.ERROR)
        if self.scheduler:
            return Client(self.scheduler), None
        # One thread per worker process: a clip's scan already uses its cores (decoding
        # threads), and processes keep one crashing clip from taking others with it.
        cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        return Client(cluster), cluster

    def run(self, task: ClipTask, jobs: Iterable[ClipJob]) -> Iterator[tuple[ClipJob, ClipOutcome]]:
        from distributed import as_completed

        jobs = list(jobs)
        if not jobs:
            return
        work = TimedTask(task, self.timeout_s) if self.timeout_s else task
        client, cluster = self._client()
        try:
            batch = uuid.uuid4().hex[:8]
            # The task (with the model) goes into the graph once, as a task of its own rather
            # than scattered data: a worker holding it may be lost, and the scheduler can
            # recompute a task but not scattered data (every clip would be cancelled).
            shared = client.submit(_the_task, work, key=f"detector-task-{batch}")
            futures = {
                client.submit(_run_clip, shared, job.location, key=f"detector-scan-{batch}-{job.index}",
                              retries=self.retries, pure=False): job
                for job in jobs
            }
            for future in as_completed(futures):
                job = futures[future]
                try:
                    outcome = future.result()
                except Exception as exc:  # retries or allowed failures exhausted: the cluster says why
                    message = " ".join(f"{type(exc).__name__}: {exc}".split())
                    outcome = task.failed(job.location, f"cluster task failed: {message}")
                future.release()
                yield job, outcome
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
