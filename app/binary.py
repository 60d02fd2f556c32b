"""Tensors as safetensors (``application/vnd.safetensors``), the binary form of the tensor
routes: a self-describing format (a JSON header of names, dtypes and shapes, then raw
little-endian data) read by the maintained ``safetensors`` library in Python, Rust and JS, and
never unpickled.

An answer holds the route's tensors under the JSON answer's names (``output``, ``hn``,
``weights.weight_ih_l0``, …) and the rest of the JSON answer (model, version, tokens, lengths…)
as a JSON string in the header's ``__metadata__["seqlab"]``. A request holds ``input`` (and
``h0``, ``c0``) as tensors and the other fields of the JSON request in ``__metadata__["request"]``;
its tensors never become Python lists.
"""

from __future__ import annotations

import json
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from app.errors import InvalidInputError
from app.limits import over_limit

MEDIA_TYPE = "application/vnd.safetensors"
# The request fields that are tensors; every other field comes from the metadata.
REQUEST_TENSORS = ("input", "h0", "c0")
FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def wants_binary(accept: str | None) -> bool:
    """Whether an ``Accept`` header prefers safetensors to JSON (by its q-values; JSON wins a tie
    and is the default)."""
    if not accept:
        return False
    quality = {"binary": 0.0, "json": 0.0}
    for part in accept.split(","):
        media, _, parameters = part.partition(";")
        media = media.strip().lower()
        q = 1.0
        for parameter in parameters.split(";"):
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if media == MEDIA_TYPE:
            quality["binary"] = max(quality["binary"], q)
        elif media in ("application/json", "application/*", "*/*"):
            quality["json"] = max(quality["json"], q)
    return quality["binary"] > quality["json"]


def encode(tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> bytes:
    """Tensors (float32 or int64, on the CPU) and the answer's other fields, as safetensors."""
    ready = {name: tensor.detach().contiguous().cpu() for name, tensor in tensors.items()}
    return save(ready, metadata={"seqlab": json.dumps(metadata, ensure_ascii=False)})


# What stands in the JSON request for a tensor sent in binary: a valid [1, 1, 1] nesting, so
# that the request validates as a tensor-form request; the route then hands the service the
# real tensor (``app.services.tensors.request_tensor``), checked as a JSON one would be.
PLACEHOLDER = [[[0.0]]]


def decode_request(
    body: bytes, max_elements: int
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A safetensors request as the JSON request it stands for (its metadata's ``request``
    fields, a placeholder for each tensor) and its tensors, as float32.

    A body that is not safetensors, or a tensor of another name or of integers, is a 422 naming
    the field; more than ``max_elements`` in one tensor a 413 (before its data becomes lists).
    """
    try:
        tensors = load(body)
    except (SafetensorError, ValueError, RuntimeError, OverflowError) as error:
        raise InvalidInputError(
            f"the body is not a safetensors file ({error})", field="body"
        ) from error
    fields = _metadata_request(body)
    for name, tensor in tensors.items():
        if name not in REQUEST_TENSORS:
            raise InvalidInputError(
                f"unknown tensor {name!r} (a request may hold: {', '.join(REQUEST_TENSORS)})",
                field=f"body.{name}",
            )
        if name in fields:
            raise InvalidInputError(
                f"{name!r} is given both as a tensor and in the metadata", field=f"body.{name}"
            )
        if tensor.dtype not in FLOATS:
            raise InvalidInputError(
                f"{name} must hold floats, not {str(tensor.dtype).removeprefix('torch.')}",
                field=f"body.{name}",
            )
        if tensor.numel() > max_elements:
            # The same 413 as a JSON tensor this size (the service checks it again).
            raise over_limit("max_tensor_elements", tensor.numel(), max_elements)
        fields[name] = PLACEHOLDER
    return fields, {name: tensor.float() for name, tensor in tensors.items()}


def _metadata_request(body: bytes) -> dict[str, Any]:
    """The ``request`` entry of the header's ``__metadata__``: a JSON object (empty if absent)."""
    header_length = int.from_bytes(body[:8], "little")
    header = json.loads(body[8 : 8 + header_length])
    text = (header.get("__metadata__") or {}).get("request")
    if text is None:
        return {}
    try:
        fields = json.loads(text)
    except ValueError as error:
        raise InvalidInputError(
            f"__metadata__.request is not JSON ({error})", field="body.__metadata__.request"
        ) from error
    if not isinstance(fields, dict):
        raise InvalidInputError(
            "__metadata__.request must be a JSON object of the request's other fields",
            field="body.__metadata__.request",
        )
    return fields
