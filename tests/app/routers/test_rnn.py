"""/rnn/forward over a model's own embedding and recurrent layer."""

import torch


def test_text_form_pads_and_stops_each_text_at_its_last_token(shared_client):
    texts = ["我爱学习自然语言处理", "我爱机器学习"]
    body = shared_client.post("/rnn/forward", json={"model": "lesson-rnn", "texts": texts}).json()
    assert body["lengths"] == [5, 4]
    assert body["output"]["shape"] == [5, 2, 5]  # [seq_len, batch, hidden]
    assert body["hn"]["shape"] == [2, 2, 5]  # [num_layers, batch, hidden]
    output = torch.tensor(body["output"]["values"])
    hn = torch.tensor(body["hn"]["values"])
    # The last layer's hn of each text is its output at its own last real token.
    torch.testing.assert_close(hn[-1, 0], output[4, 0])
    torch.testing.assert_close(hn[-1, 1], output[3, 1])
    assert torch.all(output[4, 1] == 0)  # padding step
    alone = shared_client.post(
        "/rnn/forward", json={"model": "lesson-rnn", "text": texts[1]}
    ).json()
    torch.testing.assert_close(torch.tensor(alone["hn"]["values"])[:, 0], hn[:, 1])
    assert body["model"] == "lesson-rnn"


def test_text_form_starts_from_a_given_h0(shared_client):
    h0 = torch.ones(2, 1, 5).tolist()
    plain = shared_client.post("/rnn/forward", json={"model": "lesson-rnn", "text": "我爱"}).json()
    primed = shared_client.post(
        "/rnn/forward", json={"model": "lesson-rnn", "text": "我爱", "h0": h0}
    ).json()
    assert plain["hn"] != primed["hn"]


def test_tensor_form_through_a_models_layer(shared_client):
    x = torch.randn(3, 2, 4, generator=torch.Generator().manual_seed(0)).tolist()
    body = shared_client.post(
        "/rnn/forward", json={"model": "lesson-rnn", "input": x, "return_weights": True}
    ).json()
    assert body["output"]["shape"] == [3, 2, 5]
    local = torch.nn.RNN(4, 5, num_layers=2)
    local.load_state_dict({k: torch.tensor(v["values"]) for k, v in body["weights"].items()})
    expected, _ = local(torch.tensor(x))
    torch.testing.assert_close(torch.tensor(body["output"]["values"]), expected, atol=1e-6, rtol=0)


def test_an_lstm_also_returns_cn(client):
    model = {
        "name": "tiny-lstm",
        "texts": ["我爱学习"],
        "embedding_dim": 3,
        "hidden_size": 4,
        "cell": "lstm",
    }
    assert client.post("/models", json=model).status_code == 201
    body = client.post("/rnn/forward", json={"model": "tiny-lstm", "text": "我爱学习"}).json()
    assert body["cn"]["shape"] == [1, 1, 4]
    fresh = client.post(
        "/rnn/forward",
        json={
            "rnn": {"input_size": 2, "hidden_size": 3, "cell": "lstm", "seed": 1},
            "input": [[[1.0, 2.0]]],
            "c0": [[[0.5, 0.5, 0.5]]],
        },
    ).json()
    assert fresh["cn"]["shape"] == [1, 1, 3]
