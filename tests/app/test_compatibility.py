"""A version written by the release before text boundaries and output layers still serves.

``tests/data/before-boundaries`` is a checkpoint made by commit c848f69 (vocabulary without
``<eos>``, tokenizer settings without ``boundary``, model settings without ``output``), with the
answers that release gave (``expected.json``): the same requests must give the same answers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from app.registry import ModelRegistry
from app.tokenizers import TokenizerCache
from models.checkpoint import load_checkpoint
from models.generation import generate, top_k
from tests.app.conftest import start_client

OLD = Path(__file__).resolve().parent.parent / "data" / "before-boundaries"
EXPECTED = json.loads((OLD / "expected.json").read_text(encoding="utf-8"))
CONTEXT = [2, 3]  # 我 爱


def old_checkpoint(tmp_path: Path) -> Path:
    copy = tmp_path / "old-checkpoint"
    shutil.copytree(OLD, copy, ignore=shutil.ignore_patterns("expected.json"))
    return copy


def test_the_old_checkpoint_loads_as_it_was(tmp_path):
    checkpoint = load_checkpoint(old_checkpoint(tmp_path))
    assert checkpoint.tokenizer.boundary == "none"
    assert checkpoint.model.config.output == "full"
    assert checkpoint.vocab.eos_id is None
    candidates = top_k(checkpoint.model, CONTEXT, 5, exclude_ids=[0])
    assert [c.token_id for c in candidates] == [row[0] for row in EXPECTED["predict"]]
    assert [c.probability for c in candidates] == pytest.approx(
        [row[1] for row in EXPECTED["predict"]], abs=1e-6
    )
    greedy = generate(checkpoint.model, CONTEXT, 8, temperature=0.0, exclude_ids=[0, 1])
    assert greedy[0].ids == EXPECTED["greedy"]
    sampled = generate(checkpoint.model, CONTEXT, 8, temperature=1.0, seed=3, exclude_ids=[0, 1])
    assert sampled[0].ids == EXPECTED["sampled"]


def test_the_service_answers_an_old_version_as_before(make_settings, tmp_path):
    settings = make_settings(create_demo_model=False)
    registry = ModelRegistry(settings.layout, "cpu", TokenizerCache(settings.layout.jieba_cache))
    registry.load()
    registry.publish_directory("old", old_checkpoint(tmp_path), create=True)
    registry.close()
    client = start_client(settings)
    try:
        info = client.get("/models/old").json()
        assert info["tokenizer"]["boundary"] == "none"
        assert info["config"]["output"] == "full"
        predicted = client.post("/predict", json={"model": "old", "text": "我爱", "k": 5}).json()
        assert [c["id"] for c in predicted["candidates"]] == [r[0] for r in EXPECTED["predict"]]
        greedy = client.post(
            "/generate",
            json={"model": "old", "prompt": "我爱", "max_tokens": 8, "temperature": 0},
        ).json()
        assert greedy["ids"] == EXPECTED["greedy"]
        assert greedy["finish_reason"] == "length"
        sampled = client.post(
            "/generate", json={"model": "old", "prompt": "我爱", "max_tokens": 8, "seed": 3}
        ).json()
        assert sampled["ids"] == EXPECTED["sampled"]
        # Read from zeros, as it was trained: the first token has nothing to be predicted from.
        scored = client.post("/score", json={"model": "old", "text": "我爱学习"}).json()
        assert scored["scores"][0]["log_probs"][0] is None
        assert scored["scores"][0]["tokens"] == ["我", "爱", "学习"]
        forward = client.post("/rnn/forward", json={"model": "old", "text": "我爱"}).json()
        assert forward["initial_state"] == "zeros"
        # Training it further keeps its way of reading text: no <eos>, no whole-text split.
        job = client.post(
            "/train",
            json={
                "model": "old",
                "texts": ["我爱学习", "我爱机器学习"] * 5,
                "seq_len": 3,
                "batch_size": 2,
                "val_fraction": 0.2,
                "wait": True,
            },
        ).json()
        assert job["status"] == "succeeded", job["error"]
        assert job["data"]["tokens"] == 35  # (3 + 4) × 5: no <eos> added
        assert job["data"]["val_texts"] is None
    finally:
        client.__exit__(None, None, None)
