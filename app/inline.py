"""Which requests are small enough to answer on the event loop, decided in one place.

A hop to a worker thread, and the GIL contention of several threads, cost tens of
microseconds and pushed p99 to ~80 ms under load (docs/benchmarks.md); work that is bounded
below that runs inline (:meth:`app.state.ServiceState.run` with ``small=True``). Each request
kind is sized in the unit its work grows with; everything not sized here runs in a thread.
"""

from __future__ import annotations

from functools import singledispatch

from pydantic import BaseModel

from app.schemas.embed import EmbedRequest
from app.schemas.generation import PredictRequest, ScoreRequest
from app.schemas.rnn import RNNForwardRequest
from app.schemas.tokenize import TokenizeRequest

# jieba cuts ~0.3 M characters a second: 2,000 are a few milliseconds, less than a hop
# costs a busy event loop in latency for everyone else.
INLINE_CHARACTERS = 2_000
# Embedding rows or characters of context for a small model: microseconds.
INLINE_TOKENS = 512
# A recurrent layer's work: steps × batch, and hidden units over all layers.
INLINE_STEPS = 64
INLINE_HIDDEN_UNITS = 512

# Before its body is read, a request is judged by its size: an inference request whose body is
# at most this is counted as small at the door (app.connections); 2,000 characters of JSON
# text are at most ~6 KB, JSON tensors of 64 steps a few KB. (16 KB of safetensors holds ~4,000
# floats: such a request is judged again by its tensor's real size, in runs_inline.)
SMALL_BODY_BYTES = 16_384
INFERENCE_PATHS = frozenset(
    {b"/tokenize", b"/embed", b"/rnn/forward", b"/dataset/preview", b"/predict", b"/generate"}
    | {b"/score"}
)


def small_at_the_door(method: bytes, path: bytes, content_length: int | None) -> bool:
    """Whether a request (as the HTTP parser reads it) is one of the small inference requests
    that the event loop answers."""
    return (
        method == b"POST"
        and path in INFERENCE_PATHS
        and content_length is not None
        and content_length <= SMALL_BODY_BYTES
    )


@singledispatch
def runs_inline(request: BaseModel) -> bool:
    """Whether ``request``'s work is bounded to microseconds (default: no)."""
    return False


@runs_inline.register
def _(request: TokenizeRequest) -> bool:
    return sum(len(text) for text in request.all_texts) <= INLINE_CHARACTERS


@runs_inline.register
def _(request: EmbedRequest) -> bool:
    rows = request.texts or request.tokens or request.ids or [request.text or ""]
    return sum(map(len, rows)) <= INLINE_TOKENS


@runs_inline.register
def _(request: PredictRequest) -> bool:
    return sum(map(len, request.all_texts)) <= INLINE_TOKENS


@runs_inline.register
def _(request: ScoreRequest) -> bool:
    return sum(map(len, request.all_texts)) <= INLINE_TOKENS


@runs_inline.register
def _(request: RNNForwardRequest) -> bool:
    if request.return_states:
        return False  # every layer's states are computed one step at a time, in Python
    sent = request.tensors.get("input")  # a binary request's input: its true size
    if sent is not None or request.input is not None:
        if sent is not None:
            if sent.dim() != 3:
                return False  # a shape error, answered from a thread like any other
            steps = sent.shape[0] * sent.shape[1]
        else:
            steps = len(request.input) * max((len(row) for row in request.input), default=0)
        hidden = (
            request.rnn.hidden_size * request.rnn.num_layers
            if request.rnn is not None
            else INLINE_HIDDEN_UNITS  # a registry model's layer: small only by its steps
        )
        return steps <= INLINE_STEPS and hidden <= INLINE_HIDDEN_UNITS
    texts = request.texts or [request.text or ""]
    return sum(map(len, texts)) <= INLINE_STEPS
