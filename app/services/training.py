"""``/train``: checking a training request, preparing its data, queueing it as a job.

Preparation happens here, in the service (a thread), so an impossible request is a 422 at
once, not a failed job later: the text is segmented with the model's tokenizer, the
vocabulary is built (new model) or applied (existing model, OOV rate reported), the id stream
is split and written to the job's directory, and the hyperparameters are checked against its
length. Running the job is :mod:`app.jobs`' part.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from app.corpora import CorpusStore
from app.errors import ConflictError, InvalidInputError, located
from app.jobs import files
from app.jobs.manager import JobManager
from app.jobs.protocol import DataSummary, JobSpec, PreparedJob
from app.jobs.store import JobRecord
from app.limits import check_limit
from app.registry import ModelRegistry
from app.schemas.training import JobInfo, JobMetrics, JobProgress, TrainRequest
from app.segmentation import SegmentationPool, tokens_of
from app.services.registry import build_from_texts
from app.settings import Limits
from app.tokenizers import TokenizerCache
from models.boundaries import Boundary, end_id, join_stream, split_texts
from models.errors import ConfigError
from models.evaluation import bigram_perplexity, unigram_perplexity
from models.seeding import fresh_seed
from models.training import TrainingConfig, check_trainable, split_ids


def training_config(request: TrainRequest) -> TrainingConfig:
    return TrainingConfig(
        seq_len=request.seq_len,
        batch_size=request.batch_size,
        epochs=request.epochs,
        lr=request.lr,
        optimizer=request.optimizer,
        weight_decay=request.weight_decay,
        clip=request.clip,
        batching=request.batching,
        stride=request.stride,
        seed=request.seed,
        patience=request.patience,
        max_steps=request.max_steps,
        max_seconds=request.max_seconds,
        log_every=request.log_every,
        precision=request.precision,
        checkpoint_every_steps=request.checkpoint_every_steps,
        checkpoint_every_seconds=request.checkpoint_every_seconds,
    )


def prepare_job(
    job_id: str,
    request: TrainRequest,
    documents: list[str],
    registry: ModelRegistry,
    tokenizers: TokenizerCache,
    limits: Limits,
    job_dir: Path,
    pool: SegmentationPool | None = None,
) -> PreparedJob:
    """Split into texts, segment, encode, split and write the data; raise a 4xx error for an
    impossible request.

    The model's boundary rule says what a text is in each document (a request's text or the
    corpus); the stream closes every text with ``<eos>`` when the model has one, and the
    held-out tail is then whole texts.
    """
    with located("body"):
        config = training_config(request)  # ConfigError → 422 naming the field
    base_version = None
    base_path = None
    if request.create is not None:
        if request.model in registry.names():
            raise ConflictError(f"model {request.model!r} already exists", model=request.model)
        create = request.create
        tokenizer_config = create.tokenizer.to_config()
        texts = _texts(documents, tokenizer_config.boundary)
        per_text, vocab, model_config = build_from_texts(
            create, texts, tokenizers, limits, location="body.create", pool=pool
        )
        # Recorded, so the initial weights of every job can be reproduced.
        model_seed = create.seed if create.seed is not None else fresh_seed()
    else:
        loaded = registry.get(request.model)
        base_version = loaded.version
        base_path = registry.path(request.model, base_version)
        tokenizer_config = loaded.tokenizer_config
        texts = _texts(documents, tokenizer_config.boundary)
        per_text = tokens_of(loaded.tokenizer, texts, pool)
        vocab = loaded.vocab
        model_config = loaded.config
        model_seed = None
    if request.dropout is not None:
        with located("body"):
            model_config = replace(model_config, dropout=request.dropout)
    per_text = [tokens for tokens in per_text if tokens]
    if not per_text:
        raise InvalidInputError(
            "the training text has no tokens once segmented", field="body.texts"
        )
    eos_id = end_id(vocab.eos_id, tokenizer_config.boundary)
    oov, total = vocab.count_oov(token for tokens in per_text for token in tokens)
    with located("body.texts" if request.texts is not None else "body.corpus_id"):
        # no <unk>: UnknownTokenError
        ids = torch.tensor(join_stream(map(vocab.encode, per_text), eos_id), dtype=torch.long)
    val_fraction = request.val_fraction
    train_ids, val_ids = split_ids(ids, val_fraction, eos_id)
    if val_fraction > 0 and len(val_ids) < 2:
        raise ConfigError(
            f"val_fraction {val_fraction} of {len(ids)} tokens leaves under 2 held-out tokens",
            field="val_fraction",
        )
    with located("body"):
        check_trainable(len(train_ids), config)
    whole_texts = eos_id is not None and len(val_ids) > 0 and int(train_ids[-1]) == eos_id
    # The bigram's first target is predicted from the <eos> before it, as the model's is.
    bigram_ids = torch.cat([train_ids[-1:], val_ids]) if eos_id is not None else val_ids
    data = DataSummary(
        tokens=len(ids),
        train_tokens=len(train_ids),
        val_tokens=len(val_ids),
        vocab_size=len(vocab),
        oov_tokens=oov,
        oov_rate=oov / total,
        unigram_perplexity=(
            unigram_perplexity(train_ids, val_ids, len(vocab)) if len(val_ids) else None
        ),
        bigram_perplexity=(
            bigram_perplexity(train_ids, bigram_ids, len(vocab)) if len(bigram_ids) >= 2 else None
        ),
        texts=len(per_text),
        val_texts=int((val_ids == eos_id).sum()) if whole_texts else None,
    )
    files.write_prepared(job_dir, train_ids, val_ids, vocab)
    spec = JobSpec(
        job_id=job_id,
        model=request.model,
        create=request.create is not None,
        model_config=model_config,
        model_seed=model_seed,
        base_version=base_version,
        base_path=base_path,
        tokenizer=tokenizer_config,
        training=config,
        job_dir=job_dir,
        resume=request.resume,
    )
    settings = request.model_dump(exclude={"texts", "create", "wait"})
    if request.create is not None:
        settings["create"] = request.create.model_dump()
    return PreparedJob(spec=spec, data=data, settings=settings)


def _texts(documents: list[str], boundary: Boundary) -> list[str]:
    return [text for document in documents for text in split_texts(document, boundary)]


def submit(
    request: TrainRequest,
    jobs: JobManager,
    registry: ModelRegistry,
    tokenizers: TokenizerCache,
    corpora: CorpusStore,
    limits: Limits,
    pool: SegmentationPool | None = None,
) -> JobRecord:
    """Check and prepare the data (422/404/409 at once; segmented on every core with
    ``pool``), then queue the job."""
    if request.texts is not None:
        check_limit(limits, "max_training_chars", sum(len(text) for text in request.texts))
        documents = list(request.texts)
    else:
        documents = [corpora.read_text(request.corpus_id or "")]
    if request.create is not None and jobs.creating(request.model):
        raise ConflictError(f"another job is already creating model {request.model!r}")
    job_id = jobs.new_job_id()
    job_dir = jobs.job_dir(job_id)
    try:
        prepared = prepare_job(
            job_id, request, documents, registry, tokenizers, limits, job_dir, pool
        )
    except BaseException:
        files.discard(job_dir)
        raise
    return jobs.submit(prepared)


def job_info(record: JobRecord) -> JobInfo:
    return JobInfo(
        job_id=record.id,
        status=record.status,  # type: ignore[arg-type]
        model=record.model,
        create=record.create_model,
        version=record.version,
        base_version=record.base_version,
        progress=JobProgress(**record.progress),
        metrics=JobMetrics(**record.metrics),
        data=record.data.to_dict(),
        settings=record.settings,
        error=record.error,
        worker_pid=record.worker_pid,
        restarts=record.restarts,
        interruptions=record.interruptions,
        interrupted=record.interrupted,
        resumed_from_step=record.resumed_from_step,
        created_at=record.created_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        links={
            "self": f"/train/{record.id}",
            "events": f"/train/{record.id}/events",
            "model": f"/models/{record.model}",
        },
    )
