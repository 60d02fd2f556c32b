"""Device choice: ``auto | cpu | cuda | cuda:N``."""

from __future__ import annotations

import re

import torch

from models.errors import DeviceError

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """Turn a device setting into a ``torch.device`` that exists on this machine.

    ``auto`` picks the first CUDA device when one is available and the CPU otherwise.
    ``cuda`` or ``cuda:N`` on a machine without that GPU raises :class:`DeviceError`
    rather than silently falling back, so a misconfigured server fails at start-up.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    spec = spec.strip().lower()
    if not _DEVICE_PATTERN.match(spec):
        raise DeviceError(f"device must be auto, cpu, cuda or cuda:N, not {spec!r}")
    if spec == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError(f"device {spec!r} was requested but CUDA is not available here")
    index = int(spec.split(":")[1]) if ":" in spec else 0
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(
            f"device {spec!r} does not exist: this machine has {count} CUDA device(s)"
        )
    return torch.device("cuda", index)
