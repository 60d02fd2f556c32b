"""kill -9 the service during a job, at several moments: after a restart the job resumes and
finishes with the weights of an uninterrupted run, and no version is half-published.

Each case runs a real service process (uvicorn), kills it (alone, leaving its training worker
behind, or with its whole process group, as a dying container), starts a new one on the same
data dir and waits for the job. The reference is the same job run once without a kill.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from safetensors.torch import load_file

from app.layout import DataLayout
from tests.app.service_process import REPO_ROOT, ServiceProcess

pytestmark = pytest.mark.slow

SAMPLE = REPO_ROOT / "app" / "samples" / "xiyouji.txt"
MODEL = "resumed"
JOB: dict[str, Any] = {
    "model": MODEL,
    "create": {"embedding_dim": 64, "hidden_size": 128, "cell": "lstm", "dropout": 0.1, "seed": 5},
    "seq_len": 16,
    "batch_size": 16,
    "epochs": 2,
    "lr": 0.003,
    "val_fraction": 0.1,
    "seed": 3,
    "log_every": 10,
    "checkpoint_every_steps": 25,
}
JOB_TIMEOUT = 180.0


def _texts() -> list[str]:
    lines = [line for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    return lines[:120]  # ~13k tokens: ~150 steps an epoch


def _submit(service: ServiceProcess) -> str:
    answer = httpx.post(f"{service.base}/train", json={**JOB, "texts": _texts()}, timeout=60)
    assert answer.status_code == 202, answer.text
    return answer.json()["job_id"]


def _job(service: ServiceProcess, job_id: str) -> dict[str, Any]:
    return httpx.get(f"{service.base}/train/{job_id}", timeout=30).json()


def _wait(
    service: ServiceProcess, job_id: str, predicate: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_TIMEOUT
    while time.monotonic() < deadline:
        job = _job(service, job_id)
        if predicate(job):
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} never got there: {_job(service, job_id)}")


def _finished(job: dict[str, Any]) -> bool:
    return job["status"] in ("succeeded", "failed", "cancelled")


def _weights(data_dir: Path, version: int) -> dict[str, torch.Tensor]:
    return load_file(DataLayout(data_dir).models / MODEL / f"v{version}" / "model.safetensors")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The job run without a kill: its record and its published weights."""
    data_dir = tmp_path_factory.mktemp("reference") / "data"
    service = ServiceProcess(data_dir).start()
    try:
        job_id = _submit(service)
        job = _wait(service, job_id, _finished)
        assert job["status"] == "succeeded", job["error"]
        yield {"job": job, "weights": _weights(data_dir, job["version"])}
    finally:
        service.stop()


def _poll_path(found: Callable[[], bool], timeout: float = JOB_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not found():
        assert time.monotonic() < deadline, "the moment to kill at never came"
        time.sleep(0.001)


def _states(data_dir: Path, job_id: str) -> Path:
    return DataLayout(data_dir).jobs / job_id / "training-state"


def _writing_state(data_dir: Path, job_id: str) -> bool:
    states = _states(data_dir, job_id)
    try:
        return any(path.name.startswith(".staging-") for path in states.iterdir())
    except FileNotFoundError:
        return False


# Where to kill, and whether the service goes alone (its worker left behind) or with its group.
MOMENTS = ["starting", "mid-epoch", "service-alone", "writing-state", "publishing"]


@pytest.mark.parametrize("moment", MOMENTS)
def test_a_job_killed_with_the_service_resumes_and_ends_as_an_uninterrupted_run(
    moment: str, reference: dict[str, Any], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    first = ServiceProcess(data_dir).start()
    total = reference["job"]["progress"]["total_steps"]
    at_kill = 0
    kills = 1
    try:
        job_id = _submit(first)
        if moment == "starting":
            assert _job(first, job_id)["status"] == "starting"  # its worker is importing torch
            first.kill(group=True)
        elif moment == "mid-epoch":
            at_kill = _wait(first, job_id, lambda j: j["progress"]["step"] >= total // 3)[
                "progress"
            ]["step"]
            first.kill(group=True)
        elif moment == "service-alone":
            at_kill = _wait(first, job_id, lambda j: j["progress"]["step"] >= total // 2)[
                "progress"
            ]["step"]
            first.kill(group=False)  # the worker sees its parent gone, saves, and exits
        elif moment == "writing-state":
            # Killed inside a write: its staging directory is left behind, half-written. A
            # write can end between the poll and the kill: then the next service (which resumes
            # the job) is killed at its next write, three times at most.
            for attempt in range(3):
                _poll_path(lambda: _writing_state(data_dir, job_id))
                first.kill(group=True)
                if _writing_state(data_dir, job_id) or attempt == 2:
                    break
                first = ServiceProcess(data_dir).start()
                kills += 1
            assert _writing_state(data_dir, job_id), "three kills came after the write ended"
        else:  # publishing: the version's directory has appeared under models/
            _poll_path(lambda: (DataLayout(data_dir).models / MODEL / "v1").exists())
            first.kill(group=True)
    finally:
        first.stop()

    second = ServiceProcess(data_dir).start()
    try:
        job = _wait(second, job_id, _finished)
        versions = httpx.get(f"{second.base}/models/{MODEL}/versions", timeout=30).json()
    finally:
        second.stop()
    assert job["status"] == "succeeded", job["error"]
    assert job["version"] == 1
    assert [entry["version"] for entry in versions] == [1]  # nothing published twice
    if moment != "publishing":  # there the version may have been published before the kill
        assert job["restarts"] == kills
        assert job["interrupted"] == "the service stopped"
        resumed_from = job["resumed_from_step"]
        assert resumed_from is not None
        if moment == "starting":
            assert resumed_from == 0
        elif moment == "service-alone":
            assert resumed_from >= at_kill  # saved by the orphaned worker as it stopped
        else:
            assert resumed_from % JOB["checkpoint_every_steps"] == 0
            assert resumed_from <= max(at_kill, total)
    expected = reference["job"]
    assert job["progress"]["step"] == expected["progress"]["step"]
    history = job["metrics"]["history"]["steps"]
    assert [s["step"] for s in history] == [
        s["step"] for s in expected["metrics"]["history"]["steps"]
    ]
    torch.testing.assert_close(
        [s["loss"] for s in history], [s["loss"] for s in expected["metrics"]["history"]["steps"]]
    )
    assert job["metrics"]["val_perplexity"] == pytest.approx(expected["metrics"]["val_perplexity"])
    weights = _weights(data_dir, 1)
    assert weights.keys() == reference["weights"].keys()
    for name, tensor in reference["weights"].items():
        torch.testing.assert_close(weights[name], tensor, rtol=0, atol=1e-6)
    layout = DataLayout(data_dir)
    assert not (layout.jobs / job_id).exists()
    assert sorted(path.name for path in (layout.models / MODEL).iterdir()) == ["v1"]
