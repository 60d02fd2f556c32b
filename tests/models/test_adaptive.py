import math

import pytest
import torch

from models.adaptive import choose_cutoffs
from models.errors import ConfigError
from models.evaluation import evaluate, unigram_log_probs, unigram_perplexity
from models.generation import top_k
from models.lm import LanguageModelConfig, RNNLanguageModel
from models.training import TrainingConfig, fit


def zipf_stream(vocab_size: int, length: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    weights = 1.0 / torch.arange(1, vocab_size + 1, dtype=torch.float64)
    return torch.multinomial(weights, length, replacement=True, generator=generator)


def adaptive(vocab_size: int = 200, cutoffs: tuple[int, ...] = (20, 80)) -> RNNLanguageModel:
    torch.manual_seed(0)
    return RNNLanguageModel(
        LanguageModelConfig(
            vocab_size=vocab_size,
            embedding_dim=16,
            hidden_size=32,
            output="adaptive",
            cutoffs=cutoffs,
        )
    )


def test_cutoffs_follow_the_coverage_of_a_sorted_vocabulary():
    counts = torch.bincount(zipf_stream(2000, 50_000), minlength=2000)
    cutoffs = choose_cutoffs(counts)
    assert len(cutoffs) == 2
    assert 0 < cutoffs[0] < cutoffs[1] < 2000
    ranked = counts.sort(descending=True).values.double()
    head_share = ranked[: cutoffs[0]].sum() / ranked.sum()
    assert 0.8 <= head_share < 0.81
    assert choose_cutoffs([5, 5, 5, 5]) == (2,)  # too small to cut by coverage: halves


def test_the_whole_distribution_sums_to_one_and_matches_the_targets():
    model = adaptive().eval()
    ids = zipf_stream(200, 24).view(2, 12)
    with torch.no_grad():
        log_probs, _ = model.log_probs(ids)
        targets = torch.roll(ids, -1, dims=1)
        values, _ = model.target_log_probs(ids, targets)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(2, 12), atol=1e-5)
    assert torch.allclose(values, log_probs.gather(-1, targets.unsqueeze(-1))[..., 0], atol=1e-5)
    candidates = top_k(model, ids[0].tolist(), k=200)
    assert sum(c.probability for c in candidates) == pytest.approx(1.0, abs=1e-5)


def test_it_starts_at_the_unigram_exactly():
    stream = zipf_stream(200, 5_000)
    train, val = stream[:4_000], stream[4_000:]
    model = adaptive()
    model.start_from_counts(unigram_log_probs(train, 200).float())
    loss = evaluate(model, val, batch_size=1, seq_len=20)
    assert math.exp(loss) == pytest.approx(unigram_perplexity(train, val[1:], 200), rel=1e-3)


def test_it_trains_below_the_unigram():
    # a stream with structure: every word is followed by the next one most of the time
    generator = torch.Generator().manual_seed(1)
    stream = zipf_stream(200, 6_000)
    follow = torch.rand(6_000, generator=generator) < 0.7
    for position in range(1, 6_000):
        if follow[position]:
            stream[position] = (stream[position - 1] + 1) % 200
    train, val = stream[:5_000], stream[5_000:]
    model = adaptive()
    model.start_from_counts(unigram_log_probs(train, 200).float())
    result = fit(model, train, val, TrainingConfig(epochs=3, lr=0.01, batch_size=10, seq_len=20))
    assert result.val_perplexity < 0.6 * unigram_perplexity(train, val, 200)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"tie_weights": True, "embedding_dim": 32, "cutoffs": (20,)}, "tie_weights"),
        ({"cutoffs": ()}, "cutoffs"),
        ({"cutoffs": (80, 20)}, "cutoffs"),
        ({"cutoffs": (0, 20)}, "cutoffs"),
        ({"cutoffs": (20, 200)}, "cutoffs"),
        ({"cutoffs": (10, 20, 40, 80), "hidden_size": 32}, "cutoffs"),
    ],
)
def test_impossible_adaptive_settings_name_their_field(settings, field):
    values = {"vocab_size": 200, "embedding_dim": 16, "hidden_size": 32, "output": "adaptive"}
    with pytest.raises(ConfigError) as error:
        LanguageModelConfig(**{**values, **settings})
    assert error.value.field == field


def test_cutoffs_are_only_for_adaptive_and_old_configs_are_full():
    with pytest.raises(ConfigError) as error:
        LanguageModelConfig(vocab_size=10, cutoffs=(5,))
    assert error.value.field == "cutoffs"
    old = LanguageModelConfig(vocab_size=10).to_dict()
    del old["output"], old["cutoffs"]
    assert LanguageModelConfig.from_dict(old).output == "full"
