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


def layer_by_layer(weights: dict, x: torch.Tensor, num_layers: int, cell: str) -> torch.Tensor:
    """Every layer's states, computed here: layer l is a one-layer RNN over layer l-1's output."""
    kind = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    states = []
    for layer in range(num_layers):
        single = kind(x.size(-1), weights[f"weight_hh_l{layer}"].size(1), num_layers=1)
        single.load_state_dict(
            {
                k.replace(f"_l{layer}", "_l0"): v
                for k, v in weights.items()
                if k.endswith(f"_l{layer}")
            }
        )
        x, _ = single(x)
        states.append(x)
    return torch.stack(states)  # (layers, seq, batch, hidden)


def test_states_show_every_layer_at_every_step(shared_client):
    x = [
        [[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]],
        [[0.9, 1.0, 1.1, 1.2], [1.3, 1.4, 1.5, 1.6]],
        [[1.7, 1.8, 1.9, 2.0], [2.1, 2.2, 2.3, 2.4]],
    ]
    for cell in ("rnn", "lstm", "gru"):
        body = shared_client.post(
            "/rnn/forward",
            json={
                "rnn": {
                    "input_size": 4,
                    "hidden_size": 5,
                    "num_layers": 2,
                    "seed": 0,
                    "cell": cell,
                },
                "input": x,
                "return_weights": True,
                "return_states": True,
            },
        ).json()
        states = torch.tensor(body["states"]["values"])
        assert body["states"]["shape"] == [2, 3, 2, 5]
        weights = {k: torch.tensor(v["values"]) for k, v in body["weights"].items()}
        expected = layer_by_layer(weights, torch.tensor(x), 2, cell)
        torch.testing.assert_close(states, expected, atol=1e-6, rtol=0)
        # The lesson's facts: the top layer is `output`; the last step is `hn`.
        torch.testing.assert_close(
            states[-1], torch.tensor(body["output"]["values"]), atol=1e-6, rtol=0
        )
        torch.testing.assert_close(
            states[:, -1], torch.tensor(body["hn"]["values"]), atol=1e-6, rtol=0
        )


def test_states_of_padded_texts_stop_at_each_end(shared_client):
    for batch_first in (False, True):
        body = shared_client.post(
            "/rnn/forward",
            json={
                "model": "lesson-rnn",
                "texts": ["我爱学习自然语言处理", "我爱"],
                "batch_first": batch_first,
                "return_states": True,
            },
        ).json()
        states = torch.tensor(body["states"]["values"])
        output = torch.tensor(body["output"]["values"])
        hn = torch.tensor(body["hn"]["values"])
        if batch_first:
            assert body["states"]["shape"] == [2, 2, 5, 5]
            states = states.transpose(1, 2)
            output = output.transpose(0, 1)
        else:
            assert body["states"]["shape"] == [2, 5, 2, 5]
        torch.testing.assert_close(states[-1], output, atol=1e-6, rtol=0)
        for text, length in enumerate(body["lengths"]):
            torch.testing.assert_close(states[:, length - 1, text], hn[:, text], atol=1e-6, rtol=0)
            assert torch.all(states[:, length:, text] == 0)


def test_states_are_left_out_unless_asked(shared_client):
    body = shared_client.post("/rnn/forward", json={"model": "lesson-rnn", "text": "我爱"}).json()
    assert "states" not in body
