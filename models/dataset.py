"""Next-token training examples over one stream of ids, in the two usual batchings.

* :class:`SequenceDataset` is the lesson's: every window ``ids[i:i+L]`` with its target
  ``ids[i+1:i+L+1]``, ``i`` stepping by ``stride``. With stride 1 each token is a target
  up to ``L`` times per epoch.
* :class:`StreamBatches` is how word-level LM benchmarks train: the stream is cut into
  ``batch_size`` contiguous columns and read ``seq_len`` (bptt) steps at a time, with the
  hidden state carried from one chunk to the next; every token is a target once per epoch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from models.errors import ConfigError


def as_id_tensor(ids: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """A 1-D ``int64`` tensor of ids."""
    tensor = torch.as_tensor(ids, dtype=torch.long)
    if tensor.dim() != 1:
        raise ConfigError(f"ids must be one flat sequence, got shape {list(tensor.shape)}")
    return tensor


def count_windows(num_ids: int, seq_len: int, stride: int = 1) -> int:
    """``max(0, (N - L - 1) // stride + 1)``: windows of length L whose target fits."""
    if seq_len < 1:
        raise ConfigError("seq_len must be at least 1", field="seq_len")
    if stride < 1:
        raise ConfigError("stride must be at least 1", field="stride")
    return max(0, (num_ids - seq_len - 1) // stride + 1)


class SequenceDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Sliding windows ``x = ids[i:i+L]``, ``y = ids[i+1:i+L+1]`` for ``i = 0, stride, …``.

    ``dataset[k]`` past the end raises ``IndexError``, so ``for x, y in dataset`` stops.
    """

    def __init__(self, ids: Sequence[int] | torch.Tensor, seq_len: int, stride: int = 1):
        self.ids = as_id_tensor(ids)
        self.seq_len = seq_len
        self.stride = stride
        self._length = count_windows(len(self.ids), seq_len, stride)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError(f"window {index} out of range for {self._length} windows")
        start = index * self.stride
        return (
            self.ids[start : start + self.seq_len],
            self.ids[start + 1 : start + self.seq_len + 1],
        )

    def windows(self) -> torch.Tensor:
        """All windows at once: a ``(num_windows, seq_len + 1)`` view; x = [:, :-1], y = [:, 1:]."""
        if self._length == 0:
            return self.ids.new_empty((0, self.seq_len + 1))
        return self.ids.unfold(0, self.seq_len + 1, self.stride)


def make_loader(
    dataset: SequenceDataset,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int | None = None,
    drop_last: bool = False,
) -> DataLoader[tuple[torch.Tensor, torch.Tensor]]:
    """A ``DataLoader`` of ``(x, y)`` batches ``(batch, seq_len)``; the last may be smaller."""
    if batch_size < 1:
        raise ConfigError("batch_size must be at least 1", field="batch_size")
    generator = None
    if shuffle:
        generator = torch.Generator()
        generator.manual_seed(seed if seed is not None else torch.seed())
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, generator=generator
    )


def count_stream_steps(num_ids: int, batch_size: int, seq_len: int) -> int:
    """Chunks :class:`StreamBatches` yields over ``num_ids`` ids (without building them)."""
    steps = num_ids // batch_size - 1  # target positions per column
    return max(0, -(-steps // seq_len))


class StreamBatches:
    """Contiguous columns read in bptt chunks; state is meant to be carried between chunks.

    The stream of ``N`` ids becomes a ``(batch_size, N // batch_size)`` matrix whose rows are
    contiguous runs of the text (the remainder is dropped). Iterating yields
    ``(x, y)`` of shape ``(batch_size, ≤ seq_len)`` with ``y`` shifted one step.
    """

    def __init__(self, ids: Sequence[int] | torch.Tensor, batch_size: int, seq_len: int):
        if batch_size < 1:
            raise ConfigError("batch_size must be at least 1", field="batch_size")
        if seq_len < 1:
            raise ConfigError("seq_len must be at least 1", field="seq_len")
        ids = as_id_tensor(ids)
        columns = len(ids) // batch_size
        self.data = ids[: columns * batch_size].view(batch_size, columns)  # (batch, columns)
        self.batch_size = batch_size
        self.seq_len = seq_len

    @property
    def num_targets(self) -> int:
        """Target tokens per pass: every column position but the first."""
        return self.batch_size * max(0, self.data.size(1) - 1)

    def __len__(self) -> int:
        return count_stream_steps(self.data.numel(), self.batch_size, self.seq_len)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        last = self.data.size(1) - 1
        for start in range(0, last, self.seq_len):
            length = min(self.seq_len, last - start)
            yield (
                self.data[:, start : start + length],
                self.data[:, start + 1 : start + 1 + length],
            )
