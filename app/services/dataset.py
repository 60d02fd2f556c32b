"""``POST /dataset/preview``: the lesson's windows and the batches a loader makes of them."""

from __future__ import annotations

from app.errors import InvalidInputError, located
from app.limits import check_limit, check_texts, check_value
from app.registry import ModelRegistry
from app.schemas.dataset import DatasetPreviewRequest, DatasetPreviewResponse, Pair
from app.settings import Limits
from app.tokenizers import TokenizerCache
from models.dataset import SequenceDataset, make_loader
from models.tokenizer import TokenizerConfig
from models.vocab import Vocab


def preview(
    request: DatasetPreviewRequest,
    registry: ModelRegistry,
    tokenizers: TokenizerCache,
    limits: Limits,
) -> DatasetPreviewResponse:
    check_value(limits, "max_seq_len", request.seq_len, "body.seq_len")
    loaded = registry.get(request.model, request.version) if request.model is not None else None
    vocab: Vocab | None = None
    if loaded is not None:
        vocab = loaded.vocab
    elif request.vocab is not None:
        check_limit(limits, "max_vocab_size", len(request.vocab))
        with located("body.vocab"):
            vocab = Vocab(request.vocab, specials=[])
    tokens: list[str] | None = None
    if request.texts is not None:
        check_texts(limits, request.texts)
        tokenizer = loaded.tokenizer if loaded is not None else tokenizers.get(TokenizerConfig())
        per_text = [tokenizer.tokenize(text) for text in request.texts]
        if vocab is None:  # the lesson's: first-seen order, no specials
            vocab = Vocab.build(per_text, specials=[])
        eos = loaded.eos_id if loaded is not None else None
        if eos is not None:  # as training streams read them: every text closed by <eos>
            per_text = [[*text_tokens, vocab.token(eos)] for text_tokens in per_text if text_tokens]
        tokens = [token for text_tokens in per_text for token in text_tokens]
        if not tokens:
            raise InvalidInputError("the texts have no tokens once segmented", field="body.texts")
        with located("body.texts"):
            ids = vocab.encode(tokens)
    else:
        ids = list(request.ids or [])
        if vocab is not None:
            with located("body.ids"):
                vocab.decode(ids)  # every id must be in the vocabulary (else 422 naming it)
    check_limit(limits, "max_tokens_per_forward", len(ids))
    dataset = SequenceDataset(ids, request.seq_len, request.stride)
    windows = [
        Pair(x=x.tolist(), y=y.tolist())
        for _, (x, y) in zip(range(request.limit), dataset, strict=False)
    ]
    loader = make_loader(dataset, request.batch_size, shuffle=request.shuffle, seed=request.seed)
    batches = [
        Pair(x=x.tolist(), y=y.tolist())
        for _, (x, y) in zip(range(request.limit), loader, strict=False)
    ]
    return DatasetPreviewResponse(
        ids=ids,
        tokens=tokens,
        vocab=vocab.tokens if vocab is not None and loaded is None else None,
        num_windows=len(dataset),
        num_batches=len(loader),
        windows=windows,
        batches=batches,
        model=loaded.name if loaded is not None else None,
        version=loaded.version if loaded is not None else None,
    )
