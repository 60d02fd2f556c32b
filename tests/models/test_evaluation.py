import math

import pytest
import torch

from models.errors import ConfigError
from models.evaluation import (
    bigram_perplexity,
    evaluate,
    perplexity,
    unigram_log_probs,
    unigram_perplexity,
)
from models.lm import LanguageModelConfig, RNNLanguageModel


def test_evaluation_over_the_whole_stream_matches_a_single_pass():
    torch.manual_seed(0)
    model = RNNLanguageModel(
        LanguageModelConfig(vocab_size=30, embedding_dim=8, hidden_size=8)
    ).eval()
    ids = torch.randint(0, 30, (201,))
    # batch_size 1: one column, chunks of 35 with carried state == one pass over everything.
    loss = evaluate(model, ids, batch_size=1, seq_len=35)
    logits, _ = model(ids[:-1].unsqueeze(0))
    expected = torch.nn.functional.cross_entropy(logits[0], ids[1:]).item()
    assert loss == pytest.approx(expected, rel=1e-5)


def test_unigram_perplexity_of_a_uniform_stream_is_the_vocabulary_size():
    ids = torch.arange(10).repeat(100)
    assert unigram_perplexity(ids, ids, 10) == pytest.approx(10.0)


def test_perplexity_of_a_huge_loss_is_finite_and_of_none_is_none():
    assert perplexity(None) is None
    assert perplexity(0.0) == 1.0
    assert perplexity(10_000.0) < float("inf")


def test_bigram_of_a_strict_cycle_is_almost_certain_and_beats_the_unigram():
    ids = torch.arange(10).repeat(50)  # 0 1 2 … 9 0 1 …: each word has one successor
    bigram = bigram_perplexity(ids, ids, 10)
    assert bigram < 1.2
    assert bigram < unigram_perplexity(ids, ids, 10)


def test_bigram_falls_back_to_the_unigram_for_unseen_contexts():
    train = torch.tensor([0, 1, 0, 1, 0, 1])
    held_out = torch.tensor([2, 3, 2, 3])  # contexts 2 and 3 never occur in training
    unigram = unigram_log_probs(train, 4)
    expected = math.exp(-unigram[held_out[1:]].mean().item())
    assert bigram_perplexity(train, held_out, 4) == pytest.approx(expected)


def test_bigram_rejects_a_held_out_stream_without_a_pair():
    with pytest.raises(ConfigError, match="too short"):
        bigram_perplexity(torch.arange(10), torch.tensor([3]), 10)


def test_a_model_started_from_counts_scores_exactly_the_unigram_baseline():
    torch.manual_seed(0)
    train = torch.randint(0, 40, (500,)) % 17  # a skewed distribution over 40 words
    held_out = torch.randint(0, 40, (201,)) % 23
    model = RNNLanguageModel(LanguageModelConfig(vocab_size=40, embedding_dim=8, hidden_size=8))
    model.start_from_counts(unigram_log_probs(train, 40))
    loss = evaluate(model, held_out, batch_size=1, seq_len=35)
    # evaluate scores the targets held_out[1:]; the unigram of those same targets:
    assert math.exp(loss) == pytest.approx(unigram_perplexity(train, held_out[1:], 40), rel=1e-6)


def test_starting_from_counts_with_tied_weights_keeps_the_embedding():
    torch.manual_seed(0)
    config = LanguageModelConfig(vocab_size=12, embedding_dim=8, hidden_size=8, tie_weights=True)
    model = RNNLanguageModel(config)
    before = model.embedding.weight.detach().clone()
    model.start_from_counts(torch.full((12,), -math.log(12)))
    assert torch.equal(model.embedding.weight, before)
    assert torch.allclose(model.decoder.bias, torch.full((12,), -math.log(12)))


def test_starting_from_counts_of_the_wrong_size_names_the_shape():
    model = RNNLanguageModel(LanguageModelConfig(vocab_size=12))
    with pytest.raises(ConfigError, match=r"\(12,\)"):
        model.start_from_counts(torch.zeros(11))
