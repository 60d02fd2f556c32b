"""seqlab's modeling core: plain PyTorch and jieba, no HTTP.

Tokenize text, build a vocabulary, cut the id stream into training examples, train a
recurrent next-word language model (and resume a run from its saved state), generate with it,
and save it without pickle.
"""

from models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from models.dataset import SequenceDataset, StreamBatches, count_windows, make_loader
from models.device import resolve_device
from models.errors import (
    CheckpointError,
    ConfigError,
    DeviceError,
    SeqlabError,
    UnknownIdError,
    UnknownTokenError,
)
from models.evaluation import evaluate, perplexity, unigram_perplexity
from models.generation import Candidate, Choice, generate, next_token_log_probs, top_k
from models.lm import LanguageModelConfig, RecurrentOutput, RNNLanguageModel
from models.seeding import fresh_seed, seeded
from models.tokenizer import Segmentation, Tokenizer, TokenizerConfig
from models.training import EpochRecord, Progress, TrainingConfig, TrainingResult, fit, split_ids
from models.training_state import TrainingState, load_training_state, save_training_state
from models.vocab import Vocab

__all__ = [
    "Candidate",
    "Checkpoint",
    "CheckpointError",
    "Choice",
    "ConfigError",
    "DeviceError",
    "EpochRecord",
    "LanguageModelConfig",
    "Progress",
    "RNNLanguageModel",
    "RecurrentOutput",
    "Segmentation",
    "SeqlabError",
    "SequenceDataset",
    "StreamBatches",
    "Tokenizer",
    "TokenizerConfig",
    "TrainingConfig",
    "TrainingResult",
    "TrainingState",
    "UnknownIdError",
    "UnknownTokenError",
    "Vocab",
    "count_windows",
    "evaluate",
    "fit",
    "fresh_seed",
    "generate",
    "load_checkpoint",
    "load_training_state",
    "make_loader",
    "next_token_log_probs",
    "perplexity",
    "resolve_device",
    "save_checkpoint",
    "save_training_state",
    "seeded",
    "split_ids",
    "top_k",
    "unigram_perplexity",
]
