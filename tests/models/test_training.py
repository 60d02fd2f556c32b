import math

import pytest
import torch

from models.errors import ConfigError
from models.evaluation import evaluate, unigram_log_probs, unigram_perplexity
from models.lm import LanguageModelConfig, RNNLanguageModel
from models.tokenizer import Tokenizer, TokenizerConfig
from models.training import Progress, TrainingConfig, fit, planned_steps, split_ids
from models.vocab import Vocab


@pytest.fixture(scope="module")
def classics_ids(hongloumeng_lines, jieba_cache_dir) -> tuple[torch.Tensor, int]:
    """About 35k tokens from the start of 红楼梦, as one id stream."""
    tokenizer = Tokenizer(TokenizerConfig(), jieba_cache_dir)
    tokens = [token for line in hongloumeng_lines[:300] for token in tokenizer.tokenize(line)]
    vocab = Vocab.build([tokens], order="frequency", min_freq=2)
    return torch.tensor(vocab.encode(tokens)), len(vocab)


def _train(ids: torch.Tensor, vocab_size: int, **overrides) -> tuple[RNNLanguageModel, object]:
    torch.manual_seed(0)
    model = RNNLanguageModel(
        LanguageModelConfig(vocab_size=vocab_size, embedding_dim=64, hidden_size=128)
    )
    train_ids, val_ids = split_ids(ids, 0.1)
    settings = {"batch_size": 20, "seq_len": 35, "epochs": 2, "lr": 3e-3, "seed": 0, **overrides}
    return model, fit(model, train_ids, val_ids, TrainingConfig(**settings))


@pytest.mark.slow
def test_training_beats_the_unigram_baseline_on_real_text(classics_ids):
    ids, vocab_size = classics_ids
    _, result = _train(ids, vocab_size)
    train_ids, val_ids = split_ids(ids, 0.1)
    baseline = unigram_perplexity(train_ids, val_ids, vocab_size)
    assert result.val_perplexity is not None
    assert result.val_perplexity < baseline
    print(f"val perplexity {result.val_perplexity:.1f} vs unigram {baseline:.1f}")
    assert result.stop_reason == "completed"
    assert [record.epoch for record in result.epochs] == [1, 2]
    assert result.tokens_per_second > 0


@pytest.mark.slow
def test_the_same_seed_gives_the_same_loss_history(classics_ids):
    ids, vocab_size = classics_ids
    ids = ids[:8000]
    _, first = _train(ids, vocab_size, epochs=1, log_every=5)
    _, second = _train(ids, vocab_size, epochs=1, log_every=5)
    assert [s["loss"] for s in first.steps_history] == [s["loss"] for s in second.steps_history]
    assert first.val_loss == second.val_loss


def test_windows_batching_trains_the_lesson_sized_example():
    torch.manual_seed(0)
    ids = torch.tensor([0, 1, 3, 4, 0, 1, 5, 2] * 10)
    model = RNNLanguageModel(LanguageModelConfig(vocab_size=6, embedding_dim=4, hidden_size=5))
    before = evaluate(model, ids, batch_size=1, seq_len=3)
    result = fit(
        model,
        ids,
        ids,
        TrainingConfig(batching="windows", seq_len=3, batch_size=2, epochs=5, lr=0.05),
    )
    assert result.steps == 5 * math.ceil(77 / 2)  # 77 windows of length 3 in 80 ids
    assert result.val_loss < before


def test_progress_callback_and_stop_flag():
    ids = torch.randint(0, 20, (5000,), generator=torch.Generator().manual_seed(0))
    model = RNNLanguageModel(LanguageModelConfig(vocab_size=20, embedding_dim=8, hidden_size=8))
    seen: list[Progress] = []

    def stop_after_three() -> bool:
        return len(seen) >= 4  # the plan (step 0), then three reports

    result = fit(
        model,
        ids,
        None,
        TrainingConfig(batch_size=4, seq_len=10, epochs=3, log_every=2),
        on_progress=seen.append,
        should_stop=stop_after_three,
    )
    assert result.stop_reason == "stopped"
    assert result.steps == 6
    assert [p.step for p in seen] == [0, 2, 4, 6]
    assert seen[0].total_steps == 3 * 125
    assert 0 < seen[-1].fraction < 1
    assert all(p.tokens_per_second > 0 and math.isfinite(p.loss or math.nan) for p in seen[1:])


def test_max_steps_ends_training_and_still_evaluates():
    ids = torch.randint(0, 20, (2000,), generator=torch.Generator().manual_seed(0))
    model = RNNLanguageModel(LanguageModelConfig(vocab_size=20, embedding_dim=8, hidden_size=8))
    result = fit(
        model, ids[:1800], ids[1800:], TrainingConfig(batch_size=4, seq_len=10, max_steps=7)
    )
    assert result.steps == 7
    assert result.stop_reason == "max_steps"
    assert result.val_loss is not None


