import pytest
import torch

from models.dataset import SequenceDataset, StreamBatches, count_windows, make_loader
from models.errors import ConfigError
from tests.conftest import LESSON_IDS


def test_lesson_windows():
    dataset = SequenceDataset(LESSON_IDS, seq_len=3)
    assert len(dataset) == 5
    pairs = [(x.tolist(), y.tolist()) for x, y in dataset]
    assert pairs == [
        ([0, 1, 3], [1, 3, 4]),
        ([1, 3, 4], [3, 4, 0]),
        ([3, 4, 0], [4, 0, 1]),
        ([4, 0, 1], [0, 1, 5]),
        ([0, 1, 5], [1, 5, 2]),
    ]


def test_lesson_loader_batches_two_two_one():
    loader = make_loader(SequenceDataset(LESSON_IDS, seq_len=3), batch_size=2)
    batches = list(loader)
    assert [x.shape[0] for x, _ in batches] == [2, 2, 1]
    assert all(x.shape == y.shape for x, y in batches)
    assert batches[0][0].tolist() == [[0, 1, 3], [1, 3, 4]]
    assert batches[2][1].tolist() == [[1, 5, 2]]


def test_shuffled_loader_is_reproducible_with_a_seed():
    dataset = SequenceDataset(list(range(50)), seq_len=4)
    first = [x.tolist() for x, _ in make_loader(dataset, 4, shuffle=True, seed=7)]
    second = [x.tolist() for x, _ in make_loader(dataset, 4, shuffle=True, seed=7)]
    assert first == second
    assert first != [x.tolist() for x, _ in make_loader(dataset, 4)]


@pytest.mark.parametrize(
    ("num_ids", "seq_len", "stride", "expected"),
    [(8, 3, 1, 5), (8, 3, 2, 3), (8, 7, 1, 1), (8, 8, 1, 0), (0, 3, 1, 0), (100, 10, 10, 9)],
)
def test_window_count_formula(num_ids, seq_len, stride, expected):
    assert count_windows(num_ids, seq_len, stride) == expected
    dataset = SequenceDataset(list(range(num_ids)), seq_len, stride)
    assert len(dataset) == expected
    assert sum(1 for _ in dataset) == expected  # iteration stops
    assert len(dataset.windows()) == expected


def test_index_past_the_end_raises_index_error():
    dataset = SequenceDataset(LESSON_IDS, seq_len=3)
    with pytest.raises(IndexError):
        dataset[5]
    assert dataset[-1][0].tolist() == [0, 1, 5]


def test_windows_view_matches_getitem():
    dataset = SequenceDataset(list(range(20)), seq_len=4, stride=3)
    windows = dataset.windows()
    for index, (x, y) in enumerate(dataset):
        assert windows[index, :-1].tolist() == x.tolist()
        assert windows[index, 1:].tolist() == y.tolist()


@pytest.mark.parametrize(("seq_len", "stride"), [(0, 1), (3, 0)])
def test_bad_window_settings(seq_len, stride):
    with pytest.raises(ConfigError):
        SequenceDataset(LESSON_IDS, seq_len, stride)


def test_stream_batches_are_contiguous_columns_with_shifted_targets():
    ids = torch.arange(23)
    stream = StreamBatches(ids, batch_size=2, seq_len=4)
    # 23 // 2 = 11 columns per row; the last id is dropped.
    assert stream.data.tolist() == [list(range(11)), list(range(11, 22))]
    chunks = list(stream)
    assert len(chunks) == len(stream) == 3  # 10 target steps in chunks of 4, 4, 2
    assert chunks[0][0].tolist() == [[0, 1, 2, 3], [11, 12, 13, 14]]
    assert chunks[0][1].tolist() == [[1, 2, 3, 4], [12, 13, 14, 15]]
    assert chunks[2][0].shape == (2, 2)
    # Every position but each row's first is a target exactly once.
    targets = torch.cat([y for _, y in chunks], dim=1)
    assert targets.tolist() == [list(range(1, 11)), list(range(12, 22))]
    assert stream.num_targets == 20


def test_stream_shorter_than_two_columns_has_no_batches():
    assert len(StreamBatches(torch.arange(3), batch_size=2, seq_len=4)) == 0
    assert list(StreamBatches(torch.arange(3), batch_size=2, seq_len=4)) == []
