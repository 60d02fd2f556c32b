"""Everything one app instance owns, created by ``create_app`` and started in its lifespan."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Literal, TypeVar

import anyio
import torch
from sqlalchemy.exc import OperationalError

from app.admission import Admission, Gate
from app.batching import Batcher
from app.corpora import CorpusStore
from app.database import Database, redacted, schema_revision
from app.demo import ensure_lesson_model, ensure_xiyouji_job
from app.errors import storage_error
from app.jobs.election import DatabaseElection, FileElection, RunnerElection
from app.jobs.manager import JobManager
from app.jobs.store import JobStore
from app.metrics import Metrics
from app.notifications import RegistryListener
from app.registry import ModelRegistry
from app.segmentation import SegmentationPool
from app.settings import Settings
from app.tokenizers import TokenizerCache
from models.device import resolve_device

logger = logging.getLogger("seqlab")
WorkKind = Literal["inference", "segmentation", "upload"]
STORAGE_CHECK_SECONDS = 2.0  # /ready probes the data dir with a write at most this often
T = TypeVar("T")


def _inference(function: Callable[[], T]) -> T:
    with torch.inference_mode():
        return function()


class ServiceState:
    """Settings, device, tokenizers, registry, metrics, and the start-up progress."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Resolved now, so a wrong SEQLAB_DEVICE fails at start-up rather than per request.
        self.device = resolve_device(settings.device)
        layout = settings.layout
        layout.root.mkdir(parents=True, exist_ok=True)
        self.tokenizers = TokenizerCache(layout.jieba_cache, settings.tokenizer_cache_size)
        self.segmentation = SegmentationPool(settings.segmentation_processes, layout.jieba_cache)
        # One pool of connections for the registry, corpora and jobs (connected on first use).
        self.database = Database(layout.database)
        self.registry = ModelRegistry(
            layout,
            self.device,
            self.tokenizers,
            settings.loaded_versions_per_model,
            memory_budget=settings.model_memory,
            database=self.database,
        )
        self.corpora = CorpusStore(layout.corpora, self.database)
        self.listener: RegistryListener | None = None
        self.schema_revision: str | None = None
        self.jobs = JobManager(
            layout.jobs,
            JobStore(self.database),
            self.registry,
            device=str(self.device),
            max_running=settings.max_running_jobs,
            threads=settings.job_threads,
            max_interruptions=settings.job_max_interruptions,
            niceness=settings.job_niceness,
        )
        self.metrics = Metrics(self.registry, small_in_flight=lambda: self.small_requests.active)
        self.batcher = (
            Batcher(
                self.run,
                wait_seconds=settings.batch_wait_ms / 1000,
                max_tokens=settings.batch_max_tokens,
                max_waiting=max(1, settings.max_queued_inference),
                observe=lambda operation, size: self.metrics.batch_sizes.labels(operation).observe(
                    size
                ),
            )
            if settings.batch_max_tokens > 0
            else None
        )
        self.jieba_ready = False
        self.registry_ready = False
        self.start_error: str | None = None
        self.startup_seconds: float | None = None
        self._storage_checked_at = -STORAGE_CHECK_SECONDS
        self._storage_problem: str | None = None
        self._admissions: dict[str, Admission] = {}
        self.small_requests = Gate(
            "small",
            settings.max_small_requests,
            on_shed=lambda kind, reason: self.metrics.shed.labels(kind, reason).inc(),
        )
        self._starter: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def ready(self) -> bool:
        return self.jieba_ready and self.registry_ready

    def storage_problem(self) -> str | None:
        """Why the data directory cannot take a write now (full, read-only), or None.

        A real write (a small file, fsynced, removed), at most every few seconds: permission
        bits cannot tell a read-only mount or a full disk, nor anything for root.
        """
        now = time.monotonic()
        if now - self._storage_checked_at < STORAGE_CHECK_SECONDS:
            return self._storage_problem
        self._storage_checked_at = now
        probe = self.settings.layout.root / f".write-probe-{os.getpid()}"
        try:
            with open(probe, "wb") as handle:
                handle.write(b"seqlab")
                handle.flush()
                os.fsync(handle.fileno())
            self._storage_problem = None
        except OSError as error:
            storage = storage_error(error)
            self._storage_problem = storage.detail if storage else f"{error}"
        finally:
            with contextlib.suppress(OSError):
                probe.unlink(missing_ok=True)
        return self._storage_problem

    def start_in_background(self) -> None:
        self._starter = threading.Thread(target=self._start, name="seqlab-start", daemon=True)
        self._starter.start()

    def wait_started(self, timeout: float | None = None) -> None:
        if self._starter is not None:
            self._starter.join(timeout)

    def _start(self) -> None:
        began = time.perf_counter()
        try:
            self.tokenizers.warm()
            self.jieba_ready = True
            self._wait_for_database(self._open_storage)
            if self.database.is_postgresql:  # replicas' changes, at once (registry.sync polls too)
                self.listener = RegistryListener(self.database.url, self._registry_changed)
                self.listener.start()
            if self.settings.create_demo_model:
                ensure_lesson_model(self.registry, self.tokenizers, self.settings)
            self.jobs.start(self._runner_election())
            # What start-up loaded (jieba's dictionary, torch, a demo model: ~220k objects) stays
            # for the process's life: out of the collector's sight, a full collection takes
            # microseconds instead of ~100 ms, a pause every request in flight would wait out.
            gc.collect()  # what is garbage now must not be frozen with the rest
            gc.freeze()
            self.registry_ready = True
            self.segmentation.start()  # its workers warm up after /ready, in the background
            if self.settings.registry_sync_seconds > 0:
                threading.Thread(
                    target=self._sync_registry, name="seqlab-sync", daemon=True
                ).start()
            self.startup_seconds = time.perf_counter() - began
            logger.info(
                "ready in %.2fs: %d model(s) on %s",
                self.startup_seconds,
                len(self.registry),
                self.device,
            )
            self._preload()
            # Queued by the process that runs jobs, so several on one data dir queue it once.
            if self.settings.train_demo_model and self.jobs.runs_jobs:
                self._train_demo_model()
        except Exception as error:  # reported by /ready; the process stays up for diagnosis
            logger.exception("start-up failed")
            self.start_error = f"{type(error).__name__}: {error}"

    def _preload(self) -> None:
        """Load the most used models after /ready said yes: until then, they load on use."""
        began = time.perf_counter()
        preloaded = self.registry.preload(self.settings.preload_models)
        if preloaded:
            logger.info(
                "preloaded %s in %.2fs (%d bytes of weights on %s)",
                ", ".join(preloaded),
                time.perf_counter() - began,
                self.registry.memory_used(),
                self.device,
            )

    def _train_demo_model(self) -> None:
        """Queue the demo LM's job once ready (segmenting its sample takes a second)."""
        try:
            ensure_xiyouji_job(
                self.registry,
                self.jobs,
                self.tokenizers,
                self.corpora,
                self.settings,
                self.segmentation,
            )
        except Exception:  # the service works without its demo; say why it has none
            logger.exception("could not queue the demo model's training")

    def _open_storage(self) -> None:
        self.database.migrate()
        self.schema_revision = schema_revision(self.database)
        self.registry.load()

    def _wait_for_database(self, step: Callable[[], None]) -> None:
        """Run ``step``, again while the database is out of reach (a replica may start before
        PostgreSQL does, or find its connections all taken): /ready says what it waits for."""
        delay = 0.5
        while True:
            try:
                step()
            except OperationalError as error:
                if self._stopping.is_set():
                    raise
                reason = str(error.orig).splitlines()[0] if error.orig else str(error)
                self.start_error = f"waiting for the database ({redacted(self.database.url)}): "
                self.start_error += reason
                logger.warning("%s; trying again in %.1fs", self.start_error, delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, 5.0)
                continue
            self.start_error = None
            return

    def _runner_election(self) -> RunnerElection | None:
        """How this process may come to run the training jobs (None: it never does)."""
        if not self.settings.run_jobs:
            return None
        if self.database.is_postgresql:  # replicas on several hosts: a lease in the database
            return DatabaseElection(self.database, self.jobs.runner)
        return FileElection(self.settings.layout.job_runner_lock)

    def _registry_changed(self, names: Iterable[str] | None) -> None:
        """Another replica published or deleted (notified): catch up with those models."""
        changes = self.registry.sync(names)
        if changes:
            logger.info("registry changed by another replica: %s", ", ".join(changes))

    def _sync_registry(self) -> None:
        """Keep up with versions that another process (``seqlab train``) publishes."""
        while not self._stopping.wait(self.settings.registry_sync_seconds):
            try:
                self.registry.flush_uses()
                changes = self.registry.sync()
            except Exception:  # a damaged checkpoint must not stop the service
                logger.exception("registry sync failed")
                continue
            if changes:
                logger.info("registry changed on disk: %s", ", ".join(changes))

    def admission(self, kind: WorkKind) -> Admission:
        """The bounded queue of one class of work (made on first use, in the event loop)."""
        admission = self._admissions.get(kind)
        if admission is None:
            settings = self.settings
            # With segmentation workers, one large /tokenize more than segmentation_threads:
            # its chunks wait in the workers' queue while this process answers the one before.
            pooled = 1 if self.segmentation.processes else 0
            running, queued = {
                "inference": (settings.inference_threads, settings.max_queued_inference),
                "segmentation": (
                    settings.segmentation_threads + pooled,
                    settings.max_queued_segmentation,
                ),
                "upload": (settings.upload_threads, settings.max_queued_uploads),
            }[kind]
            admission = Admission(
                kind,
                running,
                queued,
                settings.queue_deadline_seconds,
                on_shed=lambda kind, reason: self.metrics.shed.labels(kind, reason).inc(),
            )
            self._admissions[kind] = admission
        return admission

    async def run(
        self,
        function: Callable[..., T],
        *args: object,
        small: bool = False,
        kind: WorkKind = "inference",
    ) -> T:
        """Run torch or jieba work in inference mode, off the event loop unless ``small``.

        ``small`` is the router's bounded estimate that the work takes microseconds (a few
        embedding rows, a forward pass over a handful of steps): then the hop to a worker
        thread, and the GIL contention of several threads, would cost more than the work
        (measured in docs/benchmarks.md). Everything else runs in a thread.
        """
        if small:
            return _inference(partial(function, *args))
        # A bounded queue per class of work: past it, a 429 now rather than an answer late.
        async with self.admission(kind).slot():
            return await anyio.to_thread.run_sync(_inference, partial(function, *args))

    def close(self) -> None:
        self._stopping.set()
        self.wait_started()
        self.segmentation.close()
        if self.listener is not None:
            self.listener.close()
        self.jobs.close()
        self.registry.close()  # and the database the stores share
