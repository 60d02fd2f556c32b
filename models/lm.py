"""The next-word language model: embedding → recurrent layer → linear over the vocabulary."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, NamedTuple

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from models.errors import ConfigError

Cell = Literal["rnn", "lstm", "gru"]
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

    def __post_init__(self) -> None:
        checks = [
            (self.vocab_size >= 1, "vocab_size", "must be at least 1"),
            (self.embedding_dim >= 1, "embedding_dim", "must be at least 1"),
            (self.hidden_size >= 1, "hidden_size", "must be at least 1"),
            (self.num_layers >= 1, "num_layers", "must be at least 1"),
            (self.cell in ("rnn", "lstm", "gru"), "cell", "must be rnn, lstm or gru"),
            (self.nonlinearity in ("tanh", "relu"), "nonlinearity", "must be tanh or relu"),
            (0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)"),
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LanguageModelConfig:
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
    """``nn.Embedding`` → ``nn.RNN``/``nn.LSTM``/``nn.GRU`` → ``nn.Linear`` over the vocabulary.

    The recurrent layer is ``batch_first``. The hidden state goes in and out of
    :meth:`forward` and is never stored on the module, so one module can serve many
    concurrent requests.
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
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        if config.tie_weights:
            self.decoder.weight = self.embedding.weight

    @property
    def device(self) -> torch.device:
        return self.embedding.weight.device

    def init_hidden(self, batch_size: int) -> Hidden:
        """Zeros of shape ``(num_layers, batch, hidden)`` on the weights' device and dtype."""
        weight = self.decoder.weight
        shape = (self.config.num_layers, batch_size, self.config.hidden_size)
        if self.config.cell == "lstm":
            return weight.new_zeros(shape), weight.new_zeros(shape)
        return weight.new_zeros(shape)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Embedding vectors of ``ids``: ``(...,)`` → ``(..., embedding_dim)``."""
        return self.embedding(ids)

    def forward(
        self, ids: torch.Tensor, hidden: Hidden | None = None
    ) -> tuple[torch.Tensor, Hidden]:
        """Next-token logits for every position.

        Args:
            ids: ``(batch, seq)`` token ids.
            hidden: the state carried from the previous chunk, or ``None`` for zeros.

        Returns:
            ``(logits, hidden)`` with logits ``(batch, seq, vocab_size)``.
        """
        embedded = self.dropout(self.embedding(ids))  # (batch, seq, embedding_dim)
        output, hidden = self.rnn(embedded, hidden)  # (batch, seq, hidden_size)
        logits = self.decoder(self.dropout(output))  # (batch, seq, vocab_size)
        return logits, hidden

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
        baseline plus the embedding's small random logits.
        """
        if log_probs.shape != (self.config.vocab_size,):
            raise ConfigError(
                f"log_probs must have shape ({self.config.vocab_size},), "
                f"got {tuple(log_probs.shape)}",
                field="log_probs",
            )
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
