"""Dependencies: settings, registry and tokenizers from the app's state; API key; media type."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, FastAPI, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.errors import NotReadyError, UnauthorizedError, UnsupportedMediaTypeError
from app.registry import ModelRegistry
from app.settings import Settings
from app.state import ServiceState
from app.tokenizers import TokenizerCache

_bearer = HTTPBearer(auto_error=False, description="The key set in SEQLAB_API_KEY.")
# Every dependency here is `async def`: FastAPI runs a plain `def` dependency in the
# threadpool, a thread hop per dependency per request for what are attribute lookups.


async def get_state(request: Request) -> ServiceState:
    return request.app.state.service


StateDep = Annotated[ServiceState, Depends(get_state)]


async def get_settings(state: StateDep) -> Settings:
    return state.settings


async def get_registry(state: StateDep) -> ModelRegistry:
    if not state.registry_ready:
        raise NotReadyError("the model registry is still loading; retry shortly (see /ready)")
    return state.registry


async def get_tokenizers(state: StateDep) -> TokenizerCache:
    if not state.jieba_ready:
        raise NotReadyError("jieba is still loading; retry shortly (see /ready)")
    return state.tokenizers


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
TokenizersDep = Annotated[TokenizerCache, Depends(get_tokenizers)]


def _check_key(state: ServiceState, credentials: HTTPAuthorizationCredentials | None) -> None:
    key = state.settings.api_key
    if key is None:
        return
    if credentials is None:
        raise UnauthorizedError("this route needs 'Authorization: Bearer <key>'")
    # Constant-time comparison, so the key cannot be guessed byte by byte from timings.
    if not hmac.compare_digest(credentials.credentials.encode(), key.get_secret_value().encode()):
        raise UnauthorizedError("the API key is not valid")


async def require_api_key(
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> None:
    """For every route that changes state, when SEQLAB_API_KEY is set."""
    _check_key(state, credentials)


async def require_read_key(
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> None:
    """For reads, only when SEQLAB_PROTECT_READS is also set."""
    if state.settings.protect_reads:
        _check_key(state, credentials)


async def require_json(request: Request) -> None:
    """415 for a body that is not JSON (FastAPI would otherwise try to validate raw bytes)."""
    if request.method in ("GET", "HEAD", "DELETE", "OPTIONS"):
        return
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaTypeError(
            f"the body must be application/json, not {media_type or 'missing'}",
            errors=[
                {
                    "field": "header.content-type",
                    "message": "expected application/json",
                    "type": "media_type",
                }
            ],
        )


# A read-only POST (inference) is marked so in the OpenAPI spec; every other write needs the key.
READ_ONLY = {"x-seqlab-read-only": True}
WRITE_METHODS = ("post", "put", "patch", "delete")


ALWAYS_OPEN = ("/health", "/ready")


def needs_key(path: str, method: str, operation: dict, settings: Settings) -> bool:
    """Whether an operation of the OpenAPI spec requires the API key under these settings."""
    if settings.api_key is None or path in ALWAYS_OPEN:
        return False
    writes = method in WRITE_METHODS and not operation.get("x-seqlab-read-only")
    return writes or settings.protect_reads


def publish_security(app: FastAPI, settings: Settings) -> None:
    """Make the spec's ``security`` say what the running settings enforce (no key: none)."""
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = generate()
            for path, operations in schema["paths"].items():
                for method, operation in operations.items():
                    if not needs_key(path, method, operation, settings):
                        operation.pop("security", None)
                        operation.get("responses", {}).pop("401", None)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
