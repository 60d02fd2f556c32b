import pytest
import torch

from models.errors import ConfigError
from models.generation import generate, next_token_log_probs, top_k, top_k_batch
from models.lm import LanguageModelConfig, RNNLanguageModel


def produce(model: RNNLanguageModel, prompt: list[int], **settings) -> list[int]:
    """The ids of the single choice."""
    return generate(model, prompt, **settings)[0].ids


@pytest.fixture
def model() -> RNNLanguageModel:
    torch.manual_seed(0)
    return RNNLanguageModel(
        LanguageModelConfig(vocab_size=12, embedding_dim=8, hidden_size=16, cell="gru")
    ).eval()


def test_next_token_probabilities_sum_to_one(model):
    log_probs, _ = next_token_log_probs(model, [[1, 2, 3]])
    probabilities = log_probs[0].exp()
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
    produced = produce(model, [1, 2], max_tokens=5, temperature=0.0)
    context = [1, 2]
    for token in produced:
        assert token == top_k(model, context, k=1)[0].token_id
        context.append(token)


def test_sampling_is_reproducible_with_a_seed(model):
    first = produce(model, [1], max_tokens=20, temperature=1.0, seed=3)
    assert first == produce(model, [1], max_tokens=20, temperature=1.0, seed=3)
    assert len(first) == 20
    others = {tuple(produce(model, [1], max_tokens=20, seed=s)) for s in range(5)}
    assert len(others) > 1


def test_top_k_sampling_stays_within_the_k_most_probable(model):
    produced = produce(model, [5], max_tokens=1, top_k_size=2, seed=0)
    allowed = {c.token_id for c in top_k(model, [5], k=2)}
    assert produced[0] in allowed


def test_excluded_and_stop_ids(model):
    produced = produce(model, [1], max_tokens=30, seed=1, exclude_ids=[0, 1, 2])
    assert not set(produced) & {0, 1, 2}
    first = produce(model, [1], max_tokens=30, seed=1)
    stopped = produce(model, [1], max_tokens=30, seed=1, stop_ids=[first[2]])
    assert stopped == first[: first.index(first[2]) + 1]


def test_state_is_carried_so_generation_equals_rereading(model):
    produced = produce(model, [4, 5], max_tokens=6, temperature=0.0)
    logits, _ = model(torch.tensor([[4, 5, *produced[:-1]]]))
    assert logits[0, 1:].argmax(-1).tolist() == produced


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_tokens": -1}, "max_tokens"),
        ({"temperature": -0.5}, "temperature"),
        ({"top_k_size": 0}, "top_k"),
        ({"repetition_penalty": 0.0}, "repetition_penalty"),
        ({"repetition_penalty": 1e-100}, "repetition_penalty"),
        ({"n": 0}, "n"),
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


def test_a_batch_answers_as_each_context_alone(model):
    contexts = [[1, 2, 3], [4], [5, 6, 7, 8, 9], [1, 2, 3]]
    batch = top_k_batch(model, contexts, k=5)
    for context, candidates in zip(contexts, batch, strict=True):
        alone = top_k(model, context, k=5)
        assert [c.token_id for c in candidates] == [c.token_id for c in alone]
        assert [c.probability for c in candidates] == pytest.approx(
            [c.probability for c in alone], abs=1e-6
        )


def test_a_start_id_reads_the_context_after_it(model):
    after = top_k(model, [4, 5], k=12, start_id=3)
    spelled_out = top_k(model, [3, 4, 5], k=12)
    assert [c.token_id for c in after] == [c.token_id for c in spelled_out]
    assert [c.token_id for c in after] != [c.token_id for c in top_k(model, [4, 5], k=12)]
    # with a start id, even an empty context has a next-token distribution
    assert len(top_k(model, [], k=3, start_id=3)) == 3


def test_generation_ends_at_eos_without_producing_it(model):
    greedy = produce(model, [1], max_tokens=8, temperature=0.0)
    eos = greedy[3]
    choice = generate(model, [1], max_tokens=8, temperature=0.0, eos_id=eos)[0]
    assert choice.finish_reason == "eos"
    assert choice.ids == greedy[: greedy.index(eos)]
    assert eos not in choice.ids
    # length when nothing else ends it
    assert generate(model, [1], max_tokens=4, temperature=0.0)[0].finish_reason == "length"


def test_stop_ids_and_a_stop_callback_end_with_stop(model):
    first = produce(model, [1], max_tokens=30, seed=1)
    seen: list[tuple[int, int]] = []
    choice = generate(
        model,
        [1],
        max_tokens=30,
        seed=1,
        should_stop=lambda index, ids: len(ids) == 4,
        on_token=lambda index, token: seen.append((index, token)),
    )[0]
    assert (choice.finish_reason, choice.ids) == ("stop", first[:4])
    assert seen == [(0, token) for token in first[:4]]


def test_a_repetition_penalty_discourages_seen_tokens(model):
    plain = produce(model, [1], max_tokens=40, temperature=0.0)
    penalised = produce(model, [1], max_tokens=40, temperature=0.0, repetition_penalty=3.0)
    assert len(set(penalised)) > len(set(plain))
    # 1.0 is off
    assert produce(model, [1], max_tokens=40, temperature=0.0, repetition_penalty=1.0) == plain


def test_n_choices_are_seeded_and_end_independently(model):
    choices = generate(model, [1], max_tokens=12, seed=5, n=4, eos_id=2)
    again = generate(model, [1], max_tokens=12, seed=5, n=4, eos_id=2)
    assert [c.ids for c in choices] == [c.ids for c in again]
    assert [c.finish_reason for c in choices] == [c.finish_reason for c in again]
    assert len({tuple(c.ids) for c in choices}) > 1
    for choice in choices:
        assert 2 not in choice.ids
        assert choice.finish_reason == ("eos" if len(choice.ids) < 12 else "length") or (
            choice.finish_reason == "eos"
        )
    greedy = generate(model, [1], max_tokens=6, temperature=0.0, n=3)
    assert len({tuple(c.ids) for c in greedy}) == 1
    assert greedy[0].ids == produce(model, [1], max_tokens=6, temperature=0.0)
