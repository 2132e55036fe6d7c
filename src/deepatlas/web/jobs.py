"""The lab queue behind the Labs page: one run at a time, each in its own child process.

A job runs `python -m deepatlas run LAB --scale S --seed N --events --quiet`, whose stdout is JSON
lines (start, log rows, end). The run lands in the runs store like any CLI run. Cancelling a
queued job drops it; cancelling a running one sends SIGINT to the child's process group, so the
run is recorded as "interrupted", and kills the group if it has not ended after a grace period.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field

from deepatlas.store import Store

MAX_QUEUED = 20
GRACE_S = 10.0
KEEP_FINISHED = 50


class QueueFull(Exception):
    pass


class UnknownJob(KeyError):
    def __str__(self) -> str:
        return f"unknown job {self.args[0][:100]!r}"


@dataclass
class Job:
    id: str
    lab: str
    scale: str
    seed: int
    created: float
    state: str = "queued"  # queued | running | done | failed | cancelled
    run: str | None = None
    started: float | None = None
    finished: float | None = None
    rows: list[dict] = field(default_factory=list)
    result: dict | None = None
    message: str | None = None
    cancelled: bool = False
    process: subprocess.Popen | None = None

    def view(self, position: int | None, since: int | None = 0) -> dict:
        """The job as the API shows it; its metric rows from `since` on (none with since=None)."""
        return {
            "id": self.id, "lab": self.lab, "scale": self.scale, "seed": self.seed, "state": self.state,
            "position": position, "run": self.run, "created": self.created, "started": self.started,
            "finished": self.finished, "n_rows": len(self.rows), "rows": [] if since is None else self.rows[since:],
            "result": self.result,
            "message": self.message,
        }


def lab_command(job: Job) -> list[str]:
    return [sys.executable, "-m", "deepatlas", "run", job.lab, "--scale", job.scale, "--seed", str(job.seed),
            "--events", "--quiet"]


def _settle(run_id: str, status: str, seconds: float) -> None:
    """A child that died before recording its run's end (killed after the grace period, or interrupted
    before its runner could write) leaves the run "running" in the store: record how it ended."""
    store = Store()
    record = store.get_run(run_id)
    if record is not None and record.status == "running":
        store.finish_run(run_id, status, seconds, message=f"the run's process ended without recording it ({status})")


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Signal the child and anything it started (it leads its own session, see `_work`)."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


class JobQueue:
    """Thread-safe: the web handlers submit, list and cancel; one worker thread runs the jobs in order."""

    def __init__(self, *, max_queued: int = MAX_QUEUED, grace_s: float = GRACE_S, command=lab_command):
        self.max_queued, self.grace_s, self.command = max_queued, grace_s, command
        self._cond = threading.Condition()
        self._jobs: dict[str, Job] = {}  # every job still shown, oldest first
        self._queue: deque[Job] = deque()
        self._closing = False
        self._worker = threading.Thread(target=self._work, name="deepatlas-jobs", daemon=True)
        self._worker.start()

    # the handlers' side -----------------------------------------------------------------
    def submit(self, lab: str, scale: str, seed: int) -> dict:
        with self._cond:
            if self._closing:
                raise QueueFull("the server is shutting down")
            if len(self._queue) >= self.max_queued:
                raise QueueFull(f"{len(self._queue)} jobs are already waiting; cancel one or wait")
            job = Job(uuid.uuid4().hex[:12], lab, scale, seed, time.time())
            self._jobs[job.id] = job
            self._queue.append(job)
            self._forget_old()
            self._cond.notify_all()
            return self._view(job)

    def list(self) -> list[dict]:
        with self._cond:
            return [self._view(job, since=None) for job in self._jobs.values()]  # rows: per job only

    def get(self, job_id: str, since: int = 0) -> dict:
        with self._cond:
            return self._view(self._find(job_id), since)

    def cancel(self, job_id: str) -> dict:
        with self._cond:
            job = self._find(job_id)
            if job.state == "queued":
                self._queue.remove(job)
                job.state, job.finished, job.message = "cancelled", time.time(), "cancelled before it started"
            elif job.state == "running" and not job.cancelled:
                job.cancelled = True
                self._interrupt(job)
            return self._view(job)

    def close(self, timeout: float | None = None) -> None:
        """Drop the queue, stop the running child (SIGINT, then kill) and end the worker."""
        with self._cond:
            self._closing = True
            for job in list(self._queue):
                self._queue.remove(job)
                job.state, job.finished, job.message = "cancelled", time.time(), "the server shut down"
            for job in self._jobs.values():
                if job.state == "running" and not job.cancelled:
                    job.cancelled = True
                    self._interrupt(job)
            self._cond.notify_all()
        self._worker.join(self.grace_s + 5 if timeout is None else timeout)

    # under the lock ----------------------------------------------------------------------
    def _find(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise UnknownJob(job_id)
        return job

    def _view(self, job: Job, since: int | None = 0) -> dict:
        position = self._queue.index(job) + 1 if job.state == "queued" else None
        return job.view(position, since)

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.state in ("done", "failed", "cancelled")]
        for job in finished[:max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[job.id]

    def _interrupt(self, job: Job) -> None:
        proc = job.process
        if proc is None or proc.poll() is not None:
            return  # not started yet: the worker sees `cancelled` as soon as it starts the child
        _signal_group(proc, signal.SIGINT)
        timer = threading.Timer(self.grace_s, lambda: proc.poll() is None and _signal_group(proc, signal.SIGKILL))
        timer.daemon = True
        timer.start()

    # the worker's side -----------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
                job = self._queue.popleft()
                job.state, job.started = "running", time.time()
                stderr = tempfile.TemporaryFile()
                try:
                    job.process = subprocess.Popen(self.command(job), stdout=subprocess.PIPE, stderr=stderr,
                                                   stdin=subprocess.DEVNULL, text=True, start_new_session=True)
                except OSError as exc:
                    self._finish(job, "failed", f"could not start the run: {exc}")
                    stderr.close()
                    continue
                if job.cancelled:
                    self._interrupt(job)
            self._follow(job, stderr)

    def _follow(self, job: Job, stderr) -> None:
        for line in job.process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a lab that prints; only our events are JSON lines
            if not isinstance(event, dict):
                continue
            with self._cond:
                if event.get("event") == "log" and isinstance(event.get("row"), dict):
                    job.rows.append(event["row"])
                elif event.get("event") == "start":
                    job.run = event.get("run")
                elif event.get("event") == "end":
                    job.result = event.get("summary")
                self._cond.notify_all()
        code = job.process.wait()
        stderr.seek(0)
        tail = stderr.read().decode("utf-8", "replace").strip()[-2000:]
        stderr.close()
        if job.run:
            _settle(job.run, "interrupted" if job.cancelled else "failed", time.time() - job.started)
        with self._cond:
            if job.cancelled:
                recorded = f"; run {job.run} is recorded as interrupted" if job.run else ""
                self._finish(job, "cancelled", f"cancelled while running{recorded}")
            elif job.result is not None:
                ok = job.result.get("status") == "ok"
                self._finish(job, "done" if ok else "failed", job.result.get("message"))
            else:
                self._finish(job, "failed", tail or f"the run exited with status {code}")

    def _finish(self, job: Job, state: str, message: str | None) -> None:
        job.state, job.finished, job.message, job.process = state, time.time(), message, None
        self._cond.notify_all()
