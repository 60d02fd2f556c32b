"""Segmentation on every core: a pool of worker processes for large jieba work.

jieba is pure Python and holds the GIL: in threads, bulk segmentation uses one core however
many requests wait (docs/benchmarks.md). :class:`SegmentationPool` sends the texts of a large
request, in chunks of whole texts, to worker processes, and answers exactly what segmenting in
this process answers: the same tokens and the same offsets.

Each worker is a fresh interpreter (``spawn``; never a fork of this process, which holds
torch's threads and locks) that imports this module, jieba and :mod:`models.tokenizer` — not
torch: the ``models`` package imports its names lazily — and, as ``spawn`` does, the service's
main module (``app.cli`` for ``seqlab serve``: pydantic, no torch, no web stack). It loads
jieba's dictionary from our cache directory as it starts, after /ready (start-up never waits
for it), and ends when the service's process does, however that ends. A tokenizer travels to a
worker as its :class:`TokenizerConfig`; each worker keeps the last few tokenizers it built.
Until the workers are ready, or should one die, the texts are segmented here, and a broken pool
is started again.

A single text larger than its share is cut into pieces only after a ``\\n`` that a Han
character follows. jieba first splits a text into blocks, the runs of Han characters (in
accurate and search mode, of letters, digits and ``+#&._%-`` too) and the runs between them,
and segments each block on its own, in every mode; a ``\\n`` is in no Han run and a Han
character in no other, so the cut is a block boundary, and the pieces give the whole text's
tokens and, shifted by the piece's start, its offsets (the whitespace backend splits at the
``\\n`` anyway). Only for tokenizers that do not normalise or lowercase; otherwise a text stays
whole.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import re
import threading
from array import array
from collections import OrderedDict
from concurrent.futures import (
    FIRST_COMPLETED,
    CancelledError,
    Future,
    ProcessPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from itertools import chain
from pathlib import Path

from models.tokenizer import Segmentation, Tokenizer, TokenizerConfig

logger = logging.getLogger("seqlab")

_CONTEXT = multiprocessing.get_context("spawn")
WORKER_TOKENIZERS = 4  # configurations a worker keeps built (one with user words: ~15 MB)
MIN_PIECE_CHARS = 4_000  # a text is cut only into pieces at least this long (~14 ms of jieba)
# At most this many characters in one chunk (~0.5 s of jieba): a corpus becomes many chunks, so
# that unpickling one chunk's tokens holds this process's GIL for milliseconds, not seconds.
MAX_CHUNK_CHARS = 131_072
# How much lower the workers' CPU priority is than the service's (nice), as a training worker's.
WORKER_NICENESS = 10
_SAFE_CUT = re.compile("\n(?=[\u4e00-\u9fd5])")  # after a newline that a Han character follows

Unit = tuple[int, int, str]  # (index of the text, start of the piece in it, the piece)
# What a worker sends back for a piece: its tokens, and its offsets flat (start, end, start, …)
# in one array: a tuple per token would cost ~50 ms to pickle and as long to unpickle here,
# holding this process's GIL, per 100k tokens.
Piece = tuple[list[str], array | None]


def pool_size(setting: int) -> int:
    """Worker processes for ``segmentation_processes``: 0 is one per core; a count of 1 (or
    one core) is no pool, the texts are segmented in this process."""
    size = setting or os.cpu_count() or 1
    return size if size > 1 else 0


def segment_here(tokenizer: Tokenizer, texts: list[str], offsets: bool) -> list[Segmentation]:
    """Segment in this process (small requests, and whenever the pool cannot)."""
    return [tokenizer.segment(text, offsets=offsets) for text in texts]


def tokens_of(
    tokenizer: Tokenizer, texts: list[str], pool: SegmentationPool | None = None
) -> list[list[str]]:
    """Each text's tokens: in ``pool``'s workers when there is one, here otherwise."""
    if pool is None:
        return [tokenizer.tokenize(text) for text in texts]
    return [segmentation.tokens for segmentation in pool.segment(tokenizer, texts, offsets=False)]


def split_text(text: str, size: int) -> list[tuple[int, str]]:
    """``text`` as ``(start, piece)`` pieces of at least ``size`` characters (the last may be
    shorter), cut only where segmentation gives the same tokens (see the module's docstring)."""
    pieces: list[tuple[int, str]] = []
    start = 0
    for match in _SAFE_CUT.finditer(text, size):
        cut = match.end()
        if cut - start >= size and len(text) - cut >= size // 2:
            pieces.append((start, text[start:cut]))
            start = cut
    pieces.append((start, text[start:]))
    return pieces


def chunk_texts(texts: list[str], parts: int, cut_texts: bool) -> list[list[Unit]]:
    """At most ``parts`` chunks of about equal characters, each a run of whole texts in order
    (or, with ``cut_texts``, of pieces of a text larger than its share)."""
    total = sum(map(len, texts))
    share = max(total / parts, 1.0)
    units: list[Unit] = []
    for index, text in enumerate(texts):
        if cut_texts and len(text) > max(share, 2 * MIN_PIECE_CHARS):
            size = max(int(share), MIN_PIECE_CHARS)
            units.extend((index, start, piece) for start, piece in split_text(text, size))
        else:
            units.append((index, 0, text))
    chunks: list[list[Unit]] = [[] for _ in range(parts)]
    position = 0
    for unit in units:  # each unit goes to the chunk its middle character falls in
        chunks[min(int((position + len(unit[2]) / 2) / share), parts - 1)].append(unit)
        position += len(unit[2])
    return [chunk for chunk in chunks if chunk]


class SegmentationPool:
    """Worker processes that segment large requests; ``processes`` as the setting says."""

    def __init__(self, processes: int, cache_dir: Path) -> None:
        self.processes = pool_size(processes)
        self.cache_dir = cache_dir
        self.chunks = 0  # chunks the workers segmented
        self.fallbacks = 0  # requests segmented here because the pool broke under them
        self.restarts = 0  # times the pool was started again after a worker died
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._ready: ProcessPoolExecutor | None = None  # the executor, once its workers are warm
        self._warmed = threading.Condition(self._lock)
        self._closed = False

    @property
    def ready(self) -> bool:
        return self._ready is not None

    def start(self) -> None:
        """Start the workers and return at once; they load jieba's dictionary meanwhile."""
        if self.processes:
            with self._lock:
                if self._executor is None and not self._closed:
                    self._launch()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Whether the workers are ready, waiting up to ``timeout`` seconds for them."""
        with self._warmed:
            self._warmed.wait_for(lambda: self.ready or self._closed, timeout)
            return self.ready

    def pids(self) -> list[int]:
        """The worker processes now (for diagnosis and tests)."""
        executor = self._executor
        processes = getattr(executor, "_processes", None) or {}
        return sorted(processes)

    def segment(self, tokenizer: Tokenizer, texts: list[str], offsets: bool) -> list[Segmentation]:
        """What :func:`segment_here` answers, computed by the workers when they are ready."""
        executor = self._ready
        if executor is None:
            return segment_here(tokenizer, texts, offsets)
        config = tokenizer.config
        cut_texts = config.normalization == "none" and not config.lowercase
        parts = max(self.processes, -(-sum(map(len, texts)) // MAX_CHUNK_CHARS))
        chunks = chunk_texts(texts, parts, cut_texts)
        results: list[list[Piece]] = [[] for _ in chunks]
        waiting = list(enumerate(chunks))[::-1]
        running: dict[Future[list[Piece]], int] = {}
        try:
            # At most one chunk per worker in the workers' queue at a time, so that the chunks
            # of other requests take turns with those of a large one.
            while waiting or running:
                while waiting and len(running) < self.processes:
                    index, chunk = waiting.pop()
                    pieces = [(start, piece) for _, start, piece in chunk]
                    running[executor.submit(_segment_chunk, config, pieces, offsets)] = index
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    results[running.pop(future)] = future.result()
        except BrokenProcessPool:  # a worker died (killed, out of memory): start anew
            self._restart(executor)
        except CancelledError:  # close() cancelled the chunks: the service is stopping
            pass
        except RuntimeError:  # "cannot schedule new futures after shutdown"
            if not self._closed:
                raise
        else:
            self.chunks += len(chunks)
            return _merge(len(texts), chunks, results, offsets)
        for future in running:
            future.cancel()
        self.fallbacks += 1
        return segment_here(tokenizer, texts, offsets)

    def close(self) -> None:
        """Stop the workers (what they were given is cancelled; callers segment it here)."""
        with self._lock:
            self._closed = True
            executor, self._executor, self._ready = self._executor, None, None
            self._warmed.notify_all()
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def _launch(self) -> None:
        """A new executor and its workers (under the lock); ready once each is warm."""
        executor = ProcessPoolExecutor(
            self.processes,
            mp_context=_CONTEXT,
            initializer=_start_worker,
            initargs=(str(self.cache_dir),),
        )
        self._executor = executor
        try:  # one task per worker: each submission spawns a worker until all are there
            warming = [executor.submit(os.getpid) for _ in range(self.processes)]
        except Exception:  # cannot start processes (limits): segment here
            logger.exception("the segmentation workers could not start; segmenting in threads")
            executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
            return
        threading.Thread(
            target=self._await_warm,
            args=(executor, warming),
            name="seqlab-segmentation-start",
            daemon=True,
        ).start()

    def _await_warm(self, executor: ProcessPoolExecutor, warming: list[Future[int]]) -> None:
        wait(warming)
        failed = [f for f in warming if f.cancelled() or f.exception() is not None]
        with self._lock:
            if executor is not self._executor:
                return  # closed or replaced meanwhile
            if failed:
                # A worker that cannot start would fail again: stay in threads, say why.
                error = None if failed[0].cancelled() else failed[0].exception()
                logger.error(
                    "the segmentation workers did not start (%s); segmenting in threads", error
                )
                return
            self._ready = executor
            self._warmed.notify_all()
        logger.info("%d segmentation worker(s) ready", self.processes)

    def _restart(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if broken is not self._executor or self._closed:
                return  # another request restarted it already
            logger.warning("a segmentation worker died; starting the workers again")
            self.restarts += 1
            self._ready = None
            broken.shutdown(wait=False, cancel_futures=True)
            self._launch()


def _merge(
    count: int,
    chunks: list[list[Unit]],
    results: list[list[Piece]],
    offsets: bool,
) -> list[Segmentation]:
    """The segmentation of each text from those of its pieces, in order."""
    tokens: list[list[str]] = [[] for _ in range(count)]
    spans: list[list[tuple[int, int]]] = [[] for _ in range(count)]
    for chunk, result in zip(chunks, results, strict=True):
        for (index, _, _), (piece_tokens, flat) in zip(chunk, result, strict=True):
            tokens[index].extend(piece_tokens)
            if flat is not None:
                spans[index].extend(zip(flat[0::2], flat[1::2], strict=True))
    return [
        Segmentation(text_tokens, text_spans if offsets else None)
        for text_tokens, text_spans in zip(tokens, spans, strict=True)
    ]


# --- in a worker process ---------------------------------------------------------------------

_worker_cache_dir: str | None = None
_worker_tokenizers: OrderedDict[TokenizerConfig, Tokenizer] = OrderedDict()


def _start_worker(cache_dir: str) -> None:
    """Load jieba's dictionary (from our cache) before the first chunk comes; end with the
    service, even one killed without a word (an idle worker would wait for work forever)."""
    global _worker_cache_dir
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(
            target=_exit_with_parent, args=(parent.sentinel,), name="parent", daemon=True
        ).start()
    _worker_cache_dir = cache_dir
    # Below the service: its requests come first on a shared core, from this warm-up (~1.5 s
    # of CPU each, just after /ready) on; bulk segmentation takes what they leave.
    os.nice(WORKER_NICENESS)
    _worker_tokenizer(TokenizerConfig()).tokenize("预热")


def _exit_with_parent(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])  # ready once the service's process is gone
    os._exit(0)


def _worker_tokenizer(config: TokenizerConfig) -> Tokenizer:
    tokenizer = _worker_tokenizers.get(config)
    if tokenizer is None:
        tokenizer = Tokenizer(config, cache_dir=_worker_cache_dir)
        _worker_tokenizers[config] = tokenizer
        while len(_worker_tokenizers) > WORKER_TOKENIZERS:
            _worker_tokenizers.popitem(last=False)
    else:
        _worker_tokenizers.move_to_end(config)
    return tokenizer


def _segment_chunk(
    config: TokenizerConfig, pieces: list[tuple[int, str]], offsets: bool
) -> list[Piece]:
    """Tokens (and offsets in the whole text: a piece's shifted by its start) of each piece."""
    tokenizer = _worker_tokenizer(config)
    results: list[Piece] = []
    for start, piece in pieces:
        segmentation = tokenizer.segment(piece, offsets=offsets)
        flat = None
        if segmentation.offsets is not None:
            flat = array("q", chain.from_iterable(segmentation.offsets))
            if start:
                flat = array("q", (position + start for position in flat))
        results.append((segmentation.tokens, flat))
    return results
