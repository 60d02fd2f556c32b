"""Publishing a finished training run as a model version: one path for jobs and the CLI."""

from __future__ import annotations

from typing import Any

from app.jobs import files
from app.jobs.protocol import DataSummary, JobSpec
from app.registry import LoadedModel, ModelRegistry
from models.training import TrainingResult


def run_metrics(result: TrainingResult, data: DataSummary) -> dict[str, Any]:
    """The metrics a published version carries: what the run reached beside its baseline."""
    return {
        "train_loss": result.train_loss,
        "val_loss": result.val_loss,
        "val_perplexity": result.val_perplexity,
        "tokens_per_second": result.tokens_per_second,
        "stop_reason": result.stop_reason,
        "unigram_perplexity": data.unigram_perplexity,
        "bigram_perplexity": data.bigram_perplexity,
    }


def published_run_metrics(version_metrics: dict[str, Any]) -> dict[str, Any]:
    """A published version's metrics as its job's record holds them (:func:`run_metrics`;
    :func:`publish_run` adds only the ``job_id``)."""
    return {key: value for key, value in version_metrics.items() if key != "job_id"}


def publish_run(
    registry: ModelRegistry,
    spec: JobSpec,
    result: TrainingResult,
    data: DataSummary,
    *,
    kind: str,
    job_id: str | None = None,
) -> LoadedModel:
    """Move the run's checkpoint into the registry as the model's next version.

    ``kind`` says where the run came from (``train``: a job of the service, ``cli``:
    ``seqlab train``); ``job_id`` names the job that produced it, when there is one.
    """
    metrics = run_metrics(result, data)
    source: dict[str, Any] = {"kind": kind, "base_version": spec.base_version}
    if job_id is not None:
        metrics["job_id"] = job_id
        source["job_id"] = job_id
    return registry.publish_directory(
        spec.model,
        files.checkpoint_dir(spec.job_dir),
        create=spec.create,
        metrics=metrics,
        source=source,
    )