def test_learning_rate_drops_and_early_stopping_when_validation_stalls():
    generator = torch.Generator().manual_seed(0)
    # Random ids: nothing to learn, so validation stops improving after the first epochs.
    train = torch.randint(0, 50, (3000,), generator=generator)
    val = torch.randint(0, 50, (600,), generator=generator)
    model = RNNLanguageModel(LanguageModelConfig(vocab_size=50, embedding_dim=16, hidden_size=32))
    result = fit(
        model,
        train,
        val,
        TrainingConfig(batch_size=10, seq_len=20, epochs=30, lr=0.01, patience=2),
    )
    assert result.stop_reason == "early_stopping"
    assert len(result.epochs) < 30
    assert result.epochs[-1].lr < result.epochs[0].lr
    assert result.val_loss == min(r.val_loss for r in result.epochs)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"lr": 0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"batching": "random"}, "batching"),
        ({"epochs": 0}, "epochs"),
        ({"clip": -1.0}, "clip"),
        ({"seq_len": 0}, "seq_len"),
        ({"precision": "float16"}, "precision"),
    ],
)
def test_impossible_hyperparameters_name_their_field(settings, field):
    with pytest.raises(ConfigError) as error:
        TrainingConfig(**settings)
    assert error.value.field == field


def test_corpus_too_short_for_the_settings_is_a_config_error():
    model = RNNLanguageModel(LanguageModelConfig(vocab_size=6))
    with pytest.raises(ConfigError, match="seq_len") as error:
        fit(model, torch.arange(6), None, TrainingConfig(batching="windows", seq_len=6))
    assert error.value.field == "seq_len"
    with pytest.raises(ConfigError, match="batch_size"):
        fit(model, torch.arange(6), None, TrainingConfig(batch_size=20))


@pytest.mark.slow
def test_a_model_started_from_counts_ends_below_the_unigram_in_windows_training(classics_ids):
    """Issue 7's case: windows of 32 with stride 32 once ended at 197 against a unigram of 142."""
    ids, vocab_size = classics_ids
    train_ids, val_ids = split_ids(ids, 0.1)
    torch.manual_seed(0)
    model = RNNLanguageModel(
        LanguageModelConfig(vocab_size=vocab_size, embedding_dim=64, hidden_size=128)
    )
    model.start_from_counts(unigram_log_probs(train_ids, vocab_size))
    config = TrainingConfig(
        batching="windows", seq_len=32, stride=32, batch_size=32, epochs=4, lr=3e-3, seed=0
    )
    result = fit(model, train_ids, val_ids, config)
    baseline = unigram_perplexity(train_ids, val_ids, vocab_size)
    print(f"val perplexity {result.val_perplexity:.1f} vs unigram {baseline:.1f}")
    assert result.val_perplexity is not None
    assert result.val_perplexity < baseline


@pytest.mark.parametrize(
    "settings",
    [
        {"batching": "stream", "batch_size": 4, "seq_len": 5, "epochs": 2},
        {"batching": "windows", "batch_size": 3, "seq_len": 4, "stride": 2, "epochs": 3},
        {"batching": "stream", "batch_size": 2, "seq_len": 3, "epochs": 5, "max_steps": 7},
    ],
)
def test_the_first_report_is_the_plan_and_the_run_keeps_it(settings):
    torch.manual_seed(0)
    ids = torch.randint(0, 12, (90,))
    model = RNNLanguageModel(LanguageModelConfig(vocab_size=12, embedding_dim=4, hidden_size=4))
    config = TrainingConfig(seed=0, log_every=1, **settings)
    reports: list[Progress] = []
    result = fit(model, ids, None, config, on_progress=reports.append)
    first = reports[0]
    assert (first.step, first.loss, first.eta_seconds) == (0, None, None)
    assert first.total_steps == planned_steps(len(ids), config) == result.steps
    assert all(report.total_steps == first.total_steps for report in reports)
    assert reports[-1].step == result.steps
    assert reports[-1].fraction == 1.0


def test_the_eta_never_passes_max_seconds():
    unbounded = Progress(10, 1000, 1, 1, 2.0, 100.0, 1e-3, elapsed_seconds=5.0)
    assert unbounded.eta_seconds == pytest.approx(495.0)
    capped = Progress(10, 1000, 1, 1, 2.0, 100.0, 1e-3, 5.0, seconds_left=30.0)
    assert capped.eta_seconds == 30.0
    plan = Progress(0, 1000, 1, 1, None, 0.0, 1e-3, 0.0, seconds_left=60.0)
    assert plan.eta_seconds == 60.0
    overdue = Progress(10, 1000, 1, 1, 2.0, 100.0, 1e-3, 5.0, seconds_left=-1.0)
    assert overdue.eta_seconds == 0.0


@pytest.mark.slow
def test_bfloat16_training_learns_as_float32_does(classics_ids):
    ids, vocab_size = classics_ids
    ids = ids[:20000]
    _, single = _train(ids, vocab_size, epochs=1)
    model, half = _train(ids, vocab_size, epochs=1, precision="bfloat16")
    assert half.val_perplexity is not None
    assert half.val_perplexity == pytest.approx(single.val_perplexity, rel=0.05)
    assert half.steps_history != single.steps_history  # it did compute in bfloat16
    assert all(p.dtype == torch.float32 for p in model.parameters())
