"""Tensors as safetensors (application/vnd.safetensors): /rnn/forward and /embed answer it when
asked (Accept), with the same tensors as their JSON answers; /rnn/forward's tensor form takes
it for input, h0 and c0. Bad binary bodies are 4xx problems."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load, save

from app.settings import Limits
from tests.app.conftest import LESSON_MODEL

BINARY = "application/vnd.safetensors"
LESSON_INPUT = [
    [[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]],
    [[0.9, 1.0, 1.1, 1.2], [1.3, 1.4, 1.5, 1.6]],
    [[1.7, 1.8, 1.9, 2.0], [2.1, 2.2, 2.3, 2.4]],
]
LAYER = {"input_size": 4, "hidden_size": 5, "num_layers": 2, "seed": 0}


def metadata(content: bytes) -> dict:
    """The JSON fields of a safetensors answer (its header's __metadata__["seqlab"])."""
    header = json.loads(content[8 : 8 + int.from_bytes(content[:8], "little")])
    return json.loads(header["__metadata__"]["seqlab"])


def binary_request(tensors: dict[str, torch.Tensor], fields: dict) -> bytes:
    return save(tensors, metadata={"request": json.dumps(fields)})


def values(tensor_json: dict) -> torch.Tensor:
    return torch.tensor(tensor_json["values"], dtype=torch.float32)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_the_binary_answer_holds_the_json_answers_tensors(shared_client, cell):
    body = {
        "rnn": {**LAYER, "cell": cell},
        "input": LESSON_INPUT,
        "return_weights": True,
        "return_states": True,
    }
    as_json = shared_client.post("/rnn/forward", json=body).json()
    response = shared_client.post("/rnn/forward", json=body, headers={"accept": BINARY})
    assert response.status_code == 200
    assert response.headers["content-type"] == BINARY
    tensors = load(response.content)
    names = {"output", "hn", "states"} | ({"cn"} if cell == "lstm" else set())
    names |= {f"weights.{name}" for name in as_json["weights"]}
    assert set(tensors) == names
    for name in ("output", "hn", "states", *(["cn"] if cell == "lstm" else [])):
        assert torch.equal(tensors[name], values(as_json[name])), name  # the same float32 bits
        assert list(tensors[name].shape) == as_json[name]["shape"]
    for name, weight in as_json["weights"].items():
        assert torch.equal(tensors[f"weights.{name}"], values(weight))
    # Everything else the JSON answer says is in the metadata.
    others = {k: v for k, v in as_json.items() if k not in ("output", "hn", "cn", "states")}
    assert metadata(response.content) == {k: v for k, v in others.items() if k != "weights"}


def test_the_text_form_answer_keeps_its_other_fields_in_the_metadata(shared_client):
    body = {"model": "lesson-rnn", "texts": ["我爱学习自然语言处理", "我爱"], "batch_first": True}
    as_json = shared_client.post("/rnn/forward", json=body).json()
    response = shared_client.post("/rnn/forward", json=body, headers={"accept": BINARY})
    assert response.headers["seqlab-model"] == f"lesson-rnn@{as_json['version']}"
    fields = metadata(response.content)
    for name in ("tokens", "ids", "lengths", "initial_state", "model", "version", "batch_first"):
        assert fields[name] == as_json[name], name
    tensors = load(response.content)
    assert torch.equal(tensors["output"], values(as_json["output"]))
    assert torch.equal(tensors["hn"], values(as_json["hn"]))


def test_embed_answers_padded_vectors_and_lengths(shared_client):
    body = {"model": "lesson-rnn", "texts": ["我爱学习自然语言处理", "我爱量子"]}
    as_json = shared_client.post("/embed", json=body).json()
    response = shared_client.post("/embed", json=body, headers={"accept": BINARY})
    assert response.status_code == 200
    tensors = load(response.content)
    assert tensors["lengths"].tolist() == [5, 3]
    assert tensors["vectors"].shape == (2, 5, 4)
    for text, rows in enumerate(as_json["vectors"]):
        length = len(rows)
        assert torch.equal(tensors["vectors"][text, :length], torch.tensor(rows))
        assert torch.all(tensors["vectors"][text, length:] == 0)
    fields = metadata(response.content)
    for name in ("tokens", "ids", "oov", "dim", "model", "version"):
        assert fields[name] == as_json[name], name


@pytest.mark.parametrize(
    ("accept", "binary"),
    [
        (BINARY, True),
        (f"{BINARY}, application/json;q=0.5", True),
        (f"application/json, {BINARY};q=0.5", False),
        (f"application/json, {BINARY}", False),  # a tie: JSON
        (f"{BINARY}, application/json;q=0, */*", True),  # the most specific range decides
        (f"{BINARY};q=nan", False),
        (f"{BINARY};q=2, application/json", False),  # q is at most 1: a tie
        ("*/*", False),
        (None, False),
    ],
)
def test_json_stays_the_default(shared_client, accept, binary):
    headers = {"accept": accept} if accept else {}
    response = shared_client.post(
        "/embed", json={"model": "lesson-rnn", "text": "我"}, headers=headers
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == (BINARY if binary else "application/json")


def test_errors_stay_problem_json_when_binary_is_asked(shared_client):
    response = shared_client.post(
        "/embed", json={"model": "nope", "text": "我"}, headers={"accept": BINARY}
    )
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")


def test_a_binary_request_answers_as_the_json_one(shared_client):
    h0 = torch.linspace(-1, 1, 20).reshape(2, 2, 5)
    fields = {"rnn": LAYER, "return_states": True}
    as_json = shared_client.post(
        "/rnn/forward", json={**fields, "input": LESSON_INPUT, "h0": h0.tolist()}
    ).json()
    for dtype in (torch.float32, torch.float64):
        response = shared_client.post(
            "/rnn/forward",
            content=binary_request(
                {"input": torch.tensor(LESSON_INPUT, dtype=dtype), "h0": h0.to(dtype)}, fields
            ),
            headers={"content-type": BINARY},
        )
        assert response.status_code == 200, response.text
        assert response.json() == as_json


def test_a_binary_request_may_be_larger_than_a_json_body_may(make_client):
    client = make_client(limits=Limits(max_body_bytes=4096, max_binary_body_bytes=65_536))
    x = torch.rand(400, 2, 4)  # 12.8 kB as float32; ~80 kB as JSON
    response = client.post(
        "/rnn/forward",
        content=binary_request({"input": x}, {"rnn": {"input_size": 4, "hidden_size": 3}}),
        headers={"content-type": BINARY},
    )
    assert response.status_code == 200, response.text
    assert response.json()["output"]["shape"] == [400, 2, 3]
    as_json = client.post(
        "/rnn/forward", json={"rnn": {"input_size": 4, "hidden_size": 3}, "input": x.tolist()}
    )
    assert as_json.status_code == 413
    assert as_json.json()["limit"] == "max_body_bytes"


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    return body


def post_binary(client, content: bytes, path: str = "/rnn/forward"):
    return client.post(path, content=content, headers={"content-type": BINARY})


def test_bad_binary_bodies_are_problems(shared_client):
    good = binary_request({"input": torch.ones(2, 1, 4)}, {"rnn": LAYER})
    cases = [
        (b"not safetensors at all", "not a safetensors file", "body"),
        (good[: len(good) - 10], "not a safetensors file", "body"),  # truncated
        (b"\xff" * 8 + good[8:], "not a safetensors file", "body"),  # a header length past the end
        (
            binary_request({"inputs": torch.ones(2, 1, 4)}, {"rnn": LAYER}),
            "unknown tensor 'inputs'",
            "body.inputs",
        ),
        (
            binary_request({"input": torch.ones(2, 1, 4, dtype=torch.int64)}, {"rnn": LAYER}),
            "must hold floats (F16, BF16, F32 or F64), not I64",
            "body.input",
        ),
        (
            save({"input": torch.ones(2, 1, 4)}, metadata={"request": "{not json"}),
            "is not JSON",
            "body.__metadata__.request",
        ),
        (
            save({"input": torch.ones(2, 1, 4)}, metadata={"request": "[1, 2]"}),
            "must be a JSON object",
            "body.__metadata__.request",
        ),
        (
            binary_request({"input": torch.ones(2, 1, 4)}, {"rnn": LAYER, "input": [[[1.0]]]}),
            "must be sent as a tensor, not in the metadata",
            "body.__metadata__.request.input",
        ),
    ]
    for content, detail, field in cases:
        body = problem(post_binary(shared_client, content), 422)
        assert detail in body["detail"], body
        assert body["errors"][0]["field"] == field
    # A tensor of the wrong shape goes through the same checks as JSON does.
    wrong = binary_request({"input": torch.ones(2, 1, 3)}, {"rnn": LAYER})
    body = problem(post_binary(shared_client, wrong), 422)
    assert "input_size is 4" in body["detail"]
    # Non-finite values too.
    infinite = binary_request({"input": torch.full((2, 1, 4), float("inf"))}, {"rnn": LAYER})
    problem(post_binary(shared_client, infinite), 422)
    # A binary body where none is taken.
    body = problem(post_binary(shared_client, good, "/embed"), 415)
    assert "application/json" in body["detail"]


def test_binary_bodies_have_their_own_limits(make_client):
    client = make_client(limits=Limits(max_binary_body_bytes=2048, max_tensor_elements=64))
    body = problem(
        post_binary(client, binary_request({"input": torch.ones(200, 1, 4)}, {"rnn": LAYER})),
        413,
    )
    assert body["limit"] == "max_binary_body_bytes"
    body = problem(
        post_binary(client, binary_request({"input": torch.ones(20, 1, 4)}, {"rnn": LAYER})),
        413,
    )
    assert body["limit"] == "max_tensor_elements"


def test_a_model_form_answer_names_the_model(client):
    assert client.post("/models", json=LESSON_MODEL).status_code == 201
    response = client.post(
        "/rnn/forward",
        json={"model": "lesson", "input": LESSON_INPUT},
        headers={"accept": BINARY},
    )
    assert response.headers["seqlab-model"] == "lesson@1"
    assert metadata(response.content)["model"] == "lesson"


def raw_safetensors(header: dict | bytes, data: bytes = b"") -> bytes:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + data


def test_hostile_headers_are_refused_before_any_tensor_is_built(make_client):
    client = make_client(limits=Limits(max_tensor_elements=64))
    deep = "[" * 30_000 + "]" * 30_000  # within the header limit, past the recursion limit
    cases = [
        # A metadata string nested past Python's recursion limit: a 422, not a 500.
        (save({"input": torch.ones(2, 1, 4)}, metadata={"request": deep}), 422, "not JSON"),
        # The metadata may not smuggle a tensor past max_body_bytes as nested lists.
        (
            save({}, metadata={"request": json.dumps({"rnn": LAYER, "input": [[[1.0] * 4]]})}),
            422,
            "must be sent as a tensor",
        ),
        # A header declaring more elements than the limit: refused from the header alone.
        (
            raw_safetensors(
                {"input": {"dtype": "F32", "shape": [100, 1, 4], "data_offsets": [0, 0]}}
            ),
            413,
            "max_tensor_elements",
        ),
        # Thousands of declared tensors: a header over its own small limit.
        (
            raw_safetensors(
                {
                    f"t{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}
                    for i in range(5_000)
                }
            ),
            422,
            "at most 65536",
        ),
        (raw_safetensors(b"[1, 2]"), 422, "not an object"),
        (raw_safetensors(b"{not json"), 422, "not JSON"),
        (b"1234", 422, "too short"),
    ]
    for content, status, words in cases:
        body = problem(post_binary(client, content), status)
        assert words in json.dumps(body, ensure_ascii=False), body


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_requests_are_read_as_float32(shared_client, dtype):
    x = torch.tensor(LESSON_INPUT, dtype=dtype)
    as_json = shared_client.post(
        "/rnn/forward", json={"rnn": LAYER, "input": x.float().tolist()}
    ).json()
    response = post_binary(shared_client, binary_request({"input": x}, {"rnn": LAYER}))
    assert response.status_code == 200, response.text
    assert response.json() == as_json


def test_a_binary_request_through_a_models_layer(client):
    assert client.post("/models", json=LESSON_MODEL).status_code == 201
    x = torch.tensor(LESSON_INPUT)
    as_json = client.post("/rnn/forward", json={"model": "lesson", "input": LESSON_INPUT}).json()
    response = client.post(
        "/rnn/forward",
        content=binary_request({"input": x}, {"model": "lesson"}),
        headers={"content-type": BINARY, "accept": BINARY},
    )
    assert response.headers["seqlab-model"] == "lesson@1"
    assert torch.equal(load(response.content)["output"], values(as_json["output"]))


def test_a_json_request_after_a_binary_one_never_sees_its_tensors(shared_client):
    ok = post_binary(shared_client, binary_request({"input": torch.ones(2, 1, 4)}, {"rnn": LAYER}))
    assert ok.status_code == 200
    # The placeholder a binary request stands on, sent as JSON, is only what it says: [1, 1, 1].
    body = problem(shared_client.post("/rnn/forward", json={"rnn": LAYER, "input": [[[0.0]]]}), 422)
    assert "input_size is 4" in body["detail"]


def test_only_the_binary_route_reads_big_binary_bodies(make_client):
    client = make_client(limits=Limits(max_body_bytes=4096, max_binary_body_bytes=65_536))
    big = binary_request({"input": torch.ones(400, 2, 4)}, {"rnn": LAYER})  # ~12.9 kB
    body = problem(post_binary(client, big, "/embed"), 413)
    assert body["limit"] == "max_body_bytes"
    # Nor another method of the binary route: the JSON limit, never decoded.
    response = client.request("GET", "/rnn/forward", content=big, headers={"content-type": BINARY})
    assert problem(response, 413)["limit"] == "max_body_bytes"


def test_binary_requests_are_counted_under_their_route(shared_client):
    def count() -> float:
        for line in shared_client.get("/metrics").text.splitlines():
            if (
                line.startswith("seqlab_requests_total{")
                and 'route="/rnn/forward"' in line
                and 'status="200"' in line
            ):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = count()
    ok = post_binary(shared_client, binary_request({"input": torch.ones(2, 1, 4)}, {"rnn": LAYER}))
    assert ok.status_code == 200
    assert count() == before + 1
