"""Schemas of ``POST /tokenize`` and the tokenizer settings a model carries."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from app.schemas.common import ModelName, StrictModel, Text, Version, exactly_one_of
from models.tokenizer import TokenizerConfig


class TokenizerSettings(StrictModel):
    """How a model segments text; stored with every version."""

    mode: Literal["accurate", "full", "search"] = "accurate"
    hmm: bool = True
    user_words: list[Text] = Field(default_factory=list, examples=[["自然语言处理"]])
    normalization: Literal["none", "nfkc", "halfwidth"] = "none"
    lowercase: bool = False
    drop_whitespace: bool = True
    drop_punctuation: bool = False
    backend: Literal["jieba", "whitespace"] = Field(
        "jieba", description="whitespace: the text is already segmented (e.g. English)."
    )
    boundary: Literal["line", "paragraph", "none"] = Field(
        "line",
        description="What one text is in a training corpus: a line, a paragraph (up to a blank "
        "line), or none (no text ends are marked). With <eos> in the vocabulary every text "
        "ends with it in training, and every request's text is read as a fresh text.",
    )

    def to_config(self) -> TokenizerConfig:
        return TokenizerConfig(**{**self.model_dump(), "user_words": tuple(self.user_words)})

    @classmethod
    def from_config(cls, config: TokenizerConfig) -> TokenizerSettings:
        return _settings_of(config)


@lru_cache(maxsize=128)
def _settings_of(config: TokenizerConfig) -> TokenizerSettings:
    # Answers repeat the same few configurations: validate each once.
    return TokenizerSettings(**config.to_dict())


# Fields of a request that override the default tokenizer (not allowed together with `model`);
# the boundary rule is about corpora, not about segmenting one text.
TOKENIZER_FIELDS = tuple(name for name in TokenizerSettings.model_fields if name != "boundary")


class TokenizeRequest(StrictModel):
    """One `text` or a batch of `texts`. With `model`, its own tokenizer and vocabulary are used."""

    model_config = StrictModel.model_config | {
        "json_schema_extra": {
            **exactly_one_of("text", "texts"),
            "examples": [
                {"texts": ["我爱学习自然语言处理", "我爱机器学习"], "offsets": True},
                {"text": "我爱自然语言处理", "model": "lesson-rnn"},
            ],
        }
    }

    text: Text | None = None
    texts: list[Text] | None = Field(None, min_length=1)
    offsets: bool = Field(False, description="Also return [start, end) of each token.")
    model: ModelName | None = None
    version: Version | None = None
    mode: Literal["accurate", "full", "search"] | None = None
    hmm: bool | None = None
    user_words: list[Text] | None = None
    normalization: Literal["none", "nfkc", "halfwidth"] | None = None
    lowercase: bool | None = None
    drop_whitespace: bool | None = None
    drop_punctuation: bool | None = None
    backend: Literal["jieba", "whitespace"] | None = None

    @model_validator(mode="after")
    def _one_input(self) -> TokenizeRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of 'text' or 'texts'")
        if self.version is not None and self.model is None:
            raise ValueError("'version' needs 'model'")
        if self.model is not None:
            overridden = [
                name for name in TOKENIZER_FIELDS if getattr(self, name, None) is not None
            ]
            if overridden:
                raise ValueError(
                    f"{overridden} cannot be combined with 'model': "
                    "a model segments text with its own settings"
                )
        return self

    @property
    def all_texts(self) -> list[str]:
        return [self.text] if self.text is not None else list(self.texts or [])

    def tokenizer_config(self) -> TokenizerConfig:
        """The default tokenizer with this request's overrides."""
        overrides: dict[str, Any] = {
            name: getattr(self, name)
            for name in TOKENIZER_FIELDS
            if getattr(self, name, None) is not None
        }
        if "user_words" in overrides:
            overrides["user_words"] = tuple(overrides["user_words"])
        return TokenizerConfig(**overrides)


class TokenizeResponse(BaseModel):
    tokens: list[list[str]] = Field(examples=[[["我", "爱", "学习", "自然语言", "处理"]]])
    offsets: list[list[tuple[int, int]]] | None = None
    ids: list[list[int]] | None = None
    oov: list[list[bool]] | None = Field(
        None, description="With a model: tokens not in its vocabulary."
    )
    tokenizer: TokenizerSettings
    model: str | None = None
    version: int | None = None
