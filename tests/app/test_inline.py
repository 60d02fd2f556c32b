"""Which requests run on the event loop (app.inline): only work bounded to microseconds."""

from app.inline import runs_inline
from app.schemas.rnn import RNNForwardRequest


def test_every_layer_states_are_never_computed_on_the_event_loop():
    # return_states steps the layer one step at a time in Python: never "small".
    text = RNNForwardRequest(model="lesson-rnn", text="我爱")
    tensor = RNNForwardRequest(rnn={"input_size": 1, "hidden_size": 2}, input=[[[0.5]]])
    assert runs_inline(text)
    assert runs_inline(tensor)
    assert not runs_inline(text.model_copy(update={"return_states": True}))
    assert not runs_inline(tensor.model_copy(update={"return_states": True}))


def test_a_binary_input_is_sized_by_its_tensor_not_its_placeholder():
    import torch

    from app.binary import PLACEHOLDER

    request = RNNForwardRequest(rnn={"input_size": 4, "hidden_size": 2}, input=PLACEHOLDER)
    request.tensors["input"] = torch.zeros(2, 1, 4)
    assert runs_inline(request)
    request.tensors["input"] = torch.zeros(512, 8, 4)
    assert not runs_inline(request)
