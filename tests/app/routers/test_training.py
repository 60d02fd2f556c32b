"""Training jobs over HTTP: real worker processes, real corpora, the registry publishing."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.app.conftest import start_client
from tests.conftest import shared_file

SMALL_TEXTS = ["我爱学习自然语言处理", "我爱机器学习", "我爱自然语言处理"] * 20
QUICK = {"seq_len": 4, "batch_size": 4, "epochs": 1, "lr": 0.01, "val_fraction": 0.1}
TINY_MODEL = {"embedding_dim": 8, "hidden_size": 16, "cell": "gru"}


def wait_for(client, job_id: str, predicate, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/train/{job_id}").json()
        if predicate(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached the expected state: {job}")


def long_job(client, model: str = "lesson-rnn", **fields) -> dict:
    """A job that runs until it is stopped (many epochs over the demo's own sample)."""
    response = client.post(
        "/train",
        json={"model": model, "texts": SMALL_TEXTS * 10, **QUICK, "epochs": 10_000, **fields},
    )
    assert response.status_code == 202, response.json()
    job = response.json()
    return wait_for(client, job["job_id"], lambda j: j["progress"]["step"] > 0)


@pytest.mark.slow
def test_create_and_train_on_real_text_beats_the_unigram_baseline(client):
    path = shared_file("zh-classics/hongloumeng.txt")
    lines = path.read_text(encoding="utf-8").splitlines()[:300]
    response = client.post(
        "/train",
        json={
            "model": "hongloumeng",
            "texts": lines,
            "create": {"embedding_dim": 64, "hidden_size": 128, "vocab": {"min_freq": 2}},
            "epochs": 3,
            "lr": 0.003,
            "batch_size": 20,
            "seq_len": 35,
        },
    )
    assert response.status_code == 202
    submitted = response.json()
    assert submitted["status"] in ("queued", "starting")
    assert submitted["links"]["events"] == f"/train/{submitted['job_id']}/events"
    job = wait_for(
        client,
        submitted["job_id"],
        lambda j: j["status"] not in ("queued", "starting", "running"),
        180,
    )
    assert job["status"] == "succeeded", job["error"]
    assert job["version"] == 1
    metrics = job["metrics"]
    assert metrics["val_perplexity"] < job["data"]["unigram_perplexity"]
    assert [e["epoch"] for e in metrics["history"]["epochs"]] == [1, 2, 3]
    assert metrics["history"]["steps"]
    assert job["progress"]["fraction"] == 1.0

    info = client.get("/models/hongloumeng").json()
    assert info["metrics"]["val_perplexity"] == metrics["val_perplexity"]
    assert info["source"]["job_id"] == job["job_id"]
    predicted = client.post("/predict", json={"model": "hongloumeng", "text": "宝玉", "k": 3})
    assert predicted.headers["Seqlab-Model"] == "hongloumeng@1"
    generated = client.post(
        "/generate", json={"model": "hongloumeng", "prompt": "宝玉", "max_tokens": 5, "seed": 0}
    )
    assert generated.status_code == 200
    assert len(generated.json()["tokens"]) == 5


def test_training_an_existing_model_publishes_the_next_version(client):
    before = client.post("/embed", json={"model": "lesson-rnn", "text": "我爱学习"}).json()[
        "vectors"
    ]
    response = client.post(
        "/train", json={"model": "lesson-rnn", "texts": SMALL_TEXTS, **QUICK, "wait": True}
    )
    assert response.status_code == 200
    job = response.json()
    assert job["status"] == "succeeded", job["error"]
    assert job["base_version"] == 1
    assert job["version"] == 2
    assert job["data"]["oov_rate"] == 0.0  # the demo's vocabulary holds the lesson's words
    after = client.post("/embed", json={"model": "lesson-rnn", "text": "我爱学习"})
    assert after.headers["Seqlab-Model"] == "lesson-rnn@2"
    assert after.json()["vectors"] != before
    pinned = client.post("/embed", json={"model": "lesson-rnn", "version": 1, "text": "我爱学习"})
    assert pinned.json()["vectors"] == before
    assert client.get("/models/lesson-rnn").json()["versions"] == [1, 2]


def test_oov_rate_of_the_training_text_is_reported(client):
    texts = ["量子计算机与区块链", *SMALL_TEXTS]
    job = client.post(
        "/train", json={"model": "lesson-rnn", "texts": texts, **QUICK, "wait": True}
    ).json()
    assert job["status"] == "succeeded"
    assert job["data"]["oov_tokens"] > 0
    assert 0 < job["data"]["oov_rate"] < 0.1


def test_windows_batching_as_in_the_lesson(client):
    body = {
        "model": "lesson-lm",
        "texts": SMALL_TEXTS,
        "create": {**TINY_MODEL, "vocab": {"specials": []}},
        "batching": "windows",
        "seq_len": 3,
        "batch_size": 2,
        "epochs": 2,
        "lr": 0.01,
        "val_fraction": 0.0,
        "wait": True,
    }
    job = client.post("/train", json=body).json()
    assert job["status"] == "succeeded", job["error"]
    windows = job["data"]["train_tokens"] - 3  # (N - L - 1) // 1 + 1
    assert job["progress"]["total_steps"] == 2 * -(-windows // 2)
    assert job["metrics"]["val_perplexity"] is None


def test_cancel_a_running_job_publishes_nothing(client):
    job = long_job(client)
    cancelled = client.delete(f"/train/{job['job_id']}")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert client.get("/models/lesson-rnn").json()["versions"] == [1]
    again = client.delete(f"/train/{job['job_id']}")
    assert again.status_code == 409


def test_killing_the_worker_requeues_the_job_to_resume_and_keeps_the_served_version(client):
    job = long_job(client, checkpoint_every_steps=5)
    wait_for(client, job["job_id"], lambda j: j["progress"]["step"] >= 10)
    os.kill(job["worker_pid"], signal.SIGKILL)
    resumed = wait_for(
        client, job["job_id"], lambda j: j["restarts"] == 1 and j["status"] == "running"
    )
    assert resumed["interrupted"] == "the worker process died (signal 9)"
    assert resumed["interruptions"] == 1
    assert resumed["resumed_from_step"] >= 10
    assert resumed["resumed_from_step"] % 5 == 0
    assert resumed["worker_pid"] not in (None, job["worker_pid"])
    assert resumed["error"] is None
    response = client.post("/predict", json={"model": "lesson-rnn", "text": "我爱"})
    assert response.status_code == 200
    assert response.headers["Seqlab-Model"] == "lesson-rnn@1"
    client.delete(f"/train/{job['job_id']}")


def test_killing_the_worker_of_a_job_that_may_not_resume_fails_it(client):
    job = long_job(client, resume=False)
    os.kill(job["worker_pid"], signal.SIGKILL)
    failed = wait_for(client, job["job_id"], lambda j: j["status"] == "failed")
    assert failed["error"] == "interrupted: the worker process died (signal 9)"
    assert failed["restarts"] == 0
    response = client.post("/predict", json={"model": "lesson-rnn", "text": "我爱"})
    assert response.headers["Seqlab-Model"] == "lesson-rnn@1"


def test_inference_answers_while_a_job_runs(client):
    job = long_job(client)
    for _ in range(5):
        assert (
            client.post("/rnn/forward", json={"model": "lesson-rnn", "text": "我爱"}).status_code
            == 200
        )
        assert client.post("/tokenize", json={"text": "我爱学习"}).status_code == 200
    assert client.get(f"/train/{job['job_id']}").json()["status"] == "running"
    client.delete(f"/train/{job['job_id']}")


def test_jobs_queue_one_at_a_time_and_list_by_status(client):
    first = long_job(client)
    second = client.post(
        "/train", json={"model": "lesson-rnn", "texts": SMALL_TEXTS, **QUICK}
    ).json()
    assert second["status"] == "queued"
    queued = client.get("/train", params={"status": "queued"}).json()["jobs"]
    assert [j["job_id"] for j in queued] == [second["job_id"]]
    client.delete(f"/train/{first['job_id']}")
    done = wait_for(client, second["job_id"], lambda j: j["status"] == "succeeded")
    assert done["version"] == 2
    by_model = client.get("/train", params={"model": "lesson-rnn"}).json()["jobs"]
    assert {j["status"] for j in by_model} == {"cancelled", "succeeded"}


def test_a_cancelled_queued_job_never_runs_and_publishes_nothing(client):
    first = long_job(client)
    second = client.post(
        "/train", json={"model": "lesson-rnn", "texts": SMALL_TEXTS, **QUICK}
    ).json()
    assert second["status"] == "queued"
    assert client.delete(f"/train/{second['job_id']}").json()["status"] == "cancelled"
    client.delete(f"/train/{first['job_id']}")
    # Not even when the first job freed the slot: no worker, no step, no version.
    job = client.get(f"/train/{second['job_id']}").json()
    assert job["status"] == "cancelled"
    assert job["started_at"] is None
    assert job["worker_pid"] is None
    assert job["progress"]["step"] == 0
    assert job["metrics"]["history"] == {"epochs": [], "steps": []}
    assert job["version"] is None
    assert client.get("/models/lesson-rnn").json()["versions"] == [1]


def test_events_stream_progress_and_a_final_event(client):
    body = {"model": "lesson-rnn", "texts": SMALL_TEXTS * 5, **QUICK, "epochs": 3, "log_every": 2}
    job = client.post("/train", json=body).json()
    events = []
    with client.stream("GET", f"/train/{job['job_id']}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: "))))
    names = [name for name, _ in events]
    assert names[0] == "state"
    assert names[-1] == "done"
    assert "progress" in names
    assert names.count("epoch") == 3
    assert events[-1][1]["status"] == "succeeded"
    # A client that connects after the end gets the state and the final event at once.
    with client.stream("GET", f"/train/{job['job_id']}/events") as stream:
        late = [line for line in stream.iter_lines() if line.startswith("event: ")]
    assert late == ["event: state", "event: done"]


