"""Word segmentation, one concept: a configuration, its private jieba instance, its offsets.

Each configuration segments with a private ``jieba.Tokenizer``.

jieba's module-level functions share one global dictionary for the whole process, and
user words mutate it without a lock. Each :class:`Tokenizer` here owns its own
``jieba.Tokenizer`` instance, so the user words of one model never leak into another.
The base dictionary is loaded once per process and shared read-only between instances
that add no words of their own.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import unicodedata
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

import jieba

from models.boundaries import BOUNDARIES, Boundary
from models.errors import ConfigError

Mode = Literal["accurate", "full", "search"]
Normalization = Literal["none", "nfkc", "halfwidth"]
MODES: tuple[str, ...] = ("accurate", "full", "search")
BACKENDS: tuple[str, ...] = ("jieba", "whitespace")
_NON_SPACE = re.compile(r"\S+")
NORMALIZATIONS: tuple[str, ...] = ("none", "nfkc", "halfwidth")

# jieba logs "Building prefix dict ..." at DEBUG and INFO on every initialisation.
jieba.setLogLevel(logging.WARNING)


@dataclass(frozen=True)
class TokenizerConfig:
    """How text is segmented. Serialises to JSON so a model carries it with its weights.

    Attributes:
        mode: ``accurate`` (jieba's default), ``full`` (every dictionary word, overlapping)
            or ``search`` (accurate plus the shorter words inside long ones).
        hmm: let jieba's HMM find words that are not in its dictionary.
        user_words: extra words the segmenter must keep whole.
        normalization: ``none``; ``nfkc`` (Unicode compatibility forms, which also turns
            full-width ASCII into half-width); ``halfwidth`` (only U+FF01–FF5E and the
            ideographic space, mapped one character to one character).
        lowercase: lowercase every token.
        drop_whitespace: leave out tokens made only of whitespace.
        drop_punctuation: leave out tokens made only of punctuation.
        backend: ``jieba``, or ``whitespace`` for text that is already segmented (English,
            WikiText-style corpora): tokens are the runs of non-space characters and ``mode``
            and ``hmm`` do not apply. Recorded with each model, never swapped silently.
        boundary: what one text is in a training document (:mod:`models.boundaries`):
            ``line``, ``paragraph`` or ``none``. It does not change how a text is segmented.
    """

    mode: Mode = "accurate"
    hmm: bool = True
    user_words: tuple[str, ...] = ()
    normalization: Normalization = "none"
    lowercase: bool = False
    drop_whitespace: bool = True
    drop_punctuation: bool = False
    backend: Literal["jieba", "whitespace"] = "jieba"
    boundary: Boundary = "line"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, not {self.mode!r}", field="mode")
        if self.normalization not in NORMALIZATIONS:
            raise ConfigError(
                f"normalization must be one of {NORMALIZATIONS}, not {self.normalization!r}",
                field="normalization",
            )
        if self.backend not in BACKENDS:
            raise ConfigError(
                f"backend must be one of {BACKENDS}, not {self.backend!r}", field="backend"
            )
        if self.boundary not in BOUNDARIES:
            raise ConfigError(
                f"boundary must be one of {BOUNDARIES}, not {self.boundary!r}", field="boundary"
            )
        # Accept any iterable of words but store a tuple so the config stays hashable.
        words = tuple(self.user_words)
        for word in words:
            if not isinstance(word, str) or not word.strip() or any(c.isspace() for c in word):
                raise ConfigError(
                    f"user word {word!r} must be a non-empty string without whitespace",
                    field="user_words",
                )
        object.__setattr__(self, "user_words", words)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["user_words"] = list(self.user_words)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenizerConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown tokenizer settings: {sorted(unknown)}")
        values = dict(data)
        # Settings written before boundaries existed trained on unmarked streams.
        values.setdefault("boundary", "none")
        if "user_words" in values:
            values["user_words"] = tuple(values["user_words"])
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TokenizerConfig:
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class Segmentation:
    """Tokens of one text and, when asked for, their ``[start, end)`` offsets in the original."""

    tokens: list[str]
    offsets: list[tuple[int, int]] | None = field(default=None)


class _BaseDictionary:
    """jieba's default dictionary, loaded once per process and shared read-only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frequencies: dict[str, int] | None = None
        self._total = 0

    def load(self, cache_dir: Path | None) -> tuple[dict[str, int], int]:
        with self._lock:
            if self._frequencies is None:
                loader = jieba.Tokenizer()
                if cache_dir is not None:
                    cache_dir.mkdir(parents=True, exist_ok=True)
                    loader.tmp_dir = str(cache_dir)
                loader.initialize()
                self._frequencies, self._total = loader.FREQ, loader.total
            return self._frequencies, self._total


_BASE_DICTIONARY = _BaseDictionary()


# Full-width ASCII (U+FF01–FF5E) and the ideographic space, one character to one character.
_HALFWIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: ord(" ")}


