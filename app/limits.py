"""Checking a request against the configured limits.

Over a limit on the *size* of data (texts, characters, tensors, bodies) is a 413 that names
it; a *value* over its limit (``k``, ``max_tokens``, a layer's size) is a 422 naming the field
and the limit (:func:`check_value`).
"""

from __future__ import annotations

from app.errors import InvalidInputError, LimitExceededError
from app.settings import Limits

_WHAT = {name: field.description or name for name, field in Limits.model_fields.items()}


def over_limit(name: str, value: int, maximum: int) -> LimitExceededError:
    """The error for ``value`` over the limit ``name`` (whose description says what it counts)."""
    return LimitExceededError(name, value, maximum, _WHAT[name].rstrip("."))


def check_limit(limits: Limits, name: str, value: int) -> None:
    """Raise a 413 naming ``name`` when ``value`` is over it."""
    maximum = getattr(limits, name)
    if value > maximum:
        raise over_limit(name, value, maximum)


def check_texts(limits: Limits, texts: list[str]) -> None:
    check_limit(limits, "max_texts", len(texts))
    for text in texts:
        check_limit(limits, "max_text_chars", len(text))


def check_value(limits: Limits, name: str, value: int, field: str) -> None:
    """Raise a 422 naming ``field`` and the limit ``name`` when ``value`` is over it."""
    maximum = getattr(limits, name)
    if value > maximum:
        raise InvalidInputError(
            f"{field.removeprefix('body.')} {value} is over the limit {name} = {maximum} "
            f"({_WHAT[name].rstrip('.').lower()})",
            field=field,
            limit=name,
            value=value,
            maximum=maximum,
        )
