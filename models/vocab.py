"""Vocabulary: each word gets an index."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from models.errors import ConfigError, UnknownIdError, UnknownTokenError

PAD = "<pad>"
UNK = "<unk>"
EOS = "<eos>"  # end of a text: training streams put it at every boundary (models.boundaries)
DEFAULT_SPECIALS: tuple[str, ...] = (PAD, UNK, EOS)
Order = Literal["first_seen", "frequency"]


class Vocab:
    """A bijection between tokens and ids ``0..len-1``; specials come first.

    Build one with :meth:`build`. With ``specials=[]`` and ``order="first_seen"`` the ids
    follow the order in which words first appear, as in the lesson.
    """

    def __init__(self, tokens: Sequence[str], specials: Sequence[str] = DEFAULT_SPECIALS):
        specials = list(specials)
        if len(set(specials)) != len(specials):
            raise ConfigError("specials must be distinct", field="specials")
        if list(tokens[: len(specials)]) != specials:
            raise ConfigError("the vocabulary must start with its specials", field="specials")
        self._itos: list[str] = list(tokens)
        self._stoi: dict[str, int] = {}
        for index, token in enumerate(self._itos):
            if token in self._stoi:
                raise ConfigError(f"token {token!r} appears twice in the vocabulary")
            self._stoi[token] = index
        self.specials: tuple[str, ...] = tuple(specials)
        self.unk_id: int | None = self._stoi.get(UNK) if UNK in self.specials else None
        self.pad_id: int | None = self._stoi.get(PAD) if PAD in self.specials else None
        self.eos_id: int | None = self._stoi.get(EOS) if EOS in self.specials else None

    @classmethod
    def build(
        cls,
        token_streams: Iterable[Iterable[str]],
        *,
        order: Order = "first_seen",
        specials: Sequence[str] = DEFAULT_SPECIALS,
        min_freq: int = 1,
        max_size: int | None = None,
    ) -> Vocab:
        """Build a vocabulary from token streams (one iterable of tokens per text).

        Args:
            token_streams: tokens of each text.
            order: ``first_seen`` keeps the order in which words first appear;
                ``frequency`` sorts by count, ties in first-seen order.
            specials: tokens placed first (default ``<pad>``, ``<unk>``, ``<eos>``); may be
                empty (the lesson's vocabulary: no padding, no unknown word, no text ends).
            min_freq: leave out words seen fewer times.
            max_size: the largest vocabulary size, specials included.
        """
        if order not in ("first_seen", "frequency"):
            raise ConfigError(
                f"order must be first_seen or frequency, not {order!r}", field="order"
            )
        if min_freq < 1:
            raise ConfigError("min_freq must be at least 1", field="min_freq")
        specials = list(specials)
        if max_size is not None and max_size < len(specials):
            raise ConfigError(
                f"max_size {max_size} is smaller than the {len(specials)} specials",
                field="max_size",
            )
        counts: Counter[str] = Counter()
        for stream in token_streams:
            counts.update(stream)  # Counter keeps first-insertion order
        words = [w for w, c in counts.items() if c >= min_freq and w not in specials]
        if order == "frequency":
            words.sort(key=lambda w: -counts[w])  # stable: ties stay in first-seen order
        if max_size is not None:
            words = words[: max_size - len(specials)]
        return cls(specials + words, specials)

    def __len__(self) -> int:
        return len(self._itos)

    def __contains__(self, token: object) -> bool:
        return token in self._stoi

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Vocab)
            and self._itos == other._itos
            and self.specials == other.specials
        )

    def __hash__(self) -> int:
        return hash((tuple(self._itos), self.specials))

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, specials={list(self.specials)})"

    @property
    def tokens(self) -> list[str]:
        """All tokens; a token's index in this list is its id."""
        return list(self._itos)

    def index(self, token: str) -> int:
        """The id of ``token``; unknown tokens map to ``<unk>`` when there is one."""
        found = self._stoi.get(token)
        if found is not None:
            return found
        if self.unk_id is None:
            raise UnknownTokenError(token)
        return self.unk_id

    def token(self, token_id: int) -> str:
        if not 0 <= token_id < len(self._itos):
            raise UnknownIdError(token_id, len(self._itos))
        return self._itos[token_id]

    def encode(self, tokens: Iterable[str]) -> list[int]:
        stoi, unk = self._stoi, self.unk_id
        ids: list[int] = []
        for token in tokens:
            found = stoi.get(token, unk)
            if found is None:
                raise UnknownTokenError(token)
            ids.append(found)
        return ids

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.token(int(i)) for i in ids]

    def is_oov(self, token: str) -> bool:
        return token not in self._stoi

    def count_oov(self, tokens: Iterable[str]) -> tuple[int, int]:
        """``(out-of-vocabulary tokens, all tokens)`` over a token stream."""
        total = oov = 0
        for token in tokens:
            total += 1
            if token not in self._stoi:
                oov += 1
        return oov, total

    def to_dict(self) -> dict[str, Any]:
        return {"tokens": list(self._itos), "specials": list(self.specials)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Vocab:
        try:
            return cls(data["tokens"], data["specials"])
        except (KeyError, TypeError) as error:
            raise ConfigError(f"not a vocabulary: {error}") from error

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Vocab:
        return cls.from_dict(json.loads(text))
