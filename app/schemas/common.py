"""Pieces shared by several schemas."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from app.registry import NAME_PATTERN

ModelName = Annotated[
    str,
    Field(
        pattern=NAME_PATTERN,
        description="A model's name: [a-z0-9][a-z0-9_-]{0,63}.",
        examples=["lesson-rnn"],
    ),
]
Version = Annotated[int, Field(ge=1, description="Pin a version; the latest when omitted.")]
Text = Annotated[str, Field(min_length=1, description="A non-empty text.")]
Seed = Annotated[
    int,
    Field(ge=0, lt=2**53, description="A random seed (below 2**53, exact in JSON numbers)."),
]
TokenId = Annotated[int, Field(ge=0, lt=2**31, description="An index into a vocabulary.")]


class StrictModel(BaseModel):
    """Requests reject unknown fields (a typo must not pass silently), NaN/Infinity, and
    values of another JSON type (`"5"` or `true` for an integer).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


class TensorOut(BaseModel):
    """A tensor as JSON: ``values`` are nested lists whose nesting matches ``shape``."""

    shape: list[int] = Field(examples=[[3, 2, 5]])
    values: Any = Field(description="Nested lists of floats, nested as `shape` says.")


class ModelRef(BaseModel):
    """Which model and version answered; also sent as the `Seqlab-Model: name@version` header."""

    model: str = Field(examples=["lesson-rnn"])
    version: int = Field(examples=[1])
