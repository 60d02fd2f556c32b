"""Tensors to and from JSON, with the checks a user's nested lists need."""

from __future__ import annotations

import torch

from app.errors import InvalidInputError
from app.limits import check_limit
from app.schemas.common import BinaryTensors, TensorOut
from app.settings import Limits


def request_tensor(request: BinaryTensors, name: str, limits: Limits) -> torch.Tensor | None:
    """The request's tensor ``name``: sent in binary (``request.tensors``), or as nested lists
    in its field of that name; None when it has neither. Both are checked alike."""
    tensor = request.tensors.get(name)
    if tensor is not None:
        return _checked(tensor.float(), name, limits)
    values = getattr(request, name)
    return None if values is None else tensor_from_json(values, name, limits)


def tensor_from_json(values: list, field: str, limits: Limits) -> torch.Tensor:
    """A float32 tensor from nested lists; ragged or empty input is a 422 naming ``field``."""
    try:
        tensor = torch.tensor(values, dtype=torch.float32)
    except (ValueError, TypeError) as error:
        raise InvalidInputError(
            f"{field} is ragged: every list at one depth must have the same length ({error})",
            field=f"body.{field}",
        ) from error
    return _checked(tensor, field, limits)


def _checked(tensor: torch.Tensor, field: str, limits: Limits) -> torch.Tensor:
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
