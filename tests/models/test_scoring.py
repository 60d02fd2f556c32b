import math

import pytest
import torch

from models.errors import ConfigError
from models.evaluation import evaluate
from models.lm import LanguageModelConfig, RNNLanguageModel
from models.scoring import score_sequences, text_perplexity


@pytest.fixture(params=["full", "adaptive"])
def model(request) -> RNNLanguageModel:
    torch.manual_seed(0)
    cutoffs = (6, 14) if request.param == "adaptive" else ()
    config = LanguageModelConfig(
        vocab_size=30, embedding_dim=8, hidden_size=32, output=request.param, cutoffs=cutoffs
    )
    return RNNLanguageModel(config).eval()


def by_hand(model: RNNLanguageModel, sequence: list[int], start_id: int | None) -> list[float]:
    ids = ([start_id] if start_id is not None else []) + sequence
    log_probs, _ = model.log_probs(torch.tensor([ids[:-1]]))
    return [float(log_probs[0, t, ids[t + 1]]) for t in range(len(ids) - 1)]


def test_scores_are_each_tokens_log_probability_after_the_start(model):
    sequences = [[3, 4, 5, 2], [7, 2], [9, 9, 9, 9, 9, 9, 2]]
    scored = score_sequences(model, sequences, start_id=2)
    for sequence, values in zip(sequences, scored, strict=True):
        assert values.tolist() == pytest.approx(by_hand(model, sequence, 2), abs=1e-5)
    without_start = score_sequences(model, sequences, start_id=None)
    assert [len(v) for v in without_start] == [3, 1, 6]
    assert without_start[0].tolist() == pytest.approx(by_hand(model, [3, 4, 5, 2], None), abs=1e-5)


def test_a_lone_token_needs_a_start_id(model):
    assert len(score_sequences(model, [[5]], start_id=2)[0]) == 1
    with pytest.raises(ConfigError):
        score_sequences(model, [[5]], start_id=None)


def test_evaluation_with_eos_is_the_perplexity_of_its_texts(model):
    texts = [[3, 4, 5, 2], [7, 2], [9, 8, 7, 6, 2]]
    stream = torch.tensor([t for text in texts for t in text])
    loss = evaluate(model, stream, eos_id=2)
    assert math.exp(loss) == pytest.approx(
        text_perplexity(score_sequences(model, texts, 2)), rel=1e-9
    )
    # the carried-stream evaluation is another number
    assert evaluate(model, stream, batch_size=1) != pytest.approx(loss)


def test_text_perplexity_of_nothing_is_none():
    assert text_perplexity([]) is None
    assert text_perplexity([torch.tensor([math.log(0.5)] * 4)]) == pytest.approx(2.0)
