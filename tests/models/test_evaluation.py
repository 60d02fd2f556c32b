import pytest
import torch

from models.evaluation import evaluate, perplexity, unigram_perplexity
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
