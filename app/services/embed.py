"""``POST /embed``: rows of a model's embedding matrix."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

import torch

from app.batching import answer_each
from app.errors import InvalidInputError, located
from app.limits import check_limit, check_texts
from app.registry import LoadedModel, ModelRegistry
from app.schemas.embed import EmbedRequest, EmbedResponse, Neighbour, NeighboursResponse
from app.services.text import encode_texts
from app.settings import Limits


@dataclass(frozen=True)
class PreparedEmbed:
    """An ``/embed`` request checked and encoded, ready to join a batch of its model version."""

    loaded: LoadedModel
    tokens: list[list[str]]
    ids: list[list[int]]
    oov: list[list[bool]]
    binary: bool

    @property
    def rows(self) -> int:
        return 1  # one flat lookup of all its ids: nothing is padded

    @property
    def longest(self) -> int:
        return sum(map(len, self.ids))


def prepare_embed(
    request: EmbedRequest, registry: ModelRegistry, limits: Limits, binary: bool = False
) -> PreparedEmbed:
    """Everything of ``/embed`` but the lookup: the checks, segmentation or ids, OOV flags."""
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
    return PreparedEmbed(loaded, tokens, ids, oov, binary)


def compute_embed(items: Sequence[PreparedEmbed]) -> list[EmbedResponse | Exception]:
    """The answers of ``/embed`` requests for one model version, from one lookup; with
    ``binary``, as tensors for safetensors: ``vectors`` (texts, longest, dim) zero-padded, and
    ``lengths`` (texts,)."""
    loaded = items[0].loaded
    flat = torch.tensor(
        [i for item in items for row in item.ids for i in row], device=loaded.device
    )
    lengths = [len(row) for item in items for row in item.ids]
    every = loaded.model.embed(flat).float().cpu().split(lengths)  # one (length, dim) per text
    starts = list(accumulate((len(item.ids) for item in items), initial=0))

    def answer(position: int) -> EmbedResponse:
        item = items[position]
        rows = every[starts[position] : starts[position + 1]]
        fields = {
            "model": loaded.name,
            "version": loaded.version,
            "dim": loaded.config.embedding_dim,
            "tokens": item.tokens,
            "ids": item.ids,
            "oov": item.oov,
        }
        if not item.binary:
            return EmbedResponse(**fields, vectors=[row.tolist() for row in rows])
        response = EmbedResponse.model_construct(**fields)
        response.tensors["vectors"] = torch.nn.utils.rnn.pad_sequence(list(rows), batch_first=True)
        response.tensors["lengths"] = torch.tensor([len(row) for row in rows], dtype=torch.int64)
        return response

    return answer_each(range(len(items)), answer)


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
