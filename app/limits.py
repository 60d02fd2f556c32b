"""Checking a request against the configured limits: over one is a 413 that names it."""

from __future__ import annotations

from app.errors import LimitExceededError
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
