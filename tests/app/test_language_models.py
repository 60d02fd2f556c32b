"""The demo language model, trained as on first start, used as a user would use it.

One service trains ``xiyouji`` from the bundled 西游记 sample for ~30 s (the first-start job,
with its time cap lowered); every test here then asks it something through the HTTP API.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.demo import XIYOUJI_NAME, XIYOUJI_SAMPLE
from app.settings import Settings
from models.boundaries import split_texts
from tests.app.conftest import start_client

pytestmark = pytest.mark.slow
TRAINING_SECONDS = 30.0
PROMPTS = ["行者道：", "那妖精", "三藏"]


def read_events(lines: Iterator[str], stop_after: int | None = None) -> list[dict[str, Any]]:
    """Server-sent events as ``{"id", "event", "data"}``, up to ``stop_after`` of them."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in lines:
        if not line:
            if current:
                events.append(current)
                current = {}
                if stop_after is not None and len(events) >= stop_after:
                    break
            continue
        name, _, value = line.partition(": ")
        current[name] = json.loads(value) if name == "data" else value
    return events


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict]]:
    """A service whose first start trained ``xiyouji``; the events of the job, read in two
    connections (the second resuming with ``Last-Event-ID``), and the finished job."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("demo"),
        device="cpu",
        train_demo_model=True,
        demo_training_seconds=TRAINING_SECONDS,
    )
    client = start_client(settings)
    deadline = time.monotonic() + 30
    while not (jobs := client.get("/train", params={"model": XIYOUJI_NAME}).json()["jobs"]):
        assert time.monotonic() < deadline, "the first start queued no demo job"
        time.sleep(0.1)  # queued right after the service is ready
    assert len(jobs) == 1, jobs
    job_id = jobs[0]["job_id"]
    with client.stream("GET", f"/train/{job_id}/events") as stream:
        first = read_events(stream.iter_lines(), stop_after=4)
    with client.stream(
        "GET", f"/train/{job_id}/events", headers={"Last-Event-ID": first[-1]["id"]}
    ) as stream:
        rest = read_events(stream.iter_lines())
    deadline = time.monotonic() + 120
    while not (job := client.get(f"/train/{job_id}").json())["finished_at"]:
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    assert job["status"] == "succeeded", job["error"]
    yield client, {"job": job, "events": first + rest}
    client.__exit__(None, None, None)


def test_the_first_start_trains_a_demo_that_beats_counting(trained):
    client, run = trained
    job = run["job"]
    metrics = job["metrics"]
    assert job["create"] is True
    assert job["settings"]["max_seconds"] == TRAINING_SECONDS
    assert metrics["val_perplexity"] < metrics["bigram_perplexity"] < metrics["unigram_perplexity"]
    model = client.get(f"/models/{XIYOUJI_NAME}").json()
    assert model["specials"] == ["<pad>", "<unk>", "<eos>"]
    assert model["tokenizer"]["boundary"] == "line"
    assert job["data"]["val_texts"] >= 1


def test_events_resumed_with_last_event_id_miss_nothing_and_repeat_nothing(trained):
    client, run = trained
    events = run["events"]
    ids = [event["id"] for event in events]
    assert len(set(ids)) == len(ids), ids
    assert events[0]["event"] == "state"
    assert events[-1]["event"] == "done"
    assert ids[-1].endswith("-done")
    epochs = [event["data"]["epoch"] for event in events if event["event"] == "epoch"]
    history = run["job"]["metrics"]["history"]["epochs"]
    assert epochs == [epoch["epoch"] for epoch in history]
    # After done, a reconnecting EventSource is told to stop.
    again = client.get(f"/train/{run['job']['job_id']}/events", headers={"Last-Event-ID": ids[-1]})
    assert again.status_code == 204


def test_after_a_speaker_comes_an_opening_quote(trained):
    client, _ = trained
    body = client.post("/predict", json={"model": XIYOUJI_NAME, "text": "行者道：", "k": 3}).json()
    assert body["candidates"][0]["token"] == "“"


def test_different_prompts_give_different_continuations_and_texts_end(trained):
    client, _ = trained
    continuations = []
    reasons = []
    for prompt in PROMPTS:
        body = client.post(
            "/generate",
            json={"model": XIYOUJI_NAME, "prompt": prompt, "max_tokens": 120, "seed": 0, "n": 4},
        ).json()
        continuations.append(tuple(body["choices"][0]["ids"]))
        reasons += [choice["finish_reason"] for choice in body["choices"]]
        for choice in body["choices"]:
            assert "<eos>" not in choice["tokens"]
            assert choice["text"].startswith(prompt)
    assert len(set(continuations)) == len(PROMPTS)
    assert "eos" in reasons


def test_score_of_the_held_out_texts_is_the_jobs_val_perplexity(trained):
    client, run = trained
    job = run["job"]
    texts = split_texts(XIYOUJI_SAMPLE.read_text(encoding="utf-8"), "line")
    held_out = texts[-job["data"]["val_texts"] :]
    body = client.post("/score", json={"model": XIYOUJI_NAME, "texts": held_out}).json()
    assert body["perplexity"] == pytest.approx(job["metrics"]["val_perplexity"], rel=1e-3)
    scored = sum(len(score["log_probs"]) for score in body["scores"])
    assert scored == job["data"]["val_tokens"]


def test_score_gives_every_token_and_the_closing_eos(trained):
    client, _ = trained
    body = client.post(
        "/score", json={"model": XIYOUJI_NAME, "texts": ["行者道：“师父，我去也。”", "也去我师父"]}
    ).json()
    natural, scrambled = body["scores"]
    assert natural["tokens"][-1] == "<eos>"
    assert len(natural["log_probs"]) == len(natural["tokens"]) == len(natural["oov"])
    assert all(value <= 0 for value in natural["log_probs"])
    assert natural["perplexity"] == pytest.approx(
        math.exp(-sum(natural["log_probs"]) / len(natural["log_probs"]))
    )
    assert natural["perplexity"] < scrambled["perplexity"]
    alone = client.post(
        "/score", json={"model": XIYOUJI_NAME, "text": "行者道：“师父，我去也。”"}
    ).json()
    assert alone["scores"][0]["log_probs"] == pytest.approx(natural["log_probs"], abs=1e-5)
    # ?version= pins like the body's version
    pinned = client.post("/score?version=1", json={"model": XIYOUJI_NAME, "text": "三藏"})
    assert pinned.headers["Seqlab-Model"] == f"{XIYOUJI_NAME}@1"


def test_a_batch_of_texts_predicts_as_each_alone(trained):
    client, _ = trained
    texts = ["行者道：", "那妖精", "三藏闻言，"]
    batch = client.post("/predict", json={"model": XIYOUJI_NAME, "texts": texts, "k": 5}).json()
    assert len(batch["results"]) == 3
    for text, result in zip(texts, batch["results"], strict=True):
        alone = client.post("/predict", json={"model": XIYOUJI_NAME, "text": text, "k": 5}).json()
        assert [c["id"] for c in result["candidates"]] == [c["id"] for c in alone["candidates"]]
        assert [c["probability"] for c in result["candidates"]] == pytest.approx(
            [c["probability"] for c in alone["candidates"]], abs=1e-5
        )


def test_n_choices_are_seeded(trained):
    client, _ = trained
    request = {"model": XIYOUJI_NAME, "prompt": "那妖精", "max_tokens": 30, "n": 3, "seed": 7}
    first = client.post("/generate", json=request).json()
    assert first == client.post("/generate", json=request).json()
    assert len({tuple(choice["ids"]) for choice in first["choices"]}) > 1


def test_stop_strings_and_ignore_eos(trained):
    client, _ = trained
    request = {"model": XIYOUJI_NAME, "prompt": "行者道：", "max_tokens": 80, "seed": 2}
    stopped = client.post("/generate", json={**request, "stop": ["。"]}).json()
    assert stopped["finish_reason"] == "stop"
    assert stopped["text"].endswith("。")
    assert stopped["text"].count("。") == 1
    endless = client.post(
        "/generate", json={**request, "ignore_eos": True, "max_tokens": 200}
    ).json()
    assert endless["finish_reason"] == "length"
    assert len(endless["ids"]) == 200


def test_a_repetition_penalty_loosens_greedy_loops(trained):
    client, _ = trained
    request = {"model": XIYOUJI_NAME, "prompt": "那妖精", "max_tokens": 60, "temperature": 0}
    plain = client.post("/generate", json={**request, "ignore_eos": True}).json()
    penalised = client.post(
        "/generate", json={**request, "ignore_eos": True, "repetition_penalty": 1.8}
    ).json()
    assert len(set(penalised["ids"])) > len(set(plain["ids"]))


def test_streaming_sends_each_token_then_the_whole_answer(trained):
    client, _ = trained
    request = {"model": XIYOUJI_NAME, "prompt": "行者道：", "max_tokens": 25, "seed": 4}
    whole = client.post("/generate", json=request).json()
    with client.stream("POST", "/generate", json={**request, "stream": True}) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.headers["Seqlab-Model"] == f"{XIYOUJI_NAME}@1"
        events = read_events(stream.iter_lines())
    tokens = [event["data"]["token"] for event in events if event["event"] == "token"]
    assert tokens == whole["tokens"]
    assert [event["id"] for event in events] == [str(i) for i in range(len(events))]
    assert events[-1]["event"] == "done"
    assert events[-1]["data"] == whole


def test_the_recurrent_layer_reads_a_text_after_eos(trained):
    client, _ = trained
    body = client.post("/rnn/forward", json={"model": XIYOUJI_NAME, "text": "行者道"}).json()
    assert body["initial_state"] == "eos"
    hidden = client.get(f"/models/{XIYOUJI_NAME}").json()["config"]["hidden_size"]
    zeros = [[[0.0] * hidden]]
    given = client.post(
        "/rnn/forward",
        json={"model": XIYOUJI_NAME, "text": "行者道", "h0": zeros, "c0": zeros},
    ).json()
    assert given["initial_state"] == "given"
    assert given["hn"]["values"] != body["hn"]["values"]


def test_the_demo_sample_is_documented() -> None:
    readme = (Path(XIYOUJI_SAMPLE).parent / "README.md").read_text(encoding="utf-8")
    assert "xiyouji.txt" in readme
    assert "public domain" in readme
