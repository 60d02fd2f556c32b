"""Errors as HTTP problems: a catalogue of bad input, every case a clear 4xx, never a 500.

The catalogue shows every error status that a route taking input documents (its OpenAPI
``responses``, generated from :data:`app.problems.ERROR_TABLE`) with at least one input that
gets it, except the 401 (no API key is configured here; see ``test_deps.py``), the 409
(a state, not an input; see ``test_name_taken_is_409`` and the training tests) and the 429
(a load, not an input; see ``test_admission.py``).

Each case checks the exact status, the ``application/problem+json`` media type, the RFC 9457
members (type, title, status, detail), and that the body NAMES the problem: the offending
field in ``errors`` for a 422, the limit's name in ``limit`` for a 413.

One service with tight limits serves the whole module (see ``TIGHT``), without the demo model
(its sample would be over them); the fixture creates two small models:

- ``lesson``: the lesson's model, whose vocabulary has no specials (no ``<unk>``);
- ``unky``: the same texts with the default specials ``<pad>`` and ``<unk>``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.settings import Limits, Settings
from tests.app.conftest import LESSON_MODEL, start_client

PROBLEM = "application/problem+json"
JSON = {"content-type": "application/json"}
TEXT = {"content-type": "text/plain"}
TAR = {"content-type": "application/x-tar"}
UNKNOWN_ID = "0123456789abcdef"  # a well-formed job or corpus id that names nothing

TIGHT = Limits(
    max_body_bytes=2048,
    max_texts=2,
    max_text_chars=20,
    max_tokens_per_forward=10,
    max_tensor_elements=64,
    max_vocab_size=10,
    max_embedding_dim=8,
    max_hidden_size=8,
    max_num_layers=2,
    max_seq_len=4,
    max_generate_tokens=5,
    max_top_k=3,
    max_user_words=2,
    max_training_chars=40,
    max_corpus_bytes=100,
    max_import_bytes=4096,
)

# A fresh layer that fits the limits: input [seq, batch, 2], state [1, batch, 3].
RNN = {"input_size": 2, "hidden_size": 3, "seed": 0}
X = [[[0.1, 0.2]], [[0.3, 0.4]]]  # [seq_len=2, batch=1, input_size=2]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("bad-input"),
        device="cpu",
        create_demo_model=False,
        limits=TIGHT,
    )
    client = start_client(settings)
    for body in (LESSON_MODEL, {**LESSON_MODEL, "name": "unky", "vocab": {}}):
        response = client.post("/models", json=body)
        assert response.status_code == 201, response.text
    yield client
    client.__exit__(None, None, None)


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    """The common shape of every error answer; returns the body."""
    assert response.status_code == status, response.text
    assert response.status_code < 500, response.text
    assert response.headers["content-type"].split(";")[0] == PROBLEM, response.headers
    body = response.json()
    for member in ("type", "title", "status", "detail"):
        assert member in body, f"problem body lacks {member!r}: {body}"
    assert body["status"] == response.status_code
    assert body["type"].startswith("urn:seqlab:problem:"), body
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    if "instance" in body:
        assert body["instance"] == response.request.url.path
    return body


def named_fields(body: dict[str, Any]) -> list[str]:
    return [problem["field"] for problem in body.get("errors") or []]


def names_field(body: dict[str, Any], field: str) -> bool:
    """The exact field, or a position inside it (``body.input`` covers ``body.input.0.0.0``)."""
    return any(name == field or name.startswith(field + ".") for name in named_fields(body))


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    status: int
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] | None = None
    field: str | None = None  # must be named in ``errors``
    limit: str | None = None  # must equal ``limit``
    slug: str | None = None  # the end of ``type``
    mentions: tuple[str, ...] = ()  # must appear in ``detail``


def case(case_id: str, *args: Any, **kwargs: Any) -> Any:
    return pytest.param(Case(*args, **kwargs), id=case_id)


def post(case_id: str, path: str, body: Any, status: int, **kwargs: Any) -> Any:
    return case(case_id, "POST", path, status, json=body, **kwargs)


def raw(case_id: str, path: str, content: bytes, status: int, **kwargs: Any) -> Any:
    return case(case_id, "POST", path, status, content=content, headers=JSON, **kwargs)


def over(case_id: str, path: str, body: Any, limit: str, **kwargs: Any) -> Any:
    return post(case_id, path, body, 413, limit=limit, slug="limit-exceeded", **kwargs)


def over_value(case_id: str, path: str, body: Any, limit: str, field: str) -> Any:
    """A value over its limit (not a size of data): a 422 naming the field and the limit."""
    return post(case_id, path, body, 422, limit=limit, field=field, slug="invalid-input")


def not_json(case_id: str, path: str) -> Any:
    """A text/plain body where the route reads JSON: 415, naming the content type."""
    return case(
        case_id,
        "POST",
        path,
        415,
        content="我爱".encode(),
        headers=TEXT,
        field="header.content-type",
        slug="unsupported-media-type",
    )


CASES = [
    # -- /rnn/forward, tensor form ------------------------------------------------------------
    post(
        "rnn-ragged-input",
        "/rnn/forward",
        {"rnn": RNN, "input": [[[1, 2]], [[1]]]},
        422,
        field="body.input",
        mentions=("ragged",),
    ),
    post(
        "rnn-ragged-h0",
        "/rnn/forward",
        {"rnn": RNN, "input": X, "h0": [[[0, 0, 0]], [[0]]]},
        422,
        field="body.h0",
        mentions=("ragged",),
    ),
    raw(
        "rnn-nan-input",
        "/rnn/forward",
        b'{"rnn": {"input_size": 2, "hidden_size": 3}, "input": [[[NaN, 0.2]]]}',
        422,
        field="body.input",
    ),
    raw(
        "rnn-infinity-input",
        "/rnn/forward",
        b'{"rnn": {"input_size": 2, "hidden_size": 3}, "input": [[[Infinity, 0.2]]]}',
        422,
        field="body.input",
    ),
    raw(
        "rnn-minus-infinity-h0",
        "/rnn/forward",
        b'{"rnn": {"input_size": 2, "hidden_size": 3}, "input": [[[0.1, 0.2]]],'
        b' "h0": [[[0, -Infinity, 0]]]}',
        422,
        field="body.h0",
    ),
    post(
        "rnn-input-overflows-float32",
        "/rnn/forward",
        {"rnn": RNN, "input": [[[1e39, 0.2]]]},
        422,
        field="body.input",
        mentions=("finite",),
    ),
    post(
        "rnn-h0-wrong-hidden-size",
        "/rnn/forward",
        {"rnn": RNN, "input": X, "h0": [[[0, 0]]]},
        422,
        field="body.h0",
        mentions=("[1, 1, 3]",),
    ),
    post(
        "rnn-h0-wrong-batch-first",
        "/rnn/forward",
        {"rnn": RNN, "input": [[[1, 2]], [[3, 4]]], "batch_first": True, "h0": [[[0, 0, 0]]]},
        422,
        field="body.h0",
        mentions=("[1, 2, 3]",),
    ),
    post(
        "rnn-h0-wrong-num-layers-model",
        "/rnn/forward",
        {"model": "lesson", "input": [[[1, 2, 3, 4]]], "h0": [[[0] * 5]]},
        422,
        field="body.h0",
        mentions=("[2, 1, 5]",),
    ),
    post(
        "rnn-input-2-dims",
        "/rnn/forward",
        {"rnn": RNN, "input": [[0.1, 0.2], [0.3, 0.4]]},
        422,
        field="body.input",
    ),
    post(
        "rnn-input-4-dims",
        "/rnn/forward",
        {"rnn": RNN, "input": [[[[0.1, 0.2]]]]},
        422,
        field="body.input",
    ),
    post(
        "rnn-input-size-mismatch-rnn",
        "/rnn/forward",
        {"rnn": RNN, "input": [[[1, 2, 3]]]},
        422,
        field="body.input",
        mentions=("input_size is 2",),
    ),
    post(
        "rnn-input-size-mismatch-model",
        "/rnn/forward",
        {"model": "lesson", "input": [[[1, 2, 3]]]},
        422,
        field="body.input",
        mentions=("input_size is 4",),
    ),
    post(
        "rnn-c0-for-plain-rnn",
        "/rnn/forward",
        {"rnn": RNN, "input": X, "c0": [[[0, 0, 0]]]},
        422,
        field="body.c0",
        mentions=("LSTM",),
    ),
    post(
        "rnn-c0-for-model-rnn",
        "/rnn/forward",
        {"model": "lesson", "text": "我爱", "c0": [[[0] * 5]] * 2},
        422,
        field="body.c0",
    ),
    post(
        "rnn-c0-wrong-shape-lstm",
        "/rnn/forward",
        {"rnn": {**RNN, "cell": "lstm"}, "input": X, "c0": [[[0, 0]]]},
        422,
        field="body.c0",
    ),
    post("rnn-empty-input", "/rnn/forward", {"rnn": RNN, "input": []}, 422, field="body.input"),
    post("rnn-empty-rows", "/rnn/forward", {"rnn": RNN, "input": [[[]]]}, 422, field="body.input"),
    post(
        "rnn-string-in-input",
        "/rnn/forward",
        {"rnn": RNN, "input": [[["0.1", "x"]]]},
        422,
        field="body.input",
    ),
    post(
        "rnn-unknown-field-batchfirst",
        "/rnn/forward",
        {"rnn": RNN, "input": X, "batchfirst": True},
        422,
        field="body.batchfirst",
    ),
    post(
        "rnn-unknown-field-in-spec",
        "/rnn/forward",
        {"rnn": {**RNN, "hidden": 3}, "input": X},
        422,
        field="body.rnn.hidden",
    ),
    post(
        "rnn-bad-cell",
        "/rnn/forward",
        {"rnn": {**RNN, "cell": "transformer"}, "input": X},
        422,
        field="body.rnn.cell",
    ),
    post(
        "rnn-seed-over-int64",
        "/rnn/forward",
        {"rnn": {**RNN, "seed": 2**63}, "input": X},
        422,
        field="body.rnn.seed",
    ),
    post(
        "rnn-text-and-input",
        "/rnn/forward",
        {"model": "lesson", "text": "我爱", "input": X},
        422,
        field="body",
        mentions=("'input'",),
    ),
    post(
        "rnn-tensor-without-layer",
        "/rnn/forward",
        {"input": X},
        422,
        field="body",
        mentions=("'rnn'",),
    ),
    post(
        "rnn-tensor-model-and-rnn",
        "/rnn/forward",
        {"model": "lesson", "rnn": RNN, "input": X},
        422,
        field="body",
        mentions=("'model'", "'rnn'"),
    ),
    post(
        "rnn-version-without-model",
        "/rnn/forward",
        {"rnn": RNN, "input": X, "version": 1},
        422,
        field="body",
        mentions=("'version'",),
    ),
    # -- /rnn/forward, text form --------------------------------------------------------------
    post(
        "rnn-empty-text-in-texts",
        "/rnn/forward",
        {"model": "lesson", "texts": ["我爱", ""]},
        422,
        field="body.texts.1",
    ),
    post(
        "rnn-text-segments-to-nothing",
        "/rnn/forward",
        {"model": "unky", "text": "   "},
        422,
        field="body.text",
    ),
    post(
        "rnn-unknown-model",
        "/rnn/forward",
        {"model": "nope", "text": "我爱"},
        404,
        slug="not-found",
        mentions=("nope",),
    ),
    post(
        "rnn-unknown-version",
        "/rnn/forward",
        {"model": "lesson", "version": 9, "text": "我爱"},
        404,
        slug="not-found",
        mentions=("version 9",),
    ),
    post(
        "rnn-unknown-token-no-unk",
        "/rnn/forward",
        {"model": "lesson", "text": "猫"},
        422,
        field="body.text",
        mentions=("猫",),
    ),
    not_json("rnn-text-plain-415", "/rnn/forward"),
    # -- /tokenize ---------------------------------------------------------------------------
    post("tokenize-empty-text", "/tokenize", {"text": ""}, 422, field="body.text"),
    post("tokenize-empty-text-in-texts", "/tokenize", {"texts": [""]}, 422, field="body.texts.0"),
    post("tokenize-empty-texts-list", "/tokenize", {"texts": []}, 422, field="body.texts"),
    post(
        "tokenize-text-and-texts",
        "/tokenize",
        {"text": "我爱", "texts": ["我爱"]},
        422,
        field="body",
        mentions=("'text'", "'texts'"),
    ),
    post(
        "tokenize-neither-text-nor-texts",
        "/tokenize",
        {"offsets": True},
        422,
        field="body",
        mentions=("'text'", "'texts'"),
    ),
    post(
        "tokenize-version-without-model",
        "/tokenize",
        {"text": "我爱", "version": 1},
        422,
        field="body",
        mentions=("'version' needs 'model'",),
    ),
    post(
        "tokenize-tokenizer-fields-with-model",
        "/tokenize",
        {"text": "我爱", "model": "lesson", "mode": "full", "hmm": False},
        422,
        field="body",
        mentions=("mode", "hmm", "model"),
    ),
    post(
        "tokenize-unknown-model",
        "/tokenize",
        {"text": "我爱", "model": "nope"},
        404,
        slug="not-found",
        mentions=("nope",),
    ),
    post(
        "tokenize-bad-mode", "/tokenize", {"text": "我爱", "mode": "fast"}, 422, field="body.mode"
    ),
    post("tokenize-text-not-string", "/tokenize", {"text": 5}, 422, field="body.text"),
    post(
        "tokenize-user-word-with-space",
        "/tokenize",
        {"text": "我爱", "user_words": ["自然 语言"]},
        422,
        field="body.user_words",
    ),
    case(
        "tokenize-text-plain-415",
        "POST",
        "/tokenize",
        415,
        content="我爱".encode(),
        headers={"content-type": "text/plain"},
        field="header.content-type",
        slug="unsupported-media-type",
    ),
    case(
        "tokenize-form-415",
        "POST",
        "/tokenize",
        415,
        content=b"text=x",
        headers={"content-type": "application/x-www-form-urlencoded"},
        field="header.content-type",
    ),
    raw("tokenize-malformed-json", "/tokenize", b'{"text": "x",', 422, field="body"),
    raw("tokenize-empty-body", "/tokenize", b"", 422, field="body"),
    raw("tokenize-json-array", "/tokenize", b'["x"]', 422, field="body"),
    raw(
        "tokenize-invalid-utf8",
        "/tokenize",
        b'{"text": "\xff\xfe"}',
        422,
        field="body",
    ),
    # -- /embed ------------------------------------------------------------------------------
    post(
        "embed-id-out-of-range",
        "/embed",
        {"model": "lesson", "ids": [[0, 99]]},
        422,
        field="body.ids",
        mentions=("99",),
    ),
    post(
        "embed-negative-id",
        "/embed",
        {"model": "lesson", "ids": [[-1]]},
        422,
        field="body.ids.0.0",
        mentions=("greater than or equal to 0",),
    ),
    post(
        "embed-unknown-token-no-unk",
        "/embed",
        {"model": "lesson", "tokens": [["猫"]]},
        422,
        field="body.tokens",
        mentions=("猫",),
    ),
    post(
        "embed-text-segments-to-nothing",
        "/embed",
        {"model": "unky", "text": "   "},
        422,
        field="body.text",
    ),
    post(
        "embed-second-text-segments-to-nothing",
        "/embed",
        {"model": "unky", "texts": ["我爱", " \t "]},
        422,
        field="body.texts.1",
    ),
    post("embed-all-rows-empty", "/embed", {"model": "lesson", "ids": [[]]}, 422, field="body"),
    post("embed-empty-text", "/embed", {"model": "lesson", "text": ""}, 422, field="body.text"),
    post(
        "embed-two-inputs",
        "/embed",
        {"model": "lesson", "text": "我爱", "ids": [[0]]},
        422,
        field="body",
        mentions=("'ids'",),
    ),
    post("embed-no-input", "/embed", {"model": "lesson"}, 422, field="body"),
    post("embed-no-model", "/embed", {"text": "我爱"}, 422, field="body.model"),
    post(
        "embed-model-name-uppercase",
        "/embed",
        {"model": "Lesson", "text": "我爱"},
        422,
        field="body.model",
    ),
    post(
        "embed-unknown-model",
        "/embed",
        {"model": "nope", "text": "我爱"},
        404,
        mentions=("nope",),
    ),
    post(
        "embed-unknown-version",
        "/embed",
        {"model": "lesson", "version": 2, "text": "我爱"},
        404,
        mentions=("version 2",),
    ),
    post(
        "embed-version-0",
        "/embed",
        {"model": "lesson", "version": 0, "text": "我爱"},
        422,
        field="body.version",
    ),
    not_json("embed-text-plain-415", "/embed"),
    # -- /models -----------------------------------------------------------------------------
    case("models-get-path-traversal", "GET", "/models/..%2Fetc", 404),
    case("models-get-upper-and-underscore", "GET", "/models/Bad_Name", 422, field="path.name"),
    case("models-get-name-too-long", "GET", "/models/" + "a" * 65, 422, field="path.name"),
    case("models-get-leading-dash", "GET", "/models/-x", 422, field="path.name"),
    case("models-vocab-bad-name", "GET", "/models/A/vocab", 422, field="path.name"),
    case("models-delete-bad-name", "DELETE", "/models/Bad", 422, field="path.name"),
    case("models-get-unknown", "GET", "/models/nope", 404, mentions=("nope",)),
    case("models-delete-unknown", "DELETE", "/models/nope", 404, mentions=("nope",)),
    case("models-get-unknown-version", "GET", "/models/lesson?version=5", 404),
    case("models-get-version-0", "GET", "/models/lesson?version=0", 422, field="query.version"),
    case("models-get-version-text", "GET", "/models/lesson?version=x", 422, field="query.version"),
    case("models-vocab-limit-0", "GET", "/models/lesson/vocab?limit=0", 422, field="query.limit"),
    case(
        "models-vocab-negative-offset",
        "GET",
        "/models/lesson/vocab?offset=-1",
        422,
        field="query.offset",
    ),
    case("models-versions-unknown", "GET", "/models/nope/versions", 404),
    post(
        "models-create-name-dotdot",
        "/models",
        {**LESSON_MODEL, "name": "../x"},
        422,
        field="body.name",
    ),
    post(
        "models-create-name-upper", "/models", {**LESSON_MODEL, "name": "A"}, 422, field="body.name"
    ),
    post(
        "models-create-name-empty", "/models", {**LESSON_MODEL, "name": ""}, 422, field="body.name"
    ),
    post(
        "models-create-name-slash",
        "/models",
        {**LESSON_MODEL, "name": "a/b"},
        422,
        field="body.name",
    ),
    post(
        "models-create-bad-cell",
        "/models",
        {**LESSON_MODEL, "name": "x1", "cell": "cnn"},
        422,
        field="body.cell",
    ),
    post(
        "models-create-dropout-1",
        "/models",
        {**LESSON_MODEL, "name": "x1", "dropout": 1.0},
        422,
        field="body.dropout",
    ),
    post(
        "models-create-no-texts",
        "/models",
        {**LESSON_MODEL, "name": "x1", "texts": []},
        422,
        field="body.texts",
    ),
    post(
        "models-create-hidden-size-0",
        "/models",
        {**LESSON_MODEL, "name": "x1", "hidden_size": 0},
        422,
        field="body.hidden_size",
    ),
    post(
        "models-create-texts-give-no-tokens",
        "/models",
        {
            **LESSON_MODEL,
            "name": "x1",
            "texts": ["。。。"],
            "tokenizer": {"drop_punctuation": True},
        },
        422,
        field="body.texts",
    ),
    post(
        "models-create-duplicate-specials",
        "/models",
        {**LESSON_MODEL, "name": "x1", "vocab": {"specials": ["<pad>", "<pad>"]}},
        422,
        field="body.vocab.specials",
    ),
    post(
        "models-create-tie-weights-sizes-differ",
        "/models",
        {**LESSON_MODEL, "name": "x1", "tie_weights": True},
        422,
        field="body.tie_weights",
    ),
    post(
        "models-create-seed-over-int64",
        "/models",
        {**LESSON_MODEL, "name": "x1", "seed": 2**70},
        422,
        field="body.seed",
    ),
    post(
        "models-create-unknown-field",
        "/models",
        {**LESSON_MODEL, "name": "x1", "layers": 2},
        422,
        field="body.layers",
    ),
    not_json("models-create-text-plain-415", "/models"),
    case("models-versions-bad-name", "GET", "/models/Bad/versions", 422, field="path.name"),
    case("models-vocab-unknown", "GET", "/models/nope/vocab", 404, mentions=("nope",)),
    case("neighbours-unknown-model", "GET", "/models/nope/neighbours?token=我", 404),
    case("neighbours-no-token", "GET", "/models/lesson/neighbours", 422, field="query.token"),
    case(
        "neighbours-empty-token",
        "GET",
        "/models/lesson/neighbours?token=",
        422,
        field="query.token",
    ),
    case(
        "neighbours-oov-token",
        "GET",
        "/models/lesson/neighbours?token=量子计算",
        422,
        field="query.token",
        mentions=("not in the vocabulary",),
    ),
    case("neighbours-k-0", "GET", "/models/lesson/neighbours?token=我&k=0", 422, field="query.k"),
    case(
        "neighbours-k-too-many",
        "GET",
        "/models/lesson/neighbours?token=我&k=101",
        422,
        field="query.k",
    ),
    case("neighbours-bad-name", "GET", "/models/A/neighbours?token=我", 422, field="path.name"),
    # -- /dataset/preview ----------------------------------------------------------------------
    post(
        "dataset-seq-len-0",
        "/dataset/preview",
        {"ids": [1, 2, 3], "seq_len": 0},
        422,
        field="body.seq_len",
    ),
    post(
        "dataset-ids-and-texts",
        "/dataset/preview",
        {"ids": [1, 2, 3], "texts": ["我爱"], "seq_len": 2},
        422,
        field="body",
        mentions=("'texts'", "'ids'"),
    ),
    post(
        "dataset-neither-ids-nor-texts",
        "/dataset/preview",
        {"seq_len": 2},
        422,
        field="body",
        mentions=("'texts'", "'ids'"),
    ),
    post(
        "dataset-model-and-vocab",
        "/dataset/preview",
        {"model": "lesson", "vocab": ["a"], "ids": [0], "seq_len": 1},
        422,
        field="body",
        mentions=("'vocab'",),
    ),
    post(
        "dataset-stride-0",
        "/dataset/preview",
        {"ids": [1, 2, 3], "seq_len": 1, "stride": 0},
        422,
        field="body.stride",
    ),
    post(
        "dataset-limit-over-1000",
        "/dataset/preview",
        {"ids": [1, 2, 3], "seq_len": 1, "limit": 1001},
        422,
        field="body.limit",
    ),
    post(
        "dataset-empty-ids",
        "/dataset/preview",
        {"ids": [], "seq_len": 1},
        422,
        field="body.ids",
    ),
    post(
        "dataset-unknown-model",
        "/dataset/preview",
        {"model": "nope", "ids": [0, 1], "seq_len": 1},
        404,
        mentions=("nope",),
    ),
    post(
        "dataset-id-outside-vocab",
        "/dataset/preview",
        {"vocab": ["a", "b"], "ids": [0, 2], "seq_len": 1},
        422,
        field="body.ids",
    ),
    post(
        "dataset-duplicate-vocab-token",
        "/dataset/preview",
        {"vocab": ["a", "a"], "ids": [0, 1], "seq_len": 1},
        422,
        field="body.vocab",
    ),
    post(
        "dataset-id-over-int64",
        "/dataset/preview",
        {"ids": [2**70, 1, 2], "seq_len": 1},
        422,
        field="body.ids",
    ),
    post(
        "dataset-batch-size-over-int64",
        "/dataset/preview",
        {"ids": [1, 2, 3, 4], "seq_len": 1, "batch_size": 2**70},
        422,
        field="body.batch_size",
    ),
    not_json("dataset-text-plain-415", "/dataset/preview"),
    # -- /predict and /generate ----------------------------------------------------------------
    post(
        "predict-k-0", "/predict", {"model": "lesson", "text": "我爱", "k": 0}, 422, field="body.k"
    ),
    post("predict-empty-text", "/predict", {"model": "lesson", "text": ""}, 422, field="body.text"),
    post(
        "predict-text-segments-to-nothing",
        "/predict",
        {"model": "unky", "text": "  ", "k": 1},
        422,
        field="body.text",
    ),
    post("predict-unknown-model", "/predict", {"model": "nope", "text": "我爱", "k": 1}, 404),
    post(
        "generate-temperature-negative",
        "/generate",
        {"model": "lesson", "prompt": "我爱", "temperature": -0.5},
        422,
        field="body.temperature",
    ),
    post(
        "generate-temperature-over-100",
        "/generate",
        {"model": "lesson", "prompt": "我爱", "temperature": 101},
        422,
        field="body.temperature",
    ),
    raw(
        "generate-temperature-nan",
        "/generate",
        b'{"model": "lesson", "prompt": "\\u6211", "temperature": NaN}',
        422,
        field="body.temperature",
    ),
    post(
        "generate-top-k-0",
        "/generate",
        {"model": "lesson", "prompt": "我爱", "top_k": 0},
        422,
        field="body.top_k",
    ),
    post(
        "generate-max-tokens-0",
        "/generate",
        {"model": "lesson", "prompt": "我爱", "max_tokens": 0},
        422,
        field="body.max_tokens",
    ),
    post(
        "generate-empty-prompt",
        "/generate",
        {"model": "lesson", "prompt": ""},
        422,
        field="body.prompt",
    ),
    post(
        "generate-prompt-segments-to-nothing",
        "/generate",
        {"model": "unky", "prompt": "   ", "max_tokens": 1},
        422,
        field="body.prompt",
    ),
    post(
        "generate-seed-negative",
        "/generate",
        {"model": "lesson", "prompt": "我爱", "seed": -1},
        422,
        field="body.seed",
    ),
    not_json("predict-text-plain-415", "/predict"),
    not_json("generate-text-plain-415", "/generate"),
    post(
        "generate-unknown-model",
        "/generate",
        {"model": "nope", "prompt": "我爱"},
        404,
        slug="not-found",
        mentions=("nope",),
    ),
    post(
        "predict-text-and-texts",
        "/predict",
        {"model": "lesson", "text": "我爱", "texts": ["我爱"]},
        422,
        mentions=("exactly one",),
    ),
    post(
        "predict-texts-empty-list",
        "/predict",
        {"model": "lesson", "texts": []},
        422,
        field="body.texts",
    ),
    post(
        "predict-texts-one-without-tokens",
        "/predict",
        {"model": "unky", "texts": ["我爱", "   "], "k": 1},
        422,
        field="body.texts.1",
    ),
    over(
        "limit-max-texts-predict",
        "/predict",
        {"model": "lesson", "texts": ["我"] * 3, "k": 1},
        "max_texts",
    ),
    post(
        "generate-n-0",
        "/generate",
        {"model": "lesson", "prompt": "我爱", "n": 0},
        422,
        field="body.n",
    ),
    post(
        "generate-repetition-penalty-0",
        "/generate",
        {"model": "lesson", "prompt": "我爱", "repetition_penalty": 0},
        422,
        field="body.repetition_penalty",
    ),
    post(
        "generate-stop-empty-string",
        "/generate",
        {"model": "lesson", "prompt": "我爱", "stop": [""]},
        422,
        field="body.stop.0",
    ),
    post(
        "generate-stream-not-a-bool",
        "/generate",
        {"model": "lesson", "prompt": "我爱", "stream": "yes"},
        422,
        field="body.stream",
    ),
    over(
        "limit-max-text-chars-generate",
        "/generate",
        {"model": "lesson", "prompt": "我" * 21, "max_tokens": 2},
        "max_text_chars",
    ),
    post(
        "generate-stream-unknown-model",
        "/generate",
        {"model": "nope", "prompt": "我爱", "stream": True},
        404,
        slug="not-found",
    ),
    over_value(
        "limit-max-top-k-generate",
        "/generate",
        {"model": "lesson", "prompt": "我爱", "max_tokens": 2, "top_k": 4},
        "max_top_k",
        "body.top_k",
    ),
    post(
        "generate-repetition-penalty-underflows",
        "/generate",
        {"model": "lesson", "prompt": "我爱", "repetition_penalty": 1e-100},
        422,
        field="body.repetition_penalty",
    ),
    # -- /score --------------------------------------------------------------------------------
    post("score-unknown-model", "/score", {"model": "nope", "text": "我爱"}, 404, slug="not-found"),
    post(
        "score-no-text",
        "/score",
        {"model": "lesson"},
        422,
        mentions=("exactly one",),
    ),
    post(
        "score-text-without-tokens",
        "/score",
        {"model": "unky", "text": "   "},
        422,
        field="body.text",
    ),
    post(
        "score-one-token-without-eos",
        "/score",
        {"model": "lesson", "texts": ["我爱", "我"]},
        422,
        field="body.texts.1",
        mentions=("<eos>",),
    ),
    post(
        "score-oov-without-unk",
        "/score",
        {"model": "lesson", "text": "我爱猫"},
        422,
        mentions=("猫",),
    ),
    over("limit-max-texts-score", "/score", {"model": "unky", "texts": ["我"] * 3}, "max_texts"),
    not_json("score-text-plain-415", "/score"),
    # -- query parameters ----------------------------------------------------------------------
    case(
        "query-unknown-parameter",
        "POST",
        "/predict?verison=1",
        422,
        json={"model": "lesson", "text": "我爱"},
        field="query.verison",
        mentions=("verison",),
    ),
    case(
        "query-unknown-parameter-get",
        "GET",
        "/models?limit=3",
        422,
        field="query.limit",
    ),
    case(
        "query-parameter-twice",
        "POST",
        "/predict?version=1&version=2",
        422,
        json={"model": "lesson", "text": "我爱", "k": 1},
        field="query.version",
        mentions=("more than once",),
    ),
    case(
        "query-version-disagrees-with-body",
        "POST",
        "/predict?version=2",
        422,
        json={"model": "lesson", "text": "我爱", "version": 1},
        field="query.version",
    ),
    case(
        "query-version-unknown",
        "POST",
        "/score?version=9",
        404,
        json={"model": "unky", "text": "我爱"},
        mentions=("9",),
    ),
    case(
        "query-version-not-a-number",
        "POST",
        "/generate?version=two",
        422,
        json={"model": "lesson", "prompt": "我爱"},
        field="query.version",
    ),
    case(
        "query-version-without-model",
        "POST",
        "/tokenize?version=1",
        422,
        json={"text": "我爱"},
        field="query.version",
    ),
    # -- new models: boundaries and output layers ----------------------------------------------
    post(
        "create-unknown-boundary",
        "/models",
        {**LESSON_MODEL, "name": "big", "tokenizer": {"boundary": "sentence"}},
        422,
        field="body.tokenizer.boundary",
    ),
    post(
        "create-adaptive-tied",
        "/models",
        {
            **LESSON_MODEL,
            "name": "big",
            "vocab": {},
            "output": "adaptive",
            "tie_weights": True,
            "embedding_dim": 5,
        },
        422,
        field="body.tie_weights",
    ),
    post(
        "create-adaptive-first-seen",
        "/models",
        {**LESSON_MODEL, "name": "big", "output": "adaptive", "vocab": {"order": "first_seen"}},
        422,
        mentions=("frequency",),
    ),
    post(
        "create-cutoffs-for-full",
        "/models",
        {**LESSON_MODEL, "name": "big", "cutoffs": [3]},
        422,
        mentions=("adaptive",),
    ),
    post(
        "create-adaptive-bad-cutoffs",
        "/models",
        {**LESSON_MODEL, "name": "big", "vocab": {}, "output": "adaptive", "cutoffs": [5, 2]},
        422,
        field="body.cutoffs",
    ),
    # -- /train (no case starts a job) ---------------------------------------------------------
    post(
        "train-unknown-model",
        "/train",
        {"model": "nope", "texts": ["我爱学习"]},
        404,
        slug="not-found",
        mentions=("nope",),
    ),
    post(
        "train-unknown-corpus",
        "/train",
        {"model": "lesson", "corpus_id": UNKNOWN_ID},
        404,
        mentions=(UNKNOWN_ID,),
    ),
    post(
        "train-lr-0",
        "/train",
        {"model": "lesson", "texts": ["我爱学习"], "lr": 0},
        422,
        field="body.lr",
    ),
    post(
        "train-texts-and-corpus",
        "/train",
        {"model": "lesson", "texts": ["我爱学习"], "corpus_id": UNKNOWN_ID},
        422,
        field="body",
        mentions=("'texts'", "'corpus_id'"),
    ),
    post(
        "train-unknown-token-no-unk",
        "/train",
        {"model": "lesson", "texts": ["猫猫猫猫"]},
        422,
        field="body.texts",
        mentions=("猫",),
    ),
    not_json("train-text-plain-415", "/train"),
    case("train-list-bad-status", "GET", "/train?status=done", 422, field="query.status"),
    case("train-list-bad-model", "GET", "/train?model=Bad", 422, field="query.model"),
    case("train-get-unknown", "GET", f"/train/{UNKNOWN_ID}", 404, mentions=(UNKNOWN_ID,)),
    case("train-get-bad-id", "GET", "/train/not-an-id", 422, field="path.job_id"),
    case("train-cancel-unknown", "DELETE", f"/train/{UNKNOWN_ID}", 404, mentions=(UNKNOWN_ID,)),
    case("train-cancel-bad-id", "DELETE", "/train/XYZ", 422, field="path.job_id"),
    case("train-events-unknown", "GET", f"/train/{UNKNOWN_ID}/events", 404),
    case("train-events-bad-id", "GET", "/train/0123/events", 422, field="path.job_id"),
    # -- /corpora ------------------------------------------------------------------------------
    case(
        "corpora-json-415",
        "POST",
        "/corpora",
        415,
        json={"text": "我爱学习"},
        slug="unsupported-media-type",
    ),
    case(
        "corpora-not-utf8",
        "POST",
        "/corpora",
        422,
        content="我爱学习".encode("gbk"),
        headers=TEXT,
        mentions=("UTF-8",),
    ),
    case("corpora-only-whitespace", "POST", "/corpora", 422, content=b" \n ", headers=TEXT),
    case(
        "corpora-form-without-file",
        "POST",
        "/corpora",
        422,
        content=b'--b\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n--b--\r\n',
        headers={"content-type": "multipart/form-data; boundary=b"},
        field="body.file",
    ),
    case("corpora-delete-unknown", "DELETE", f"/corpora/{UNKNOWN_ID}", 404),
    case("corpora-delete-bad-id", "DELETE", "/corpora/x", 422, field="path.corpus_id"),
    # -- model archives ------------------------------------------------------------------------
    case("export-unknown-model", "GET", "/models/nope/versions/1/export", 404, mentions=("nope",)),
    case("export-unknown-version", "GET", "/models/lesson/versions/9/export", 404),
    case(
        "export-version-zero", "GET", "/models/lesson/versions/0/export", 422, field="path.version"
    ),
    case(
        "import-json-415",
        "POST",
        "/models/import",
        415,
        json={"name": "lesson"},
        slug="unsupported-media-type",
    ),
    case(
        "import-not-an-archive",
        "POST",
        "/models/import",
        422,
        content="我爱学习".encode(),
        headers=TAR,
        field="body",
        mentions=("not a seqlab model archive",),
    ),
    case(
        "import-bad-name",
        "POST",
        "/models/import?name=Bad",
        422,
        content=b"",
        headers=TAR,
        field="query.name",
    ),
    case(
        "import-next-version-of-unknown-model",
        "POST",
        "/models/import?name=nope&create=false",
        404,
        content=b"",
        headers=TAR,
        mentions=("nope",),
    ),
    # -- limits (see TIGHT) --------------------------------------------------------------------
    over("limit-max-texts-tokenize", "/tokenize", {"texts": ["我", "爱", "你"]}, "max_texts"),
    over(
        "limit-max-texts-embed-tokens",
        "/embed",
        {"model": "unky", "tokens": [["我"], ["爱"], ["你"]]},
        "max_texts",
    ),
    over(
        "limit-max-texts-rnn",
        "/rnn/forward",
        {"model": "lesson", "texts": ["我爱", "我爱", "我爱"]},
        "max_texts",
    ),
    over("limit-max-text-chars", "/tokenize", {"text": "我" * 21}, "max_text_chars"),
    over(
        "limit-max-text-chars-predict",
        "/predict",
        {"model": "lesson", "text": "我爱" * 11, "k": 1},
        "max_text_chars",
    ),
    case(
        "limit-max-body-bytes",
        "POST",
        "/tokenize",
        413,
        content=b'{"text": "' + b"a" * 3000 + b'"}',
        headers=JSON,
        limit="max_body_bytes",
    ),
    over(
        "limit-max-tensor-elements-input",
        "/rnn/forward",
        {"rnn": {"input_size": 8, "hidden_size": 1}, "input": [[[0.0] * 8]] * 9},
        "max_tensor_elements",
    ),
    over(
        "limit-max-tensor-elements-h0",
        "/rnn/forward",
        {"rnn": RNN, "input": X, "h0": [[[0.0] * 13] * 5]},
        "max_tensor_elements",
    ),
    over(
        "limit-max-tensor-elements-output",
        "/rnn/forward",
        {"rnn": {"input_size": 1, "hidden_size": 8}, "input": [[[0.5]]] * 9},
        "max_tensor_elements",
    ),
    over(
        # output [5, 1, 8] = 40 elements fits; every layer's states [2, 5, 1, 8] = 80 do not.
        "limit-max-tensor-elements-states",
        "/rnn/forward",
        {
            "rnn": {"input_size": 1, "hidden_size": 8, "num_layers": 2},
            "input": [[[0.5]]] * 5,
            "return_states": True,
        },
        "max_tensor_elements",
    ),
    over(
        "limit-max-tensor-elements-weights",
        "/rnn/forward",
        {
            "rnn": {"input_size": 2, "hidden_size": 5, "num_layers": 2},
            "input": X,
            "return_weights": True,
        },
        "max_tensor_elements",
    ),
    over(
        "limit-max-tokens-per-forward-tensor",
        "/rnn/forward",
        {"rnn": {"input_size": 1, "hidden_size": 1}, "input": [[[0.5]]] * 11},
        "max_tokens_per_forward",
    ),
    over(
        "limit-max-tokens-per-forward-embed",
        "/embed",
        {"model": "lesson", "text": "我爱" * 6},
        "max_tokens_per_forward",
    ),
    over(
        "limit-max-tokens-per-forward-dataset",
        "/dataset/preview",
        {"ids": list(range(11)), "seq_len": 2},
        "max_tokens_per_forward",
    ),
    over_value(
        "limit-max-hidden-size-rnn",
        "/rnn/forward",
        {"rnn": {"input_size": 2, "hidden_size": 9}, "input": X},
        "max_hidden_size",
        "body.rnn.hidden_size",
    ),
    over_value(
        "limit-max-hidden-size-create",
        "/models",
        {**LESSON_MODEL, "name": "big", "hidden_size": 9},
        "max_hidden_size",
        "body.hidden_size",
    ),
    over_value(
        "limit-max-num-layers-rnn",
        "/rnn/forward",
        {"rnn": {**RNN, "num_layers": 3}, "input": X},
        "max_num_layers",
        "body.rnn.num_layers",
    ),
    over_value(
        "limit-max-num-layers-create",
        "/models",
        {**LESSON_MODEL, "name": "big", "num_layers": 3},
        "max_num_layers",
        "body.num_layers",
    ),
    over_value(
        "limit-max-embedding-dim-rnn",
        "/rnn/forward",
        {"rnn": {"input_size": 9, "hidden_size": 1}, "input": [[[0.0] * 9]]},
        "max_embedding_dim",
        "body.rnn.input_size",
    ),
    over_value(
        "limit-max-embedding-dim-create",
        "/models",
        {**LESSON_MODEL, "name": "big", "embedding_dim": 9},
        "max_embedding_dim",
        "body.embedding_dim",
    ),
    over_value(
        "limit-max-embedding-dim-huge-int",
        "/models",
        {**LESSON_MODEL, "name": "big", "embedding_dim": 2**70},
        "max_embedding_dim",
        "body.embedding_dim",
    ),
    over(
        "limit-max-vocab-size-create",
        "/models",
        {
            **LESSON_MODEL,
            "name": "big",
            "texts": ["我爱学习自然语言处理", "今天天气很好我们去公园散步"],
        },
        "max_vocab_size",
    ),
    over(
        "limit-max-vocab-size-dataset",
        "/dataset/preview",
        {"vocab": [f"w{i}" for i in range(11)], "ids": [0, 1], "seq_len": 1},
        "max_vocab_size",
    ),
    over(
        "limit-max-training-chars",
        "/models",
        {**LESSON_MODEL, "name": "big", "texts": ["我" * 20, "爱" * 21]},
        "max_training_chars",
    ),
    over(
        "limit-max-user-words",
        "/tokenize",
        {"text": "我爱", "user_words": ["甲乙", "丙丁", "戊己"]},
        "max_user_words",
    ),
    over_value(
        "limit-max-generate-tokens",
        "/generate",
        {"model": "lesson", "prompt": "我爱", "max_tokens": 6},
        "max_generate_tokens",
        "body.max_tokens",
    ),
    over_value(
        "limit-max-top-k",
        "/predict",
        {"model": "lesson", "text": "我爱", "k": 4},
        "max_top_k",
        "body.k",
    ),
    over(
        "limit-max-training-chars-train",
        "/train",
        {"model": "lesson", "texts": ["我" * 20, "爱" * 21]},
        "max_training_chars",
    ),
    case(
        "limit-max-corpus-bytes",
        "POST",
        "/corpora",
        413,
        content=("我" * 50).encode(),
        headers=TEXT,
        limit="max_corpus_bytes",
    ),
    case(
        "limit-max-import-bytes",
        "POST",
        "/models/import",
        413,
        content=bytes(5000),
        headers=TAR,
        limit="max_import_bytes",
    ),
    over_value(
        "limit-max-seq-len",
        "/dataset/preview",
        {"ids": [1, 2, 3], "seq_len": 5},
        "max_seq_len",
        "body.seq_len",
    ),
    # -- routing -------------------------------------------------------------------------------
    case("unknown-route", "GET", "/nowhere", 404, slug="not-found", mentions=("/nowhere",)),
    case("unknown-route-post", "POST", "/v2/tokenize", 404, json={"text": "x"}),
    case("wrong-method-put-tokenize", "PUT", "/tokenize", 405, json={"text": "x"}),
    case("wrong-method-delete-collection", "DELETE", "/models", 405),
    case("wrong-method-get-rnn", "GET", "/rnn/forward", 405),
]


@pytest.mark.parametrize("bad", CASES)
def test_bad_input(api: TestClient, bad: Case) -> None:
    response = api.request(
        bad.method, bad.path, json=bad.json, content=bad.content, headers=bad.headers
    )
    assert response.status_code < 500, response.text
    body = assert_problem(response, bad.status)
    if bad.field is not None:
        assert names_field(body, bad.field), (
            f"errors should name {bad.field!r}, got {named_fields(body)}: {body}"
        )
    if bad.limit is not None:
        assert body.get("limit") == bad.limit, body
        assert body["maximum"] == getattr(TIGHT, bad.limit), body
        assert body["value"] > body["maximum"], body
        assert bad.limit in body["detail"]
    if bad.slug is not None:
        assert body["type"] == f"urn:seqlab:problem:{bad.slug}", body
    for word in bad.mentions:
        assert word in body["detail"], f"detail should mention {word!r}: {body['detail']!r}"


def test_case_ids_are_unique() -> None:
    ids = [param.id for param in CASES]
    assert len(set(ids)) == len(ids)


def operation_of(spec: dict[str, Any], method: str, url: str) -> tuple[str, str] | None:
    """The spec's (method, path template) that a request goes to, or None (no such route)."""
    path = url.split("?", 1)[0]
    for template, item in spec["paths"].items():
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        if method.lower() in item and re.fullmatch(pattern, path):
            return method.lower(), template
    return None


