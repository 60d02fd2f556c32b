"""Tensors to and from JSON, with the checks a user's nested lists need."""

from __future__ import annotations

import torch

from app.errors import InvalidInputError
from app.limits import check_limit
from app.schemas.common import TensorOut
from app.settings import Limits


def tensor_from_json(values: list, field: str, limits: Limits) -> torch.Tensor:
    """A float32 tensor from nested lists; ragged or empty input is a 422 naming ``field``."""
    try:
        tensor = torch.tensor(values, dtype=torch.float32)
    except (ValueError, TypeError) as error:
        raise InvalidInputError(
            f"{field} is ragged: every list at one depth must have the same length ({error})",
            field=f"body.{field}",
        ) from error
    check_limit(limits, "max_tensor_elements", tensor.numel())
    if tensor.numel() == 0:
        raise InvalidInputError(
            f"{field} is empty: shape {list(tensor.shape)}", field=f"body.{field}"
        )
    if not torch.isfinite(tensor).all():  # values too large for float32 become inf
        raise InvalidInputError(
            f"{field} holds values that are not finite in float32", field=f"body.{field}"
        )
    return tensor


def tensor_to_json(tensor: torch.Tensor) -> TensorOut:
    return TensorOut(shape=list(tensor.shape), values=tensor.detach().float().cpu().tolist())
