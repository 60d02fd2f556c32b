import pytest
import torch

from models.boundaries import boundary_cut, join_stream, split_stream, split_texts
from models.errors import ConfigError
from models.tokenizer import TokenizerConfig
from models.training import split_ids

DOCUMENT = "第一行\n第二行\n\n  \n第三段第一行\r\n第三段第二行\n\n\n最后"


def test_lines_are_the_non_blank_lines_and_none_is_the_whole_document():
    expected = ["第一行", "第二行", "第三段第一行", "第三段第二行", "最后"]
    assert split_texts(DOCUMENT, "line") == expected
    assert split_texts(DOCUMENT, "none") == [DOCUMENT]
    assert split_texts(" \n\n", "none") == []


def test_paragraphs_end_at_blank_lines():
    assert split_texts(DOCUMENT, "paragraph") == [
        "第一行\n第二行",
        "第三段第一行\n第三段第二行",
        "最后",
    ]
    assert split_texts("一\n\u3000\n二", "paragraph") == ["一", "二"]  # an ideographic space
    assert split_texts("一\n\u00a0\n二", "paragraph") == ["一", "二"]  # a no-break space


def test_an_unknown_rule_names_the_field():
    with pytest.raises(ConfigError) as error:
        split_texts("a", "sentence")  # type: ignore[arg-type]
    assert error.value.field == "boundary"
    with pytest.raises(ConfigError) as error:
        TokenizerConfig(boundary="sentence")  # type: ignore[arg-type]
    assert error.value.field == "boundary"


def test_streams_close_every_text_with_eos_and_split_back():
    stream = join_stream([[5, 6], [7], [8, 9, 10]], eos_id=2)
    assert stream == [5, 6, 2, 7, 2, 8, 9, 10, 2]
    assert join_stream([[5, 6], [7]], eos_id=None) == [5, 6, 7]
    pieces = split_stream(torch.tensor([*stream, 11]), 2)
    assert [p.tolist() for p in pieces] == [[5, 6, 2], [7, 2], [8, 9, 10, 2], [11]]


def test_the_held_out_tail_is_whole_texts():
    # texts of 3, 3, 3 and 11 tokens (each with its <eos>)
    stream = torch.tensor(join_stream([[5, 6], [7, 8], [9, 9], list(range(10, 20))], eos_id=2))
    train, val = split_ids(stream, 0.5, eos_id=2)
    assert train.tolist() + val.tolist() == stream.tolist()
    assert train[-1] == 2  # ends a text
    assert val.tolist() == [*list(range(10, 20)), 2]
    # without <eos> the cut is at the fraction itself
    assert boundary_cut(stream, 0.5, None) == len(stream) - len(stream) // 2
    # one text only: nothing to move to
    assert boundary_cut(torch.tensor([5, 6, 7, 8, 2]), 0.4, 2) == 3
    assert boundary_cut(stream, 0.0, 2) == len(stream)
    # the first text start after the cut: a tail no longer than asked for
    assert boundary_cut(stream, 0.8, 2) == 6
    # two long texts and a small fraction: never half the data, the cut stays inside a text
    two = torch.tensor(join_stream([list(range(10, 60)), list(range(10, 60))], eos_id=2))
    assert boundary_cut(two, 0.05, 2) == len(two) - int(len(two) * 0.05)


def test_settings_written_before_boundaries_read_as_none():
    old = TokenizerConfig().to_dict()
    del old["boundary"]
    assert TokenizerConfig.from_dict(old).boundary == "none"
    assert TokenizerConfig().boundary == "line"