def test_every_error_a_route_documents_is_shown_by_a_case(api: TestClient) -> None:
    """For each route that takes input, each documented 4xx but 401, 409 and 429 has a case."""
    spec = api.get("/openapi.json").json()
    shown = set()
    for param in CASES:
        bad = param.values[0]
        operation = operation_of(spec, bad.method, bad.path)
        if operation is not None:
            shown.add((*operation, str(bad.status)))
    missing = [
        f"{method.upper()} {template} {status}"
        for template, item in spec["paths"].items()
        for method, operation in item.items()
        if "requestBody" in operation or operation.get("parameters")
        for status in operation["responses"]
        if status.startswith("4") and status not in {"401", "409", "429"}
        if (method, template, status) not in shown
    ]
    assert not missing, "no bad-input case shows these documented answers"


def test_every_answer_of_the_catalogue_is_documented_by_its_route(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    undocumented = []
    for param in CASES:
        bad = param.values[0]
        operation = operation_of(spec, bad.method, bad.path)
        if operation is None:  # no such route or method: the routing cases
            assert bad.status in (404, 405), param.id
            continue
        method, template = operation
        if str(bad.status) not in spec["paths"][template][method]["responses"]:
            undocumented.append(f"{param.id}: {method.upper()} {template} {bad.status}")
    assert not undocumented


def test_every_error_status_of_a_route_is_documented(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    embed = spec["paths"]["/embed"]["post"]["responses"]
    assert {"404", "413", "415", "422"} <= set(embed)
    assert "application/problem+json" in embed["404"]["content"]
    create = spec["paths"]["/models"]["post"]["responses"]
    assert {"201", "409", "413", "415", "422"} <= set(create)
    # No API key is configured here, so no route can answer 401 and none documents it.
    assert "401" not in create
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method == "post":
                content = operation["requestBody"]["content"]
                if "application/json" in content:
                    schema = content["application/json"]["schema"]
                    assert "$ref" in schema, f"{method} {path} has no request schema"
                elif path == "/models/import":  # a model archive
                    assert set(content) == {"application/x-tar", "application/octet-stream"}
                else:  # an upload: text/plain or a multipart file
                    assert {"text/plain", "multipart/form-data"} <= set(content)


def test_name_taken_is_409(api: TestClient) -> None:
    body = assert_problem(api.post("/models", json=LESSON_MODEL), 409)
    assert body["type"] == "urn:seqlab:problem:conflict"
    assert "lesson" in body["detail"]
    # The first model is untouched.
    assert api.get("/models/lesson").json()["version"] == 1


def test_wrong_method_says_which_are_allowed(api: TestClient) -> None:
    response = api.put("/tokenize", json={"text": "x"})
    assert_problem(response, 405)
    assert response.headers["allow"] == "POST"


def test_streamed_body_over_the_limit_is_413(api: TestClient) -> None:
    """No Content-Length (chunked): the limit is enforced while the body is read."""

    def chunks() -> Iterator[bytes]:
        yield b'{"text": "'
        for _ in range(4):
            yield b"a" * 1000
        yield b'"}'

    counted = 'seqlab_requests_total{method="POST",route="/tokenize",status="413"}'

    def count() -> float:
        line = next((x for x in api.get("/metrics").text.splitlines() if x.startswith(counted)), "")
        return float(line.split()[-1]) if line else 0.0

    before = count()
    response = api.post("/tokenize", content=chunks(), headers=JSON)
    body = assert_problem(response, 413)
    assert body["limit"] == "max_body_bytes"
    assert body["maximum"] == TIGHT.max_body_bytes
    assert count() == before + 1  # counted with its route and its status, not as a 500


def test_deeply_nested_json_is_422(api: TestClient) -> None:
    # Nested deeper than the recursion limit, json.loads raises RecursionError, not
    # JSONDecodeError; 2,041 bytes stay under max_body_bytes.
    depth = 1015
    content = b'{"input": ' + b"[" * depth + b"]" * depth + b"}"
    assert len(content) <= TIGHT.max_body_bytes
    response = api.post("/rnn/forward", content=content, headers=JSON)
    body = assert_problem(response, 422)
    assert names_field(body, "body"), body


def test_a_subnormal_temperature_is_greedy(api: TestClient) -> None:
    """Dividing log-probabilities by 5e-324 would overflow; that low, sampling is greedy."""
    request = {"model": "lesson", "prompt": "我爱", "max_tokens": 3, "seed": 0}
    response = api.post("/generate", json={**request, "temperature": 5e-324})
    assert response.status_code == 200, response.text
    greedy = api.post("/generate", json={**request, "temperature": 0})
    assert greedy.status_code == 200, greedy.text
    assert response.json()["ids"] == greedy.json()["ids"]
    assert response.json()["tokens"] == greedy.json()["tokens"]


def test_bad_input_changes_nothing(api: TestClient) -> None:
    """After the whole catalogue, the registry holds exactly the two models it started with."""
    names = [model["name"] for model in api.get("/models").json()["models"]]
    assert names == ["lesson", "unky"]
