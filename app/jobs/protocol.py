"""What travels between the service, a training worker and the CLI, as typed values.

A :class:`JobSpec` says everything a worker needs to train one job; it is stored with the
job record (``to_dict``) and handed to the worker process. The worker reports back through a
queue with :data:`WorkerEvent` values: the modeling core's own :class:`Progress` and
:class:`EpochRecord`, and the start and the end of the run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from models.lm import LanguageModelConfig
from models.tokenizer import TokenizerConfig
from models.training import EpochRecord, Progress, TrainingConfig, TrainingResult


@dataclass(frozen=True)
class JobSpec:
    """One training job: which model, from which weights, on which data, how."""

    job_id: str
    model: str
    create: bool  # a new model (version 1) rather than a new version of an existing one
    model_config: LanguageModelConfig
    model_seed: int | None  # new model: the seed of its initial weights (recorded, reproducible)
    base_version: int | None  # existing model: the version training starts from
    base_path: Path | None  # that version's checkpoint directory
    tokenizer: TokenizerConfig
    training: TrainingConfig
    job_dir: Path  # the prepared ids and vocabulary (see app.jobs.files)
    resume: bool = True  # after an interruption: resume from the training state, or fail

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "model": self.model,
            "create": self.create,
            "model_config": self.model_config.to_dict(),
            "model_seed": self.model_seed,
            "base_version": self.base_version,
            "base_path": str(self.base_path) if self.base_path is not None else None,
            "tokenizer": self.tokenizer.to_dict(),
            "training": self.training.to_dict(),
            "job_dir": str(self.job_dir),
            "resume": self.resume,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        return cls(
            job_id=data["job_id"],
            model=data["model"],
            create=data["create"],
            model_config=LanguageModelConfig.from_dict(data["model_config"]),
            model_seed=data["model_seed"],
            base_version=data["base_version"],
            base_path=Path(data["base_path"]) if data["base_path"] is not None else None,
            tokenizer=TokenizerConfig.from_dict(data["tokenizer"]),
            training=TrainingConfig(**data["training"]),
            job_dir=Path(data["job_dir"]),
            resume=data.get("resume", True),  # records made before resuming existed
        )


@dataclass(frozen=True)
class DataSummary:
    """What preparation found in the training text; shown to the user as the job's ``data``."""

    tokens: int
    train_tokens: int
    val_tokens: int
    vocab_size: int
    oov_tokens: int
    oov_rate: float
    unigram_perplexity: float | None  # of the held-out split, counted on the training split
    bigram_perplexity: float | None = None  # interpolated; None in records made before it
    texts: int | None = None  # texts the boundary rule found; None in records made before it
    val_texts: int | None = None  # the last texts, held out whole; None: a cut inside a text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataSummary:
        known = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass(frozen=True)
class PreparedJob:
    """A checked, prepared request: the spec for the worker, the summary and settings for
    the user (``settings`` is the request as given, for the record)."""

    spec: JobSpec
    data: DataSummary
    settings: dict[str, Any]


@dataclass(frozen=True)
class Started:
    """The worker process is up and about to train, from ``step`` (0 unless it resumes a run
    from its training state), with that state's history: the ``epochs`` ended and the
    ``steps`` reported so far (the record's history is rebuilt from them: what the last
    attempt reported past the state is done again, what its service never stored is back)."""

    step: int = 0
    epochs: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Finished:
    """Training ended (completed or stopped by a cap) and the checkpoint is written."""

    result: TrainingResult


@dataclass(frozen=True)
class Failed:
    error: str  # one line for the user
    traceback: str  # for the service's log


@dataclass(frozen=True)
class Cancelled:
    """The worker saw the cancel flag and stopped without writing a checkpoint."""


@dataclass(frozen=True)
class Suspended:
    """The worker was asked to stop for now (the service is stopping): it saved its training
    state at ``step``, and the job resumes from there."""

    step: int


WorkerEvent = Started | Progress | EpochRecord | Finished | Failed | Cancelled | Suspended
TerminalEvent = Finished | Failed | Cancelled | Suspended
