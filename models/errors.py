"""Domain errors of the modeling core.

The HTTP layer maps these classes (and their subclasses) to status codes in one table,
so every error raised here carries a message a user can act on.
"""

from __future__ import annotations


class SeqlabError(Exception):
    """Base class of every error the modeling core raises on purpose."""


class ConfigError(SeqlabError, ValueError):
    """A setting or hyperparameter that cannot work (wrong value, impossible combination)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownTokenError(SeqlabError, KeyError):
    """A token is not in a vocabulary that has no unknown-token special."""

    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.token = token

    def __str__(self) -> str:
        return f"token {self.token!r} is not in the vocabulary and it has no <unk> special"


class UnknownIdError(SeqlabError, IndexError):
    """An id is outside a vocabulary's range."""

    def __init__(self, token_id: int, size: int) -> None:
        super().__init__(token_id)
        self.token_id = token_id
        self.size = size

    def __str__(self) -> str:
        return f"id {self.token_id} is outside the vocabulary (valid ids are 0..{self.size - 1})"


class CheckpointError(SeqlabError):
    """A checkpoint directory is missing, damaged, or was not written by seqlab."""


class DeviceError(SeqlabError):
    """A requested device does not exist on this machine."""
