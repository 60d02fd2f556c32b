import json

import jieba
import pytest

from models.errors import ConfigError
from models.tokenizer import Tokenizer, TokenizerConfig
from tests.conftest import LESSON_TEXTS


@pytest.fixture(scope="module")
def tokenizer(jieba_cache_dir) -> Tokenizer:
    return Tokenizer(TokenizerConfig(), cache_dir=jieba_cache_dir)


def test_lesson_texts_segment_as_in_the_lesson(tokenizer):
    assert tokenizer.tokenize(LESSON_TEXTS[0]) == ["我", "爱", "学习", "自然语言", "处理"]
    assert tokenizer.tokenize(LESSON_TEXTS[1]) == ["我", "爱", "机器", "学习"]


def test_accurate_mode_matches_jieba_itself(tokenizer):
    text = "小明硕士毕业于中国科学院计算所，后在日本京都大学深造"
    assert tokenizer.tokenize(text) == jieba.Tokenizer().lcut(text)


def test_modes_differ_as_jieba_documents(jieba_cache_dir):
    text = "我来到北京清华大学"
    full = Tokenizer(TokenizerConfig(mode="full"), jieba_cache_dir).tokenize(text)
    search = Tokenizer(TokenizerConfig(mode="search"), jieba_cache_dir).tokenize(text)
    accurate = Tokenizer(TokenizerConfig(), jieba_cache_dir).tokenize(text)
    assert accurate == ["我", "来到", "北京", "清华大学"]
    assert full == ["我", "来到", "北京", "清华", "清华大学", "华大", "大学"]
    assert search == ["我", "来到", "北京", "清华", "华大", "大学", "清华大学"]


def test_hmm_off_leaves_unknown_words_split(jieba_cache_dir):
    text = "他来到了网易杭研大厦"
    with_hmm = Tokenizer(TokenizerConfig(hmm=True), jieba_cache_dir).tokenize(text)
    without_hmm = Tokenizer(TokenizerConfig(hmm=False), jieba_cache_dir).tokenize(text)
    assert "杭研" in with_hmm
    assert "杭研" not in without_hmm


def test_user_words_stay_within_their_tokenizer(jieba_cache_dir):
    text = "我爱自然语言处理"
    custom = Tokenizer(TokenizerConfig(user_words=("自然语言处理",)), jieba_cache_dir)
    plain = Tokenizer(TokenizerConfig(), jieba_cache_dir)
    assert custom.tokenize(text) == ["我", "爱", "自然语言处理"]
    assert plain.tokenize(text) == ["我", "爱", "自然语言", "处理"]
    # The process-wide jieba dictionary is untouched as well.
    assert "自然语言处理" not in jieba.lcut(text)


def test_jieba_cache_goes_to_the_chosen_directory(tmp_path):
    from models import tokenizer as tokenizer_module

    # A fresh base dictionary so this test really loads it.
    base = tokenizer_module._BaseDictionary()
    base.load(tmp_path)
    assert (tmp_path / "jieba.cache").is_file()


def test_drop_whitespace_and_punctuation(jieba_cache_dir):
    text = "你好， 世界！ Hello world."
    kept = Tokenizer(TokenizerConfig(drop_whitespace=False), jieba_cache_dir).tokenize(text)
    assert " " in kept
    dropped = Tokenizer(
        TokenizerConfig(drop_whitespace=True, drop_punctuation=True), jieba_cache_dir
    ).tokenize(text)
    assert dropped == ["你好", "世界", "Hello", "world"]


def test_halfwidth_normalisation_joins_fullwidth_latin_and_digits(jieba_cache_dir):
    text = "ＧＰＴ４发布了"
    raw = Tokenizer(TokenizerConfig(), jieba_cache_dir).tokenize(text)
    half = Tokenizer(TokenizerConfig(normalization="halfwidth"), jieba_cache_dir).tokenize(text)
    assert raw[:4] == ["Ｇ", "Ｐ", "Ｔ", "４"]
    assert half[0] == "GPT4"


def test_nfkc_and_lowercase(jieba_cache_dir):
    tokenizer = Tokenizer(TokenizerConfig(normalization="nfkc", lowercase=True), jieba_cache_dir)
    assert tokenizer.tokenize("ＡＢＣ ﬁne") == ["abc", "fine"]


