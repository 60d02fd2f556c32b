"""/models: create, list, describe, vocabulary pages, version pinning, delete."""

from tests.app.conftest import LESSON_MODEL


def test_first_start_creates_the_demo_model(client):
    models = client.get("/models").json()["models"]
    assert [m["name"] for m in models] == ["lesson-rnn"]
    demo = models[0]
    assert demo["version"] == 1
    assert demo["config"]["embedding_dim"] == 4
    assert demo["config"]["hidden_size"] == 5
    assert demo["config"]["num_layers"] == 2
    assert demo["device"] == "cpu"
    assert demo["specials"] == ["<pad>", "<unk>"]


def test_a_created_model_can_be_described_and_deleted(client, make_settings):
    response = client.post("/models", json=LESSON_MODEL)
    assert response.status_code == 201
    assert response.headers["Seqlab-Model"] == "lesson@1"
    assert response.headers["Location"] == "/models/lesson"
    info = response.json()
    assert info["name"] == "lesson"
    assert info["versions"] == [1]
    assert info["tokenizer"]["mode"] == "accurate"
    assert info["source"]["seed"] == 0
    assert info["num_parameters"] == 6 * 4 + (4 * 5 + 5 * 5 + 10) + (5 * 5 + 5 * 5 + 10) + 5 * 6 + 6
    assert client.get("/models/lesson").json()["created_at"] == info["created_at"]

    files = make_settings().layout.models / "lesson" / "v1"
    assert (files / "model.safetensors").is_file()
    assert client.delete("/models/lesson").status_code == 204
    assert client.get("/models/lesson").status_code == 404
    assert not files.exists()
    assert client.post("/models", json=LESSON_MODEL).status_code == 201  # the name is free again


def test_the_same_seed_gives_the_same_weights(client):
    first = client.post("/models", json=LESSON_MODEL)
    second = client.post("/models", json={**LESSON_MODEL, "name": "lesson-2"})
    assert first.status_code == second.status_code == 201
    tokens = {"tokens": [["我", "爱"]]}
    a = client.post("/embed", json={"model": "lesson", **tokens}).json()["vectors"]
    b = client.post("/embed", json={"model": "lesson-2", **tokens}).json()["vectors"]
    assert a == b


def test_tokenizer_settings_are_part_of_the_model(client):
    settings = {"user_words": ["自然语言处理"], "normalization": "halfwidth", "lowercase": True}
    body = {**LESSON_MODEL, "tokenizer": settings, "vocab": {"specials": ["<unk>"]}}
    assert client.post("/models", json=body).status_code == 201
    info = client.get("/models/lesson").json()
    assert info["tokenizer"]["user_words"] == ["自然语言处理"]
    body = client.post(
        "/tokenize", json={"text": "我爱自然语言处理ＡＢＣ", "model": "lesson"}
    ).json()
    assert body["tokens"] == [["我", "爱", "自然语言处理", "abc"]]
    assert body["oov"] == [[False, False, False, True]]  # "abc" is not in the lesson texts
    # A model's user words do not leak into plain tokenization.
    plain = client.post("/tokenize", json={"text": "我爱自然语言处理"}).json()
    assert plain["tokens"] == [["我", "爱", "自然语言", "处理"]]


def test_the_vocabulary_is_listed_in_pages(client):
    client.post("/models", json=LESSON_MODEL)
    page = client.get("/models/lesson/vocab", params={"offset": 2, "limit": 3}).json()
    assert page["tokens"] == ["学习", "自然语言", "处理"]
    assert page["size"] == 6
    assert page["offset"] == 2


def test_frequency_order_and_min_freq_shape_the_vocabulary(client):
    body = {**LESSON_MODEL, "vocab": {"specials": ["<unk>"], "order": "frequency", "min_freq": 2}}
    client.post("/models", json=body)
    assert client.get("/models/lesson/vocab").json()["tokens"] == ["<unk>", "我", "爱", "学习"]


def test_pinning_a_version_that_does_not_exist_is_404(client):
    response = client.get("/models/lesson-rnn", params={"version": 7})
    assert response.status_code == 404
    assert "no version 7" in response.json()["detail"]
    assert client.get("/models/lesson-rnn", params={"version": 1}).json()["version"] == 1


def test_without_the_demo_a_fresh_data_dir_has_no_models(make_client):
    client = make_client(create_demo_model=False)
    assert client.get("/models").json() == {"models": []}
