"""An adaptive softmax on a 20k-word vocabulary: trained, and used by every endpoint."""

from __future__ import annotations

import pytest

from app.settings import Limits
from tests.conftest import shared_file

pytestmark = pytest.mark.slow
VOCAB_SIZE = 20_000


@pytest.fixture(scope="module")
def adaptive(tmp_path_factory: pytest.TempPathFactory):
    from app.settings import Settings
    from tests.app.conftest import start_client

    corpus = shared_file("zh-classics/hongloumeng.txt").read_bytes()
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("adaptive"),
        device="cpu",
        create_demo_model=False,
        limits=Limits(max_top_k=VOCAB_SIZE, max_corpus_bytes=4_000_000),
    )
    client = start_client(settings)
    uploaded = client.post("/corpora", content=corpus, headers={"content-type": "text/plain"})
    assert uploaded.status_code == 201, uploaded.text
    job = client.post(
        "/train",
        json={
            "model": "big",
            "corpus_id": uploaded.json()["corpus_id"],
            "create": {
                "vocab": {"max_size": VOCAB_SIZE},
                "embedding_dim": 64,
                "hidden_size": 128,
                "output": "adaptive",
            },
            "max_steps": 40,
            "val_fraction": 0.02,
            "wait": True,
        },
    ).json()
    assert job["status"] == "succeeded", job["error"]
    yield client, job
    client.__exit__(None, None, None)


def test_training_an_adaptive_output_learns(adaptive):
    client, job = adaptive
    model = client.get("/models/big").json()
    assert model["vocab_size"] == VOCAB_SIZE
    assert model["config"]["output"] == "adaptive"
    cutoffs = model["config"]["cutoffs"]
    assert 0 < cutoffs[0] < cutoffs[-1] < VOCAB_SIZE
    # The frequency-ordered vocabulary: the adaptive default
    assert client.get("/models/big/vocab", params={"limit": 5}).json()["tokens"][3] == "，"
    assert job["metrics"]["val_perplexity"] < job["data"]["unigram_perplexity"]


def test_predict_covers_the_whole_vocabulary(adaptive):
    client, _ = adaptive
    body = client.post(
        "/predict", json={"model": "big", "text": "宝玉道：", "k": VOCAB_SIZE}
    ).json()
    candidates = body["candidates"]
    assert len(candidates) == VOCAB_SIZE - 1  # every token but <pad>
    total = sum(c["probability"] for c in candidates)
    assert total == pytest.approx(1.0, abs=1e-3)
    assert total <= 1.0 + 1e-5


def test_generate_and_score_use_the_adaptive_output(adaptive):
    client, _ = adaptive
    generated = client.post(
        "/generate", json={"model": "big", "prompt": "宝玉道：", "max_tokens": 20, "seed": 0}
    ).json()
    assert generated["finish_reason"] in ("eos", "length")
    assert generated["tokens"]
    scored = client.post("/score", json={"model": "big", "text": "宝玉道：“你来了。”"}).json()
    assert scored["perplexity"] > 1
    assert len(scored["scores"][0]["log_probs"]) == len(scored["scores"][0]["tokens"])
    greedy = client.post(
        "/generate",
        json={"model": "big", "prompt": "宝玉道：", "max_tokens": 1, "temperature": 0},
    ).json()
    best = client.post("/predict", json={"model": "big", "text": "宝玉道：", "k": 2}).json()
    top = best["candidates"][0]
    assert (greedy["ids"] or [None])[0] == top["id"] or (
        top["token"] == "<eos>" and greedy["finish_reason"] == "eos"
    )
