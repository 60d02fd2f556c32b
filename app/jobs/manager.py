"""The job manager, one concept: the queue, the worker processes, and what their events change.

Each running job is one spawned process (a crash or a kill cannot corrupt the service or the
registry) watched by one thread of ours that turns its events into the job record, the SQLite
row and, on success, a new model version.

Several processes may serve one data dir (``SEQLAB_WORKERS``, two services side by side, or
replicas on several hosts sharing a PostgreSQL database and the data dir): only the one elected
(:mod:`app.jobs.election`: the data dir's flock, or a lease in PostgreSQL) queues and runs jobs,
and only if ``SEQLAB_RUN_JOBS`` allows it. The others record a job in the store (queued), read
jobs and their revisions there, and cancel there (a queued row at once, a running one by a flag
the runner reads); the runner adopts what they recorded every ``ADOPT_SECONDS`` and claims a row
(``FOR UPDATE SKIP LOCKED``) before it starts it. When the runner dies, another process is
elected, makes itself the runner of every unfinished row (so the one gone can no longer write
them) and, as a restarted service does, requeues its jobs to resume from their saved state.

A job that is interrupted (its worker dies, the service stops or is killed) goes back to the
queue and its next worker resumes from the training state the last one saved in the job
directory, unless the job asked ``resume: false`` or it has been interrupted (its worker or
the service killed, not stopped cleanly) more than ``max_interruptions`` times; then it fails,
as every interrupted job did before.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import secrets
import signal
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.exc import OperationalError, SQLAlchemyError

from app.database import utc_now
from app.errors import ConflictError, NotFoundError
from app.jobs import files
from app.jobs.election import RunnerElection
from app.jobs.protocol import (
    Cancelled,
    Failed,
    Finished,
    PreparedJob,
    Started,
    Suspended,
    TerminalEvent,
    WorkerEvent,
)
from app.jobs.publishing import publish_run, published_run_metrics, run_metrics
from app.jobs.store import JobRecord, JobStore
from app.jobs.worker import run_job
from app.ownership import Owner, lease_of, writer_gone
from app.registry import ModelRegistry
from models.training import EpochRecord, Progress, planned_steps

logger = logging.getLogger("seqlab.jobs")
CANCEL_GRACE_SECONDS = 0.5  # then the worker is killed: a cancel takes effect within a second
# A stopping service gives each worker this long to save its state (it stops after its current
# step); a container runtime waits 10 s between SIGTERM and SIGKILL.
SUSPEND_GRACE_SECONDS = 5.0
# A worker left behind by a killed service notices at its next step, saves its state and exits;
# the next service waits this long for it before killing it (never two workers on one job).
ORPHAN_GRACE_SECONDS = 10.0
# How often the process that runs jobs looks for jobs (and cancels) that other processes on the
# data dir recorded, and how often the others try to take over running jobs.
ADOPT_SECONDS = 0.5
# Tries at publishing a finished job while the database is out of reach (1, 2, 4, 8, 10… s).
PUBLISH_ATTEMPTS = 8
# A job directory no record names is left this long: another process may be preparing it
# (segmenting a corpus) before it records the job.
PREPARING_GRACE_SECONDS = 600.0
_context = multiprocessing.get_context("spawn")  # no fork of a threaded, torch-loaded process


class JobNotFoundError(NotFoundError):
    pass


@dataclass
class _Running:
    process: Any
    cancel: Any
    suspend: Any
    events: Any
    watcher: threading.Thread | None = None
    cancel_requested: bool = False
    # Killed because this process lost the runner's election: its job is another's now.
    deposed: bool = False


class JobManager:
    def __init__(
        self,
        jobs_dir: Path,
        store: JobStore,
        registry: ModelRegistry,
        device: str,
        max_running: int = 1,
        threads: int = 0,
        max_interruptions: int = 3,
        niceness: int = 0,
    ) -> None:
        self.jobs_dir = jobs_dir
        self.store = store
        self.registry = registry
        self.device = device
        self.max_running = max_running
        self.threads = threads
        self.max_interruptions = max_interruptions
        self.niceness = niceness
        self._jobs: dict[str, JobRecord] = {}
        self._queue: deque[str] = deque()
        self._running: dict[str, _Running] = {}
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._closed = False
        # Whether this process runs jobs: the one elected (known once started: start, or load).
        # The others record jobs in the store and read them from there.
        self.runs_jobs = False
        self._election: RunnerElection | None = None
        # Who this process is on the job rows it runs (their runner column).
        self.runner = Owner.current().token
        self._adopter: threading.Thread | None = None
        self._stopping = False

    # -- start-up and shutdown --------------------------------------------------------------
    def start(self, election: RunnerElection | None) -> None:
        """Run jobs if elected, else record them for the one that is, and take over when it
        goes. Without an election (``SEQLAB_RUN_JOBS=false``) this process never runs jobs."""
        self._election = election
        if election is not None and election.acquire():
            try:
                self.load()
            except Exception:  # the database out of reach, a file odd: taken up again later
                logger.exception("could not take up the training jobs yet")
                self.runs_jobs = False
                election.release()
        else:
            logger.info("another process runs the training jobs")
        self._adopter = threading.Thread(
            target=self._adopt_forever, name="seqlab-jobs", daemon=True
        )
        self._adopter.start()
        threading.Thread(target=self._watch_election, name="seqlab-jobs-watch", daemon=True).start()

    def _watch_election(self) -> None:
        """Stop the training workers the moment the runner's role is no longer surely this
        process's. A thread of its own, that does no I/O and takes no lock: the others may be
        waiting on a database that does not answer."""
        while not self._closed:
            time.sleep(ADOPT_SECONDS / 2)
            if self._election is not None and not self._election.held():
                self._lost_election()

    def stop_taking_over(self) -> None:
        """This process is stopping: it must not take over the jobs from a runner that is
        stopping too (a SIGTERM to every worker)."""
        self._stopping = True

    def _adopt_forever(self) -> None:
        while not self._closed:
            time.sleep(ADOPT_SECONDS)
            if self._closed:
                return
            try:
                if self.runs_jobs:
                    if self._election is not None and not self._election.acquire():
                        self._lost_election()
                    else:
                        self._adopt()
                elif not self._stopping and self._election is not None and self._election.acquire():
                    logger.warning("taking over the training jobs")
                    try:
                        self.load()
                    except Exception:
                        self.runs_jobs = False
                        self._election.release()  # and try again next time
                        raise
            except Exception:  # the store busy or a job's files odd: try again next time
                logger.exception("looking for jobs recorded by other processes failed")

    def _lost_election(self) -> None:
        """Another process holds the runner's lease, or may soon (ours is no longer surely
        held: the database out of reach, or this process stalled). It takes our jobs over, so
        ours must stop now: their workers are killed (their saved states stay for the new
        runner) and this process records jobs like the others from here on. No I/O, and the
        lock only if it is free soon: a thread holding it may be waiting on the database."""
        was_runner, self.runs_jobs = self.runs_jobs, False  # first: nothing is claimed from now
        alive = [running for running in list(self._running.values()) if not running.deposed]
        if not was_runner and not alive:
            return
        logger.error("this process lost the job runner's lease: stopping its training workers")
        for running_job in alive:  # one started while the role was being lost, too
            running_job.deposed = True
            running_job.process.kill()
        if self._lock.acquire(timeout=1.0):
            try:
                self._queue.clear()
                self._changed.notify_all()
            finally:
                self._lock.release()

    def _adopt(self) -> None:
        """Queue the jobs other processes recorded, and cancel those they asked to cancel."""
        cancelled = []
        with self._lock:  # read under the lock: this process's own submit saves under it too
            if not self._runs_surely():  # lost while this thread waited for the lock
                return
            unfinished = {record.id: record for record in self.store.unfinished()}
            cancels = self.store.cancel_requests()
            for job_id, record in unfinished.items():
                if record.status != "queued" or job_id in self._queue or job_id in self._running:
                    continue
                known = self._jobs.get(job_id)
                if known is not None and known.status in ("starting", "running"):
                    continue  # requeued by this process right now (its save is on its way)
                if record.runner not in (None, self.runner) and not self.store.take_over_job(
                    job_id, record.runner, self.runner
                ):
                    continue
                self._jobs[job_id] = record
                if files.is_prepared(self.job_dir(job_id)):
                    self._queue.append(job_id)
                else:  # a row is saved only after its data: that data is gone
                    self._finish(record, "failed", error="its prepared data is missing")
                    files.discard(self.job_dir(job_id))
            self._reconcile(unfinished)
            for job_id in list(self._queue):  # cancelled by another process while queued
                if job_id not in unfinished:
                    self._queue.remove(job_id)
                    stored = self.store.get(job_id)
                    if stored is not None:
                        self._jobs[job_id] = stored
                    files.discard(self.job_dir(job_id))
                    self._changed.notify_all()
            for job_id in cancels & set(self._running):
                running = self._running[job_id]
                if not running.cancel_requested:
                    running.cancel_requested = True
                    running.cancel.set()
                    cancelled.append(running)
            self._schedule()
        for running in cancelled:  # as cancel() does: killed when it does not stop in time
            threading.Thread(target=self._stop_within_grace, args=(running,), daemon=True).start()

    def _reconcile(self, unfinished: dict[str, JobRecord]) -> None:
        """Rows the store shows running that no worker here runs: saved again when an outage
        kept this process's last change from the store, or, claimed by a runner that lost its
        lease after this one took over, taken over and requeued like a dead runner's."""
        for job_id, stored in unfinished.items():
            if stored.status not in ("starting", "running") or job_id in self._running:
                continue
            mine = self._jobs.get(job_id)
            if stored.runner == self.runner:
                if mine is not None and mine.status not in ("starting", "running"):
                    self.store.save(mine, self.runner)
                continue
            if not self._runs_surely() or not self.store.take_over_job(
                job_id, stored.runner, self.runner
            ):
                continue
            self._jobs[job_id] = stored
            if not self._published_already(stored):
                self._interrupted(stored, "the process running it lost the job runner's lease")

    @staticmethod
    def _stop_within_grace(running: _Running) -> None:
        running.process.join(CANCEL_GRACE_SECONDS)
        if running.process.is_alive():
            running.process.kill()

    def load(self) -> None:
        """Restore history: queued jobs wait again, and jobs that were running (the service was
        killed) go back to the queue to resume, or fail (see the module's docstring)."""
        self.store.take_over(self.runner)  # the rows of the runner gone are this one's now
        with self._lock:
            self._queue.clear()  # what a former term as runner left: the store says it again
        records = self.store.all()
        # A worker may have been started just before a kill: wait for it to save and go (up to
        # ORPHAN_GRACE_SECONDS each) before the lock, so job reads never wait for it.
        for record in records:
            if not record.finished:
                self._stop_orphan(self.job_dir(record.id))
        with self._lock:
            for record in records:
                self._jobs[record.id] = record
                if record.status in ("starting", "running"):
                    if not self._published_already(record):
                        self._interrupted(record, "the service stopped")
                elif record.status == "queued":
                    if files.is_prepared(self.job_dir(record.id)):
                        self._queue.append(record.id)
                    else:
                        self._finish(record, "failed", error="its prepared data is missing")
                        files.discard(self.job_dir(record.id))
            self._sweep_orphans()
            self.runs_jobs = True
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
            if record is None and time.time() - directory.stat().st_mtime < PREPARING_GRACE_SECONDS:
                continue  # another process on this data dir may be preparing it right now
            if record is None or record.finished:
                files.discard(directory)

    def _published_already(self, record: JobRecord) -> bool:
        """Whether the service was killed after publishing the job's version but before
        recording it: then the job succeeded, and must not publish a second version."""
        try:
            rows = self.registry.versions(record.model)
        except NotFoundError:
            return False
        published = [row for row in rows if row.source.get("job_id") == record.id]
        if not published or published[-1].status != "ready":
            return False
        row = published[-1]
        record.version = row.version
        record.metrics.update(published_run_metrics(row.metrics))
        self._finish(record, "succeeded")
        files.discard(self.job_dir(record.id))
        return True

    def _stop_orphan(self, job_dir: Path) -> None:
        """Make sure the worker a killed service left training in ``job_dir`` is gone."""
        owner = files.worker_of(job_dir)
        if owner is None or not owner.is_alive():
            return
        deadline = time.monotonic() + ORPHAN_GRACE_SECONDS
        while owner.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)  # it is saving its state: the work since its last one
        if owner.is_alive():
            logger.warning("killing worker %s left behind in %s", owner.pid, job_dir)
            try:
                os.kill(owner.pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + ORPHAN_GRACE_SECONDS
            while owner.is_alive() and time.monotonic() < deadline:
                time.sleep(0.01)

    def close(self) -> None:
        """Stop running workers. A resumable job's worker saves its training state first and
        the job waits queued for the next start; the others end as failed (interrupted)."""
        with self._lock:
            self._closed = True
            running = {job_id: self._running[job_id] for job_id in self._running}
        if self._adopter is not None:
            self._adopter.join(ADOPT_SECONDS * 4)
        for job_id, running_job in running.items():
            if self._jobs[job_id].spec.resume:
                running_job.suspend.set()
            else:
                running_job.cancel.set()
        for job_id, running_job in running.items():
            grace = SUSPEND_GRACE_SECONDS if self._jobs[job_id].spec.resume else 0
            running_job.process.join(max(grace, CANCEL_GRACE_SECONDS))
            if running_job.process.is_alive():
                running_job.process.kill()
            if running_job.watcher is not None:
                running_job.watcher.join(10)
        if self._election is not None:
            self._election.release()  # another process (or app) may run jobs now

    # -- reading --------------------------------------------------------------------------
    def get(self, job_id: str) -> JobRecord:
        with self._lock:
            record = self._jobs.get(job_id) if self.runs_jobs else None
            if record is not None:
                return JobRecord(**vars(record))  # a snapshot
        # Run by another process, or recorded by one and not yet taken up: the store has it.
        stored = self.store.get(job_id)
        if stored is None:
            raise JobNotFoundError(f"job {job_id!r} does not exist", job_id=job_id)
        return stored

    def list(self, model: str | None = None, status: str | None = None) -> list[JobRecord]:
        with self._lock:
            records = {
                job_id: JobRecord(**vars(record))
                for job_id, record in (self._jobs.items() if self.runs_jobs else ())
            }
        for stored in self.store.all():  # those this process does not (yet) run
            records.setdefault(stored.id, stored)
        return sorted(
            (
                r
                for r in records.values()
                if (model is None or r.model == model) and (status is None or r.status == status)
            ),
            key=lambda r: r.created_at,
        )

    def wait(self, job_id: str, timeout: float | None = None) -> JobRecord:
        """Block until the job has finished and its worker is cleaned up (its directory
        removed), or ``timeout``; return its snapshot."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._changed:
                if job_id in self._jobs and self.runs_jobs:
                    self._changed.wait_for(
                        lambda: self._jobs[job_id].finished and job_id not in self._running,
                        None if deadline is None else max(0.0, deadline - time.monotonic()),
                    )
                    break
            record = self.get(job_id)  # another process runs it (or will): its store row
            if record.finished or (deadline is not None and time.monotonic() >= deadline):
                return record
            time.sleep(ADOPT_SECONDS / 2)
        return self.get(job_id)

    def job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def new_job_id(self) -> str:
        return secrets.token_hex(8)

    def creating(self, model: str) -> bool:
        """Whether an unfinished job (of any process on this data dir) is creating ``model``."""
        with self._lock:
            if any(
                r.model == model and r.create_model and not r.finished for r in self._jobs.values()
            ):
                return True
        return any(r.model == model and r.create_model for r in self.store.unfinished())

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
            self.store.save(record)  # no runner until one claims it
            if not self.runs_jobs:  # the process that runs jobs takes it up (_adopt)
                return self.get(job_id)
            self._jobs[job_id] = record
            self._queue.append(job_id)
            self._schedule()
            return self.get(job_id)

    def cancel(self, job_id: str) -> JobRecord:
        with self._lock:
            record = self._jobs.get(job_id) if self.runs_jobs else None
        if record is None:
            return self._cancel_elsewhere(job_id)
        with self._lock:
            if record.finished:
                raise _ended(record)
            if record.status == "queued":
                if job_id in self._queue:  # not when it was requeued by a stopping service
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

    def _cancel_elsewhere(self, job_id: str) -> JobRecord:
        """Cancel a job this process does not run: in the store while it is queued, else by
        asking the process that runs it (within a second or two)."""
        record = self.get(job_id)
        if record.finished:
            raise _ended(record)
        if self.store.cancel_queued(job_id, utc_now()):
            files.discard(self.job_dir(job_id))
            return self.get(job_id)
        self.store.request_cancel(job_id)
        return self.wait(job_id, timeout=CANCEL_GRACE_SECONDS + 4 * ADOPT_SECONDS + 5.0)

    # -- internals ------------------------------------------------------------------------
    def _runs_surely(self) -> bool:
        """Whether this process is surely still the runner (asked before acts only the runner
        may do: claiming a job, publishing one)."""
        return self.runs_jobs and (self._election is None or self._election.held())

    def _still_runs(self, job_id: str) -> bool:
        """Whether this process surely still runs this job: the runner, and the row its own."""
        if not self._runs_surely():
            return False
        try:
            return self.store.runner_of(job_id) == self.runner
        except SQLAlchemyError:
            return True  # out of reach: the lease (held) is the fence; publishing retries

    def _schedule(self) -> None:
        if not self.runs_jobs:
            return
        while not self._closed and self._queue and len(self._running) < self.max_running:
            job_id = self._queue.popleft()
            try:
                self._start(job_id)
            except Exception:  # the store or the volume: the job stays queued in the store,
                logger.exception("job %s could not be started", job_id)  # adopted again
                return

    def _start(self, job_id: str) -> None:
        record = self._jobs[job_id]
        if record.status != "queued" or job_id in self._running:
            return  # a stale entry: started already, or ended
        if not (self._runs_surely() and self.store.claim(job_id, self.runner)):
            # Cancelled by another process since it was queued here (or asked to be, while it
            # ran before it went back to the queue), or another runner has it now: its files
            # go only with a cancelled row (another runner may be training in them).
            if job_id in self.store.cancel_requests():
                self.store.cancel_queued(job_id, utc_now())
            stored = self.store.get(job_id)
            if stored is not None:
                self._jobs[job_id] = stored
                if stored.finished:
                    files.discard(self.job_dir(job_id))
            self._changed.notify_all()
            return
        events = _context.Queue()
        cancel = _context.Event()
        suspend = _context.Event()
        process = _context.Process(
            target=run_job,
            args=(
                record.spec,
                events,
                cancel,
                suspend,
                self.device,
                self.threads,
                self.niceness,
                os.getpid(),  # the worker stops (saving its state) when this process is gone
            ),
            name=f"seqlab-job-{job_id}",
            daemon=True,
        )
        process.start()
        # Before anything else: a service killed from here on leaves a worker to wait for.
        files.claim(self.job_dir(job_id), Owner.of_process(process.pid))
        watcher = threading.Thread(
            target=self._watch, args=(job_id,), name=f"watch-{job_id}", daemon=True
        )
        self._running[job_id] = _Running(process, cancel, suspend, events, watcher)
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
            if running.deposed:
                continue  # a killed worker's last words: the job is another run's now
            if isinstance(event, Finished | Failed | Cancelled | Suspended):
                terminal = event
            else:
                try:
                    self._apply(job_id, event)
                except Exception:  # the job goes on; the record is saved whole next time
                    logger.exception("job %s: recording an event failed", job_id)
        running.process.join(5)
        self._conclude(job_id, running, terminal)

    def _apply(self, job_id: str, event: WorkerEvent) -> None:
        with self._lock:
            record = self._jobs[job_id]
            history = record.metrics.setdefault("history", {"epochs": [], "steps": []})
            if isinstance(event, Started | Progress) and record.status == "starting":
                record.status = "running"  # the worker has loaded and reported
            if isinstance(event, Started):
                # The history is the training state's: what the last attempt reported past it
                # is done again, and what its service never stored (a kill) is back.
                speeds = {s["step"]: s.get("tokens_per_second") for s in history["steps"]}
                history["steps"] = [
                    {**entry, "tokens_per_second": speeds.get(entry["step"])}
                    for entry in event.steps
                ]
                history["epochs"] = list(event.epochs)
                if record.restarts > 0:
                    record.resumed_from_step = event.step
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
        if running.deposed:  # the new runner requeues it and resumes from its saved state
            with self._lock:
                if self._running.get(job_id) is running:  # not a new worker of the job
                    del self._running[job_id]
                self._changed.notify_all()
            return
        try:
            if isinstance(terminal, Finished):
                self._publish(record, terminal)
            elif running.cancel_requested:  # Cancelled, or killed after the grace
                self._finish(record, "cancelled")
            elif isinstance(terminal, Failed):
                logger.error("job %s failed: %s", job_id, terminal.traceback)
                self._finish(record, "failed", error=terminal.error)
            elif isinstance(terminal, Suspended):  # stopped cleanly: not the job's fault
                who = "the service stopped" if self._closed else "its worker was stopped (SIGTERM)"
                self._requeue(record, f"{who} (its state was saved at step {terminal.step})")
            elif self._closed:  # stopped by close() (resume: false), or killed after its grace
                self._interrupted(record, "the service stopped")
            else:
                code = running.process.exitcode
                how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                self._interrupted(record, f"the worker process died ({how})")
        finally:
            with self._lock:
                if self._running.get(job_id) is running:  # not a new worker of the job
                    del self._running[job_id]
                if record.finished and not running.deposed:
                    files.discard(self.job_dir(job_id))
                self._changed.notify_all()  # wait() also waits for this clean-up
                self._schedule()

    def _interrupted(self, record: JobRecord, reason: str) -> None:
        """Requeue a job whose run was cut short (to resume from its saved state), or fail it
        when it may not resume."""
        job_dir = self.job_dir(record.id)
        if not record.spec.resume:
            self._finish(record, "failed", error=f"interrupted: {reason}")
        elif not files.is_prepared(job_dir):
            self._finish(record, "failed", error=f"interrupted: {reason}; its data is missing")
        elif record.interruptions >= self.max_interruptions:
            self._finish(
                record,
                "failed",
                error=f"interrupted {_times(record.interruptions + 1)}, at last: {reason}",
            )
        else:
            record.interruptions += 1
            self._requeue(record, reason)
            return
        files.discard(job_dir)

    def _requeue(self, record: JobRecord, reason: str) -> None:
        with self._lock:
            record.status = "queued"
            record.worker_pid = None
            record.restarts += 1
            record.interrupted = reason
            self._touch(record)
            if not self._closed and record.id not in self._queue:
                self._queue.append(record.id)

    def _publish(self, record: JobRecord, finished: Finished) -> None:
        for attempt in range(PUBLISH_ATTEMPTS):
            try:
                if attempt > 0 and self._published_already(record):
                    return  # the last try did publish: only its answer was lost
                if not self._still_runs(record.id):  # another runner has the job now
                    logger.error("job %s: not published, another process runs it", record.id)
                    running = self._running.get(record.id)
                    if running is not None:
                        running.deposed = True
                    return
                loaded = publish_run(
                    self.registry,
                    record.spec,
                    finished.result,
                    record.data,
                    kind="train",
                    job_id=record.id,
                )
                break
            except OperationalError:  # the database out of reach: the checkpoint waits
                logger.warning("job %s: publishing failed, trying again", record.id, exc_info=True)
                time.sleep(min(2.0**attempt, 10.0))
            except Exception as error:  # the model was deleted or its name taken meanwhile
                self._finish(record, "failed", error=f"publishing failed: {error}")
                return
        else:
            self._finish(record, "failed", error="publishing failed: the database is out of reach")
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
            try:
                saved = self.store.save(record, self.runner)
            except SQLAlchemyError:  # out of reach: kept here, saved whole with the next change
                logger.warning("job %s: its record could not be saved", record.id, exc_info=True)
                saved = True
            if not saved:  # another runner took the job over: its worker here must stop
                logger.error("job %s is run by another process now: stopping here", record.id)
                running = self._running.get(record.id)
                if running is not None and not running.deposed:
                    running.deposed = True
                    running.process.kill()
            self._changed.notify_all()


def _ended(record: JobRecord) -> ConflictError:
    """The 409 for cancelling a job that has already ended."""
    if record.status == "cancelled":
        return ConflictError(f"job {record.id!r} was already cancelled", job_id=record.id)
    return ConflictError(
        f"job {record.id!r} has already ended: it {record.status}", job_id=record.id
    )


def _times(count: int) -> str:
    return "1 time" if count == 1 else f"{count} times"
