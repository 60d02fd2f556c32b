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
import math
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from app.errors import InvalidInputError
from app.limits import over_limit

MEDIA_TYPE = "application/vnd.safetensors"
# The request fields that are tensors; every other field comes from the metadata.
REQUEST_TENSORS = ("input", "h0", "c0")
# The header of a request: three tensor entries and a metadata string of the other fields.
MAX_HEADER_BYTES = 65_536
FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}
# What stands in the JSON request for a tensor sent in binary: a valid [1, 1, 1] nesting, so
# that the request validates as a tensor-form request; the route then hands the service the
# real tensor (``app.services.tensors.request_tensor``), checked as a JSON one would be.
PLACEHOLDER = [[[0.0]]]


def wants_binary(accept: str | None) -> bool:
    """Whether an ``Accept`` header prefers safetensors to JSON (RFC 9110 §12.5.1: each type
    takes the q of the most specific range that matches it; JSON wins a tie and is the
    default)."""
    if not accept:
        return False
    # For each type: (specificity of the best range so far, its q).
    best = {MEDIA_TYPE: (-1, 0.0), "application/json": (-1, 0.0)}
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
                q = min(max(q, 0.0), 1.0) if math.isfinite(q) else 0.0
        for candidate in best:
            specificity = (
                2
                if media == candidate
                else 1
                if media == candidate.split("/")[0] + "/*"
                else 0
                if media == "*/*"
                else -1
            )
            if specificity > best[candidate][0]:
                best[candidate] = (specificity, q)
    return best[MEDIA_TYPE][1] > best["application/json"][1]


def encode(tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> bytes:
    """Tensors (float32 or int64, on the CPU) and the answer's other fields, as safetensors."""
    ready = {name: tensor.detach().contiguous().cpu() for name, tensor in tensors.items()}
    return save(ready, metadata={"seqlab": json.dumps(metadata, ensure_ascii=False)})


def decode_request(
    body: bytes, max_elements: int
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A safetensors request as the JSON request it stands for (its metadata's ``request``
    fields, a placeholder for each tensor) and its tensors, as float32.

    The header is read and checked first, before any tensor is built: at most
    ``MAX_HEADER_BYTES``, only ``input``/``h0``/``c0`` of a float dtype, at most
    ``max_elements`` each (else the 413 a JSON tensor that size gets), and the other fields as
    a JSON object in ``__metadata__["request"]`` that holds no tensor. Anything else is a 422
    naming the field.
    """
    header = _header(body)
    fields = _metadata_request(header)
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if name not in REQUEST_TENSORS:
            raise InvalidInputError(
                f"unknown tensor {name!r} (a request may hold: {', '.join(REQUEST_TENSORS)})",
                field=f"body.{name}",
            )
        dtype = entry.get("dtype") if isinstance(entry, dict) else None
        if dtype not in FLOAT_DTYPES:
            raise InvalidInputError(
                f"{name} must hold floats (F16, BF16, F32 or F64), not {dtype}",
                field=f"body.{name}",
            )
        shape = entry.get("shape")
        if not isinstance(shape, list) or not all(
            isinstance(size, int) and size >= 0 for size in shape
        ):
            raise InvalidInputError(f"{name} has no valid shape", field=f"body.{name}")
        elements = 1
        for size in shape:
            elements *= size
        if elements > max_elements:
            raise over_limit("max_tensor_elements", elements, max_elements)
        fields[name] = PLACEHOLDER
    try:
        tensors = load(body)  # the data, now that the header is known to be small and sane
    except (SafetensorError, ValueError, RuntimeError, OverflowError) as error:
        raise InvalidInputError(
            f"the body is not a safetensors file ({error})", field="body"
        ) from error
    return fields, {name: tensor.float() for name, tensor in tensors.items()}


def _header(body: bytes) -> dict[str, Any]:
    """The JSON header of a safetensors body, within ``MAX_HEADER_BYTES``."""
    if len(body) < 8:
        raise InvalidInputError("the body is not a safetensors file (too short)", field="body")
    length = int.from_bytes(body[:8], "little")
    if length > MAX_HEADER_BYTES or 8 + length > len(body):
        raise InvalidInputError(
            f"the body is not a safetensors file (a header of {length} bytes, in a body of "
            f"{len(body)}; at most {MAX_HEADER_BYTES})",
            field="body",
        )
    try:
        header = json.loads(body[8 : 8 + length])
    except (ValueError, RecursionError) as error:
        raise InvalidInputError(
            f"the body is not a safetensors file (its header is not JSON: {error})", field="body"
        ) from error
    if not isinstance(header, dict):
        raise InvalidInputError(
            "the body is not a safetensors file (its header is not an object)", field="body"
        )
    return header


def _metadata_request(header: dict[str, Any]) -> dict[str, Any]:
    """The ``request`` entry of the header's ``__metadata__``: a JSON object (empty if absent),
    holding the request's fields but its tensors."""
    metadata = header.get("__metadata__") or {}
    text = metadata.get("request") if isinstance(metadata, dict) else None
    if text is None:
        return {}
    field = "body.__metadata__.request"
    if not isinstance(text, str):
        raise InvalidInputError("__metadata__.request must be a JSON string", field=field)
    try:
        fields = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise InvalidInputError(
            f"__metadata__.request is not JSON ({error})", field=field
        ) from error
    if not isinstance(fields, dict):
        raise InvalidInputError(
            "__metadata__.request must be a JSON object of the request's other fields", field=field
        )
    for name in REQUEST_TENSORS:
        if name in fields:
            raise InvalidInputError(
                f"{name!r} must be sent as a tensor, not in the metadata",
                field=f"body.__metadata__.request.{name}",
            )
    return fields
