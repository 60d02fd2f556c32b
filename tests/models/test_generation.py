import pytest
import torch

from models.errors import ConfigError
from models.generation import generate, next_token_probabilities, top_k
from models.lm import LanguageModelConfig, RNNLanguageModel


@pytest.fixture
def model() -> RNNLanguageModel:
    torch.manual_seed(0)
    return RNNLanguageModel(
        LanguageModelConfig(vocab_size=12, embedding_dim=8, hidden_size=16, cell="gru")
    ).eval()


def test_next_token_probabilities_sum_to_one(model):
    probabilities, _ = next_token_probabilities(model, [1, 2, 3])
    assert probabilities.shape == (12,)
    assert probabilities.sum().item() == pytest.approx(1.0, abs=1e-6)


def test_top_k_is_sorted_and_matches_the_model(model):
    candidates = top_k(model, [1, 2, 3], k=4)
    assert len(candidates) == 4
    probabilities = [c.probability for c in candidates]
    assert probabilities == sorted(probabilities, reverse=True)
    logits, _ = model(torch.tensor([[1, 2, 3]]))
    expected = torch.softmax(logits[0, -1], -1).topk(4)
    assert [c.token_id for c in candidates] == expected.indices.tolist()
    assert probabilities == pytest.approx(expected.values.tolist(), abs=1e-6)


def test_top_k_excludes_ids_and_caps_k(model):
    best = top_k(model, [1], k=1)[0].token_id
    assert best not in [c.token_id for c in top_k(model, [1], k=3, exclude_ids=[best])]
    assert len(top_k(model, [1], k=100)) == 12


def test_greedy_generation_follows_the_argmax(model):
    produced = generate(model, [1, 2], max_tokens=5, temperature=0.0)
    context = [1, 2]
    for token in produced:
        assert token == top_k(model, context, k=1)[0].token_id
        context.append(token)


def test_sampling_is_reproducible_with_a_seed(model):
    first = generate(model, [1], max_tokens=20, temperature=1.0, seed=3)
    assert first == generate(model, [1], max_tokens=20, temperature=1.0, seed=3)
    assert len(first) == 20
    others = {tuple(generate(model, [1], max_tokens=20, seed=s)) for s in range(5)}
    assert len(others) > 1


def test_top_k_sampling_stays_within_the_k_most_probable(model):
    produced = generate(model, [5], max_tokens=1, top_k_size=2, seed=0)
    allowed = {c.token_id for c in top_k(model, [5], k=2)}
    assert produced[0] in allowed


def test_excluded_and_stop_ids(model):
    produced = generate(model, [1], max_tokens=30, seed=1, exclude_ids=[0, 1, 2])
    assert not set(produced) & {0, 1, 2}
    first = generate(model, [1], max_tokens=30, seed=1)
    stopped = generate(model, [1], max_tokens=30, seed=1, stop_ids=[first[2]])
    assert stopped == first[: first.index(first[2]) + 1]


def test_state_is_carried_so_generation_equals_rereading(model):
    produced = generate(model, [4, 5], max_tokens=6, temperature=0.0)
    logits, _ = model(torch.tensor([[4, 5, *produced[:-1]]]))
    assert logits[0, 1:].argmax(-1).tolist() == produced


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_tokens": -1}, "max_tokens"),
        ({"temperature": -0.5}, "temperature"),
        ({"top_k_size": 0}, "top_k"),
    ],
)
def test_bad_generation_settings(model, kwargs, field):
    settings = {"max_tokens": 3, **kwargs}
    with pytest.raises(ConfigError) as error:
        generate(model, [1], **settings)
    assert error.value.field == field


def test_empty_context_is_rejected(model):
    with pytest.raises(ConfigError):
        top_k(model, [], k=3)
