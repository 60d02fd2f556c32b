"""Settings from the environment (prefix ``SEQLAB_``). No other module reads ``os.environ``."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.layout import DataLayout


class Limits(BaseModel):
    """What one request may ask for. Published in ``GET /info``. Over a limit on the size of
    data (bodies, texts, characters, tensors, vocabularies) → 413 naming it; a value over its
    limit (k, max_tokens, a layer's size, seq_len) → 422 naming the field and the limit.

    Set each from the environment with a double underscore, e.g. ``SEQLAB_LIMITS__MAX_TEXTS=128``.
    """

    max_body_bytes: int = Field(1_048_576, ge=1024, description="Bytes of one request body.")
    max_texts: int = Field(64, ge=1, description="Texts in one request.")
    max_text_chars: int = Field(10_000, ge=1, description="Characters of one text.")
    max_tokens_per_forward: int = Field(
        16_384, ge=1, description="Tokens (batch × sequence) in one forward pass."
    )
    max_tensor_elements: int = Field(
        262_144,
        ge=1,
        description="Elements of a tensor sent or returned (input, h0, output, weights).",
    )
    max_vocab_size: int = Field(50_000, ge=2, description="Tokens in a model's vocabulary.")
    max_embedding_dim: int = Field(1024, ge=1, description="A model's embedding size.")
    max_hidden_size: int = Field(1024, ge=1, description="A recurrent layer's hidden size.")
    max_num_layers: int = Field(4, ge=1, description="Recurrent layers.")
    max_seq_len: int = Field(1024, ge=1, description="Window length of a dataset preview.")
    max_generate_tokens: int = Field(512, ge=1, description="Tokens one /generate may produce.")
    max_top_k: int = Field(100, ge=1, description="Candidates one /predict may return.")
    max_user_words: int = Field(1000, ge=0, description="User words of one tokenizer.")
    max_training_chars: int = Field(
        2_000_000, ge=1, description="Characters of the texts that build or train a model."
    )
    max_corpus_bytes: int = Field(
        16_777_216, ge=1, description="Bytes of one uploaded corpus (UTF-8 text)."
    )
    max_binary_body_bytes: int = Field(
        4_194_304,
        ge=1024,
        description="Bytes of one application/vnd.safetensors request body: room for input, "
        "h0 and c0 at max_tensor_elements float32 each (as JSON they would be ~16 MB, 15× "
        "what max_body_bytes allows).",
    )
    max_import_bytes: int = Field(
        2_147_483_648,
        ge=1024,
        description="Bytes of one model archive sent to POST /models/import (written to the "
        "data dir as it arrives, never held in memory).",
    )


class ConnectionLimits(BaseModel):
    """What one connection may send before its request reaches the app, and how many may be
    open (``seqlab serve`` applies them; see docs/operations.md). Over the header limits → 431,
    a URL over its limit → 414, headers that do not arrive in time → 408, past the connections
    → 503 at once; each as problem JSON, and the connection is closed.

    Set each from the environment, e.g. ``SEQLAB_CONNECTIONS__MAX_CONNECTIONS=256``.
    """

    max_connections: int = Field(
        512,
        ge=1,
        description="Open connections at once (a container's default is 1,024 file descriptors).",
    )
    max_header_bytes: int = Field(
        16_384, ge=1024, description="Bytes of a request's header fields (h11's and Node's limit)."
    )
    max_headers: int = Field(100, ge=8, description="Header fields of one request.")
    max_url_bytes: int = Field(8_192, ge=256, description="Bytes of the request line's URL.")
    header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="From a connection's (or a request's) first byte to its last header; a "
        "client that connects and sends nothing is cut after it too.",
    )


class Settings(BaseSettings):
    """Where the service keeps its data, which device it computes on, who may change state."""

    model_config = SettingsConfigDict(
        env_prefix="SEQLAB_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Field(Path("data"), description="Registry, weights and caches live here.")
    database_url: str | None = Field(
        None,
        description="Unset: the SQLite file in data_dir. postgresql://user:password@host/name: "
        "the model index, jobs and corpora metadata in PostgreSQL, for several replicas that "
        "share data_dir (docs/deploy.md).",
    )
    run_jobs: bool = Field(
        True,
        description="Whether this process may run training jobs. Among those that may, one at a "
        "time does (and another takes over when it dies); false: it serves and records jobs "
        "for the one that runs them.",
    )
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    api_key: SecretStr | None = Field(
        None, description="When set, state-changing routes need 'Authorization: Bearer <key>'."
    )
    protect_reads: bool = Field(False, description="Also require the API key for reads.")
    create_demo_model: bool = Field(
        True,
        description="Create 'lesson-rnn' (the lesson's layer shapes, untrained) on an empty "
        "registry.",
    )
    train_demo_model: bool = Field(
        True,
        description="On first start, train 'xiyouji' from the bundled 西游记 sample as a "
        "visible job (about a minute on two CPU cores).",
    )
    demo_training_seconds: float = Field(
        60.0, gt=0, description="The demo training job's max_seconds."
    )
    loaded_versions_per_model: int = Field(
        3, ge=1, description="Older versions kept loaded besides the latest (pinned requests)."
    )
    model_memory: int = Field(
        0,
        ge=0,
        description="Bytes of model weights kept loaded on the device (GPU memory on a GPU); "
        "past it, the least recently used versions are unloaded and read from disk again when "
        "next asked for. 0 = no bound.",
    )
    preload_models: int = Field(
        8,
        ge=0,
        description="At start-up, load the latest version of this many of the most used models "
        "(in the background: /ready does not wait); one that does not fit beside the others in "
        "model_memory is left to load on first use.",
    )
    tokenizer_cache_size: int = Field(16, ge=1, description="Tokenizer configurations kept ready.")
    inference_threads: int = Field(8, ge=1, description="Concurrent torch computations.")
    registry_sync_seconds: float = Field(
        2.0,
        ge=0,
        description="How often to pick up versions published by another process on the same "
        "data dir (seqlab train, the other SEQLAB_WORKERS) and to record the models' use counts "
        "(which preloading reads); 0 = never: then a model made in one worker stays unknown "
        "to the others.",
    )
    max_queued_inference: int = Field(
        64,
        ge=0,
        description="Inference requests that may wait for one of the inference_threads, and "
        "for one model version's batched pass; past that, 429 with Retry-After.",
    )
    segmentation_threads: int = Field(
        1,
        ge=1,
        description="Large /tokenize requests segmented at once: jieba is pure Python and holds "
        "the GIL, so more threads add no speed and starve the event loop (and /health).",
    )
    max_queued_segmentation: int = Field(
        16, ge=0, description="Of those, how many may wait; past that, 429 with Retry-After."
    )
    segmentation_processes: int = Field(
        0,
        ge=0,
        description="Worker processes that segment large /tokenize requests and the texts that "
        "build or train a model, so that jieba "
        "uses every core (in threads it uses one); 0 = one per core; 1 = none: segment in "
        "the request's thread. Each holds jieba's dictionary (~110 MB of RSS). With workers, "
        "one request more than segmentation_threads is segmented at once (its chunks wait in "
        "the workers' queue while the service answers the one before).",
    )
    max_small_requests: int = Field(
        32,
        ge=1,
        description="Small inference requests (bodies up to 16 KiB, answered on the event loop) "
        "in flight at once; past that, 429 at the door, so /health waits behind a bounded "
        "amount of work.",
    )
    batch_wait_ms: float = Field(
        0.0,
        ge=0,
        le=100,
        description="How long the first request of a batch waits for others to join it (/embed, "
        "/predict, /score, text-form /rnn/forward). 0: a batch is what arrived while the "
        "previous one computed, so an idle service adds no delay.",
    )
    batch_max_tokens: int = Field(
        4096,
        ge=0,
        description="Token positions in one batched forward pass; 0 turns batching off.",
    )
    upload_threads: int = Field(
        2, ge=1, description="Uploads, model creations and training submissions at once."
    )
    max_queued_uploads: int = Field(
        8, ge=0, description="Of those, how many may wait; past that, 429 with Retry-After."
    )
    queue_deadline_seconds: float = Field(
        5.0,
        gt=0,
        description="A request that waited this long without starting is refused (429), "
        "never computed late.",
    )
    body_timeout_seconds: float = Field(
        30.0, gt=0, description="A request body that stalls this long is cut with a 408."
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="seqlab serve's processes on one port and one data dir, each a whole service "
        "(its own models in memory); one of them runs the training jobs, the others record them "
        "for it, and another takes over if it dies.",
    )
    max_running_jobs: int = Field(
        1, ge=1, description="Training jobs run at once; more wait queued."
    )
    job_threads: int = Field(
        0, ge=0, description="torch threads of a training worker process; 0 = torch's default."
    )
    job_niceness: int = Field(
        10,
        ge=0,
        le=19,
        description="How much lower a training worker's CPU priority is than the service's "
        "(nice): on a shared core, requests come first and training takes the rest.",
    )
    job_max_interruptions: int = Field(
        3,
        ge=0,
        description="Times a job may be interrupted (its worker or the service killed) and "
        "resume from its last training state; one more and it fails.",
    )
    log_level: str = Field("info")
    access_log: bool = Field(
        False,
        description="uvicorn's line per request (seqlab serve, make serve, the container); "
        "off by default: it costs ~10 % of a small request.",
    )
    limits: Limits = Field(default_factory=Limits)
    connections: ConnectionLimits = Field(default_factory=ConnectionLimits)

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, url: str | None) -> str | None:
        if not url:
            return None
        from app.database import check_database_url  # SQLAlchemy: only when a URL is given

        return check_database_url(url)

    @property
    def layout(self) -> DataLayout:
        """Where each part of the state lives under ``data_dir``."""
        return DataLayout(self.data_dir, self.database_url)
