"""The lesson, step by step, over HTTP."""

import torch
from torch import nn

from tests.app.conftest import LESSON_MODEL
from tests.conftest import LESSON_IDS, LESSON_VOCAB

LESSON_RNN = {"input_size": 4, "hidden_size": 5, "num_layers": 2, "seed": 0}


def _lesson_input() -> list:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(3, 2, 4, generator=generator).tolist()  # [seq_len, batch, input_size]


def test_lesson_vocabulary_with_no_specials(client):
    response = client.post("/models", json=LESSON_MODEL)
    assert response.status_code == 201
    assert response.json()["vocab_size"] == 6
    vocab = client.get("/models/lesson/vocab").json()
    assert vocab["tokens"] == LESSON_VOCAB
    assert vocab["specials"] == []
    ids = client.post("/tokenize", json={"texts": LESSON_MODEL["texts"], "model": "lesson"}).json()
    assert ids["ids"] == [[0, 1, 2, 3, 4], [0, 1, 5, 2]]


def test_lesson_embedding_has_one_row_per_word(client):
    client.post("/models", json=LESSON_MODEL)
    body = client.post("/embed", json={"model": "lesson", "tokens": [LESSON_VOCAB]}).json()
    assert body["dim"] == 4
    assert body["ids"] == [[0, 1, 2, 3, 4, 5]]
    assert len(body["vectors"][0]) == 6
    assert all(len(vector) == 4 for vector in body["vectors"][0])


def test_dataset_preview_gives_the_lessons_windows_and_batches(shared_client):
    body = shared_client.post(
        "/dataset/preview", json={"ids": LESSON_IDS, "seq_len": 3, "batch_size": 2}
    ).json()
    assert body["num_windows"] == 5
    assert [(w["x"], w["y"]) for w in body["windows"]] == [
        ([0, 1, 3], [1, 3, 4]),
        ([1, 3, 4], [3, 4, 0]),
        ([3, 4, 0], [4, 0, 1]),
        ([4, 0, 1], [0, 1, 5]),
        ([0, 1, 5], [1, 5, 2]),
    ]
    assert [len(batch["x"]) for batch in body["batches"]] == [2, 2, 1]
    assert body["num_batches"] == 3


def test_dataset_preview_from_the_lessons_texts(shared_client):
    body = shared_client.post(
        "/dataset/preview",
        json={"texts": ["我爱自然语言处理", "我爱机器学习"], "vocab": LESSON_VOCAB, "seq_len": 3},
    ).json()
    assert body["ids"] == LESSON_IDS
    assert body["tokens"][:4] == ["我", "爱", "自然语言", "处理"]
    assert body["num_windows"] == 5


def test_rnn_forward_reproduces_the_lessons_shapes_and_values(shared_client):
    x = _lesson_input()
    h0 = torch.randn(2, 2, 5, generator=torch.Generator().manual_seed(2)).tolist()
    body = shared_client.post(
        "/rnn/forward", json={"rnn": LESSON_RNN, "input": x, "h0": h0, "return_weights": True}
    ).json()
    assert body["output"]["shape"] == [3, 2, 5]
    assert body["hn"]["shape"] == [2, 2, 5]
    output = torch.tensor(body["output"]["values"])
    hn = torch.tensor(body["hn"]["values"])
    assert torch.equal(output[-1], hn[-1])

    # A local nn.RNN loaded with the returned weights gives the same numbers.
    local = nn.RNN(4, 5, num_layers=2)
    local.load_state_dict({name: torch.tensor(w["values"]) for name, w in body["weights"].items()})
    expected_output, expected_hn = local(torch.tensor(x), torch.tensor(h0))
    torch.testing.assert_close(output, expected_output, atol=1e-6, rtol=0)
    torch.testing.assert_close(hn, expected_hn, atol=1e-6, rtol=0)


def test_rnn_seed_gives_exactly_torchs_initial_weights(shared_client):
    body = shared_client.post(
        "/rnn/forward", json={"rnn": LESSON_RNN, "input": _lesson_input(), "return_weights": True}
    ).json()
    torch.manual_seed(0)
    reference = nn.RNN(4, 5, num_layers=2)
    for name, parameter in reference.named_parameters():
        assert torch.equal(torch.tensor(body["weights"][name]["values"]), parameter.detach())
    assert body["seed"] == 0


def test_h0_defaults_to_zeros(shared_client):
    x = _lesson_input()
    zeros = torch.zeros(2, 2, 5).tolist()
    implicit = shared_client.post("/rnn/forward", json={"rnn": LESSON_RNN, "input": x}).json()
    explicit = shared_client.post(
        "/rnn/forward", json={"rnn": LESSON_RNN, "input": x, "h0": zeros}
    ).json()
    assert implicit["output"] == explicit["output"]
    assert implicit["hn"] == explicit["hn"]


def test_batch_first_gives_batch_then_sequence(shared_client):
    x = torch.tensor(_lesson_input())
    seq_first = shared_client.post(
        "/rnn/forward", json={"rnn": LESSON_RNN, "input": x.tolist()}
    ).json()
    batch_first = shared_client.post(
        "/rnn/forward",
        json={"rnn": LESSON_RNN, "input": x.transpose(0, 1).tolist(), "batch_first": True},
    ).json()
    assert batch_first["output"]["shape"] == [2, 3, 5]
    assert batch_first["batch_first"] is True
    torch.testing.assert_close(
        torch.tensor(batch_first["output"]["values"]),
        torch.tensor(seq_first["output"]["values"]).transpose(0, 1),
    )
    # hn is [num_layers, batch, hidden] either way (equal up to float rounding of the layout).
    assert batch_first["hn"]["shape"] == seq_first["hn"]["shape"] == [2, 2, 5]
    torch.testing.assert_close(
        torch.tensor(batch_first["hn"]["values"]), torch.tensor(seq_first["hn"]["values"])
    )
