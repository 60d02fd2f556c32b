"""GET /models/{name}/neighbours: nearest words by cosine similarity of embedding rows."""

import torch

from tests.app.conftest import LESSON_MODEL


def embedding_matrix(client, model: str) -> tuple[list[str], torch.Tensor]:
    vocab = client.get(f"/models/{model}/vocab").json()["tokens"]
    ids = [list(range(len(vocab)))]
    vectors = client.post("/embed", json={"model": model, "ids": ids}).json()["vectors"][0]
    return vocab, torch.tensor(vectors)


def test_neighbours_are_the_most_cosine_similar_rows(shared_client):
    vocab, matrix = embedding_matrix(shared_client, "lesson-rnn")
    response = shared_client.get("/models/lesson-rnn/neighbours", params={"token": "学习", "k": 3})
    assert response.status_code == 200
    body = response.json()
    assert response.headers["Seqlab-Model"] == f"lesson-rnn@{body['version']}"
    target = vocab.index("学习")
    assert body["token"] == "学习"
    assert body["id"] == target
    # The same ranking computed here from the /embed rows.
    similarity = torch.nn.functional.cosine_similarity(matrix, matrix[target].unsqueeze(0))
    similarity[target] = -2.0
    similarity[:2] = -2.0  # <pad> and <unk> are not words
    expected = torch.sort(similarity, descending=True, stable=True).indices[:3].tolist()
    assert [n["id"] for n in body["neighbours"]] == expected
    assert [n["token"] for n in body["neighbours"]] == [vocab[i] for i in expected]
    for neighbour in body["neighbours"]:
        assert abs(neighbour["similarity"] - float(similarity[neighbour["id"]])) < 1e-5
    similarities = [n["similarity"] for n in body["neighbours"]]
    assert similarities == sorted(similarities, reverse=True)


def test_k_is_capped_by_the_vocabulary_and_never_includes_the_token(client):
    assert client.post("/models", json=LESSON_MODEL).status_code == 201
    vocab, _ = embedding_matrix(client, "lesson")
    body = client.get("/models/lesson/neighbours", params={"token": "我", "k": 100}).json()
    assert len(body["neighbours"]) == len(vocab) - 1
    assert "我" not in [n["token"] for n in body["neighbours"]]


def test_a_pinned_version_is_used(shared_client):
    response = shared_client.get(
        "/models/lesson-rnn/neighbours", params={"token": "我", "version": 1}
    )
    assert response.status_code == 200
    assert response.json()["version"] == 1


def test_an_oov_token_is_a_422_naming_the_query_field(shared_client):
    response = shared_client.get("/models/lesson-rnn/neighbours", params={"token": "量子计算"})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert "not in the vocabulary" in body["detail"]
    assert body["errors"][0]["field"] == "query.token"


def test_an_unknown_model_is_a_404(shared_client):
    response = shared_client.get("/models/nope/neighbours", params={"token": "我"})
    assert response.status_code == 404
    assert "nope" in response.json()["detail"]


def test_bad_queries_are_422_problems(shared_client):
    for params in (
        {},
        {"token": ""},
        {"token": "我", "k": 0},
        {"token": "我", "k": 101},
        {"token": "我", "version": 0},
        {"token": "我", "typo": 1},
    ):
        response = shared_client.get("/models/lesson-rnn/neighbours", params=params)
        assert response.status_code == 422, params
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["status"] == 422


def test_specials_can_be_asked_about_but_are_never_neighbours(shared_client):
    response = shared_client.get(
        "/models/lesson-rnn/neighbours", params={"token": "<unk>", "k": 100}
    )
    assert response.status_code == 200
    tokens = [n["token"] for n in response.json()["neighbours"]]
    assert len(tokens) == 100
    assert "<unk>" not in tokens
    assert "<pad>" not in tokens
    for neighbour in response.json()["neighbours"]:
        assert -1.0 <= neighbour["similarity"] <= 1.0
