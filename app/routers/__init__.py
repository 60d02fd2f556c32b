"""One router per area; each handler resolves its access, calls one service, shapes the answer."""

from collections.abc import Callable
from typing import TypeVar

from fastapi import Response
from pydantic import BaseModel

from app.errors import LimitExceededError, NotFoundError, UnsupportedMediaTypeError
from app.inline import runs_inline
from app.problems import responses_for
from app.registry import ModelRegistry
from app.settings import Limits
from app.state import ServiceState

RequestT = TypeVar("RequestT", bound=BaseModel)
AnswerT = TypeVar("AnswerT")

# What an inference route (a JSON body naming a model) can answer besides its 200. The 401
# is added by app.deps.publish_security where the settings protect the route.
INFERENCE_ERRORS = responses_for(NotFoundError, LimitExceededError, UnsupportedMediaTypeError)


async def infer(
    state: ServiceState,
    operation: Callable[[RequestT, ModelRegistry, Limits], AnswerT],
    request: RequestT,
) -> AnswerT:
    """Run an inference service on ``request``: on the event loop when it is small."""
    return await state.run(
        operation, request, state.registry, state.settings.limits, small=runs_inline(request)
    )


def name_model(response: Response, name: str, version: int) -> None:
    """Every answer that used a model says which: the ``Seqlab-Model: name@version`` header."""
    response.headers["Seqlab-Model"] = f"{name}@{version}"


def json_answer(result: BaseModel, model: str | None, version: int | None) -> Response:
    """Serialise a typed answer once, in Rust, without FastAPI validating it again.

    The routes declare their ``response_model`` for the docs; the service already built a
    validated model, so checking its (possibly large, tensor-valued) fields a second time
    would only cost time. ``None`` fields are left out, as ``response_model_exclude_none``.
    """
    response = Response(result.model_dump_json(exclude_none=True), media_type="application/json")
    if model is not None and version is not None:
        name_model(response, model, version)
    return response
