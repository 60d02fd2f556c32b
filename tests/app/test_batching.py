"""Dynamic batching (app.batching) through a real ``seqlab serve``: concurrent requests for one
model version are answered by one forward pass, and every answer is the one the request gets
alone (to 1e-6; the same ids, tokens and candidate order), across mixed lengths, models,
versions, and a request that fails validation in the middle of a batch."""

from __future__ import annotations

import asyncio
import math
import re
from typing import Any

import httpx
import pytest
from safetensors.torch import load as load_safetensors

from tests.app.service_process import ServiceProcess

SAFETENSORS = "application/vnd.safetensors"
TEXTS = ["我爱学习自然语言处理", "我爱机器学习", "自然语言处理很有趣", "机器学习和深度学习"]
LSTM = {
    "name": "lstm",
    "texts": TEXTS * 3,
    "embedding_dim": 8,
    "hidden_size": 12,
    "num_layers": 2,
    "cell": "lstm",
    "seed": 1,
}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory):
    """One service that waits 40 ms for company, so concurrent requests surely share passes;
    with the lesson's model, and an LSTM with <eos> in two versions."""
    data_dir = tmp_path_factory.mktemp("batching") / "data"
    settings = {
        "SEQLAB_BATCH_WAIT_MS": "40",
        "SEQLAB_MAX_SMALL_REQUESTS": "512",
        # The LSTM's 2,304 weights are over it, lesson-rnn's 115 and every answer's tensors
        # under it: a request that fails while its batch computes (return_weights, a 413).
        "SEQLAB_LIMITS__MAX_TENSOR_ELEMENTS": "1000",
    }
    process = ServiceProcess(data_dir, settings).start()
    with httpx.Client(base_url=process.base, timeout=60) as client:
        assert client.post("/models", json=LSTM).status_code == 201
        trained = client.post(
            "/train",
            json={
                "model": "lstm",
                "texts": TEXTS * 3,
                "seq_len": 3,
                "batch_size": 2,
                "epochs": 1,
                "val_fraction": 0.0,
                "wait": True,
            },
        )
        assert trained.json()["status"] == "succeeded", trained.text
    yield process
    process.stop()


def requests_of_every_kind() -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    """(path, body, headers): each batched route, mixed lengths, both models, two versions,
    JSON and safetensors answers, and bad requests in the middle."""
    requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
    for position, text in enumerate(TEXTS):
        for model, version in (("lstm", None), ("lstm", 1), ("lesson-rnn", None)):
            pinned = {"version": version} if version else {}
            base = {"model": model, **pinned}
            requests += [
                ("/predict", {**base, "text": text, "k": 3 + position}, {}),
                ("/predict", {**base, "texts": TEXTS[: position + 1], "k": 2}, {}),
                ("/score", {**base, "texts": TEXTS[position:]}, {}),
                ("/embed", {**base, "text": text}, {}),
                ("/embed", {**base, "texts": TEXTS[: position + 2]}, {"accept": SAFETENSORS}),
                ("/rnn/forward", {**base, "texts": TEXTS[: position + 1]}, {}),
                ("/rnn/forward", {**base, "text": text, "batch_first": True}, {}),
                ("/rnn/forward", {**base, "text": text}, {"accept": SAFETENSORS}),
            ]
        if position == 1:  # failing validation among the others, each in its own way
            requests += [
                ("/predict", {"model": "lstm", "text": "，，，"}, {}),  # no tokens
                ("/predict", {"model": "lstm", "text": text, "k": 1000}, {}),  # over max_top_k
                ("/score", {"model": "lstm", "texts": [text, "。。"]}, {}),
                ("/embed", {"model": "lstm", "ids": [[0, 99999]]}, {}),  # no such id
                ("/rnn/forward", {"model": "lstm", "text": "！"}, {}),
                ("/predict", {"model": "lstm", "version": 9, "text": text}, {}),
                # These two fail, or not, in the pass itself, beside the others.
                ("/rnn/forward", {"model": "lstm", "text": text, "return_weights": True}, {}),
                ("/rnn/forward", {"model": "lesson-rnn", "text": text, "return_weights": True}, {}),
            ]
    return requests


def answer(response: httpx.Response) -> tuple[int, Any]:
    if response.headers["content-type"] == SAFETENSORS:
        return response.status_code, {
            name: tensor.tolist() for name, tensor in load_safetensors(response.content).items()
        }
    return response.status_code, response.json()


