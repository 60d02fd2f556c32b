"""The next-word language model: embedding → recurrent layer → linear over the vocabulary."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, NamedTuple

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from models.adaptive import AdaptiveOutput, check_cutoffs
from models.errors import ConfigError

Cell = Literal["rnn", "lstm", "gru"]
Output = Literal["full", "adaptive"]
Nonlinearity = Literal["tanh", "relu"]
# An LSTM's state is the pair (h, c); the other cells carry h alone.
Hidden = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class LanguageModelConfig:
    """Architecture of an :class:`RNNLanguageModel` (hyperparameters, not settings)."""

    vocab_size: int
    embedding_dim: int = 64
    hidden_size: int = 128
    num_layers: int = 1
    cell: Cell = "lstm"
    nonlinearity: Nonlinearity = "tanh"
    dropout: float = 0.0
    tie_weights: bool = False
    output: Output = "full"
    cutoffs: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "cutoffs", tuple(int(c) for c in self.cutoffs))
        checks = [
            (self.vocab_size >= 1, "vocab_size", "must be at least 1"),
            (self.embedding_dim >= 1, "embedding_dim", "must be at least 1"),
            (self.hidden_size >= 1, "hidden_size", "must be at least 1"),
            (self.num_layers >= 1, "num_layers", "must be at least 1"),
            (self.cell in ("rnn", "lstm", "gru"), "cell", "must be rnn, lstm or gru"),
            (self.nonlinearity in ("tanh", "relu"), "nonlinearity", "must be tanh or relu"),
            (0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)"),
            (self.output in ("full", "adaptive"), "output", "must be full or adaptive"),
        ]
        for ok, name, message in checks:
            if not ok:
                raise ConfigError(f"{name} {message}, got {getattr(self, name)!r}", field=name)
        if self.tie_weights and self.embedding_dim != self.hidden_size:
            raise ConfigError(
                "tie_weights needs embedding_dim == hidden_size "
                f"({self.embedding_dim} != {self.hidden_size})",
                field="tie_weights",
            )
        if self.output == "adaptive":
            if self.tie_weights:
                # The head and the tails project the state to different sizes: there is no
                # one matrix to share with the embedding.
                raise ConfigError(
                    "tie_weights cannot be used with output 'adaptive'", field="tie_weights"
                )
            check_cutoffs(self.cutoffs, self.vocab_size, self.hidden_size)
        elif self.cutoffs:
            raise ConfigError("cutoffs are only for output 'adaptive'", field="cutoffs")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cutoffs"] = list(self.cutoffs)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LanguageModelConfig:
        # Documents written before output layers had a choice lack output/cutoffs: full.
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown model settings: {sorted(unknown)}")
        return cls(**data)


class RecurrentOutput(NamedTuple):
    """What the recurrent layer returns, in torch's own terms.

    ``output``: ``(batch, seq, hidden)``, the last layer's state at every step.
    ``hn``: ``(num_layers, batch, hidden)``, every layer's state after the last (real) step.
    ``cn``: same shape, the LSTM cell state; ``None`` for RNN and GRU.
    """

    output: torch.Tensor
    hn: torch.Tensor
    cn: torch.Tensor | None


class RNNLanguageModel(nn.Module):
    """``nn.Embedding`` → ``nn.RNN``/``nn.LSTM``/``nn.GRU`` → an output layer over the vocabulary.

    The output layer is ``nn.Linear`` (``output="full"``, attribute ``decoder``) or an adaptive
    softmax (``output="adaptive"``, attribute ``adaptive``, :mod:`models.adaptive`). Use
    :meth:`log_probs` for whole distributions, :meth:`target_log_probs` and :meth:`loss`
    when only the targets' probabilities are needed (the adaptive layer's fast path).

    The recurrent layer is ``batch_first``. The hidden state goes in and out of every method
    and is never stored on the module, so one module can serve many concurrent requests.
    """

    def __init__(self, config: LanguageModelConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim)
        recurrent_dropout = config.dropout if config.num_layers > 1 else 0.0
        common = {
            "input_size": config.embedding_dim,
            "hidden_size": config.hidden_size,
            "num_layers": config.num_layers,
            "dropout": recurrent_dropout,
            "batch_first": True,
        }
        if config.cell == "lstm":
            self.rnn: nn.RNNBase = nn.LSTM(**common)
        elif config.cell == "gru":
            self.rnn = nn.GRU(**common)
        else:
            self.rnn = nn.RNN(nonlinearity=config.nonlinearity, **common)
        self.dropout = nn.Dropout(config.dropout)
        self.decoder: nn.Linear | None = None
        self.adaptive: AdaptiveOutput | None = None
        if config.output == "adaptive":
            self.adaptive = AdaptiveOutput(config.hidden_size, config.vocab_size, config.cutoffs)
        else:
            self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
            if config.tie_weights:
                self.decoder.weight = self.embedding.weight

    @property
    def device(self) -> torch.device:
        return self.embedding.weight.device

    def init_hidden(self, batch_size: int) -> Hidden:
        """Zeros of shape ``(num_layers, batch, hidden)`` on the weights' device and dtype."""
        weight = self.embedding.weight
        shape = (self.config.num_layers, batch_size, self.config.hidden_size)
        if self.config.cell == "lstm":
            return weight.new_zeros(shape), weight.new_zeros(shape)
        return weight.new_zeros(shape)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Embedding vectors of ``ids``: ``(...,)`` → ``(..., embedding_dim)``."""
        return self.embedding(ids)

    def features(
        self, ids: torch.Tensor, hidden: Hidden | None = None
    ) -> tuple[torch.Tensor, Hidden]:
        """What the output layer reads: ``(batch, seq, hidden_size)`` (dropout applied), and
        the state after ``ids`` (``hidden`` is the state before them, ``None`` for zeros)."""
        embedded = self.dropout(self.embedding(ids))  # (batch, seq, embedding_dim)
        output, hidden = self.rnn(embedded, hidden)  # (batch, seq, hidden_size)
        return self.dropout(output), hidden

    def forward(
        self, ids: torch.Tensor, hidden: Hidden | None = None
    ) -> tuple[torch.Tensor, Hidden]:
        """Next-token scores for every position: their softmax is the next-token distribution.

        Args:
            ids: ``(batch, seq)`` token ids.
            hidden: the state carried from the previous chunk, or ``None`` for zeros.

        Returns:
            ``(scores, hidden)`` with scores ``(batch, seq, vocab_size)``: the logits of a full
            output layer, the log-probabilities of an adaptive one.
        """
        features, hidden = self.features(ids, hidden)
        return self.output_scores(features), hidden

    def output_scores(self, features: torch.Tensor) -> torch.Tensor:
        """The output layer alone: ``(..., hidden_size)`` → ``(..., vocab_size)`` scores whose
        softmax is the next-token distribution (logits, or an adaptive layer's log-probs)."""
        if self.adaptive is not None:
            flat = features.reshape(-1, features.size(-1))  # (batch·seq, hidden)
            return self.adaptive.log_prob(flat).view(*features.shape[:-1], -1)
        assert self.decoder is not None
        return self.decoder(features)  # (..., vocab_size)

    def log_probs(
        self, ids: torch.Tensor, hidden: Hidden | None = None
    ) -> tuple[torch.Tensor, Hidden]:
        """Next-token log-probabilities ``(batch, seq, vocab_size)`` (in float32), and the state."""
        scores, hidden = self(ids, hidden)
        return torch.log_softmax(scores.float(), dim=-1), hidden

    def target_log_probs(
        self, ids: torch.Tensor, targets: torch.Tensor, hidden: Hidden | None = None
    ) -> tuple[torch.Tensor, Hidden]:
        """``log p(targets[b, t] | ids[b, :t+1])`` ``(batch, seq)``, and the state after ``ids``.

        An adaptive output computes only the clusters its targets fall in.
        """
        features, hidden = self.features(ids, hidden)
        flat_targets = targets.reshape(-1)
        if self.adaptive is not None:
            flat = features.reshape(-1, features.size(-1))
            values = self.adaptive.target_log_probs(flat, flat_targets)
        else:
            assert self.decoder is not None
            logits = self.decoder(features)
            values = -nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)).float(), flat_targets, reduction="none"
            )
        return values.view(targets.shape), hidden

    def loss(
        self, ids: torch.Tensor, targets: torch.Tensor, hidden: Hidden | None = None
    ) -> tuple[torch.Tensor, Hidden]:
        """Mean cross-entropy (nats) of ``targets`` ``(batch, seq)`` after ``ids``; the state."""
        features, hidden = self.features(ids, hidden)
        flat = features.reshape(-1, features.size(-1))
        if self.adaptive is not None:
            return self.adaptive(flat, targets.reshape(-1)).loss, hidden
        assert self.decoder is not None
        return nn.functional.cross_entropy(self.decoder(flat), targets.reshape(-1)), hidden

    def start_state(self, batch_size: int, start_id: int | None) -> Hidden | None:
        """The state a fresh text starts from: after reading ``start_id`` (``<eos>``) from zeros.

        In a training stream every text begins right after an ``<eos>`` (with the state
        carried from the text before, as in pytorch/examples ``word_language_model``); a text
        that comes alone has no text before it, and the state after ``<eos>`` read from zeros is
        the nearest start to that. Validation reads its held-out texts the same way, so a
        job's ``val_perplexity`` measures exactly what serving does. ``None`` (zeros) when
        ``start_id`` is None (a model without ``<eos>``).
        """
        if start_id is None:
            return None
        ids = torch.full((batch_size, 1), start_id, dtype=torch.long, device=self.device)
        with torch.no_grad():
            _, state = self.rnn(self.embedding(ids))
        return state

    def recurrent(
        self,
        ids: torch.Tensor,
        hidden: Hidden | None = None,
        lengths: torch.Tensor | None = None,
    ) -> RecurrentOutput:
        """The raw recurrent layer over embedded ``ids`` (no dropout, no decoder).

        Args:
            ids: ``(batch, seq)`` token ids, right-padded when ``lengths`` is given.
            hidden: initial state ``(num_layers, batch, hidden)`` (a pair for LSTM); zeros if None.
            lengths: ``(batch,)`` real lengths; then ``hn`` is each sequence's state at its
                last real token, and ``output`` is zero past each length.
        """
        embedded = self.embedding(ids)  # (batch, seq, embedding_dim)
        if lengths is None:
            output, state = self.rnn(embedded, hidden)
        else:
            packed = pack_padded_sequence(
                embedded, lengths.cpu(), batch_first=True, enforce_sorted=False
            )
            packed_output, state = self.rnn(packed, hidden)
            output, _ = pad_packed_sequence(
                packed_output, batch_first=True, total_length=ids.size(1)
            )
        if isinstance(state, tuple):
            return RecurrentOutput(output, state[0], state[1])
        return RecurrentOutput(output, state, None)

    def start_from_counts(self, log_probs: torch.Tensor) -> None:
        """Start the output layer at a counting baseline: it predicts ``log_probs`` everywhere.

        The decoder's bias becomes ``log_probs`` ``(vocab_size,)`` and, unless it is tied to
        the embedding, its weight zero: before any step the model's perplexity is exactly the
        baseline's, and training starts from counting rather than from a uniform guess. The
        weight still learns from the first step on (its gradient is the error times the
        hidden state). A tied weight is the embedding and stays: then the start is the
        baseline plus the embedding's small random logits. An adaptive output starts at the
        same distribution exactly (:meth:`models.adaptive.AdaptiveOutput.start_from_log_probs`).
        """
        if log_probs.shape != (self.config.vocab_size,):
            raise ConfigError(
                f"log_probs must have shape ({self.config.vocab_size},), "
                f"got {tuple(log_probs.shape)}",
                field="log_probs",
            )
        if self.adaptive is not None:
            self.adaptive.start_from_log_probs(log_probs)
            return
        assert self.decoder is not None
        with torch.no_grad():
            self.decoder.bias.copy_(log_probs.to(self.decoder.bias))
            if not self.config.tie_weights:
                self.decoder.weight.zero_()

    def num_parameters(self) -> int:
        # parameters() yields a tied weight once.
        return sum(p.numel() for p in self.parameters())


def detach_hidden(hidden: Hidden) -> Hidden:
    """Cut the autograd history between bptt chunks while keeping the values."""
    if isinstance(hidden, tuple):
        return hidden[0].detach(), hidden[1].detach()
    return hidden.detach()
