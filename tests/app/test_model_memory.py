"""Models loaded on demand: start-up reads only the index, versions load on first use, and the
loaded set stays within SEQLAB_MODEL_MEMORY (least recently used unloaded first)."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from app.cli import main
from tests.app.conftest import LESSON_MODEL

NAMES = ("alpha", "beta", "gamma", "delta")
TEXT = "我爱学习"


def create_models(client: TestClient) -> int:
    """Four models of one shape; the bytes one takes on the device."""
    for seed, name in enumerate(NAMES):
        body = {**LESSON_MODEL, "name": name, "seed": seed}
        assert client.post("/models", json=body).status_code == 201
    return model_bytes(client)


def model_bytes(client: TestClient) -> int:
    loaded = client.get("/info").json()["model_memory"]["loaded"]
    sizes = {entry["bytes"] for entry in loaded if entry["label"].split("@")[0] in NAMES}
    assert len(sizes) == 1
    return sizes.pop()


def predictions(client: TestClient) -> dict[str, list]:
    answers = {}
    for name in NAMES:
        response = client.post("/predict", json={"model": name, "text": TEXT, "k": 3})
        assert response.status_code == 200, response.text
        answers[name] = response.json()["candidates"]
    return answers


def memory(client: TestClient) -> dict:
    return client.get("/info").json()["model_memory"]


def test_every_model_answers_within_a_budget_smaller_than_the_registry(make_client):
    first = make_client(create_demo_model=False, train_demo_model=False)
    size = create_models(first)
    expected = predictions(first)
    first.__exit__(None, None, None)

    budget = 2 * size  # room for two of the four
    client = make_client(
        create_demo_model=False, train_demo_model=False, model_memory=budget, preload_models=0
    )
    for _ in range(2):  # every model twice, so each is evicted and read back from disk
        for name in NAMES:
            response = client.post("/predict", json={"model": name, "text": TEXT, "k": 3})
            assert response.status_code == 200, response.text
            assert response.json()["candidates"] == expected[name]
            held = memory(client)
            assert held["used_bytes"] <= budget
            assert len(held["loaded"]) <= 2
            assert held["loaded"][-1]["label"] == f"{name}@1"  # the most recently used last
    metrics = client.get("/metrics").text
    assert 'seqlab_model_evictions_total{device="cpu"} 6.0' in metrics
    assert f'seqlab_model_memory_budget_bytes{{device="cpu"}} {float(budget)}' in metrics


def test_start_up_loads_nothing_and_models_load_on_first_use(make_client):
    first = make_client(create_demo_model=False, train_demo_model=False)
    create_models(first)
    first.__exit__(None, None, None)

    client = make_client(create_demo_model=False, train_demo_model=False, preload_models=0)
    ready = client.get("/ready").json()
    assert ready["models"] == 4
    assert ready["models_loaded"] == 0
    listed = client.get("/models").json()["models"]
    assert [model["loaded"] for model in listed] == [False] * 4
    assert memory(client)["loaded"] == []  # describing a model does not load it

    assert client.post("/embed", json={"model": "beta", "text": TEXT}).status_code == 200
    described_loaded = client.get("/models/beta").json()
    assert described_loaded["loaded"] is True
    # From the checkpoint's JSON or from the loaded network: the same description.
    assert {**listed[1], "loaded": True} == described_loaded
    assert described_loaded["vocab_size"] == 6
    assert client.get("/models/alpha").json()["loaded"] is False
    assert client.get("/info").json()["models_loaded"] == ["beta"]


def wait_loaded(client: TestClient, count: int) -> list[str]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        labels = [entry["label"] for entry in memory(client)["loaded"]]
        if len(labels) >= count:
            return labels
        time.sleep(0.05)
    raise AssertionError(f"not preloaded: {memory(client)}")


def test_the_most_used_models_are_preloaded_in_the_background(make_client):
    first = make_client(create_demo_model=False, train_demo_model=False)
    create_models(first)
    for _ in range(3):
        first.post("/predict", json={"model": "gamma", "text": TEXT})
    for _ in range(2):
        first.post("/predict", json={"model": "alpha", "text": TEXT})
    first.__exit__(None, None, None)  # the use counts are written at shutdown

    client = make_client(create_demo_model=False, train_demo_model=False, preload_models=2)
    assert sorted(wait_loaded(client, 2)) == ["alpha@1", "gamma@1"]
    assert memory(client)["preload_models"] == 2


def test_preloading_stops_at_the_budget_without_evicting(make_client):
    first = make_client(create_demo_model=False, train_demo_model=False)
    size = create_models(first)
    for _ in range(2):
        first.post("/predict", json={"model": "delta", "text": TEXT})
    first.__exit__(None, None, None)

    client = make_client(
        create_demo_model=False, train_demo_model=False, preload_models=4, model_memory=size
    )
    assert wait_loaded(client, 1) == ["delta@1"]  # the most used; the others do not fit
    time.sleep(0.3)
    assert [entry["label"] for entry in memory(client)["loaded"]] == ["delta@1"]
    metrics = client.get("/metrics").text
    assert 'seqlab_model_loads_total{device="cpu"} 1.0' in metrics  # none loaded to be evicted
    assert 'seqlab_model_evictions_total{device="cpu"} 0.0' in metrics


def test_a_model_larger_than_the_budget_is_served_but_never_kept(make_client):
    client = make_client(
        create_demo_model=False, train_demo_model=False, model_memory=16, preload_models=0
    )
    assert client.post("/models", json=LESSON_MODEL).status_code == 201
    for _ in range(2):
        response = client.post("/predict", json={"model": "lesson", "text": TEXT})
        assert response.status_code == 200
    assert memory(client)["loaded"] == []
    assert client.get("/models/lesson").json()["loaded"] is False


def train_once(client: TestClient, name: str) -> None:
    body = {"texts": ["我爱学习自然语言处理"], "seq_len": 2, "batch_size": 1, "val_fraction": 0.0}
    job = client.post("/train", json={**body, "model": name, "epochs": 1, "wait": True})
    assert job.status_code == 200, job.text
    assert job.json()["status"] == "succeeded", job.text


def test_older_versions_are_kept_as_the_setting_says_within_the_budget(make_client):
    client = make_client(create_demo_model=False, train_demo_model=False)
    size = create_models(client)
    client.__exit__(None, None, None)
    client = make_client(
        create_demo_model=False,
        train_demo_model=False,
        preload_models=0,
        loaded_versions_per_model=1,
        model_memory=3 * size,
    )
    train_once(client, "alpha")
    train_once(client, "alpha")
    assert client.get("/models/alpha").json()["version"] == 3
    for version in (1, 2):
        pinned = client.post(f"/predict?version={version}", json={"model": "alpha", "text": TEXT})
        assert pinned.status_code == 200
        assert pinned.headers["Seqlab-Model"] == f"alpha@{version}"
    # The latest, and one older version (the most recently used): v1 was dropped for v2.
    labels = [entry["label"] for entry in memory(client)["loaded"]]
    assert sorted(labels) == ["alpha@2", "alpha@3"]
    for name in ("beta", "gamma"):  # two more models: the budget (3) evicts the oldest use
        assert client.post("/predict", json={"model": name, "text": TEXT}).status_code == 200
    held = memory(client)
    # Least recently used first out: alpha@3 (used before v1 and v2 were asked for).
    assert [entry["label"] for entry in held["loaded"]] == ["alpha@2", "beta@1", "gamma@1"]
    assert held["used_bytes"] <= 3 * size


@pytest.mark.parametrize("value", ["-1", "lots"])
def test_a_bad_memory_budget_is_one_clear_line(value, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SEQLAB_MODEL_MEMORY", value)
    monkeypatch.setenv("SEQLAB_DATA_DIR", str(tmp_path / "data"))
    assert main(["serve", "--port", "0"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("seqlab: model_memory: ")
