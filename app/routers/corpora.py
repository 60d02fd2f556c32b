from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.deps import ReadState, WriteState
from app.errors import (
    InvalidInputError,
    LimitExceededError,
    NotFoundError,
    UnsupportedMediaTypeError,
)
from app.limits import check_limit
from app.problems import WRITE_ERRORS, responses_for
from app.schemas.training import CorpusInfo, CorpusList
from app.services import corpora as service

router = APIRouter(prefix="/corpora", tags=["training"])
CorpusId = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")]
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/plain": {
                "schema": {"type": "string"},
                "example": "我爱学习自然语言处理\n我爱机器学习\n",
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=UPLOAD_BODY,
    responses=responses_for(
        InvalidInputError, LimitExceededError, UnsupportedMediaTypeError, *WRITE_ERRORS
    ),
)
async def upload_corpus(request: Request, response: Response, state: WriteState) -> CorpusInfo:
    """Upload a UTF-8 training text: a `text/plain` body or a `multipart/form-data` file."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    limit = state.settings.limits.max_corpus_bytes
    filename = None
    if media_type == "text/plain":
        data = await request.body()
    elif media_type == "multipart/form-data":
        try:
            form = await request.form(max_files=1, max_fields=4, max_part_size=limit + 1)
        except StarletteHTTPException as error:  # Starlette's 400 for a malformed form
            raise InvalidInputError(f"the multipart body cannot be read: {error.detail}") from error
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InvalidInputError("the form needs a 'file' part", field="body.file")
        data = await upload.read()
        filename = upload.filename
    else:
        raise UnsupportedMediaTypeError(
            f"upload a corpus as text/plain or multipart/form-data, not {media_type or 'nothing'}"
        )
    check_limit(state.settings.limits, "max_corpus_bytes", len(data))
    corpus = await state.run(state.corpora.add, data, filename, kind="upload")
    response.headers["Location"] = f"/corpora/{corpus.id}"
    return service.corpus_info(corpus)


@router.get("", responses=responses_for())
async def list_corpora(state: ReadState) -> CorpusList:
    """Uploaded corpora, oldest first."""
    return CorpusList(corpora=[service.corpus_info(c) for c in state.corpora.list()])


@router.delete(
    "/{corpus_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses_for(NotFoundError),
)
async def delete_corpus(corpus_id: CorpusId, state: WriteState) -> None:
    """Delete an uploaded corpus (models trained on it are kept)."""
    state.corpora.delete(corpus_id)
