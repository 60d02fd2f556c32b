"""Uploading corpora and training from them."""

import pytest

from app.settings import Limits


@pytest.fixture
def engine_url(database_url: str | None) -> str | None:
    """Every test of this module runs on SQLite and on PostgreSQL."""
    return database_url


CORPUS = "我爱学习自然语言处理\n我爱机器学习\n我爱自然语言处理\n" * 20


def test_upload_as_text_plain_list_and_delete(client):
    response = client.post(
        "/corpora", content=CORPUS.encode(), headers={"content-type": "text/plain; charset=utf-8"}
    )
    assert response.status_code == 201
    corpus = response.json()
    assert corpus["bytes"] == len(CORPUS.encode())
    assert corpus["lines"] == 60
    assert corpus["chars"] == len(CORPUS)
    assert response.headers["Location"] == f"/corpora/{corpus['corpus_id']}"
    listed = client.get("/corpora").json()["corpora"]
    assert [c["corpus_id"] for c in listed] == [corpus["corpus_id"]]
    assert client.delete(f"/corpora/{corpus['corpus_id']}").status_code == 204
    assert client.get("/corpora").json()["corpora"] == []
    assert client.delete(f"/corpora/{corpus['corpus_id']}").status_code == 404


def test_upload_a_file_and_train_from_it(client):
    response = client.post(
        "/corpora", files={"file": ("lesson.txt", CORPUS.encode(), "text/plain")}
    )
    assert response.status_code == 201
    corpus = response.json()
    assert corpus["filename"] == "lesson.txt"
    job = client.post(
        "/train",
        json={
            "model": "from-corpus",
            "corpus_id": corpus["corpus_id"],
            "create": {"embedding_dim": 8, "hidden_size": 8},
            "seq_len": 4,
            "batch_size": 4,
            "wait": True,
        },
    ).json()
    assert job["status"] == "succeeded", job["error"]
    # tokens of the three lines and an <eos> after each, 20 times
    assert job["data"]["tokens"] == 20 * (5 + 4 + 4 + 3)
    assert client.get("/models/from-corpus").json()["version"] == 1


def test_a_corpus_that_is_not_utf8_is_refused(client):
    response = client.post(
        "/corpora", content="我爱学习".encode("gbk"), headers={"content-type": "text/plain"}
    )
    assert response.status_code == 422
    assert "UTF-8" in response.json()["detail"]


def test_empty_and_json_uploads_are_refused(client):
    empty = client.post("/corpora", content=b" \n ", headers={"content-type": "text/plain"})
    assert empty.status_code == 422
    as_json = client.post("/corpora", json={"text": "我爱学习"})
    assert as_json.status_code == 415


def test_a_corpus_over_its_limit(make_client):
    client = make_client(limits=Limits(max_corpus_bytes=1000), create_demo_model=False)
    response = client.post(
        "/corpora", content=("我" * 400).encode(), headers={"content-type": "text/plain"}
    )
    assert response.status_code == 413
    assert response.json()["limit"] == "max_corpus_bytes"
    # The body limit of other routes stays the general one.
    assert (
        client.post("/corpora", content=b"ok", headers={"content-type": "text/plain"}).status_code
        == 201
    )