def assert_same(batched: Any, alone: Any, where: str = "") -> None:
    """Equal, floats to 1e-6 (relative or absolute); everything else exactly."""
    if isinstance(alone, float) or isinstance(batched, float):
        assert math.isclose(batched, alone, rel_tol=1e-6, abs_tol=1e-6), f"{where}: {batched}"
    elif isinstance(alone, dict):
        assert isinstance(batched, dict), where
        assert batched.keys() == alone.keys(), where
        for key in alone:
            assert_same(batched[key], alone[key], f"{where}.{key}")
    elif isinstance(alone, list):
        assert isinstance(batched, list), where
        assert len(batched) == len(alone), where
        for index, (left, right) in enumerate(zip(batched, alone, strict=True)):
            assert_same(left, right, f"{where}[{index}]")
    else:
        assert batched == alone, f"{where}: {batched!r} != {alone!r}"


def batch_counts(base: str) -> dict[str, tuple[float, float]]:
    """Per operation: (batches formed, requests in them), from /metrics."""
    text = httpx.get(f"{base}/metrics").text
    counts: dict[str, list[float]] = {}
    for kind, operation, value in re.findall(
        r'seqlab_batch_size_(count|sum)\{operation="(\w+)"\} ([0-9.e+]+)', text
    ):
        counts.setdefault(operation, [0.0, 0.0])[kind == "sum"] = float(value)
    return {operation: (pair[0], pair[1]) for operation, pair in counts.items()}


async def send_together(base: str, requests) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(requests))
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        return await asyncio.gather(
            *(client.post(path, json=body, headers=headers) for path, body, headers in requests)
        )


def test_batched_answers_equal_the_answers_alone(service):
    requests = requests_of_every_kind()
    with httpx.Client(base_url=service.base, timeout=60) as client:
        alone = [
            answer(client.post(path, json=body, headers=headers))
            for path, body, headers in requests
        ]
    before = batch_counts(service.base)
    together = [answer(response) for response in asyncio.run(send_together(service.base, requests))]

    for (path, body, _), (status, got), (status_alone, expected) in zip(
        requests, together, alone, strict=True
    ):
        assert status == status_alone, (path, body, got)
        if status != 200:
            assert got["status"] == status  # a problem body, the same one
            assert got["detail"] == expected["detail"]
            assert got.get("errors") == expected.get("errors")
            continue
        assert_same(got, expected, f"{path} {body}")
    assert {status for status, _ in alone} == {200, 404, 413, 422}

    after = batch_counts(service.base)
    for operation in ("predict", "score", "embed", "rnn"):
        batches = after[operation][0] - before.get(operation, (0, 0))[0]
        answered = after[operation][1] - before.get(operation, (0, 0))[1]
        assert answered > batches, f"{operation}: {answered} requests in {batches} passes"


def test_requests_that_cannot_share_a_pass_are_answered_alone(service):
    """Their own initial state, every layer's states, the tensor form: never batched."""
    hidden = [[[0.5] * 5] for _ in range(2)]  # lesson-rnn: [num_layers, batch, hidden]
    requests = [
        ("/rnn/forward", {"model": "lesson-rnn", "text": TEXTS[0], "h0": hidden}, {}),
        ("/rnn/forward", {"model": "lesson-rnn", "text": TEXTS[1], "return_states": True}, {}),
        ("/rnn/forward", {"model": "lesson-rnn", "texts": TEXTS[:2]}, {}),
        ("/rnn/forward", {"model": "lesson-rnn", "input": [[[0.1] * 4]]}, {}),
    ]
    with httpx.Client(base_url=service.base, timeout=60) as client:
        alone = [answer(client.post(path, json=body)) for path, body, _ in requests]
    together = [answer(response) for response in asyncio.run(send_together(service.base, requests))]
    for (status, got), (status_alone, expected) in zip(together, alone, strict=True):
        assert status == status_alone == 200
        assert_same(got, expected)
    assert together[0][1]["initial_state"] == "given"
    assert together[1][1]["states"]


def test_batching_shows_in_info_and_can_be_turned_off(make_client):
    client = make_client(batch_max_tokens=0, create_demo_model=True, train_demo_model=False)
    info = client.get("/info").json()
    assert info["batching"] == {"enabled": False, "wait_ms": 0.0, "max_tokens": 0}
    response = client.post("/predict", json={"model": "lesson-rnn", "text": TEXTS[0]})
    assert response.status_code == 200
    assert "seqlab_batch_size_count" not in client.get("/metrics").text
