"""Reproducible random initialisation without disturbing anyone else's random stream.

Every seeded construction in seqlab (a new model's weights, a request's seeded ``nn.RNN``, a
training job's initial network) goes through :func:`seeded`, so the same seed gives the same
weights in the service, in a worker process and in a Python shell.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

# torch's default generator is process-wide: two requests seeding it at once would
# interleave. Seeded construction is short, so one lock is enough.
_GLOBAL_RNG_LOCK = threading.Lock()


def fresh_seed() -> int:
    """A new random seed, recorded so that the weights it gives can be rebuilt."""
    return torch.seed() % 2**53  # the range the API accepts back


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block as if after ``torch.manual_seed(seed)``, then restore the previous state.

    Only the CPU generator is seeded: CPU initialisation draws from nothing else, and
    ``torch.manual_seed`` also queues the seeding of every accelerator backend, which on a
    CPU-only build costs ~100x more than the seeding itself.
    """
    with _GLOBAL_RNG_LOCK:
        saved = torch.random.get_rng_state()
        torch.default_generator.manual_seed(seed)
        try:
            yield
        finally:
            torch.random.set_rng_state(saved)
