"""Schemas of ``POST /rnn/forward``: a model's recurrent layer over texts, or any tensor."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from app.schemas.common import (
    BinaryTensors,
    ModelName,
    Seed,
    StrictModel,
    TensorOut,
    Text,
    Version,
    exactly_one_of,
)

Tensor3 = list[list[list[float]]]


class RNNSpec(StrictModel):
    """A fresh layer: with `seed`, exactly `torch.manual_seed(seed); nn.RNN(...)`."""

    input_size: int = Field(ge=1, examples=[4])
    hidden_size: int = Field(ge=1, examples=[5])
    num_layers: int = Field(1, ge=1, examples=[2])
    nonlinearity: Literal["tanh", "relu"] = "tanh"
    bias: bool = True
    cell: Literal["rnn", "lstm", "gru"] = Field("rnn", description="nn.RNN, nn.LSTM or nn.GRU.")
    seed: Seed | None = Field(None, description="Omitted: a random seed, returned in the answer.")


class RNNForwardRequest(StrictModel, BinaryTensors):
    """Text form: `model` + `text`/`texts`. Tensor form: `input` + `rnn` (or a `model`'s layer).

    Shapes follow torch: `input` is [seq_len, batch, input_size] ([batch, seq_len, input_size]
    with `batch_first`), `h0` and `c0` are [num_layers, batch, hidden_size], zeros by default.
    """

    model_config = StrictModel.model_config | {
        "json_schema_extra": {
            **exactly_one_of("text", "texts", "input"),
            "examples": [
                {
                    "rnn": {"input_size": 4, "hidden_size": 5, "num_layers": 2, "seed": 0},
                    "input": [
                        [[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]],
                        [[0.9, 1.0, 1.1, 1.2], [1.3, 1.4, 1.5, 1.6]],
                        [[1.7, 1.8, 1.9, 2.0], [2.1, 2.2, 2.3, 2.4]],
                    ],
                    "return_weights": True,
                },
                {"model": "lesson-rnn", "texts": ["我爱学习自然语言处理", "我爱机器学习"]},
            ],
        }
    }

    model: ModelName | None = None
    version: Version | None = None
    text: Text | None = None
    texts: list[Text] | None = Field(None, min_length=1)
    input: Tensor3 | None = Field(None, description="[seq_len, batch, input_size]")
    rnn: RNNSpec | None = None
    h0: Tensor3 | None = Field(
        None,
        description="[num_layers, batch, hidden_size]. If omitted: zeros, or in the text form "
        "of a model that ends its texts with <eos>, the state after <eos> (a fresh text).",
    )
    c0: Tensor3 | None = Field(None, description="LSTM cell state, like h0.")
    batch_first: bool = Field(False, description="input and output are [batch, seq_len, …].")
    return_weights: bool = Field(False, description="Also return the layer's parameters.")
    return_states: bool = Field(
        False,
        description="Also return `states`: every layer's hidden state after every step "
        "(`output` has only the last layer's).",
    )

    @model_validator(mode="after")
    def _one_form(self) -> RNNForwardRequest:
        text_form = self.text is not None or self.texts is not None
        if text_form == (self.input is not None):
            raise ValueError("give either 'text'/'texts' (with 'model') or 'input'")
        if self.text is not None and self.texts is not None:
            raise ValueError("give 'text' or 'texts', not both")
        if text_form and (self.model is None or self.rnn is not None):
            raise ValueError("the text form needs 'model' (and no 'rnn')")
        if not text_form and (self.model is None) == (self.rnn is None):
            raise ValueError("the tensor form needs exactly one of 'model' or 'rnn'")
        if self.version is not None and self.model is None:
            raise ValueError("'version' needs 'model'")
        return self


class RNNForwardResponse(BinaryTensors):
    output: TensorOut = Field(
        description="Last layer's state at every step: [seq_len, batch, hidden]."
    )
    hn: TensorOut = Field(
        description="Every layer's state after the last step: [num_layers, batch, hidden]."
    )
    cn: TensorOut | None = Field(None, description="LSTM cell state after the last step.")
    states: TensorOut | None = Field(
        None,
        description="With `return_states`: every layer's hidden state after every step, "
        "[num_layers, seq_len, batch, hidden] ([num_layers, batch, seq_len, hidden] with "
        "`batch_first`). `states[-1]` is `output`; each text's state at its last step is `hn`; "
        "steps past a text's end (padding) are zeros, as in `output`.",
    )
    batch_first: bool
    weights: dict[str, TensorOut] | None = Field(None, description="Under torch's names.")
    seed: int | None = Field(None, description="The seed the fresh layer was made with.")
    lengths: list[int] | None = Field(None, description="Text form: real tokens per text.")
    tokens: list[list[str]] | None = None
    ids: list[list[int]] | None = None
    initial_state: Literal["zeros", "eos", "given"] | None = Field(
        None,
        description="What the layer started from: zeros, the state after <eos> (text form, a "
        "model with <eos>), or the given h0/c0.",
    )
    model: str | None = None
    version: int | None = None
