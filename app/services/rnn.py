"""``POST /rnn/forward``: a recurrent layer's ``output``, ``hn`` and ``cn`` (and with
``return_states`` every layer's state at every step), shapes and values, as JSON lists or, for
the binary form, as tensors."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

import torch
from torch import nn

from app.batching import alone, answer_each
from app.errors import InvalidInputError
from app.limits import check_limit, check_texts, check_value
from app.registry import LoadedModel, ModelRegistry
from app.schemas.rnn import RNNForwardRequest, RNNForwardResponse, RNNSpec
from app.services.tensors import request_tensor, tensor_to_json
from app.services.text import EncodedTexts, encode_texts
from app.settings import Limits
from models.seeding import fresh_seed, seeded

_LAYERS: OrderedDict[tuple[object, ...], nn.RNNBase] = OrderedDict()
_LAYERS_LOCK = threading.Lock()
LAYERS_KEPT = 8  # seeded layers are immutable: the same request needs no new one


def seeded_layer(spec: RNNSpec, seed: int) -> nn.RNNBase:
    """The layer for ``spec`` and ``seed``, built once and then reused (read-only)."""
    key = (*spec.model_dump(exclude={"seed"}).values(), seed)
    with _LAYERS_LOCK:
        layer = _LAYERS.get(key)
        if layer is not None:
            _LAYERS.move_to_end(key)
            return layer
    layer = build_layer(spec, seed).requires_grad_(False)
    with _LAYERS_LOCK:
        _LAYERS[key] = layer
        while len(_LAYERS) > LAYERS_KEPT:
            _LAYERS.popitem(last=False)
    return layer


def build_layer(spec: RNNSpec, seed: int) -> nn.RNNBase:
    """Exactly the layer of ``torch.manual_seed(seed); nn.RNN(...)`` (or LSTM/GRU)."""
    with seeded(seed):
        if spec.cell == "rnn":
            return nn.RNN(
                spec.input_size,
                spec.hidden_size,
                num_layers=spec.num_layers,
                nonlinearity=spec.nonlinearity,
                bias=spec.bias,
            )
        layer_type = nn.LSTM if spec.cell == "lstm" else nn.GRU
        return layer_type(
            spec.input_size, spec.hidden_size, num_layers=spec.num_layers, bias=spec.bias
        )


def _initial_state(
    request: RNNForwardRequest, layer: nn.RNNBase, batch: int, limits: Limits, device: torch.device
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None:
    expected = [layer.num_layers, batch, layer.hidden_size]
    is_lstm = isinstance(layer, nn.LSTM)
    if request.c0 is not None and not is_lstm:
        raise InvalidInputError("c0 is only for an LSTM layer", field="body.c0")
    states = []
    given = {name: request_tensor(request, name, limits) for name in ("h0", "c0")}
    for name, state in given.items():
        if state is None:
            states.append(torch.zeros(expected, device=device))
            continue
        if list(state.shape) != expected:
            raise InvalidInputError(
                f"{name} has shape {list(state.shape)}; this layer and input need "
                f"[num_layers, batch, hidden_size] = {expected}",
                field=f"body.{name}",
            )
        states.append(state.to(device))
    if given["h0"] is None and given["c0"] is None:
        return None  # torch's own zeros
    return (states[0], states[1]) if is_lstm else states[0]


def forward(
    request: RNNForwardRequest, registry: ModelRegistry, limits: Limits, binary: bool = False
) -> RNNForwardResponse:
    """The layer's answer; with ``binary``, its tensors in ``tensors`` (for safetensors) rather
    than as nested lists."""
    if request.input is None:
        return _forward_texts(request, registry, limits, binary)
    return _forward_tensor(request, registry, limits, binary)


def _forward_tensor(
    request: RNNForwardRequest, registry: ModelRegistry, limits: Limits, binary: bool
) -> RNNForwardResponse:
    x = request_tensor(request, "input", limits)
    assert x is not None  # the tensor form has an input (the request model checks it)
    if x.dim() != 3:
        layout = (
            "[batch, seq_len, input_size]"
            if request.batch_first
            else "[seq_len, batch, input_size]"
        )
        raise InvalidInputError(
            f"input must have 3 dimensions {layout}, got shape {list(x.shape)}", field="body.input"
        )
    loaded = None
    seed = None
    if request.rnn is not None:
        spec = request.rnn
        check_value(limits, "max_embedding_dim", spec.input_size, "body.rnn.input_size")
        check_value(limits, "max_hidden_size", spec.hidden_size, "body.rnn.hidden_size")
        check_value(limits, "max_num_layers", spec.num_layers, "body.rnn.num_layers")
        if spec.seed is None:
            seed = fresh_seed()
            layer = build_layer(spec, seed)
        else:
            seed = spec.seed
            layer = seeded_layer(spec, seed)
        device = torch.device("cpu")
    else:
        loaded = registry.get(request.model or "", request.version)
        layer = loaded.model.rnn
        device = loaded.device
    if x.size(-1) != layer.input_size:
        raise InvalidInputError(
            f"input's last dimension is {x.size(-1)}, "
            f"but the layer's input_size is {layer.input_size}",
            field="body.input",
        )
    # (seq, batch, input) in torch's default layout; our models' layers are batch_first.
    seq_first = x.transpose(0, 1) if request.batch_first else x
    seq_len, batch = seq_first.shape[:2]
    check_limit(limits, "max_tokens_per_forward", seq_len * batch)
    check_limit(limits, "max_tensor_elements", seq_len * batch * layer.hidden_size)
    hidden = _initial_state(request, layer, batch, limits, device)
    _check_states_size(request, layer, seq_len, batch, limits)
    layer_input = seq_first.transpose(0, 1) if layer.batch_first else seq_first
    output, state = layer(layer_input.to(device), hidden)
    if layer.batch_first != request.batch_first:
        output = output.transpose(0, 1)
    states = None
    if request.return_states:
        states = _every_layer_state(layer, seq_first.to(device), hidden, None)
    response = _response(
        request,
        layer,
        output,
        state,
        limits=limits,
        seed=seed,
        loaded=loaded,
        states=states,
        binary=binary,
    )
    response.initial_state = "zeros" if hidden is None else "given"
    return response


@dataclass(frozen=True)
class PreparedTexts:
    """A text-form request checked and encoded, ready to join a batch of its model version."""

    request: RNNForwardRequest
    loaded: LoadedModel
    encoded: EncodedTexts
    limits: Limits
    binary: bool

    @property
    def rows(self) -> int:
        return len(self.encoded.ids)

    @property
    def longest(self) -> int:
        return max(map(len, self.encoded.ids))


def batchable(request: RNNForwardRequest) -> bool:
    """Whether a request may share a pass with others: the text form, without its own initial
    state and without every layer's states (computed a step at a time, for one request)."""
    given = request.h0 is not None or request.c0 is not None or bool(request.tensors)
    return request.input is None and not given and not request.return_states


