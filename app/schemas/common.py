"""Pieces shared by several schemas."""

from __future__ import annotations

import types
import typing
from functools import cache
from typing import Annotated, Any, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    ValidationError,
    model_validator,
)

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

    An integer may be written `2.0`: JSON Schema calls an integer-valued number an integer, so a
    client or a fuzzer that follows the spec may send one; `2.5` is still refused.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)

    @model_validator(mode="wrap")
    @classmethod
    def _integer_valued_numbers(cls, data: Any, handler: ModelWrapValidatorHandler) -> Any:
        # Tried only after a failure (a valid request pays one function call): the integer
        # fields' integer-valued floats become ints, and the request is validated once more.
        try:
            return handler(data)
        except ValidationError as error:
            names = _integer_fields(cls)
            if not names or not isinstance(data, dict) or not _integer_valued_float(error):
                raise
            converted = {
                name: _as_integers(value) if name in names else value
                for name, value in data.items()
            }
            if all(converted[name] is data[name] for name in data):
                raise
            return handler(converted)


def _integer_valued_float(error: ValidationError) -> bool:
    return any(
        item["type"] == "int_type"
        and isinstance(item.get("input"), float)
        and item["input"].is_integer()
        for item in error.errors()
    )


def _holds_integers(annotation: Any) -> bool:
    """Whether a field's type is ``int``, or optional or lists of ``int`` (Annotated unwrapped)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _holds_integers(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        return len(options) == 1 and _holds_integers(options[0])
    if origin is list:
        return _holds_integers(typing.get_args(annotation)[0])
    return annotation is int


@cache
def _integer_fields(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(
        field.alias or name
        for name, field in model.model_fields.items()
        if _holds_integers(field.annotation)
    )


def _as_integers(value: Any) -> Any:
    """``value`` with integer-valued floats as ints (the same object when there are none)."""
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, list):
        converted = [_as_integers(item) for item in value]
        if any(new is not old for new, old in zip(converted, value, strict=True)):
            return converted
    return value


def exactly_one_of(*names: str) -> dict[str, Any]:
    """The JSON Schema of a rule the request model enforces: exactly one of these fields is
    given (not null). For a request schema's ``json_schema_extra``.

    The ``oneOf`` sits inside an ``allOf``: the same rule to a validator or a fuzzer, while a
    client generator (openapi-python-client) keeps one request class with every field, instead
    of a union of classes that hold only the branch's field.
    """
    branches = [
        {"required": [name], "properties": {name: {"not": {"type": "null"}}}} for name in names
    ]
    return {"allOf": [{"oneOf": branches}]}


class TensorOut(BaseModel):
    """A tensor as JSON: ``values`` are nested lists whose nesting matches ``shape``."""

    shape: list[int] = Field(examples=[[3, 2, 5]])
    values: Any = Field(description="Nested lists of floats, nested as `shape` says.")


class BinaryTensors(BaseModel):
    """A request or answer whose tensors may travel as safetensors (``app.binary``): ``tensors``
    holds them by name. An answer's are set by a service asked for the binary form (which then
    leaves the tensor fields out of the JSON part: they would cost a Python float per element);
    a request's by the route, from a binary body."""

    _tensors: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def tensors(self) -> dict[str, Any]:
        return self._tensors


class ModelRef(BaseModel):
    """Which model and version answered; also sent as the `Seqlab-Model: name@version` header."""

    model: str = Field(examples=["lesson-rnn"])
    version: int = Field(examples=[1])
