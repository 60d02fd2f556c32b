"""The demo models a fresh data directory starts with, so the docs' examples answer.

* ``lesson-rnn``: the lesson's layer shapes (embedding 4, ``nn.RNN`` 4 → 5, 2 layers, tanh),
  untrained, from ``app/samples/lesson.txt``; created at once. The docs' ``/embed``,
  ``/rnn/forward`` and ``/dataset/preview`` examples use it.
* ``xiyouji``: a real next-word model (LSTM 128/256) trained on the first 15 chapters of
  西游记 (``app/samples/xiyouji.txt``, see ``app/samples/README.md``) by an ordinary training
  job that the service submits on first start: visible in ``GET /train``, about a minute on
  two CPU cores. The docs' ``/predict``, ``/generate`` and ``/score`` examples use it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from app.corpora import CorpusStore
from app.errors import ConflictError
from app.jobs.manager import JobManager
from app.registry import ModelRegistry
from app.schemas.registry import CreateModelRequest, ModelSpec, VocabSettings
from app.schemas.tokenize import TokenizerSettings
from app.schemas.training import TrainRequest
from app.segmentation import SegmentationPool
from app.services import training
from app.services.registry import create_model
from app.settings import Settings
from app.tokenizers import TokenizerCache

logger = logging.getLogger("seqlab")
SAMPLES = Path(__file__).parent / "samples"
LESSON_SAMPLE = SAMPLES / "lesson.txt"
XIYOUJI_SAMPLE = SAMPLES / "xiyouji.txt"
LESSON_NAME = "lesson-rnn"
XIYOUJI_NAME = "xiyouji"


def ensure_lesson_model(
    registry: ModelRegistry, tokenizers: TokenizerCache, settings: Settings
) -> None:
    """On an empty registry, build ``lesson-rnn``: the lesson's layer shapes, untrained."""
    if len(registry) > 0:
        return
    texts = [line for line in LESSON_SAMPLE.read_text(encoding="utf-8").splitlines() if line]
    request = CreateModelRequest(
        name=LESSON_NAME,
        texts=texts,
        # As the lesson reads a text: from a zero state, no text ends marked.
        tokenizer=TokenizerSettings(boundary="none"),
        vocab=VocabSettings(specials=["<pad>", "<unk>"]),
        embedding_dim=4,
        hidden_size=5,
        num_layers=2,
        cell="rnn",
        nonlinearity="tanh",
        seed=0,
    )
    try:
        loaded = create_model(request, registry, tokenizers, settings.limits)
    except ConflictError:  # another process on this data dir (SEQLAB_WORKERS) made it first
        logger.info("%s was created by another process", LESSON_NAME)
        return
    logger.info("created %s: %d tokens in its vocabulary", loaded.label, len(loaded.vocab))


def xiyouji_request(max_seconds: float) -> TrainRequest:
    """The demo language model's training job."""
    return TrainRequest(
        model=XIYOUJI_NAME,
        texts=[XIYOUJI_SAMPLE.read_text(encoding="utf-8")],
        create=ModelSpec(
            vocab=VocabSettings(order="frequency", min_freq=2),
            embedding_dim=128,
            hidden_size=256,
            cell="lstm",
            dropout=0.2,
            seed=0,
        ),
        seq_len=35,
        batch_size=32,
        epochs=12,
        lr=0.003,
        patience=2,
        val_fraction=0.05,
        max_seconds=max_seconds,
        seed=0,
        log_every=20,
    )


def ensure_xiyouji_job(
    registry: ModelRegistry,
    jobs: JobManager,
    tokenizers: TokenizerCache,
    corpora: CorpusStore,
    settings: Settings,
    pool: SegmentationPool | None = None,
) -> None:
    """Queue the demo model's training on a registry that holds at most the lesson model,
    once: a job for it that already exists (running, failed, cancelled) is left as it is."""
    if set(registry.names()) - {LESSON_NAME} or jobs.list(XIYOUJI_NAME, None):
        return
    request = xiyouji_request(settings.demo_training_seconds)
    record = training.submit(request, jobs, registry, tokenizers, corpora, settings.limits, pool)
    logger.info("training the demo model %s: job %s", XIYOUJI_NAME, record.id)