def prepare_texts(
    request: RNNForwardRequest, registry: ModelRegistry, limits: Limits, binary: bool = False
) -> PreparedTexts:
    """Everything of the text form but the pass: the checks, segmentation, ids."""
    loaded = registry.get(request.model or "", request.version)
    texts = [request.text] if request.text is not None else list(request.texts or [])
    check_texts(limits, texts)
    encoded = encode_texts(loaded, texts, "text" if request.text is not None else "texts")
    longest = max(len(row) for row in encoded.ids)
    layer = loaded.model.rnn
    check_limit(limits, "max_tokens_per_forward", longest * len(texts))
    check_limit(limits, "max_tensor_elements", longest * len(texts) * layer.hidden_size)
    _check_states_size(request, layer, longest, len(texts), limits)
    return PreparedTexts(request, loaded, encoded, limits, binary)


def compute_texts(items: Sequence[PreparedTexts]) -> list[RNNForwardResponse | Exception]:
    """The answers of text-form requests for one model version, from one pass over their texts
    right-padded together (packed, so each text's ``hn`` is at its own last token). Only a
    request alone may bring its own ``h0``/``c0`` or ask for ``return_states``
    (:func:`batchable`)."""
    loaded = items[0].loaded
    layer = loaded.model.rnn
    rows = [row for item in items for row in item.encoded.ids]
    lengths = [len(row) for row in rows]
    pad = loaded.vocab.pad_id if loaded.vocab.pad_id is not None else 0
    ids = torch.full((len(rows), max(lengths)), pad, dtype=torch.long)  # (batch, seq)
    for position, token_ids in enumerate(rows):
        ids[position, : len(token_ids)] = torch.tensor(token_ids)
    ids = ids.to(loaded.device)
    hidden = None
    if len(items) == 1:
        hidden = _initial_state(items[0].request, layer, len(rows), items[0].limits, loaded.device)
    initial = "given" if hidden is not None else "zeros"
    if hidden is None and loaded.eos_id is not None:
        # A fresh text: where every text began in training, after the <eos> that ends the last.
        hidden = loaded.model.start_state(len(rows), loaded.eos_id)
        initial = "eos"
    result = loaded.model.recurrent(
        ids, hidden, lengths=torch.tensor(lengths) if len(set(lengths)) > 1 else None
    )
    starts = list(accumulate((len(item.encoded.ids) for item in items), initial=0))

    def answer(position: int) -> RNNForwardResponse:
        item, request = items[position], items[position].request
        begin, end = starts[position], starts[position + 1]
        own = lengths[begin:end]
        output = result.output[begin:end, : max(own)]  # (texts, seq, hidden): its own padding
        if not request.batch_first:
            output = output.transpose(0, 1)
        hn = result.hn[:, begin:end]
        state = hn if result.cn is None else (hn, result.cn[:, begin:end])
        states = None
        if request.return_states:  # alone: see batchable()
            embedded = loaded.model.embed(ids).transpose(0, 1)  # (seq, batch, emb)
            states = _every_layer_state(layer, embedded, hidden, own)
        response = _response(
            request,
            layer,
            output,
            state,
            limits=item.limits,
            loaded=loaded,
            states=states,
            binary=item.binary,
        )
        response.lengths = own
        response.initial_state = initial
        response.tokens = item.encoded.tokens
        response.ids = item.encoded.ids
        return response

    return answer_each(range(len(items)), answer)


