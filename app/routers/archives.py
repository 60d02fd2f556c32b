"""Moving models between services: ``GET /models/{name}/versions/{version}/export`` gives one
archive file (app.archive), ``POST /models/import`` takes one back as a model version."""

from pathlib import Path as FilePath
from typing import Annotated

import anyio
from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from starlette.requests import ClientDisconnect

from app import archive
from app.deps import ReadState, WriteState
from app.errors import (
    ConflictError,
    InvalidInputError,
    LimitExceededError,
    NotFoundError,
    UnsupportedMediaTypeError,
)
from app.problems import WRITE_ERRORS, responses_for
from app.registry import NAME_PATTERN
from app.routers import name_model
from app.routers.registry import NameParam
from app.schemas.registry import ModelInfo
from app.services import archives as service
from app.services.registry import model_info

router = APIRouter(prefix="/models", tags=["models"])
ARCHIVE_CONTENT = {
    media_type: {"schema": {"type": "string", "format": "binary"}}
    for media_type in archive.MEDIA_TYPES
}
EXPORTED = {
    200: {
        "description": "The archive (`<name>-v<version>.seqlab`, an uncompressed tar).",
        "content": {archive.MEDIA_TYPE: ARCHIVE_CONTENT[archive.MEDIA_TYPE]},
    }
}
IMPORT_BODY = {"requestBody": {"required": True, "content": ARCHIVE_CONTENT}}
WRITE_BYTES = 1 << 20  # the body goes to disk in writes of this size, off the event loop


@router.get(
    "/{name}/versions/{version}/export",
    response_class=StreamingResponse,
    responses={**EXPORTED, **responses_for(NotFoundError)},
)
async def export_model(
    name: NameParam,
    version: Annotated[int, Path(ge=1, description="The version to export.")],
    state: ReadState,
) -> StreamingResponse:
    """One version as a model archive: weights (safetensors), config, vocabulary, tokenizer
    settings, metrics and the checksum of each; `POST /models/import` takes it back."""
    exported = await anyio.to_thread.run_sync(service.export_version, state.registry, name, version)
    response = StreamingResponse(
        exported.chunks(),
        media_type=archive.MEDIA_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{exported.filename}"',
            "Content-Length": str(exported.size),
            "ETag": f'"{exported.digest}"',
        },
    )
    name_model(response, exported.name, exported.version)
    return response


@router.post(
    "/import",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=IMPORT_BODY,
    responses=responses_for(
        ConflictError,
        NotFoundError,
        InvalidInputError,
        LimitExceededError,
        UnsupportedMediaTypeError,
        *WRITE_ERRORS,
    ),
)
async def import_model(
    request: Request,
    response: Response,
    state: WriteState,
    name: Annotated[
        str | None,
        Query(pattern=NAME_PATTERN, description="The model's name here; the archive's if omitted."),
    ] = None,
    create: Annotated[
        bool | None,
        Query(
            description="true: a new model (409 if the name is taken); false: the next version "
            "of an existing model (404 if there is none); omitted: whichever applies."
        ),
    ] = None,
) -> ModelInfo:
    """Import a model archive (from `GET /models/{name}/versions/{version}/export`) as the
    body: checked whole (checksums, manifest, the model loads) before it becomes a version."""
    _check_media_type(request)
    service.check_target(state.registry, name, create)  # before a large body is read
    limits = state.settings.limits
    with service.staging_directory(state.registry) as staging:
        upload = staging / "upload"
        await _receive_to(request, upload)
        loaded = await state.run(
            service.import_file, upload, state.registry, limits, name, create, kind="upload"
        )
    name_model(response, loaded.name, loaded.version)
    response.headers["Location"] = f"/models/{loaded.name}"
    return model_info(state.registry, loaded.name, loaded.version)


def _check_media_type(request: Request) -> None:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in archive.MEDIA_TYPES:
        raise UnsupportedMediaTypeError(
            f"send the archive as {' or '.join(archive.MEDIA_TYPES)}, not "
            f"{media_type or 'nothing'}",
            errors=[
                {
                    "field": "header.content-type",
                    "message": f"expected {archive.MEDIA_TYPE}",
                    "type": "media_type",
                }
            ],
        )


async def _receive_to(request: Request, path: FilePath) -> None:
    """Write the body to ``path`` as it arrives (the middleware bounds its size and its
    stalls), never holding more than a write's worth of it in memory."""
    pending: list[bytes] = []
    pending_bytes = 0
    with open(path, "wb") as handle:
        try:
            async for chunk in request.stream():
                pending.append(chunk)
                pending_bytes += len(chunk)
                if pending_bytes >= WRITE_BYTES:
                    await anyio.to_thread.run_sync(handle.write, b"".join(pending))
                    pending, pending_bytes = [], 0
        except ClientDisconnect:  # an upload abandoned: nobody to answer, nothing to log
            raise InvalidInputError("the client went away before the archive arrived") from None
        await anyio.to_thread.run_sync(handle.write, b"".join(pending))
