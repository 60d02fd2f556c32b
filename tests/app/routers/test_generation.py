"""/predict and /generate: the output layer of a model predicting the next word."""


def test_predict_gives_sorted_candidates_with_probabilities(shared_client):
    response = shared_client.post("/predict", json={"model": "lesson-rnn", "text": "我爱", "k": 5})
    assert response.headers["Seqlab-Model"] == "lesson-rnn@1"
    body = response.json()
    assert body["tokens"] == ["我", "爱"]
    probabilities = [c["probability"] for c in body["candidates"]]
    assert len(probabilities) == 5
    assert probabilities == sorted(probabilities, reverse=True)
    assert all(0 < p < 1 for p in probabilities)
    assert all(c["token"] != "<pad>" for c in body["candidates"])


def test_generate_is_reproducible_with_a_seed(shared_client):
    request = {"model": "lesson-rnn", "prompt": "我爱", "max_tokens": 8, "seed": 3}
    first = shared_client.post("/generate", json=request).json()
    second = shared_client.post("/generate", json=request).json()
    assert first == second
    assert len(first["tokens"]) == 8
    assert first["text"] == "我爱" + "".join(first["tokens"])
    assert not {"<pad>", "<unk>"} & set(first["tokens"])


def test_greedy_generation_follows_predict(shared_client):
    generated = shared_client.post(
        "/generate",
        json={"model": "lesson-rnn", "prompt": "我爱", "max_tokens": 1, "temperature": 0},
    ).json()
    best = shared_client.post(
        "/predict", json={"model": "lesson-rnn", "text": "我爱", "k": 1}
    ).json()
    assert generated["ids"] == [best["candidates"][0]["id"]]


def test_top_k_one_is_greedy(shared_client):
    greedy = shared_client.post(
        "/generate", json={"model": "lesson-rnn", "prompt": "我", "max_tokens": 6, "temperature": 0}
    ).json()
    top1 = shared_client.post(
        "/generate",
        json={"model": "lesson-rnn", "prompt": "我", "max_tokens": 6, "top_k": 1, "seed": 9},
    ).json()
    assert greedy["tokens"] == top1["tokens"]
