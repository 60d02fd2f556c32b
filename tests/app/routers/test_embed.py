"""/embed: vectors by text, tokens or ids, OOV flags, ragged batches, pinned versions."""

import torch


def test_embed_text_texts_tokens_and_ids_agree(shared_client):
    by_text = shared_client.post("/embed", json={"model": "lesson-rnn", "text": "我爱学习"}).json()
    by_tokens = shared_client.post(
        "/embed", json={"model": "lesson-rnn", "tokens": [["我", "爱", "学习"]]}
    ).json()
    by_ids = shared_client.post(
        "/embed", json={"model": "lesson-rnn", "ids": by_text["ids"]}
    ).json()
    assert by_text["tokens"] == by_tokens["tokens"] == by_ids["tokens"] == [["我", "爱", "学习"]]
    assert by_text["vectors"] == by_tokens["vectors"] == by_ids["vectors"]
    assert by_text["dim"] == 4
    assert torch.tensor(by_text["vectors"]).shape == (1, 3, 4)


def test_oov_tokens_are_flagged_and_share_the_unk_vector(shared_client):
    body = shared_client.post(
        "/embed", json={"model": "lesson-rnn", "tokens": [["我", "量子计算", "区块链"]]}
    ).json()
    assert body["oov"] == [[False, True, True]]
    assert body["ids"][0][1] == body["ids"][0][2] == 1
    assert body["vectors"][0][1] == body["vectors"][0][2]


def test_ragged_batches_keep_their_lengths(shared_client):
    body = shared_client.post(
        "/embed", json={"model": "lesson-rnn", "texts": ["我爱学习自然语言处理", "我"]}
    ).json()
    assert [len(v) for v in body["vectors"]] == [5, 1]


def test_a_pinned_version_is_used_and_named_in_the_header(shared_client):
    response = shared_client.post(
        "/embed", json={"model": "lesson-rnn", "version": 1, "text": "我"}
    )
    assert response.status_code == 200
    assert response.headers["Seqlab-Model"] == "lesson-rnn@1"
    assert response.json()["version"] == 1