def _forward_texts(
    request: RNNForwardRequest, registry: ModelRegistry, limits: Limits, binary: bool
) -> RNNForwardResponse:
    return alone(compute_texts, prepare_texts(request, registry, limits, binary))


def _check_states_size(
    request: RNNForwardRequest, layer: nn.RNNBase, seq_len: int, batch: int, limits: Limits
) -> None:
    """``return_states``' answer, [num_layers, seq_len, batch, hidden], within the tensor limit:
    checked before any forward pass runs."""
    if request.return_states:
        size = layer.num_layers * seq_len * batch * layer.hidden_size
        check_limit(limits, "max_tensor_elements", size)


def _every_layer_state(
    layer: nn.RNNBase,
    inputs: torch.Tensor,
    hidden: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None,
    lengths: list[int] | None,
) -> torch.Tensor:
    """Every layer's hidden state after every step: ``(num_layers, seq, batch, hidden)``.

    torch returns only the last layer's states (``output``) and every layer's final one
    (``hn``); the layers in between are seen by running the same layer one step at a time,
    carrying its state. A text whose ``lengths`` entry has ended keeps its state (as packing
    does) and shows zeros past its end, as ``output`` does. ``inputs``: ``(seq, batch, input)``.
    """
    seq_len, batch = inputs.shape[:2]
    states = inputs.new_zeros(layer.num_layers, seq_len, batch, layer.hidden_size)
    alive = torch.ones(seq_len, batch, dtype=torch.bool, device=inputs.device)
    if lengths is not None:
        alive = torch.arange(seq_len, device=inputs.device).unsqueeze(1) < torch.tensor(
            lengths, device=inputs.device
        ).unsqueeze(0)  # (seq, batch)
    carried = hidden
    for step in range(seq_len):
        step_input = inputs[step : step + 1]  # (1, batch, input)
        if layer.batch_first:
            step_input = step_input.transpose(0, 1)
        _, new = layer(step_input, carried)
        keep = alive[step].view(1, batch, 1)
        if carried is None:
            carried = (
                tuple(torch.zeros_like(t) for t in new)
                if isinstance(new, tuple)
                else torch.zeros_like(new)
            )
        if isinstance(new, tuple):
            carried = tuple(torch.where(keep, n, c) for n, c in zip(new, carried, strict=True))
            top = carried[0]
        else:
            carried = torch.where(keep, new, carried)
            top = carried
        states[:, step] = torch.where(keep, top, torch.zeros_like(top))
    return states


def _response(
    request: RNNForwardRequest,
    layer: nn.RNNBase,
    output: torch.Tensor,
    state: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
    *,
    limits: Limits,
    seed: int | None = None,
    loaded: LoadedModel | None = None,
    states: torch.Tensor | None = None,
    binary: bool = False,
) -> RNNForwardResponse:
    hn, cn = state if isinstance(state, tuple) else (state, None)
    if states is not None and request.batch_first:
        states = states.transpose(1, 2)  # (layers, batch, seq, hidden)
    parameters = None
    if request.return_weights:
        check_limit(limits, "max_tensor_elements", sum(p.numel() for p in layer.parameters()))
        parameters = dict(layer.named_parameters())
    others = {
        "batch_first": request.batch_first,
        "seed": seed,
        "model": loaded.name if loaded is not None else None,
        "version": loaded.version if loaded is not None else None,
    }
    if binary:
        response = RNNForwardResponse.model_construct(**others)
        tensors = {"output": output, "hn": hn, "cn": cn, "states": states}
        response.tensors.update({name: t.float() for name, t in tensors.items() if t is not None})
        for name, parameter in (parameters or {}).items():
            response.tensors[f"weights.{name}"] = parameter.float()
        return response
    return RNNForwardResponse(
        output=tensor_to_json(output),
        hn=tensor_to_json(hn),
        cn=tensor_to_json(cn) if cn is not None else None,
        states=tensor_to_json(states) if states is not None else None,
        weights={name: tensor_to_json(p) for name, p in parameters.items()}
        if parameters is not None
        else None,
        **others,
    )
