"""Texts into tokens and ids with a model's own tokenizer and vocabulary."""

from __future__ import annotations

from dataclasses import dataclass

from app.errors import InvalidInputError, located
from app.registry import LoadedModel


@dataclass(frozen=True)
class EncodedTexts:
    tokens: list[list[str]]
    ids: list[list[int]]
    oov: list[list[bool]]


def encode_texts(loaded: LoadedModel, texts: list[str], field: str = "texts") -> EncodedTexts:
    """Segment and encode each text; a text with no tokens left is a 422 naming it."""
    vocab = loaded.vocab
    all_tokens: list[list[str]] = []
    all_ids: list[list[int]] = []
    all_oov: list[list[bool]] = []
    for position, text in enumerate(texts):
        tokens = loaded.tokenizer.tokenize(text)
        if not tokens:
            raise InvalidInputError(
                (f"text {position}" if field == "texts" else f"the {field}")
                + " has no tokens once segmented (only whitespace or punctuation?)",
                field=f"body.{field}.{position}" if field == "texts" else f"body.{field}",
            )
        all_tokens.append(tokens)
        location = f"body.{field}.{position}" if field == "texts" else f"body.{field}"
        with located(location):
            all_ids.append(vocab.encode(tokens))  # UnknownTokenError (422) without <unk>
        all_oov.append([vocab.is_oov(token) for token in tokens])
    return EncodedTexts(all_tokens, all_ids, all_oov)