class _Normalizer:
    """Normalises text, and on request maps each output character back to the original.

    :meth:`transform` works on the whole text at C speed. :meth:`apply` gives the same text
    built from small clusters, each remembering the ``[start, end)`` of the original
    characters it came from. A cluster boundary sits between two characters only where the
    transform of the pair equals the transforms of each (so ``ｶﾞ`` → ``ガ``, ``e`` + combining
    acute → ``é``, or a final sigma, stay in one cluster). Should a longer composition still make
    the clusters disagree with the whole-text transform, the whole text becomes one cluster:
    offsets then span more than the token, but the tokens never differ from :meth:`transform`.
    """

    def __init__(self, normalization: Normalization, lowercase: bool) -> None:
        self.normalization = normalization
        self.lowercase = lowercase

    @property
    def is_identity(self) -> bool:
        return self.normalization == "none" and not self.lowercase

    def transform(self, text: str) -> str:
        if self.normalization == "nfkc":
            text = unicodedata.normalize("NFKC", text)
        elif self.normalization == "halfwidth":
            text = text.translate(_HALFWIDTH)
        return text.lower() if self.lowercase else text

    def apply(self, text: str) -> tuple[str, list[int], list[int]]:
        """The normalised text and, per output character, its original start and end."""
        whole = self.transform(text)
        boundaries = [0]
        previous = ""
        for index, character in enumerate(text):
            if index and not (
                unicodedata.combining(character)
                or self.transform(previous + character)
                != self.transform(previous) + self.transform(character)
            ):
                boundaries.append(index)
            previous = character
        boundaries.append(len(text))
        starts: list[int] = []
        ends: list[int] = []
        pieces: list[str] = []
        for start, end in pairwise(boundaries):
            piece = self.transform(text[start:end])
            pieces.append(piece)
            starts.extend([start] * len(piece))
            ends.extend([end] * len(piece))
        if "".join(pieces) != whole:
            return whole, [0] * len(whole), [len(text)] * len(whole)
        return whole, starts, ends


def _is_punctuation(token: str) -> bool:
    return all(unicodedata.category(c).startswith("P") for c in token)


class Tokenizer:
    """Segments text with jieba according to a :class:`TokenizerConfig`.

    Initialisation is eager: the dictionary is loaded (or shared) in the constructor, so the
    first call is as fast as every other one. ``cache_dir`` is where jieba keeps its
    dictionary cache (instead of the machine-wide temp directory).

    Instances are safe to share between threads once constructed.
    """

    def __init__(self, config: TokenizerConfig | None = None, cache_dir: str | Path | None = None):
        self.config = config or TokenizerConfig()
        cache_path = Path(cache_dir) if cache_dir is not None else None
        frequencies, total = _BASE_DICTIONARY.load(cache_path)
        self._jieba = jieba.Tokenizer()
        if cache_path is not None:
            self._jieba.tmp_dir = str(cache_path)
        if self.config.user_words:
            # add_word mutates the prefix dictionary: give this instance its own copy.
            self._jieba.FREQ = dict(frequencies)
        else:
            self._jieba.FREQ = frequencies
        self._jieba.total = total
        self._jieba.initialized = True
        for word in self.config.user_words:
            self._jieba.add_word(word)
        self._normalizer = _Normalizer(self.config.normalization, self.config.lowercase)

    def tokenize(self, text: str) -> list[str]:
        """Segment one text into tokens."""
        if self._normalizer.is_identity:
            tokens = self._cut(text)
        else:
            tokens = self._cut(self._normalizer.transform(text))
        if self.config.drop_whitespace or self.config.drop_punctuation:
            tokens = [token for token in tokens if self._keep(token)]
        return tokens

    __call__ = tokenize

    def segment(self, text: str, offsets: bool = False) -> Segmentation:
        """Segment one text; with ``offsets``, also give each token's span in ``text``.

        Offsets always index the *original* text, also after normalisation: the original
        characters ``text[start:end]`` normalise to the token. (Where normalisation expands
        one character into several, e.g. NFKC ``⒍`` → ``6.``, and jieba splits them, each
        token's span is that whole original character.)
        """
        if not offsets:
            return Segmentation(self.tokenize(text))
        tokens: list[str] = []
        spans: list[tuple[int, int]] = []
        if self._normalizer.is_identity:  # positions in the text are the offsets
            for token, start, end in self._cut_with_positions(text):
                if self._keep(token):
                    tokens.append(token)
                    spans.append((start, end))
            return Segmentation(tokens, spans)
        normalized, starts, ends = self._normalizer.apply(text)
        for token, start, end in self._cut_with_positions(normalized):
            if self._keep(token):
                tokens.append(token)
                spans.append((starts[start], ends[end - 1]))
        return Segmentation(tokens, spans)

    def _keep(self, token: str) -> bool:
        if self.config.drop_whitespace and token.isspace():
            return False
        return not (self.config.drop_punctuation and _is_punctuation(token))

    def _cut(self, text: str) -> list[str]:
        if self.config.backend == "whitespace":
            return text.split()
        mode = self.config.mode
        if mode == "accurate":
            return self._jieba.lcut(text, HMM=self.config.hmm)
        if mode == "full":
            # Full mode yields empty strings around whitespace; they are not tokens.
            return [w for w in self._jieba.cut(text, cut_all=True, HMM=self.config.hmm) if w]
        return self._jieba.lcut_for_search(text, HMM=self.config.hmm)

    def _cut_with_positions(self, text: str) -> Iterator[tuple[str, int, int]]:
        if self.config.backend == "whitespace":
            for match in _NON_SPACE.finditer(text):
                yield match.group(), match.start(), match.end()
        elif self.config.mode == "accurate":
            yield from self._jieba.tokenize(text, mode="default", HMM=self.config.hmm)
        elif self.config.mode == "search":
            yield from self._jieba.tokenize(text, mode="search", HMM=self.config.hmm)
        else:
            # Full mode yields overlapping words in order of their start position;
            # each word is found at or after the previous word's start.
            position = 0
            for word in self._cut(text):
                start = text.find(word, position)
                if start < 0:  # pragma: no cover - jieba only yields substrings
                    continue
                position = start
                yield word, start, start + len(word)