def test_restart_keeps_job_history_and_resumes_the_job_it_stopped(make_settings):
    settings = make_settings()
    first = start_client(settings)
    try:
        done = first.post(
            "/train", json={"model": "lesson-rnn", "texts": SMALL_TEXTS, **QUICK, "wait": True}
        ).json()
        running = long_job(first)
        stopped_at = running["progress"]["step"]
    finally:
        first.__exit__(None, None, None)  # shuts down with a job running: it saves its state
    second = start_client(settings)
    try:
        jobs = {j["job_id"]: j for j in second.get("/train").json()["jobs"]}
        assert jobs[done["job_id"]]["status"] == "succeeded"
        assert jobs[running["job_id"]]["interrupted"].startswith(
            "the service stopped (its state was saved at step "
        )
        assert jobs[running["job_id"]]["interruptions"] == 0
        resumed = wait_for(
            second,
            running["job_id"],
            lambda j: (
                j["resumed_from_step"] is not None
                and j["progress"]["step"] > j["resumed_from_step"]
            ),
        )
        assert resumed["status"] == "running"
        assert resumed["resumed_from_step"] >= stopped_at
        assert resumed["restarts"] == 1
        assert resumed["metrics"]["history"]["steps"][0]["step"] <= stopped_at  # kept
        second.delete(f"/train/{running['job_id']}")
        assert second.get("/models/lesson-rnn").json()["versions"] == [1, 2]
        assert (
            second.post("/predict", json={"model": "lesson-rnn", "text": "我"}).status_code == 200
        )
    finally:
        second.__exit__(None, None, None)


