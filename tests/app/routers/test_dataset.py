"""/dataset/preview: windows and batches cut from ids, or from texts through a vocabulary.

The lesson's own examples are in ``tests/app/test_lesson.py``; these are the other options.
"""

from tests.conftest import LESSON_IDS


def test_texts_with_a_model_are_encoded_with_its_vocabulary(shared_client):
    texts = ["我爱学习", "我爱机器学习"]
    preview = shared_client.post(
        "/dataset/preview", json={"model": "lesson-rnn", "texts": texts, "seq_len": 2}
    ).json()
    tokenized = shared_client.post("/tokenize", json={"texts": texts, "model": "lesson-rnn"}).json()
    assert preview["ids"] == [token for ids in tokenized["ids"] for token in ids]
    assert preview["tokens"] == [token for tokens in tokenized["tokens"] for token in tokens]
    assert preview["model"] == "lesson-rnn"
    assert preview["version"] == 1
    assert preview.get("vocab") is None  # the model's own, listed at /models/lesson-rnn/vocab


def test_stride_skips_window_starts(shared_client):
    body = shared_client.post(
        "/dataset/preview", json={"ids": LESSON_IDS, "seq_len": 3, "stride": 2}
    ).json()
    assert body["num_windows"] == (len(LESSON_IDS) - 3 - 1) // 2 + 1
    assert [window["x"] for window in body["windows"]] == [[0, 1, 3], [3, 4, 0], [0, 1, 5]]


def test_limit_caps_what_is_listed_but_not_what_is_counted(shared_client):
    body = shared_client.post(
        "/dataset/preview", json={"ids": LESSON_IDS, "seq_len": 1, "batch_size": 1, "limit": 2}
    ).json()
    assert body["num_windows"] == len(LESSON_IDS) - 1
    assert body["num_batches"] == len(LESSON_IDS) - 1
    assert len(body["windows"]) == len(body["batches"]) == 2


def test_shuffled_batches_are_reproducible_with_a_seed(shared_client):
    request = {"ids": list(range(12)), "seq_len": 2, "batch_size": 3, "shuffle": True, "seed": 4}
    first = shared_client.post("/dataset/preview", json=request).json()
    again = shared_client.post("/dataset/preview", json=request).json()
    in_order = shared_client.post("/dataset/preview", json={**request, "shuffle": False}).json()
    assert first["batches"] == again["batches"]
    assert first["batches"] != in_order["batches"]
    assert first["windows"] == in_order["windows"]  # shuffling reorders batches, not windows
    shuffled = sorted(x for batch in first["batches"] for x in batch["x"])
    ordered = sorted(x for batch in in_order["batches"] for x in batch["x"])
    assert shuffled == ordered
