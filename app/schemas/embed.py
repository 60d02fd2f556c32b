"""Schemas of ``POST /embed``."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, model_validator

from app.schemas.common import (
    BinaryTensors,
    ModelName,
    ModelRef,
    StrictModel,
    Text,
    TokenId,
    Version,
    exactly_one_of,
)


class EmbedRequest(StrictModel):
    """Exactly one of `text`, `texts`, `tokens` (pre-segmented) or `ids`."""

    model_config = StrictModel.model_config | {
        "json_schema_extra": {
            **exactly_one_of("text", "texts", "tokens", "ids"),
            "examples": [
                {"model": "lesson-rnn", "texts": ["我爱学习自然语言处理", "我爱机器学习"]},
                {"model": "lesson-rnn", "tokens": [["我", "爱", "学习"]]},
                {"model": "lesson-rnn", "ids": [[2, 3, 4]]},
            ],
        }
    }

    model: ModelName
    version: Version | None = None
    text: Text | None = None
    texts: list[Text] | None = Field(None, min_length=1)
    tokens: list[Annotated[list[Text], Field(min_length=1)]] | None = Field(None, min_length=1)
    ids: list[Annotated[list[TokenId], Field(min_length=1)]] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_input(self) -> EmbedRequest:
        given = [
            name for name in ("text", "texts", "tokens", "ids") if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of 'text', 'texts', 'tokens' or 'ids' (got {given or 'none'})"
            )
        return self


class EmbedResponse(ModelRef, BinaryTensors):
    dim: int = Field(examples=[4])
    tokens: list[list[str]]
    ids: list[list[int]]
    oov: list[list[bool]] = Field(
        description="True where a token is not in the vocabulary (→ <unk>)."
    )
    vectors: list[list[list[float]]] = Field(description="(texts, tokens, dim)")


class Neighbour(BaseModel):
    token: str
    id: int
    similarity: float = Field(
        description="Cosine similarity of the two embedding rows, in [-1, 1]."
    )


class NeighboursResponse(ModelRef):
    token: str
    id: int
    neighbours: list[Neighbour] = Field(
        description="The `k` nearest other words, most similar first (ties: lower id first); "
        "specials such as `<unk>` are never neighbours."
    )