@pytest.mark.parametrize(
    "config",
    [
        TokenizerConfig(),
        TokenizerConfig(mode="full"),
        TokenizerConfig(mode="search"),
        TokenizerConfig(normalization="halfwidth", lowercase=True),
        TokenizerConfig(normalization="nfkc", lowercase=True, drop_punctuation=True),
    ],
    ids=["accurate", "full", "search", "halfwidth-lower", "nfkc-lower-nopunct"],
)
def test_offsets_reproduce_every_token_on_real_text(config, hongloumeng_lines, jieba_cache_dir):
    tokenizer = Tokenizer(config, jieba_cache_dir)
    normalizer = tokenizer._normalizer
    # A spread of real paragraphs, plus mixed-width text that normalisation changes.
    lines = [
        *hongloumeng_lines[::50][:40],
        "ＡＢＣ１２３，Hello 世界！ ﬁne①",
        "ｶﾞｷﾞ半角片假名，\u1100\u1161 한글，ΟΔΟΣ ΚΑΙ",  # compositions across characters
    ]
    checked = 0
    for line in lines:
        segmentation = tokenizer.segment(line, offsets=True)
        assert segmentation.offsets is not None
        assert len(segmentation.offsets) == len(segmentation.tokens)
        for token, (start, end) in zip(segmentation.tokens, segmentation.offsets, strict=True):
            assert 0 <= start < end <= len(line)
            # The original span normalises to the token, or to text holding it where one
            # cluster of the original becomes several tokens (NFKC ⒍ → "6." split by jieba,
            # a final sigma kept with the letter before it).
            assert token in normalizer.transform(line[start:end])
            checked += 1
        assert segmentation.tokens == tokenizer.tokenize(line)
    assert checked > 1000


def test_offsets_without_normalisation_slice_the_original_exactly(tokenizer, hongloumeng_lines):
    for line in hongloumeng_lines[:30]:
        segmentation = tokenizer.segment(line, offsets=True)
        pieces = [line[start:end] for start, end in segmentation.offsets]
        assert pieces == segmentation.tokens


def test_config_round_trips_through_json():
    config = TokenizerConfig(
        mode="search", hmm=False, user_words=("机器学习",), normalization="nfkc", lowercase=True
    )
    text = config.to_json()
    assert json.loads(text)["user_words"] == ["机器学习"]
    assert TokenizerConfig.from_json(text) == config


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"mode": "fast"}, "mode"),
        ({"normalization": "nfc"}, "normalization"),
        ({"user_words": ("two words",)}, "user_words"),
        ({"user_words": ("",)}, "user_words"),
        ({"backend": "rjieba"}, "backend"),
        ({"backend": "spaces"}, "backend"),
    ],
)
def test_bad_settings_name_their_field(settings, field):
    with pytest.raises(ConfigError) as error:
        TokenizerConfig(**settings)
    assert error.value.field == field


def test_unknown_settings_in_json_are_rejected():
    with pytest.raises(ConfigError, match="unknown tokenizer settings"):
        TokenizerConfig.from_dict({"mode": "accurate", "hmmm": True})


def test_empty_text_gives_no_tokens(tokenizer):
    assert tokenizer.tokenize("") == []
    assert tokenizer.segment("", offsets=True).offsets == []


def test_normalizer_keeps_combining_marks_with_their_base(jieba_cache_dir):
    tokenizer = Tokenizer(TokenizerConfig(normalization="nfkc"), jieba_cache_dir)
    text = "cafe\u0301 au lait"  # e + combining acute composes to é under NFKC
    segmentation = tokenizer.segment(text, offsets=True)
    # jieba cuts "caf" | "é"; the é maps back to both original code points.
    assert segmentation.tokens[:2] == ["caf", "\u00e9"]
    assert segmentation.offsets[:2] == [(0, 3), (3, 5)]


def test_full_mode_yields_no_empty_tokens(jieba_cache_dir):
    tokenizer = Tokenizer(TokenizerConfig(mode="full", drop_whitespace=False), jieba_cache_dir)
    assert "" not in tokenizer.tokenize("Hello 世界！ fine")


def test_whitespace_backend_for_segmented_text(jieba_cache_dir):
    tokenizer = Tokenizer(TokenizerConfig(backend="whitespace", lowercase=True), jieba_cache_dir)
    text = " The <unk> sat @-@ on  the mat . \n"
    assert tokenizer.tokenize(text) == ["the", "<unk>", "sat", "@-@", "on", "the", "mat", "."]
    segmentation = tokenizer.segment(text, offsets=True)
    assert [text[s:e].lower() for s, e in segmentation.offsets] == segmentation.tokens


@pytest.mark.parametrize(
    ("text", "normalization", "lowercase", "expected"),
    [
        ("ｶﾞ", "nfkc", False, "ガ"),  # half-width katakana + voiced mark compose
        ("\u1100\u1161", "nfkc", False, "\uac00"),  # Hangul jamo compose to one syllable
        ("ΟΔΟΣ", "none", True, "οδος"),  # final sigma needs its context
        ("ＡＢＣ　ｄ", "halfwidth", False, "ABC d"),
    ],
)
def test_normalisation_equals_the_whole_string_transform(
    jieba_cache_dir, text, normalization, lowercase, expected
):
    config = TokenizerConfig(
        normalization=normalization, lowercase=lowercase, drop_whitespace=False
    )
    tokenizer = Tokenizer(config, jieba_cache_dir)
    normalized, starts, ends = tokenizer._normalizer.apply(text)
    assert normalized == expected
    assert len(starts) == len(ends) == len(expected)
    assert "".join(tokenizer.tokenize(text)) == expected
    assert tokenizer.segment(text, offsets=True).tokens == tokenizer.tokenize(text)
