"""``/corpora``: describing uploaded training texts."""

from __future__ import annotations

from app.corpora import Corpus
from app.schemas.training import CorpusInfo


def corpus_info(corpus: Corpus) -> CorpusInfo:
    return CorpusInfo(
        corpus_id=corpus.id,
        filename=corpus.filename,
        bytes=corpus.bytes,
        lines=corpus.lines,
        chars=corpus.chars,
        created_at=corpus.created_at,
    )
