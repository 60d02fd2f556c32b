"""/tokenize: jieba's modes and options, offsets into the original text, a model's ids."""

import pytest


def test_single_text_gives_one_list(shared_client):
    body = shared_client.post("/tokenize", json={"text": "我爱学习自然语言处理"}).json()
    assert body["tokens"] == [["我", "爱", "学习", "自然语言", "处理"]]
    assert "offsets" not in body
    assert "ids" not in body
    assert body["tokenizer"]["mode"] == "accurate"


def test_batch_with_offsets_into_the_original(shared_client):
    texts = ["我爱学习自然语言处理", "ＧＰＴ４，我爱机器学习！"]
    body = shared_client.post(
        "/tokenize", json={"texts": texts, "offsets": True, "normalization": "halfwidth"}
    ).json()
    assert len(body["tokens"]) == 2
    for text, tokens, offsets in zip(texts, body["tokens"], body["offsets"], strict=True):
        assert len(tokens) == len(offsets)
        for token, (start, end) in zip(tokens, offsets, strict=True):
            original = text[start:end]
            assert original == token or len(original) == len(token)  # half-width is 1:1
    assert body["tokens"][1][0] == "GPT4"


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("accurate", ["我", "来到", "北京", "清华大学"]),
        ("full", ["我", "来到", "北京", "清华", "清华大学", "华大", "大学"]),
        ("search", ["我", "来到", "北京", "清华", "华大", "大学", "清华大学"]),
    ],
)
def test_each_mode_segments_as_jieba_does(shared_client, mode, expected):
    body = shared_client.post("/tokenize", json={"text": "我来到北京清华大学", "mode": mode}).json()
    assert body["tokens"] == [expected]


def test_hmm_off_and_drop_punctuation_change_the_tokens(shared_client):
    off = shared_client.post(
        "/tokenize", json={"text": "他来到了网易杭研大厦。", "hmm": False, "drop_punctuation": True}
    ).json()
    assert "杭研" not in off["tokens"][0]
    assert "。" not in off["tokens"][0]


def test_with_a_model_gives_ids_and_names_the_model(shared_client):
    response = shared_client.post(
        "/tokenize", json={"texts": ["我爱学习", "我爱猫咪"], "model": "lesson-rnn"}
    )
    assert response.headers["Seqlab-Model"] == "lesson-rnn@1"
    body = response.json()
    assert body["model"] == "lesson-rnn"
    assert body["version"] == 1
    assert len(body["ids"]) == 2
    unk = 1  # default specials: <pad>=0, <unk>=1
    assert body["ids"][1][-1] == unk
    assert body["oov"][1][-1] is True


def test_long_texts_are_cut_off_the_event_loop_with_the_same_result(shared_client):
    text = "我爱学习自然语言处理。" * 300  # over the inline threshold
    body = shared_client.post("/tokenize", json={"text": text}).json()
    assert len(body["tokens"][0]) == 6 * 300


def test_the_whitespace_backend_splits_on_spaces_only(shared_client):
    body = shared_client.post(
        "/tokenize", json={"text": "The cat sat @-@ on <unk> .", "backend": "whitespace"}
    ).json()
    assert body["tokens"] == [["The", "cat", "sat", "@-@", "on", "<unk>", "."]]
    assert body["tokenizer"]["backend"] == "whitespace"