def test_unknown_models_corpora_and_jobs_are_404(client):
    response = client.post("/train", json={"model": "nothing", "texts": SMALL_TEXTS, **QUICK})
    assert response.status_code == 404
    assert "nothing" in response.json()["detail"]
    response = client.post(
        "/train", json={"model": "lesson-rnn", "corpus_id": "0123456789abcdef", **QUICK}
    )
    assert response.status_code == 404
    assert client.get("/train/0123456789abcdef").status_code == 404


def test_creating_a_model_that_exists_is_a_conflict(client):
    response = client.post(
        "/train", json={"model": "lesson-rnn", "texts": SMALL_TEXTS, "create": TINY_MODEL, **QUICK}
    )
    assert response.status_code == 409


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"seq_len": 10_000, "batching": "windows"}, "body.seq_len"),
        ({"batch_size": 5_000}, "body.batch_size"),
        ({"lr": 0}, "body.lr"),
        ({"lr": -1}, "body.lr"),
        ({"optimizer": "rmsprop"}, "body.optimizer"),
        ({"val_fraction": 0.9}, "body.val_fraction"),
        ({"epochs": 0}, "body.epochs"),
        ({"clip": 0}, "body.clip"),
    ],
)
def test_impossible_settings_are_a_422_naming_the_field(client, override, field):
    response = client.post(
        "/train", json={"model": "lesson-rnn", "texts": SMALL_TEXTS, **QUICK, **override}
    )
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"].startswith("urn:seqlab:problem:")
    assert any(e["field"] == field for e in problem["errors"]), problem


