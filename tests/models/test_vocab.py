import pytest

from models.errors import ConfigError, UnknownIdError, UnknownTokenError
from models.tokenizer import Tokenizer
from models.vocab import Vocab
from tests.conftest import LESSON_TEXTS, LESSON_VOCAB


@pytest.fixture(scope="module")
def lesson_tokens(jieba_cache_dir) -> list[list[str]]:
    tokenizer = Tokenizer(cache_dir=jieba_cache_dir)
    return [tokenizer.tokenize(text) for text in LESSON_TEXTS]


def test_lesson_vocabulary_with_no_specials(lesson_tokens):
    vocab = Vocab.build(lesson_tokens, specials=[])
    assert vocab.tokens == LESSON_VOCAB
    assert {token: vocab.index(token) for token in LESSON_VOCAB} == {
        "我": 0,
        "爱": 1,
        "学习": 2,
        "自然语言": 3,
        "处理": 4,
        "机器": 5,
    }


def test_lesson_ids_of_the_two_texts(lesson_tokens):
    vocab = Vocab.build(lesson_tokens, specials=[])
    ids = [i for tokens in lesson_tokens for i in vocab.encode(tokens)]
    assert ids == [0, 1, 2, 3, 4, 0, 1, 5, 2]


def test_default_specials_come_first(lesson_tokens):
    vocab = Vocab.build(lesson_tokens)
    assert vocab.tokens[:3] == ["<pad>", "<unk>", "<eos>"]
    assert (vocab.pad_id, vocab.unk_id, vocab.eos_id) == (0, 1, 2)
    assert vocab.tokens[3:] == LESSON_VOCAB
    # the lesson's vocabulary has none of them
    lesson = Vocab.build(lesson_tokens, specials=[])
    assert (lesson.pad_id, lesson.unk_id, lesson.eos_id) == (None, None, None)


def test_frequency_order_breaks_ties_by_first_appearance(lesson_tokens):
    vocab = Vocab.build(lesson_tokens, specials=[], order="frequency")
    # 我, 爱, 学习 appear twice; the rest once, each group in first-seen order.
    assert vocab.tokens == ["我", "爱", "学习", "自然语言", "处理", "机器"]
    vocab = Vocab.build([["b", "a", "a", "c", "c", "c"]], specials=[], order="frequency")
    assert vocab.tokens == ["c", "a", "b"]


def test_min_freq_and_max_size():
    streams = [["a", "b", "b", "c", "c", "c", "d"]]
    assert Vocab.build(streams, specials=[], min_freq=2).tokens == ["b", "c"]
    assert Vocab.build(streams, order="frequency", max_size=5).tokens == [
        "<pad>",
        "<unk>",
        "<eos>",
        "c",
        "b",
    ]


def test_unknown_tokens_map_to_unk():
    vocab = Vocab.build([["a", "b"]])
    assert vocab.encode(["a", "zzz", "b"]) == [3, 1, 4]
    assert vocab.count_oov(["a", "zzz", "yyy"]) == (2, 3)


def test_unknown_token_without_unk_is_a_clear_error():
    vocab = Vocab.build([["a", "b"]], specials=[])
    with pytest.raises(UnknownTokenError) as error:
        vocab.encode(["a", "猫"])
    assert "猫" in str(error.value)
    assert error.value.token == "猫"


def test_decode_inverts_encode_and_rejects_bad_ids(lesson_tokens):
    vocab = Vocab.build(lesson_tokens, specials=[])
    assert vocab.decode([0, 1, 3, 4]) == ["我", "爱", "自然语言", "处理"]
    with pytest.raises(UnknownIdError, match="outside the vocabulary"):
        vocab.decode([6])
    with pytest.raises(UnknownIdError):
        vocab.decode([-1])


def test_json_round_trip(lesson_tokens):
    vocab = Vocab.build(lesson_tokens, specials=["<pad>", "<unk>", "<eos>"])
    again = Vocab.from_json(vocab.to_json())
    assert again == vocab
    assert again.specials == ("<pad>", "<unk>", "<eos>")
    assert "自然语言" in vocab.to_json()  # stored readable, not escaped


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"order": "alphabetical"}, "order"),
        ({"min_freq": 0}, "min_freq"),
        ({"max_size": 1}, "max_size"),
        ({"specials": ["<pad>", "<pad>"]}, "specials"),
    ],
)
def test_bad_build_settings_name_their_field(kwargs, field):
    with pytest.raises(ConfigError) as error:
        Vocab.build([["a"]], **kwargs)
    assert error.value.field == field


def test_specials_in_the_text_are_not_duplicated():
    vocab = Vocab.build([["<unk>", "a", "<unk>"]])
    assert vocab.tokens == ["<pad>", "<unk>", "<eos>", "a"]
