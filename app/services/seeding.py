"""Reproducible random initialisation without disturbing anyone else's random stream."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

# torch's default generator is process-wide: two requests seeding it at once would
# interleave. Seeded construction is short, so one lock is enough.
_GLOBAL_RNG_LOCK = threading.Lock()


def fresh_seed() -> int:
    return torch.seed() % 2**53  # the range the API accepts back


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block as if after ``torch.manual_seed(seed)``, then restore the previous state."""
    with _GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
