"""``POST /embed``: rows of a model's embedding matrix."""

from __future__ import annotations

import weakref

import torch

from app.errors import InvalidInputError, located
from app.limits import check_limit, check_texts
from app.registry import ModelRegistry
from app.schemas.embed import EmbedRequest, EmbedResponse, Neighbour, NeighboursResponse
from app.services.text import encode_texts
from app.settings import Limits


def embed(
    request: EmbedRequest, registry: ModelRegistry, limits: Limits, binary: bool = False
) -> EmbedResponse:
    """Embedding rows per token; with ``binary``, as tensors for safetensors: ``vectors``
    (texts, longest, dim) zero-padded, and ``lengths`` (texts,)."""
    loaded = registry.get(request.model, request.version)
    vocab = loaded.vocab
    if request.text is not None or request.texts is not None:
        texts = [request.text] if request.text is not None else list(request.texts or [])
        check_texts(limits, texts)
        encoded = encode_texts(loaded, texts, "text" if request.text is not None else "texts")
        tokens, ids, oov = encoded.tokens, encoded.ids, encoded.oov
    elif request.tokens is not None:
        check_limit(limits, "max_texts", len(request.tokens))
        tokens = request.tokens
        with located("body.tokens"):
            ids = [vocab.encode(row) for row in tokens]
        oov = [[vocab.is_oov(token) for token in row] for row in tokens]
    else:
        ids = request.ids or []
        check_limit(limits, "max_texts", len(ids))
        with located("body.ids"):
            tokens = [vocab.decode(row) for row in ids]  # UnknownIdError (422) when out of range
        oov = [[False] * len(row) for row in ids]
    total = sum(len(row) for row in ids)
    if total == 0:
        raise InvalidInputError("nothing to embed: every list is empty", field="body")
    check_limit(limits, "max_tokens_per_forward", total)
    check_limit(limits, "max_tensor_elements", total * loaded.config.embedding_dim)
    flat = torch.tensor([i for row in ids for i in row], device=loaded.device)
    lengths = [len(row) for row in ids]
    rows = loaded.model.embed(flat).float().cpu().split(lengths)  # one (length, dim) per text
    fields = {
        "model": loaded.name,
        "version": loaded.version,
        "dim": loaded.config.embedding_dim,
        "tokens": tokens,
        "ids": ids,
        "oov": oov,
    }
    if not binary:
        return EmbedResponse(**fields, vectors=[row.tolist() for row in rows])
    response = EmbedResponse.model_construct(**fields)
    response.tensors["vectors"] = torch.nn.utils.rnn.pad_sequence(list(rows), batch_first=True)
    response.tensors["lengths"] = torch.tensor(lengths, dtype=torch.int64)
    return response


# The embedding rows scaled to unit length, once per loaded version (versions never change in
# place); dropped with the version's network.
_unit_rows: weakref.WeakKeyDictionary[torch.nn.Module, torch.Tensor] = weakref.WeakKeyDictionary()


def _unit_embedding(model: torch.nn.Module) -> torch.Tensor:
    unit = _unit_rows.get(model)
    if unit is None:
        weight = model.embedding.weight.detach().float()  # (vocab, dim)
        unit = weight / weight.norm(dim=1, keepdim=True).clamp_min(1e-12)
        _unit_rows[model] = unit
    return unit


def neighbours(
    name: str, version: int | None, token: str, k: int, registry: ModelRegistry
) -> NeighboursResponse:
    """The ``k`` words whose embedding rows are nearest to ``token``'s by cosine similarity.

    Specials (``<pad>``, ``<unk>``, ``<eos>``) may be asked about but are never neighbours:
    they are not words (``<pad>``'s row never even trains).
    """
    loaded = registry.get(name, version)
    vocab = loaded.vocab
    if token not in vocab:
        raise InvalidInputError(
            f"{token!r} is not in the vocabulary of {loaded.name}@{loaded.version}",
            field="query.token",
        )
    token_id = vocab.index(token)
    unit = _unit_embedding(loaded.model)
    similarity = (unit @ unit[token_id]).clamp(-1.0, 1.0).cpu()  # (vocab,)
    specials = len(vocab.specials)  # specials come first: ids 0..specials-1
    similarity[:specials] = -float("inf")
    similarity[token_id] = -float("inf")  # a token is not its own neighbour
    words = len(vocab) - specials - (0 if token_id < specials else 1)
    # A stable sort, so that equal similarities keep the lower id first on every device.
    order = torch.sort(similarity, descending=True, stable=True).indices[: min(k, words)]
    return NeighboursResponse(
        model=loaded.name,
        version=loaded.version,
        token=token,
        id=token_id,
        neighbours=[
            Neighbour(token=vocab.token(i), id=i, similarity=float(similarity[i]))
            for i in order.tolist()
        ],
    )
