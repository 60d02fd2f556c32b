import pytest
import torch
from torch import nn

from models.errors import ConfigError
from models.lm import LanguageModelConfig, RNNLanguageModel


def test_lesson_rnn_shapes_and_last_step():
    torch.manual_seed(0)
    rnn = nn.RNN(4, 5, num_layers=2)
    x = torch.randn(3, 2, 4)  # (seq_len, batch, input_size)
    h0 = torch.randn(2, 2, 5)  # (num_layers, batch, hidden_size)
    output, hn = rnn(x, h0)
    assert list(output.shape) == [3, 2, 5]
    assert list(hn.shape) == [2, 2, 5]
    # The last layer's output at the last step is that layer's final state.
    assert torch.equal(output[-1], hn[-1])


def test_lesson_rnn_equals_a_hand_written_loop():
    torch.manual_seed(0)
    rnn = nn.RNN(4, 5, num_layers=2)
    x = torch.randn(3, 2, 4)
    h0 = torch.randn(2, 2, 5)
    output, hn = rnn(x, h0)

    layer_input = x
    final_states = []
    for layer in range(2):
        w_ih = getattr(rnn, f"weight_ih_l{layer}")
        w_hh = getattr(rnn, f"weight_hh_l{layer}")
        b_ih = getattr(rnn, f"bias_ih_l{layer}")
        b_hh = getattr(rnn, f"bias_hh_l{layer}")
        h = h0[layer]
        steps = []
        for t in range(3):
            # h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
            h = torch.tanh(layer_input[t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh)
            steps.append(h)
        layer_input = torch.stack(steps)
        final_states.append(h)
    torch.testing.assert_close(output, layer_input, atol=1e-6, rtol=0)
    torch.testing.assert_close(hn, torch.stack(final_states), atol=1e-6, rtol=0)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_forward_shapes_and_state_round_trip(cell):
    torch.manual_seed(0)
    model = RNNLanguageModel(
        LanguageModelConfig(vocab_size=11, embedding_dim=6, hidden_size=7, num_layers=2, cell=cell)
    ).eval()
    ids = torch.randint(0, 11, (3, 8))  # (batch, seq)
    logits, hidden = model(ids)
    assert logits.shape == (3, 8, 11)
    state = hidden[0] if cell == "lstm" else hidden
    assert state.shape == (2, 3, 7)
    # Reading in two chunks with the state carried equals reading at once.
    first, carried = model(ids[:, :5])
    second, _ = model(ids[:, 5:], carried)
    torch.testing.assert_close(torch.cat([first, second], dim=1), logits)


def test_the_model_stores_no_hidden_state():
    model = RNNLanguageModel(LanguageModelConfig(vocab_size=5, cell="gru"))
    before = set(model.state_dict())
    model(torch.zeros(1, 3, dtype=torch.long))
    assert set(model.state_dict()) == before
    assert not any(isinstance(v, torch.Tensor) for k, v in vars(model).items() if k != "config")


def test_recurrent_exposes_output_hn_and_cn():
    torch.manual_seed(0)
    model = RNNLanguageModel(
        LanguageModelConfig(vocab_size=9, embedding_dim=4, hidden_size=5, num_layers=2, cell="lstm")
    ).eval()
    ids = torch.tensor([[1, 2, 3]])
    result = model.recurrent(ids)
    assert result.output.shape == (1, 3, 5)
    assert result.hn.shape == result.cn.shape == (2, 1, 5)
    torch.testing.assert_close(result.output[:, -1], result.hn[-1])
    rnn = RNNLanguageModel(LanguageModelConfig(vocab_size=9, cell="rnn"))
    assert rnn.recurrent(ids).cn is None


def test_recurrent_with_lengths_stops_each_text_at_its_last_real_token():
    torch.manual_seed(0)
    model = RNNLanguageModel(
        LanguageModelConfig(vocab_size=9, embedding_dim=4, hidden_size=5, cell="rnn")
    ).eval()
    padded = torch.tensor([[1, 2, 3, 4], [5, 6, 0, 0]])
    result = model.recurrent(padded, lengths=torch.tensor([4, 2]))
    alone = model.recurrent(torch.tensor([[5, 6]]))
    torch.testing.assert_close(result.hn[:, 1], alone.hn[:, 0])
    torch.testing.assert_close(result.output[1, :2], alone.output[0])
    assert torch.all(result.output[1, 2:] == 0)


def test_embed_returns_the_embedding_rows():
    model = RNNLanguageModel(LanguageModelConfig(vocab_size=6, embedding_dim=4))
    vectors = model.embed(torch.tensor([0, 5]))
    assert torch.equal(vectors, model.embedding.weight[[0, 5]])


def test_weight_tying_shares_one_matrix():
    model = RNNLanguageModel(
        LanguageModelConfig(vocab_size=10, embedding_dim=8, hidden_size=8, tie_weights=True)
    )
    assert model.decoder.weight is model.embedding.weight
    untied = RNNLanguageModel(LanguageModelConfig(vocab_size=10, embedding_dim=8, hidden_size=8))
    assert model.num_parameters() == untied.num_parameters() - 10 * 8


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"vocab_size": 0}, "vocab_size"),
        ({"cell": "transformer"}, "cell"),
        ({"nonlinearity": "sigmoid"}, "nonlinearity"),
        ({"dropout": 1.0}, "dropout"),
        ({"num_layers": 0}, "num_layers"),
        ({"embedding_dim": 4, "hidden_size": 8, "tie_weights": True}, "tie_weights"),
    ],
)
def test_bad_configs_name_their_field(settings, field):
    with pytest.raises(ConfigError) as error:
        LanguageModelConfig(**{"vocab_size": 10, **settings})
    assert error.value.field == field


def test_relu_rnn_uses_relu():
    model = RNNLanguageModel(LanguageModelConfig(vocab_size=5, cell="rnn", nonlinearity="relu"))
    assert model.rnn.nonlinearity == "relu"
    assert torch.all(model.recurrent(torch.tensor([[1, 2]])).output >= 0)