@pytest.mark.parametrize(
    ("boundary", "texts", "tokens"),
    [
        # 2 paragraphs of 2 lines: 我 爱 学习 / 我 爱 机器 学习 … each paragraph closed by <eos>
        ("paragraph", 2, 2 * (3 + 4 + 1)),
        ("line", 4, 2 * (3 + 1 + 4 + 1)),
        ("none", 1, 2 * (3 + 4)),  # the document is one text, no end marked
    ],
)
def test_the_boundary_rule_says_where_texts_end(client, boundary, texts, tokens):
    document = "我爱学习\n我爱机器学习\n\n我爱学习\n我爱机器学习\n"
    job = client.post(
        "/train",
        json={
            "model": f"bounded-{boundary}",
            "texts": [document],
            "create": {**TINY_MODEL, "tokenizer": {"boundary": boundary}},
            **QUICK,
            "batch_size": 2,
            "seq_len": 2,
            "val_fraction": 0.0,
            "wait": True,
        },
    ).json()
    assert job["status"] == "succeeded", job["error"]
    assert (job["data"]["texts"], job["data"]["tokens"]) == (texts, tokens)
    model = client.get(f"/models/bounded-{boundary}").json()
    assert model["tokenizer"]["boundary"] == boundary
    forward = client.post("/rnn/forward", json={"model": f"bounded-{boundary}", "text": "我爱"})
    assert forward.json()["initial_state"] == ("zeros" if boundary == "none" else "eos")


@pytest.mark.slow
def test_a_done_id_for_a_job_not_done_gets_the_stream_not_a_204(client):
    job = long_job(client)
    try:
        with client.stream(
            "GET", f"/train/{job['job_id']}/events", headers={"Last-Event-ID": "0-0-done"}
        ) as stream:
            assert stream.status_code == 200
            first = next(line for line in stream.iter_lines() if line.startswith("event: "))
        assert first == "event: state"  # started afresh: the whole current state
    finally:
        client.delete(f"/train/{job['job_id']}")


def test_the_held_out_split_is_whole_texts(client):
    job = client.post(
        "/train",
        json={
            "model": "split",
            "texts": SMALL_TEXTS,
            "create": TINY_MODEL,
            **QUICK,
            "val_fraction": 0.1,
            "wait": True,
        },
    ).json()
    assert job["status"] == "succeeded", job["error"]
    data = job["data"]
    # 60 texts of 5, 4 and 4 tokens, each and its <eos>: the last 6 texts are held out
    assert data["texts"] == 60
    assert data["val_texts"] == 6
    assert data["val_tokens"] == 2 * (6 + 5 + 5)
