"""Schemas of ``POST /dataset/preview``: the lesson's windows and batches."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from app.schemas.common import ModelName, Seed, StrictModel, Text, TokenId, Version, exactly_one_of


class DatasetPreviewRequest(StrictModel):
    """`ids`, or `texts` encoded with a model's vocabulary, a `vocab`, or one built from them."""

    model_config = StrictModel.model_config | {
        "json_schema_extra": {
            **exactly_one_of("texts", "ids"),
            "examples": [
                {"ids": [0, 1, 3, 4, 0, 1, 5, 2], "seq_len": 3, "batch_size": 2},
                {"texts": ["我爱自然语言处理", "我爱机器学习"], "seq_len": 3, "batch_size": 2},
            ],
        }
    }

    model: ModelName | None = None
    version: Version | None = None
    vocab: list[str] | None = Field(None, min_length=1, description="Tokens; index = id.")
    texts: list[Text] | None = Field(None, min_length=1)
    ids: list[TokenId] | None = Field(None, min_length=1)
    seq_len: int = Field(ge=1, examples=[3])
    stride: int = Field(1, ge=1)
    batch_size: int = Field(2, ge=1, le=100_000)
    shuffle: bool = False
    seed: Seed | None = None
    limit: int = Field(20, ge=0, le=1000, description="Windows and batches listed at most.")

    @model_validator(mode="after")
    def _one_source(self) -> DatasetPreviewRequest:
        if (self.texts is None) == (self.ids is None):
            raise ValueError("give exactly one of 'texts' or 'ids'")
        if self.model is not None and self.vocab is not None:
            raise ValueError("give 'model' or 'vocab', not both")
        if self.version is not None and self.model is None:
            raise ValueError("'version' needs 'model'")
        return self


class Pair(BaseModel):
    x: list[int] | list[list[int]]
    y: list[int] | list[list[int]]


class DatasetPreviewResponse(BaseModel):
    ids: list[int] = Field(description="The id stream the windows are cut from.")
    tokens: list[str] | None = Field(None, description="The token stream, when texts were given.")
    vocab: list[str] | None = Field(None, description="The vocabulary used (index = id).")
    num_windows: int = Field(description="max(0, (N - seq_len - 1) // stride + 1)")
    num_batches: int
    windows: list[Pair] = Field(description="x = ids[i:i+L], y = ids[i+1:i+L+1].")
    batches: list[Pair] = Field(
        description="What a loader of batch_size yields: x, y are [batch, seq_len]."
    )
    model: str | None = None
    version: int | None = None
