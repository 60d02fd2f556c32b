"""Schemas of the model registry routes (``/models``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from app.schemas.common import ModelName, Seed, StrictModel, Text
from app.schemas.tokenize import TokenizerSettings


class VocabSettings(StrictModel):
    """How the vocabulary is built from the texts."""

    order: Literal["first_seen", "frequency"] = Field(
        "first_seen",
        description="first_seen is the lesson's order; frequency sorts by count (the default, "
        "and the only choice, for an adaptive output).",
    )
    specials: list[Text] = Field(
        default_factory=lambda: ["<pad>", "<unk>", "<eos>"],
        max_length=16,
        description="Placed first. <pad> pads batches, <unk> stands for unknown words, <eos> "
        "ends every text; [] gives the lesson's exact vocabulary (and no text ends).",
    )
    min_freq: int = Field(1, ge=1)
    max_size: int | None = Field(None, ge=1, description="Largest size, specials included.")


class ModelSpec(StrictModel):
    """A network and how it reads text; the vocabulary is built from the texts it is given."""

    tokenizer: TokenizerSettings = Field(default_factory=TokenizerSettings)
    vocab: VocabSettings = Field(default_factory=VocabSettings)
    embedding_dim: int = Field(64, ge=1)
    hidden_size: int = Field(128, ge=1)
    num_layers: int = Field(1, ge=1)
    cell: Literal["rnn", "lstm", "gru"] = "lstm"
    nonlinearity: Literal["tanh", "relu"] = Field("tanh", description="Only for cell = rnn.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    tie_weights: bool = Field(
        False,
        description="Share the embedding and output matrices; needs `embedding_dim` equal to "
        "`hidden_size` (the output layer reads the hidden state with the embedding matrix).",
    )
    output: Literal["full", "adaptive"] = Field(
        "full",
        description="The output layer: a full softmax, or an adaptive softmax (much faster on "
        "big vocabularies; needs a frequency-ordered vocabulary; not with tie_weights).",
    )
    cutoffs: list[int] | None = Field(
        None,
        max_length=8,
        description="Adaptive only: ids where the head and each tail cluster end; chosen from "
        "the word counts (80 % / 95 % of the text) when omitted.",
    )
    seed: Seed | None = Field(None, description="Seed of the initial weights (random if omitted).")

    @model_validator(mode="after")
    def _adaptive_needs_frequency_order(self) -> ModelSpec:
        if self.output == "adaptive":
            if "order" in self.vocab.model_fields_set and self.vocab.order != "frequency":
                raise ValueError(
                    "output 'adaptive' needs vocab.order 'frequency': its clusters are ranges "
                    "of frequency-sorted ids"
                )
            self.vocab = self.vocab.model_copy(update={"order": "frequency"})
        elif self.cutoffs:
            raise ValueError("cutoffs are only for output 'adaptive'")
        return self


class CreateModelRequest(ModelSpec):
    """A new model: its vocabulary is built from `texts`, its weights are random until trained."""

    model_config = StrictModel.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "name": "lesson",
                    "texts": ["我爱学习自然语言处理", "我爱机器学习"],
                    "vocab": {"specials": []},
                    "embedding_dim": 4,
                    "hidden_size": 5,
                    "num_layers": 2,
                    "cell": "rnn",
                    "nonlinearity": "tanh",
                    "seed": 0,
                }
            ]
        }
    }

    name: ModelName
    texts: list[Text] = Field(min_length=1)


class ModelConfigOut(BaseModel):
    vocab_size: int
    embedding_dim: int
    hidden_size: int
    num_layers: int
    cell: str
    nonlinearity: str
    dropout: float
    tie_weights: bool
    output: str = "full"
    cutoffs: list[int] = Field(default_factory=list)


class VersionInfo(BaseModel):
    version: int
    created_at: str
    metrics: dict[str, Any]
    source: dict[str, Any]


class ModelInfo(BaseModel):
    name: str = Field(examples=["lesson-rnn"])
    version: int = Field(description="The latest version.", examples=[1])
    versions: list[int]
    config: ModelConfigOut
    tokenizer: TokenizerSettings
    vocab_size: int
    specials: list[str]
    num_parameters: int
    device: str = Field(examples=["cpu"], description="Where the service computes with it.")
    loaded: bool = Field(
        description="Whether this version is in memory now; if not, its first use loads it."
    )
    created_at: str
    updated_at: str
    metrics: dict[str, Any]
    source: dict[str, Any] = Field(description="How this version was made.")


class ModelList(BaseModel):
    models: list[ModelInfo]


class VocabPage(BaseModel):
    model: str
    version: int
    size: int
    offset: int
    tokens: list[str] = Field(
        description="Tokens from `offset`; a token's id is offset + position."
    )
    specials: list[str]
