"""seqlab's modeling core: plain PyTorch and jieba, no HTTP.

Tokenize text, build a vocabulary, cut the id stream into training examples, train a
recurrent next-word language model (and resume a run from its saved state), generate with it,
and save it without pickle.

Names are imported on first use (PEP 562): ``import models.tokenizer`` — all that a
segmentation worker process needs — runs jieba's code without importing torch.
"""

from __future__ import annotations

from importlib import import_module

# Where each public name lives, by submodule.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "checkpoint": ("Checkpoint", "load_checkpoint", "save_checkpoint"),
    "dataset": ("SequenceDataset", "StreamBatches", "count_windows", "make_loader"),
    "device": ("resolve_device",),
    "errors": (
        "CheckpointError",
        "ConfigError",
        "DeviceError",
        "SeqlabError",
        "UnknownIdError",
        "UnknownTokenError",
    ),
    "evaluation": ("evaluate", "perplexity", "unigram_perplexity"),
    "generation": ("Candidate", "Choice", "generate", "next_token_log_probs", "top_k"),
    "lm": ("LanguageModelConfig", "RNNLanguageModel", "RecurrentOutput"),
    "seeding": ("fresh_seed", "seeded"),
    "tokenizer": ("Segmentation", "Tokenizer", "TokenizerConfig"),
    "training": (
        "EpochRecord",
        "Progress",
        "TrainingConfig",
        "TrainingResult",
        "fit",
        "split_ids",
    ),
    "training_state": ("TrainingState", "load_training_state", "save_training_state"),
    "vocab": ("Vocab",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> object:
    module = _MODULE_OF.get(name)
    if module is None:  # a submodule (``from models import generation``) or a typo
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
