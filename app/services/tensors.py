"""A request's tensors (JSON nested lists, or sent as safetensors) with the checks every one
gets, and tensors to JSON for answers."""

from __future__ import annotations

import numpy
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
    # Through numpy: its C loop over nested lists, and its finiteness check, cost half of
    # torch's on the lesson's 24 floats (6.4 vs 14.1 µs) and 0.7× on 16k. Values past float32's
    # range become inf here (the warning is the check below's business).
    try:
        with numpy.errstate(over="ignore"):
            array = numpy.asarray(values, dtype=numpy.float32)
    except (ValueError, TypeError) as error:
        raise InvalidInputError(
            f"{field} is ragged: every list at one depth must have the same length ({error})",
            field=f"body.{field}",
        ) from error
    _check(array.size, array.shape, bool(numpy.isfinite(array).all()), field, limits)
    return torch.from_numpy(array)


def _checked(tensor: torch.Tensor, field: str, limits: Limits) -> torch.Tensor:
    _check(tensor.numel(), tensor.shape, bool(torch.isfinite(tensor).all()), field, limits)
    return tensor


def _check(size: int, shape: tuple, finite: bool, field: str, limits: Limits) -> None:
    """The checks every tensor a request sends gets, JSON or binary."""
    check_limit(limits, "max_tensor_elements", size)
    if size == 0:
        raise InvalidInputError(f"{field} is empty: shape {list(shape)}", field=f"body.{field}")
    if not finite:  # values too large for float32 became inf
        raise InvalidInputError(
            f"{field} holds values that are not finite in float32", field=f"body.{field}"
        )


def tensor_to_json(tensor: torch.Tensor) -> TensorOut:
    return TensorOut(shape=list(tensor.shape), values=tensor.detach().float().cpu().tolist())
