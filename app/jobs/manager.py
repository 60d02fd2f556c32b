"""The job manager, one concept: the queue, the worker processes, and what their events change.

Each running job is one spawned process (a crash or a kill cannot corrupt the service or the
registry) watched by one thread of ours that turns its events into the job record, the SQLite
row and, on success, a new model version.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import secrets
import threading
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from app.database import utc_now
from app.errors import ConflictError, NotFoundError
from app.jobs import files
from app.jobs.protocol import (
    Cancelled,
    Failed,
    Finished,
    PreparedJob,
    Started,
    TerminalEvent,
    WorkerEvent,
)
from app.jobs.publishing import publish_run, run_metrics
from app.jobs.store import JobRecord, JobStore
from app.jobs.worker import run_job
from app.ownership import lease_of, writer_gone
from app.registry import ModelRegistry
from models.training import EpochRecord, Progress, planned_steps

logger = logging.getLogger("seqlab.jobs")
CANCEL_GRACE_SECONDS = 0.5  # then the worker is killed: a cancel takes effect within a second
_context = multiprocessing.get_context("spawn")  # no fork of a threaded, torch-loaded process


class JobNotFoundError(NotFoundError):
    pass


@dataclass
class _Running:
    process: Any
    cancel: Any
    events: Any
    watcher: threading.Thread | None = None
    cancel_requested: bool = False


class JobManager:
    def __init__(
        self,
        jobs_dir: Path,
        store: JobStore,
        registry: ModelRegistry,
        device: str,
        max_running: int = 1,
        threads: int = 0,
    ) -> None:
        self.jobs_dir = jobs_dir
        self.store = store
        self.registry = registry
        self.device = device
        self.max_running = max_running
        self.threads = threads
        self._jobs: dict[str, JobRecord] = {}
        self._queue: deque[str] = deque()
        self._running: dict[str, _Running] = {}
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._closed = False

    # -- start-up and shutdown --------------------------------------------------------------
    def load(self) -> None:
        """Restore history; jobs that were running are failed, queued ones resume."""
        with self._lock:
            for record in self.store.all():
                self._jobs[record.id] = record
                if record.status in ("starting", "running"):
                    self._finish(record, "failed", error="interrupted: the service stopped")
                    files.discard(self.job_dir(record.id))
                elif record.status == "queued":
                    if files.is_prepared(self.job_dir(record.id)):
                        self._queue.append(record.id)
                    else:
                        self._finish(record, "failed", error="its prepared data is missing")
                        files.discard(self.job_dir(record.id))
            self._sweep_orphans()
            self._schedule()

    def _sweep_orphans(self) -> None:
        """Remove job directories nobody will use: a ``seqlab train`` run's once its process
        is gone, and a job's whose record is finished or was never written (the service
        stopped between preparing and queueing it)."""
        if not self.jobs_dir.is_dir():
            return
        for directory in self.jobs_dir.iterdir():
            if not directory.is_dir():
                continue
            if directory.name.startswith(files.CLI_JOB_PREFIX):
                if writer_gone(files.cli_owner(directory), lease_of(directory)):
                    files.discard(directory)
                continue
            record = self._jobs.get(directory.name)
            if record is None or record.finished:
                files.discard(directory)

    def close(self) -> None:
        """Stop running workers; their jobs end as failed (interrupted), queued ones stay."""
        with self._lock:
            self._closed = True
            running = list(self._running.values())
        for running_job in running:
            running_job.cancel.set()
        for running_job in running:
            running_job.process.join(CANCEL_GRACE_SECONDS)
            if running_job.process.is_alive():
                running_job.process.kill()
            if running_job.watcher is not None:
                running_job.watcher.join(10)

    # -- reading --------------------------------------------------------------------------
    def get(self, job_id: str) -> JobRecord:
        with self._lock:
            record = self._jobs.get(job_id)
            if record is None:
                raise JobNotFoundError(f"job {job_id!r} does not exist", job_id=job_id)
            return JobRecord(**vars(record))  # a snapshot

    def list(self, model: str | None = None, status: str | None = None) -> list[JobRecord]:
        with self._lock:
            return [
                JobRecord(**vars(r))
                for r in self._jobs.values()
                if (model is None or r.model == model) and (status is None or r.status == status)
            ]

    def wait(self, job_id: str, timeout: float | None = None) -> JobRecord:
        """Block until the job has finished and its worker is cleaned up (its directory
        removed), or ``timeout``; return its snapshot."""
        with self._changed:
            self._changed.wait_for(
                lambda: self._jobs[job_id].finished and job_id not in self._running, timeout
            )
        return self.get(job_id)

    def job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def new_job_id(self) -> str:
        return secrets.token_hex(8)

    def creating(self, model: str) -> bool:
        """Whether an unfinished job is creating ``model``."""
        with self._lock:
            return any(
                r.model == model and r.create_model and not r.finished for r in self._jobs.values()
            )

    # -- writing --------------------------------------------------------------------------
    def submit(self, prepared: PreparedJob) -> JobRecord:
        """Queue a prepared job (its directory written under :meth:`job_dir`)."""
        spec = prepared.spec
        job_id = spec.job_id
        with self._lock:
            if spec.create and self.creating(spec.model):
                files.discard(self.job_dir(job_id))
                raise ConflictError(
                    f"another job is already creating model {spec.model!r}", model=spec.model
                )
            record = JobRecord(
                id=job_id,
                model=spec.model,
                status="queued",
                create_model=spec.create,
                settings=prepared.settings,
                data=prepared.data,
                spec=spec,
                created_at=utc_now(),
                base_version=spec.base_version,
                # The plan is known before the worker starts: a queued job shows it too.
                progress={
                    "epoch": 0,
                    "epochs": spec.training.epochs,
                    "step": 0,
                    "total_steps": planned_steps(prepared.data.train_tokens, spec.training),
                },
            )
            self._jobs[job_id] = record
            self.store.save(record)
            self._queue.append(job_id)
            self._schedule()
            return self.get(job_id)

    def cancel(self, job_id: str) -> JobRecord:
        with self._lock:
            record = self._jobs.get(job_id)
            if record is None:
                raise JobNotFoundError(f"job {job_id!r} does not exist", job_id=job_id)
            if record.finished:
                raise ConflictError(
                    f"job {job_id!r} has already ended: it {record.status}"
                    if record.status != "cancelled"
                    else f"job {job_id!r} was already cancelled",
                    job_id=job_id,
                )
            if record.status == "queued":
                self._queue.remove(job_id)
                files.discard(self.job_dir(job_id))
                self._finish(record, "cancelled")
                return self.get(job_id)
            running = self._running.get(job_id)
            if running is None:  # finishing right now
                return self.get(job_id)
            running.cancel_requested = True
            running.cancel.set()
        running.process.join(CANCEL_GRACE_SECONDS)
        if running.process.is_alive():
            running.process.kill()  # stuck in a long step: cancelling must not wait for it
        return self.wait(job_id, timeout=5.0)

    # -- internals ------------------------------------------------------------------------
    def _schedule(self) -> None:
        while not self._closed and self._queue and len(self._running) < self.max_running:
            self._start(self._queue.popleft())

    def _start(self, job_id: str) -> None:
        record = self._jobs[job_id]
        events = _context.Queue()
        cancel = _context.Event()
        process = _context.Process(
            target=run_job,
            args=(record.spec, events, cancel, self.device, self.threads),
            name=f"seqlab-job-{job_id}",
            daemon=True,
        )
        process.start()
        watcher = threading.Thread(
            target=self._watch, args=(job_id,), name=f"watch-{job_id}", daemon=True
        )
        self._running[job_id] = _Running(process, cancel, events, watcher)
        # `running` once the worker has loaded (torch and all) and said so (Started).
        record.status = "starting"
        record.started_at = utc_now()
        record.worker_pid = process.pid
        self._touch(record)
        watcher.start()

    def _watch(self, job_id: str) -> None:
        running = self._running[job_id]
        terminal: TerminalEvent | None = None
        while terminal is None:
            try:
                event = running.events.get(timeout=0.2)
            except queue.Empty:
                if not running.process.is_alive():
                    try:  # the last events may still be in the pipe
                        event = running.events.get(timeout=0.05)
                    except queue.Empty:
                        break
                else:
                    continue
            if isinstance(event, Finished | Failed | Cancelled):
                terminal = event
            else:
                self._apply(job_id, event)
        running.process.join(5)
        self._conclude(job_id, running, terminal)

    def _apply(self, job_id: str, event: WorkerEvent) -> None:
        with self._lock:
            record = self._jobs[job_id]
            history = record.metrics.setdefault("history", {"epochs": [], "steps": []})
            if isinstance(event, Started | Progress) and record.status == "starting":
                record.status = "running"  # the worker has loaded and reported
            if isinstance(event, Progress):
                record.progress = {
                    "epoch": event.epoch,
                    "epochs": event.epochs,
                    "step": event.step,
                    "total_steps": event.total_steps,
                    "loss": event.loss,
                    "fraction": event.fraction,
                    "elapsed_seconds": event.elapsed_seconds,
                    "eta_seconds": event.eta_seconds,
                }
                if event.loss is not None:  # not the plan (step 0)
                    history["steps"].append(
                        {
                            "step": event.step,
                            "epoch": event.epoch,
                            "loss": event.loss,
                            "lr": event.lr,
                            "tokens_per_second": event.tokens_per_second,
                        }
                    )
                    record.metrics["train_loss"] = event.loss
                    record.metrics["tokens_per_second"] = event.tokens_per_second
            elif isinstance(event, EpochRecord):
                history["epochs"].append(asdict(event))
                record.metrics["val_loss"] = event.val_loss
                record.metrics["val_perplexity"] = event.val_perplexity
            self._touch(record)

    def _conclude(self, job_id: str, running: _Running, terminal: TerminalEvent | None) -> None:
        record = self._jobs[job_id]
        try:
            if self._closed and not isinstance(terminal, Finished):
                self._finish(record, "failed", error="interrupted: the service stopped")
            elif terminal is None:
                code = running.process.exitcode
                if running.cancel_requested:
                    self._finish(record, "cancelled")
                else:
                    how = (
                        f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                    )
                    self._finish(record, "failed", error=f"the worker process died ({how})")
            elif isinstance(terminal, Cancelled):
                self._finish(record, "cancelled")
            elif isinstance(terminal, Failed):
                logger.error("job %s failed: %s", job_id, terminal.traceback)
                self._finish(record, "failed", error=terminal.error)
            else:
                self._publish(record, terminal)
        finally:
            with self._lock:
                self._running.pop(job_id, None)
                files.discard(self.job_dir(job_id))
                self._changed.notify_all()  # wait() also waits for this clean-up
                self._schedule()

    def _publish(self, record: JobRecord, finished: Finished) -> None:
        try:
            loaded = publish_run(
                self.registry,
                record.spec,
                finished.result,
                record.data,
                kind="train",
                job_id=record.id,
            )
        except Exception as error:  # the model was deleted or its name taken meanwhile
            self._finish(record, "failed", error=f"publishing failed: {error}")
            return
        with self._lock:
            record.metrics.update(run_metrics(finished.result, record.data))
            record.version = loaded.version
        self._finish(record, "succeeded")

    def _finish(self, record: JobRecord, status: str, error: str | None = None) -> None:
        with self._lock:
            record.status = status
            record.error = error
            record.finished_at = utc_now()
            record.worker_pid = None
            if status == "succeeded":
                record.progress["fraction"] = 1.0
                record.progress["eta_seconds"] = 0.0
            self._touch(record)

    def _touch(self, record: JobRecord) -> None:
        """Persist a change and wake whoever waits on it (``wait`` and the event streams)."""
        with self._lock:
            record.revision += 1
            self.store.save(record)
            self._changed.notify_all()
