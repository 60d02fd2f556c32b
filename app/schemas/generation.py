"""Schemas of ``POST /predict``, ``POST /generate`` and ``POST /score``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from app.schemas.common import ModelName, ModelRef, Seed, StrictModel, Text, Version, exactly_one_of

FinishReason = Literal["eos", "stop", "length"]


class OneOrMoreTexts(StrictModel):
    """`text`, or `texts` for a batch answered from one forward pass."""

    text: Text | None = None
    texts: list[Text] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_input(self) -> OneOrMoreTexts:
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of 'text' or 'texts'")
        return self

    @property
    def all_texts(self) -> list[str]:
        return [self.text] if self.text is not None else list(self.texts or [])

    @property
    def field(self) -> str:
        return "text" if self.text is not None else "texts"


class PredictRequest(OneOrMoreTexts):
    model_config = StrictModel.model_config | {
        "json_schema_extra": {
            **exactly_one_of("text", "texts"),
            "examples": [
                {"model": "xiyouji", "text": "行者道：", "k": 5},
                {"model": "xiyouji", "texts": ["行者道：", "那妖精"], "k": 3},
            ],
        }
    }

    model: ModelName
    version: Version | None = None
    k: int = Field(5, ge=1, description="How many candidates (at most the limit max_top_k).")


class Candidate(BaseModel):
    token: str
    id: int
    probability: float


class PredictResult(BaseModel):
    tokens: list[str] = Field(description="The context as the model segmented it.")
    ids: list[int]
    candidates: list[Candidate] = Field(description="Most probable next tokens first.")


class PredictResponse(ModelRef):
    """With `text`: `tokens`, `ids`, `candidates`. With `texts`: `results`, one per text."""

    tokens: list[str] | None = Field(None, description="The context as the model segmented it.")
    ids: list[int] | None = None
    candidates: list[Candidate] | None = Field(None, description="Most probable next tokens first.")
    results: list[PredictResult] | None = None


class GenerateRequest(StrictModel):
    model_config = StrictModel.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "model": "xiyouji",
                    "prompt": "行者道：",
                    "max_tokens": 40,
                    "temperature": 0.8,
                    "seed": 0,
                },
                {
                    "model": "xiyouji",
                    "prompt": "那妖精",
                    "max_tokens": 30,
                    "temperature": 0.9,
                    "top_k": 20,
                    "repetition_penalty": 1.3,
                    "stop": ["。"],
                    "n": 3,
                    "seed": 1,
                },
            ]
        }
    }

    model: ModelName
    version: Version | None = None
    prompt: Text
    max_tokens: int = Field(
        20, ge=1, description="The most tokens to produce (at most the limit max_generate_tokens)."
    )
    temperature: float = Field(1.0, ge=0.0, le=100.0, description="0 is greedy.")
    top_k: int | None = Field(None, ge=1)
    repetition_penalty: float = Field(
        1.0,
        ge=0.01,
        le=10.0,
        description="Multiplicative (CTRL / Hugging Face): a token already in the prompt or the "
        "continuation has its probability p made p^penalty, then renormalised. 1.0 is off.",
    )
    stop: list[Text] = Field(
        default_factory=list,
        max_length=8,
        description="End when the continuation's text contains one of these (kept in the text).",
    )
    ignore_eos: bool = Field(
        False, description="Never end at <eos>: it is not produced, generation goes on."
    )
    n: int = Field(1, ge=1, le=16, description="Continuations to sample, together.")
    stream: bool = Field(
        False,
        description="Answer text/event-stream: a `token` event per token, then `done` with the "
        "whole answer.",
    )
    seed: Seed | None = Field(None, description="Same seed, same text (and the same choices).")


class GenerateChoice(BaseModel):
    text: str = Field(description="The prompt followed by the generated tokens.")
    tokens: list[str] = Field(description="The generated tokens only (a closing <eos> left out).")
    ids: list[int]
    finish_reason: FinishReason = Field(
        description="eos: the model ended the text; stop: a stop string; length: max_tokens."
    )


class GenerateResponse(ModelRef):
    """With `n: 1`: `text`, `tokens`, `ids`, `finish_reason`. With more: `choices`."""

    prompt_tokens: list[str]
    text: str | None = Field(None, description="The prompt followed by the generated tokens.")
    tokens: list[str] | None = Field(None, description="The generated tokens only.")
    ids: list[int] | None = None
    finish_reason: FinishReason | None = None
    choices: list[GenerateChoice] | None = None


class ScoreRequest(OneOrMoreTexts):
    model_config = StrictModel.model_config | {
        "json_schema_extra": {
            **exactly_one_of("text", "texts"),
            "examples": [
                {"model": "xiyouji", "text": "行者道：“师父，我去也。”"},
                {"model": "xiyouji", "texts": ["行者道：“师父，我去也。”", "师父我去也行者道"]},
            ],
        }
    }

    model: ModelName
    version: Version | None = None


class TextScore(BaseModel):
    tokens: list[str] = Field(description="The text's tokens, and <eos> when the model ends texts.")
    ids: list[int]
    log_probs: list[float | None] = Field(
        description="ln p(token | the tokens before it in this text), from the fresh-text state; "
        "null for the first token of a model without <eos> (nothing to predict it from)."
    )
    perplexity: float | None = Field(description="exp of the mean negative log_prob.")
    oov: list[bool] = Field(description="Tokens not in the vocabulary (scored as <unk>).")


class ScoreResponse(ModelRef):
    perplexity: float | None = Field(
        description="Over every scored token of every text: what training reports as "
        "val_perplexity for the same texts."
    )
    scores: list[TextScore]
