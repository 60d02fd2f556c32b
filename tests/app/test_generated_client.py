"""A Python client generated from the running service's ``/openapi.json`` by
openapi-python-client (PyPI) runs the lesson end to end against a real ``seqlab serve``.

The spec has to be good enough for that: typed request and answer classes for every step, the
rules the server enforces written into the schemas (``oneOf`` inside ``allOf`` for "exactly one
of"), and readable function names (``operationId`` = the handler's name).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
import torch

from tests.app.service_process import ServiceProcess

BIN = Path(sys.executable).parent
GENERATOR = shutil.which("openapi-python-client") or str(BIN / "openapi-python-client")
pytestmark = pytest.mark.skipif(
    not os.access(GENERATOR, os.X_OK), reason="openapi-python-client is not installed"
)
BINARY = "application/vnd.safetensors"
LESSON_TEXTS = ["我爱学习自然语言处理", "我爱机器学习"]
LESSON_INPUT = [
    [[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]],
    [[0.9, 1.0, 1.1, 1.2], [1.3, 1.4, 1.5, 1.6]],
    [[1.7, 1.8, 1.9, 2.0], [2.1, 2.2, 2.3, 2.4]],
]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    service = ServiceProcess(tmp_path_factory.mktemp("client") / "data").start()
    yield service
    service.stop()


@pytest.fixture(scope="module")
def generated(service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The package ``seqlab_client``, generated from the live spec and importable."""
    folder = tmp_path_factory.mktemp("generated")
    spec = folder / "openapi.json"
    spec.write_bytes(httpx.get(service.base + "/openapi.json").content)
    # The generator knows neither safetensors nor tar (a model archive): it is told to treat
    # them as any binary body (File).
    config = folder / "config.json"
    binary = {BINARY: "application/octet-stream", "application/x-tar": "application/octet-stream"}
    config.write_text(json.dumps({"content_type_overrides": binary}))
    run = subprocess.run(
        [
            GENERATOR,
            "generate",
            "--path",
            str(spec),
            "--meta",
            "none",
            "--config",
            str(config),
            "--output-path",
            str(folder / "seqlab_client"),
        ],
        capture_output=True,
        text=True,
        # ruff (beside this Python) formats the generated code.
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # The one operation it cannot type is the text/plain corpus upload (multipart is typed).
    output = run.stdout + run.stderr
    warnings = [line for line in output.splitlines() if line.startswith("WARNING")]
    assert warnings == ["WARNING parsing POST /corpora within training."], output
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module("seqlab_client")
    finally:
        sys.path.remove(str(folder))
        for name in [n for n in sys.modules if n.split(".")[0] == "seqlab_client"]:
            del sys.modules[name]


def test_the_lesson_runs_through_a_generated_client(generated, service):
    from seqlab_client import Client
    from seqlab_client.api.dataset import preview
    from seqlab_client.api.embeddings import embed, neighbours
    from seqlab_client.api.language_model import generate, predict, score
    from seqlab_client.api.models import create_model, get_model
    from seqlab_client.api.recurrent_layer import rnn_forward
    from seqlab_client.api.text import tokenize
    from seqlab_client.api.training import train
    from seqlab_client.models import (
        CreateModelRequest,
        CreateModelRequestCell,
        DatasetPreviewRequest,
        EmbedRequest,
        GenerateRequest,
        PredictRequest,
        Problem,
        RNNForwardRequest,
        RNNSpec,
        ScoreRequest,
        TokenizeRequest,
        TrainRequest,
        VocabSettings,
    )

    client = Client(base_url=service.base, raise_on_unexpected_status=True, timeout=120)
    # 1. Segment.
    segmented = tokenize.sync(client=client, body=TokenizeRequest(texts=LESSON_TEXTS))
    assert segmented.tokens == [
        ["我", "爱", "学习", "自然语言", "处理"],
        ["我", "爱", "机器", "学习"],
    ]
    # 2. A vocabulary and an embedding, the lesson's sizes.
    created = create_model.sync(
        client=client,
        body=CreateModelRequest(
            name="lesson",
            texts=LESSON_TEXTS,
            vocab=VocabSettings(specials=[]),
            embedding_dim=4,
            hidden_size=5,
            num_layers=2,
            cell=CreateModelRequestCell.RNN,
            seed=0,
        ),
    )
    assert created.vocab_size == 6
    vectors = embed.sync(client=client, body=EmbedRequest(model="lesson", texts=LESSON_TEXTS))
    assert [len(row) for row in vectors.vectors] == [5, 4]
    assert vectors.dim == 4
    near = neighbours.sync("lesson", client=client, token="学习", k=3)
    assert len(near.neighbours) == 3
    # 3. nn.RNN(4, 5, num_layers=2) after torch.manual_seed(0), checked against torch here.
    answer = rnn_forward.sync(
        client=client,
        body=RNNForwardRequest(
            rnn=RNNSpec(input_size=4, hidden_size=5, num_layers=2, seed=0),
            input_=LESSON_INPUT,
            return_weights=True,
        ),
    )
    assert answer.output.shape == [3, 2, 5]
    assert answer.hn.shape == [2, 2, 5]
    torch.manual_seed(0)
    layer = torch.nn.RNN(4, 5, num_layers=2)
    expected_output, expected_hn = layer(torch.tensor(LESSON_INPUT))
    torch.testing.assert_close(
        torch.tensor(answer.output.values), expected_output, atol=1e-6, rtol=0
    )
    torch.testing.assert_close(torch.tensor(answer.hn.values), expected_hn, atol=1e-6, rtol=0)
    # 4. The dataset's windows.
    windows = preview.sync(
        client=client,
        body=DatasetPreviewRequest(ids=[0, 1, 3, 4, 0, 1, 5, 2], seq_len=3, batch_size=2),
    )
    assert windows.num_windows == 5
    assert windows.windows[0].x == [0, 1, 3]
    assert windows.windows[0].y == [1, 3, 4]
    # 5. Train it (waiting for the job), then the next word.
    job = train.sync(
        client=client,
        body=TrainRequest(
            model="lesson", texts=LESSON_TEXTS * 8, seq_len=2, batch_size=2, epochs=2, wait=True
        ),
    )
    assert job.status.value == "succeeded", job.error
    assert job.version == 2
    candidates = predict.sync(client=client, body=PredictRequest(model="lesson", text="我爱", k=3))
    assert len(candidates.candidates) == 3
    assert candidates.version == 2
    generated_text = generate.sync(
        client=client, body=GenerateRequest(model="lesson", prompt="我", max_tokens=4, seed=0)
    )
    assert generated_text.tokens
    scored = score.sync(client=client, body=ScoreRequest(model="lesson", text="我爱学习"))
    assert scored.scores[0].tokens == ["我", "爱", "学习"]
    # A problem answer is typed too.
    missing = get_model.sync_detailed("nope", client=client)
    assert missing.status_code == 404
    assert isinstance(missing.parsed, Problem)
    assert "nope" in missing.parsed.detail


def test_exactly_one_of_is_in_the_spec_and_enforced(service):
    spec = httpx.get(service.base + "/openapi.json").json()
    rules = {
        "TokenizeRequest": ["text", "texts"],
        "EmbedRequest": ["text", "texts", "tokens", "ids"],
        "PredictRequest": ["text", "texts"],
        "ScoreRequest": ["text", "texts"],
        "DatasetPreviewRequest": ["texts", "ids"],
        "TrainRequest": ["texts", "corpus_id"],
        "RNNForwardRequest": ["text", "texts", "input"],
    }
    for schema, names in rules.items():
        (rule,) = spec["components"]["schemas"][schema]["allOf"]
        assert [branch["required"] for branch in rule["oneOf"]] == [[n] for n in names]
    # The server says the same: both is a 422, and so is neither.
    for body in ({"text": "我", "texts": ["我"]}, {}):
        response = httpx.post(service.base + "/tokenize", json=body)
        assert response.status_code == 422
        assert "exactly one of 'text' or 'texts'" in response.json()["detail"]


def test_an_integer_valued_number_is_an_integer(service):
    """JSON Schema calls 1.0 an integer, so a client that follows the spec may send it."""
    response = httpx.post(
        service.base + "/embed", json={"model": "lesson-rnn", "version": 1.0, "ids": [[2.0, 3]]}
    )
    assert response.status_code == 200, response.text
    assert response.json()["ids"] == [[2, 3]]
    for bad in ({"version": 1.5}, {"version": "1"}, {"version": True}):
        response = httpx.post(
            service.base + "/embed", json={"model": "lesson-rnn", "ids": [[2]], **bad}
        )
        assert response.status_code == 422, bad
        assert response.json()["errors"][0]["field"] == "body.version"


def test_the_tie_weights_rule_is_documented_and_enforced(service):
    spec = httpx.get(service.base + "/openapi.json").json()
    description = spec["components"]["schemas"]["ModelSpec"]["properties"]["tie_weights"][
        "description"
    ]
    assert "`embedding_dim` equal to `hidden_size`" in description
    response = httpx.post(
        service.base + "/models",
        json={
            "name": "tied",
            "texts": ["我爱学习"],
            "embedding_dim": 4,
            "hidden_size": 5,
            "tie_weights": True,
        },
    )
    assert response.status_code == 422
    assert "tie_weights" in response.json()["detail"]


def test_every_operation_has_a_unique_readable_id(service):
    spec = httpx.get(service.base + "/openapi.json").json()
    ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    assert {"tokenize", "embed", "neighbours", "rnn_forward", "train", "predict"} <= set(ids)
