"""Schemas of ``/train`` (jobs) and ``/corpora``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from app.schemas.common import ModelName, Seed, StrictModel, Text, exactly_one_of
from app.schemas.registry import ModelSpec


class TrainRequest(StrictModel):
    """Train `model` on `texts` or an uploaded `corpus_id`; with `create`, make the model first."""

    model_config = StrictModel.model_config | {
        "json_schema_extra": {
            **exactly_one_of("texts", "corpus_id"),
            "examples": [
                {
                    "model": "poems",
                    "texts": ["我爱学习自然语言处理", "我爱机器学习", "我爱自然语言处理"],
                    "create": {"embedding_dim": 16, "hidden_size": 32, "cell": "lstm"},
                    "seq_len": 3,
                    "batch_size": 2,
                    "epochs": 5,
                    "lr": 0.01,
                    "val_fraction": 0.0,
                    "wait": True,
                }
            ],
        }
    }

    model: ModelName
    texts: list[Text] | None = Field(None, min_length=1)
    corpus_id: str | None = Field(None, pattern=r"^[0-9a-f]{16}$")
    create: ModelSpec | None = Field(
        None, description="Create the model first: its architecture, as in POST /models."
    )
    seq_len: int = Field(35, ge=1, description="bptt length (stream) or window length (windows).")
    stride: int = Field(1, ge=1, description="Windows only: the step between window starts.")
    batching: Literal["stream", "windows"] = "stream"
    batch_size: int = Field(20, ge=1)
    epochs: int = Field(1, ge=1, le=10_000)
    lr: float = Field(1e-3, gt=0, le=100)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    weight_decay: float = Field(0.0, ge=0)
    clip: float | None = Field(0.25, gt=0, description="Gradient norm clipping; null for none.")
    dropout: float | None = Field(None, ge=0, lt=1, description="Override the model's dropout.")
    val_fraction: float = Field(
        0.1,
        ge=0,
        le=0.5,
        description="Held-out tail of the stream: whole texts when the model ends its texts.",
    )
    seed: Seed | None = Field(0, description="Shuffling and dropout; null for a random one.")
    max_seconds: float | None = Field(None, gt=0)
    max_steps: int | None = Field(None, ge=1)
    patience: int | None = Field(
        None, ge=1, description="Epochs without improvement before stopping."
    )
    log_every: int = Field(20, ge=1, description="Steps between progress reports.")
    checkpoint_every_steps: int | None = Field(
        None,
        ge=1,
        description="Steps between saves of the training state (weights, optimizer, random "
        "generators, data position) in the job's directory; null: by time only.",
    )
    checkpoint_every_seconds: float | None = Field(
        60.0,
        gt=0,
        description="Seconds between saves of the training state (whichever comes first); "
        "null: by steps only. Once a minute costs ~0.3 % of a WikiText-2 2×200 run.",
    )
    resume: bool = Field(
        True,
        description="After an interruption (the worker or the service killed or stopped) the "
        "job goes back to the queue and resumes from its last saved training state, ending as "
        "an uninterrupted run would; false: it fails instead.",
    )
    precision: Literal["float32", "bfloat16"] = Field(
        "float32",
        description="bfloat16 autocasts the forward pass (weights and evaluation stay float32): "
        "~15 % faster steps on a CPU with AVX-512 BF16 or a GPU, perplexity ~1 % higher at "
        "equal steps.",
    )
    wait: bool = Field(
        False,
        description="Answer when the job has finished (200) instead of 202; a job still running "
        "after 10 minutes is answered 202 as without `wait`.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> TrainRequest:
        if (self.texts is None) == (self.corpus_id is None):
            raise ValueError("give exactly one of 'texts' or 'corpus_id'")
        return self


class JobProgress(BaseModel):
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    total_steps: int = 0
    fraction: float = 0.0
    elapsed_seconds: float = 0.0
    eta_seconds: float | None = None
    loss: float | None = None


class JobMetrics(BaseModel):
    train_loss: float | None = None
    val_loss: float | None = None
    val_perplexity: float | None = None
    unigram_perplexity: float | None = Field(
        None, description="Add-one word counts of the training split, on the held-out split."
    )
    bigram_perplexity: float | None = Field(
        None,
        description="An interpolated bigram counted on the training split, on the held-out "
        "split: a model below it has learned more than which word follows which.",
    )
    tokens_per_second: float | None = None
    stop_reason: str | None = None
    history: dict[str, list[dict[str, Any]]] = Field(
        default_factory=lambda: {"epochs": [], "steps": []},
        description="Per epoch, and every `log_every` steps.",
    )


class JobInfo(BaseModel):
    job_id: str
    status: Literal["queued", "starting", "running", "succeeded", "failed", "cancelled"] = Field(
        description="starting: its worker process is loading; running: it has reported; queued "
        "again after an interruption, until it resumes."
    )
    model: str
    create: bool
    version: int | None = Field(None, description="The version this job published.")
    base_version: int | None = Field(None, description="The version training started from.")
    progress: JobProgress
    metrics: JobMetrics
    data: dict[str, Any] = Field(
        description="Tokens (with the <eos> that close texts), split sizes, vocabulary size, OOV "
        "rate, the counting baselines' perplexities, texts, and val_texts: the held-out split is "
        "the last val_texts texts (null when it is cut inside a text)."
    )
    settings: dict[str, Any] = Field(description="The hyperparameters the job runs with.")
    error: str | None = None
    worker_pid: int | None = None
    restarts: int = Field(0, description="Times the job went back to the queue to resume.")
    interruptions: int = Field(
        0,
        description="Of those, the unclean ones (its worker or the service killed); past "
        "SEQLAB_JOB_MAX_INTERRUPTIONS the job fails.",
    )
    interrupted: str | None = Field(None, description="Why the job last went back to the queue.")
    resumed_from_step: int | None = Field(
        None, description="The saved step its current run took over from (0: from the start)."
    )
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    links: dict[str, str]


class JobList(BaseModel):
    jobs: list[JobInfo]


class CorpusInfo(BaseModel):
    corpus_id: str
    filename: str | None
    bytes: int
    lines: int
    chars: int
    created_at: str


class CorpusList(BaseModel):
    corpora: list[CorpusInfo]
