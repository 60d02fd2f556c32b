"""Ready tokenizers, one per configuration, shared by the registry and ``/tokenize``."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from models.tokenizer import Tokenizer, TokenizerConfig


class TokenizerCache:
    """A bounded, thread-safe map from :class:`TokenizerConfig` to a ready :class:`Tokenizer`.

    A configuration with user words owns a copy of jieba's dictionary (tens of MB), so the
    cache is bounded; the least recently used configuration is dropped first. Tokenizers held
    by loaded models stay alive through the model regardless of this cache.
    """

    def __init__(self, cache_dir: Path, max_size: int = 16) -> None:
        self.cache_dir = cache_dir
        self.max_size = max_size
        self._items: OrderedDict[TokenizerConfig, Tokenizer] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, config: TokenizerConfig) -> Tokenizer:
        with self._lock:
            tokenizer = self._items.get(config)
            if tokenizer is not None:
                self._items.move_to_end(config)
                return tokenizer
        # Build outside the lock: a copy of the dictionary takes tens of milliseconds.
        tokenizer = Tokenizer(config, cache_dir=self.cache_dir)
        with self._lock:
            tokenizer = self._items.setdefault(config, tokenizer)
            self._items.move_to_end(config)
            while len(self._items) > self.max_size:
                self._items.popitem(last=False)
        return tokenizer

    def warm(self) -> Tokenizer:
        """Load jieba's dictionary now, so the first request does not pay for it."""
        tokenizer = self.get(TokenizerConfig())
        tokenizer.tokenize("预热")
        return tokenizer
